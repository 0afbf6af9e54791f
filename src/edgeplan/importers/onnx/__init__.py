"""Estimate an ONNX graph as an edgeplan chain (docs/chain-model.md §1, model format 1).

Nothing is run: the numbers come from the graph itself. ``onnx.shape_inference`` gives every
tensor's shape at the chosen batch (symbolic batch dimensions of the graph inputs are set to
``--batch``, other symbolic input dimensions with ``--dim NAME=VALUE``); a table of per-op rules
gives FLOPs and what autograd would keep for the backward.

Linearisation
    The nodes are sorted topologically (stable: the file's order wherever it is already valid).
    Between node ``k`` and node ``k+1`` of that order the *live* activation tensors are those
    produced at or before ``k`` and consumed after ``k`` (graph outputs are consumed at the end).
    A position where exactly **one** activation tensor is live is an articulation point of the
    graph: the chain can be cut there, and that tensor is ``a_i``. With ``tuple_cuts`` a position
    where several are live, all produced since the previous cut, is a cut too (``a_i`` is the
    tuple: an unrolled RNN's ``(h, c)``, parallel branches). Not counted as activations:
    graph inputs (the input batch ``a_0`` is resident all iteration, docs/chain-model.md §2,
    so any stage may read it), initializers and tensors computed from constants only, and shape
    metadata (outputs of ``Shape``/``Size`` and what is computed from them and constants only).
    A residual block has its input and its branch both live until the ``Add``, so no cut falls
    inside it (a tensor live across a cut must be made after the previous cut). Articulation
    *segments* are the node runs between consecutive cuts (``_cuts``).
Stages
    ``nodes``: one stage per segment. ``N``: consecutive segments merged into ``min(N, segments)``
    stages minimising the largest stage's forward+backward FLOPs. ``auto``: a new stage starts
    at each segment holding a weighted op (Conv, ConvTranspose, Gemm, MatMul, Einsum, RNNs);
    weightless segments join the stage before (leading ones the first stage), so
    Conv-BN-Relu-Pool is one stage; more than ``AUTO_MAX_STAGES`` are then FLOP-balanced down.
    A final ``loss`` stage is added (an inference graph has no loss): cross-entropy over the
    first floating-point graph output; not when that output is already a scalar (the graph's
    own loss).
Shapes
    Symbolic input dimensions are fixed, then shape inference runs; shape arithmetic fed by
    ``Shape``/``Size`` (reshape targets) is evaluated with numpy and replaced by constants
    (``_fold_shapes``), and inference runs again, until nothing changes. A custom-domain op
    that inference does not know gets its first input's shape (reported).
Per stage
    ``out``: bytes of the tensor crossing the cut after the stage (the graph outputs, all of
    them, for the last graph stage; 4 bytes, the scalar loss, for the loss stage).
    ``saved``: the tensors the stage's ops keep for their backward (``KEEP`` rules below),
    deduplicated by storage (views alias their input), excluding the stage input, graph inputs,
    parameters and constants; plus per-op extras (batch-norm statistics, max-pool indices,
    dropout masks); then ``saved = max(kept + out_not_kept, out)``.
    ``fwd_flops``/``bwd_flops``: ``cost_node`` (per op type; uncostable ops are *reported*).
    ``params``: bytes of the floating-point initializers the stage's nodes read (batch-norm
    running mean/var are buffers and are left out), each initializer once, in the first stage.
``fwd_tmp``/``bwd_tmp`` are not estimated (0).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import heapq
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...formats.model_file import flops_txt, iec, model_head, scalar, shape_input

OPTIMIZERS = ("sgd", "momentum", "adam")
AUTO_MAX_STAGES = 100
MAX_LISTED = 20  # uncosted nodes listed one by one in the derivation and per stage

# --- dtypes --------------------------------------------------------------------------------------

_BITS = {"FLOAT": 32, "DOUBLE": 64, "BOOL": 8, "BFLOAT16": 16, "COMPLEX64": 64,
         "COMPLEX128": 128}
_FILE_DTYPES = {"FLOAT": "float32", "FLOAT16": "float16", "BFLOAT16": "bfloat16",
                "DOUBLE": "float64", "INT8": "int8", "UINT8": "uint8", "INT16": "int16",
                "INT32": "int32", "INT64": "int64"}
_PRECISION = {"FLOAT": "fp32", "FLOAT16": "fp16", "BFLOAT16": "bf16"}


def _onnx():
    try:
        import onnx
        import onnx.shape_inference
    except ImportError:  # pragma: no cover - depends on the environment
        raise InputError("the onnx package is not installed; the ONNX importer needs it",
                         hint="pip install 'edgeplan[onnx]'") from None
    return onnx


def _type_name(elem: int) -> str:
    from onnx import TensorProto
    try:
        return TensorProto.DataType.Name(elem)
    except ValueError:
        return f"TYPE{elem}"


def _bits(elem: int) -> int | None:
    name = _type_name(elem)
    if name in _BITS:
        return _BITS[name]
    m = re.match(r"^(?:U?INT|FLOAT)(\d+)", name)
    return int(m.group(1)) if m else None


def _is_float(elem: int) -> bool:
    name = _type_name(elem)
    return name.startswith("FLOAT") or name in ("DOUBLE", "BFLOAT16", "COMPLEX64", "COMPLEX128")


# --- results -------------------------------------------------------------------------------------

@dataclass
class Uncosted:
    node: str
    op: str          # "domain::Op" for custom domains
    reason: str
    stage: str = ""


@dataclass
class OnnxStage:
    """One chain stage (bytes, FLOP)."""

    name: str
    out_bytes: int
    saved_bytes: int
    fwd_flops: int
    bwd_flops: int
    param_bytes: int = 0
    param_count: int = 0
    fwd_tmp_bytes: int = 0
    bwd_tmp_bytes: int = 0
    nodes: list[str] = field(default_factory=list)         # node names (op type if unnamed)
    out_tensors: list[str] = field(default_factory=list)   # the tensor(s) crossing the cut
    saved_tensors: list[str] = field(default_factory=list)  # kept tensors (storage roots)
    saved_extra_bytes: int = 0                             # statistics, indices, masks
    uncosted: list[Uncosted] = field(default_factory=list)
    segments: int = 1                                      # articulation segments merged


@dataclass
class OnnxImportResult:
    name: str
    description: str
    path: str
    batch: int
    inputs: list[tuple[str, tuple[int, ...], str]]  # name, full shape, ONNX type name
    input_bytes: int
    stages: list[OnnxStage]
    param_count: int
    param_bytes: int
    onnx_version: str
    opset: int
    producer: str
    date: str
    node_count: int
    segment_count: int
    stages_mode: str
    tuple_cuts: bool
    dims: dict[str, int]
    precision: str | None
    loss_tensor: str
    loss_added: bool = True
    uncosted: list[Uncosted] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total_saved_bytes(self) -> int:
        return sum(s.saved_bytes for s in self.stages)

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Per-sample shape of a single input whose first dimension is the batch."""
        if len(self.inputs) == 1:
            _, shape, t = self.inputs[0]
            if shape and shape[0] == self.batch and t in _FILE_DTYPES:
                return tuple(shape[1:])
        return None

    @property
    def input_dtype(self) -> str | None:
        return _FILE_DTYPES.get(self.inputs[0][2]) if len(self.inputs) == 1 else None


# --- loading and shape inference -----------------------------------------------------------------

def load(path: str | Path) -> Any:
    """Read an ONNX file (external weight data is not loaded: only shapes are needed)."""
    onnx = _onnx()
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", source=str(p))
    if p.is_dir():
        raise InputError("is a directory, expected an ONNX file", source=str(p))
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError, RuntimeError, ...
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"not an ONNX model ({msg})", source=str(p)) from None
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise InputError("not an ONNX model (no graph nodes)", source=str(p))
    return model


def _dims_of(vi: Any) -> list[Any] | None:
    t = vi.type
    if t.WhichOneof("value") != "tensor_type" or not t.tensor_type.HasField("shape"):
        return None
    return list(t.tensor_type.shape.dim)


def _set_dims(model: Any, batch: int | None, dims: dict[str, int], src: str
              ) -> tuple[int, dict[str, int], list[str]]:
    """Fix the symbolic dimensions of the graph inputs in place; returns the batch, the dimension
    names set, notes."""
    g = model.graph
    inits = {i.name for i in g.initializer} | {i.values.name for i in g.sparse_initializer}
    inputs = [vi for vi in g.input if vi.name not in inits]
    notes: list[str] = []
    batch_names: set[str] = set()
    fixed0: set[int] = set()
    symbolic0 = False
    for vi in inputs:
        ds = _dims_of(vi)
        if vi.type.WhichOneof("value") != "tensor_type":
            raise InputError(f"graph input {vi.name!r} is not a tensor "
                             f"({vi.type.WhichOneof('value')}); only tensor inputs are supported",
                             source=src)
        if ds is None:
            raise InputError(f"graph input {vi.name!r} has no shape", source=src,
                             hint="export the model with input shapes")
        if not ds:
            continue
        d0 = ds[0]
        if d0.HasField("dim_value") and d0.dim_value > 0:
            fixed0.add(d0.dim_value)
        else:
            symbolic0 = True
            if d0.HasField("dim_param") and d0.dim_param not in dims:
                batch_names.add(d0.dim_param)
    if batch is None:
        if symbolic0:
            batch = 1
            notes.append("the graph's batch dimension is symbolic and no --batch was given: "
                         "batch 1")
        elif len(fixed0) == 1:
            batch = fixed0.pop()
        else:
            batch = 1
    elif fixed0 and not symbolic0 and batch not in fixed0:
        raise InputError(f"the graph inputs have a fixed batch dimension "
                         f"{', '.join(map(str, sorted(fixed0)))}; --batch {batch} cannot change "
                         "it", source=src,
                         hint="export with a dynamic batch axis, or drop --batch and use "
                              "`edgeplan solve --batch N`, which scales the numbers")
    values = dict(dims)
    for n in batch_names:
        values[n] = batch
    used: dict[str, int] = {}

    def fix(vi: Any, is_input: bool) -> None:
        ds = _dims_of(vi)
        if not ds:
            return
        for k, d in enumerate(ds):
            if d.HasField("dim_value") and d.dim_value > 0:
                continue
            if d.HasField("dim_param") and d.dim_param in values:
                used[d.dim_param] = values[d.dim_param]
                d.dim_value = values[d.dim_param]
            elif is_input and k == 0:
                d.dim_value = batch
            elif is_input:
                label = repr(d.dim_param) if d.HasField("dim_param") else "unnamed"
                raise InputError(f"graph input {vi.name!r}: dimension {k} is symbolic "
                                 f"({label}); give its size", source=src,
                                 hint=(f"--dim {d.dim_param}=N" if d.HasField("dim_param")
                                       else "export the model with this dimension fixed"))

    for vi in inputs:
        fix(vi, True)
    for vi in list(g.output) + list(g.value_info):
        fix(vi, False)
    unknown = sorted(set(dims) - set(used))
    if unknown:
        raise InputError(f"no dimension named {', '.join(map(repr, unknown))} in the graph",
                         param="dim")
    return batch, {k: v for k, v in used.items() if k not in batch_names}, notes


def _infer(model: Any, src: str) -> Any:
    onnx = _onnx()
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
                                                 data_prop=True)
    except Exception as e:  # noqa: BLE001 - InferenceError, ValueError (> 2 GB), ...
        msg = str(e).strip().splitlines()
        raise InputError(f"ONNX shape inference failed: {msg[0] if msg else type(e).__name__}",
                         source=src) from None


class _Types:
    """name -> (elem type, shape or None) for every tensor the graph knows."""

    def __init__(self, g: Any):
        self.t: dict[str, tuple[int, tuple[int, ...] | None]] = {}
        for init in g.initializer:
            self.t[init.name] = (init.data_type, tuple(int(d) for d in init.dims))
        for sp in g.sparse_initializer:
            self.t[sp.values.name] = (sp.values.data_type, tuple(int(d) for d in sp.dims))
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            if vi.name in self.t and self.t[vi.name][1] is not None:
                continue
            if vi.type.WhichOneof("value") != "tensor_type":
                continue
            tt = vi.type.tensor_type
            shape: tuple[int, ...] | None = None
            if tt.HasField("shape"):
                ds = tt.shape.dim
                if all(d.HasField("dim_value") and d.dim_value >= 0 for d in ds):
                    shape = tuple(int(d.dim_value) for d in ds)
            self.t[vi.name] = (tt.elem_type, shape)
        for node in g.node:  # Constant nodes: the shape is in the attribute
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
                for a in node.attribute:
                    if a.name == "value" and a.HasField("t"):
                        self.t.setdefault(node.output[0], (a.t.data_type,
                                                           tuple(int(d) for d in a.t.dims)))

    def shape(self, name: str) -> tuple[int, ...] | None:
        return self.t.get(name, (0, None))[1]

    def elem(self, name: str) -> int:
        return self.t.get(name, (0, None))[0]

    def numel(self, name: str) -> int | None:
        s = self.shape(name)
        return None if s is None else math.prod(s)

    def nbytes(self, name: str) -> int | None:
        n, b = self.numel(name), _bits(self.elem(name))
        if n is None or b is None:
            return None
        return (n * b + 7) // 8


# --- shape arithmetic, evaluated -----------------------------------------------------------------
# Exporters compute reshape targets at run time (Shape -> Gather -> Div -> Cast -> Concat ->
# Reshape); onnx's data propagation stops at some of these ops. With every input shape fixed,
# such "shape arithmetic" is constant: it is evaluated here with numpy and the node replaced by
# a Constant (same name and output), so that shape inference resolves the reshapes.

FOLD_MAX_ELEMENTS = 4096


def _np_int_div(a: Any, b: Any) -> Any:
    import numpy as np
    if np.issubdtype(np.asarray(a).dtype, np.integer) and np.issubdtype(np.asarray(b).dtype,
                                                                          np.integer):
        q = np.abs(a) // np.abs(b)
        return (np.sign(a) * np.sign(b) * q).astype(np.result_type(a, b))
    return np.asarray(a / b).astype(np.result_type(a, b))


def _axes(node: Any, vals: list[Any], pos: int) -> list[int] | None:
    if len(vals) > pos and vals[pos] is not None:
        return [int(v) for v in vals[pos].reshape(-1)]
    a = _attr(node, "axes", None)
    return None if a is None else [int(v) for v in a]


def _eval_node(node: Any, vals: list[Any], in_shapes: list[tuple[int, ...] | None]) -> Any:
    """numpy value of a shape-arithmetic node, or None when not supported."""
    import numpy as np
    from onnx import helper
    op = node.op_type
    x = vals[0] if vals else None
    if op == "Shape":
        shp = in_shapes[0]
        if shp is None:
            return None
        start, end = _attr(node, "start", 0), _attr(node, "end", None)
        return np.array(shp[start:end] if end is not None else shp[start:], dtype=np.int64)
    if op == "Size":
        return None if in_shapes[0] is None else np.array(math.prod(in_shapes[0]), dtype=np.int64)
    if any(v is None for v in vals[:1]):
        return None
    if op == "Identity":
        return x
    if op == "Cast":
        return x.astype(helper.tensor_dtype_to_np_dtype(_attr(node, "to")))
    if op == "Gather":
        return np.take(x, vals[1], axis=_attr(node, "axis", 0))
    if op == "Unsqueeze":
        axes = _axes(node, vals, 1)
        r = len(x.shape) + len(axes)
        for a in sorted(a + r if a < 0 else a for a in axes):
            x = np.expand_dims(x, a)
        return x
    if op == "Squeeze":
        axes = _axes(node, vals, 1)
        return np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(axes))
    if op == "Concat":
        return np.concatenate(vals, axis=_attr(node, "axis", 0))
    if op == "Slice":
        if len(vals) >= 3:
            starts, ends = vals[1].reshape(-1), vals[2].reshape(-1)
            axes = vals[3].reshape(-1) if len(vals) > 3 and vals[3] is not None else range(
                len(starts))
            steps = vals[4].reshape(-1) if len(vals) > 4 and vals[4] is not None else [1] * len(
                starts)
        else:
            starts, ends = _attr(node, "starts"), _attr(node, "ends")
            axes = _attr(node, "axes", list(range(len(starts))))
            steps = [1] * len(starts)
        sl = [slice(None)] * x.ndim
        for a, b, e, st in zip(axes, starts, ends, steps):
            sl[int(a)] = slice(int(b), int(e), int(st))
        return x[tuple(sl)]
    binary = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _np_int_div,
              "Equal": np.equal, "Less": np.less, "Greater": np.greater, "Min": np.minimum,
              "Max": np.maximum, "Mod": np.mod, "And": np.logical_and, "Or": np.logical_or}
    if op in binary and len(vals) == 2:
        return np.asarray(binary[op](vals[0], vals[1]))
    unary = {"Neg": np.negative, "Abs": np.abs, "Floor": np.floor, "Ceil": np.ceil,
             "Sqrt": np.sqrt, "Not": np.logical_not}
    if op in unary:
        return np.asarray(unary[op](x)).astype(x.dtype if op != "Not" else bool)
    if op == "Where" and len(vals) == 3:
        return np.where(vals[0], vals[1], vals[2])
    if op == "Range" and len(vals) == 3:
        return np.arange(vals[0].item(), vals[1].item(), vals[2].item()).astype(vals[0].dtype)
    if op == "ConstantOfShape":
        t = _attr(node, "value", None)
        fill = np.zeros(1, np.float32) if t is None else _tensor_array(t)
        n = int(np.prod(x)) if x.size else 1
        if n > FOLD_MAX_ELEMENTS:
            return None
        return np.full(tuple(int(d) for d in x.reshape(-1)), fill.reshape(-1)[0], fill.dtype)
    if op == "Reshape":
        shape = [int(d) for d in vals[1].reshape(-1)]
        shape = [x.shape[k] if d == 0 and not _attr(node, "allowzero", 0) else d
                 for k, d in enumerate(shape)]
        return x.reshape(shape)
    if op in ("ReduceProd", "ReduceSum", "ReduceMin", "ReduceMax"):
        axes = _axes(node, vals, 1)
        f = {"ReduceProd": np.prod, "ReduceSum": np.sum, "ReduceMin": np.min,
             "ReduceMax": np.max}[op]
        keep = bool(_attr(node, "keepdims", 1))
        return np.asarray(f(x, axis=None if not axes else tuple(axes), keepdims=keep))
    if op == "Transpose":
        return np.transpose(x, _attr(node, "perm", None))
    if op == "Expand":
        return x * np.ones([int(d) for d in vals[1].reshape(-1)], dtype=x.dtype)
    return None


def _tensor_array(t: Any) -> Any:
    from onnx import numpy_helper
    return numpy_helper.to_array(t)


def _constant_value(node: Any) -> Any:
    import numpy as np
    for a in node.attribute:
        if a.name == "value" and a.HasField("t"):
            if a.t.data_location == 1:  # external
                return None
            return _tensor_array(a.t)
        if a.name == "value_int":
            return np.array(a.i, dtype=np.int64)
        if a.name == "value_ints":
            return np.array(list(a.ints), dtype=np.int64)
        if a.name == "value_float":
            return np.array(a.f, dtype=np.float32)
        if a.name == "value_floats":
            return np.array(list(a.floats), dtype=np.float32)
    return None


def _fold_shapes(model: Any, types: _Types) -> int:
    """Evaluate shape arithmetic (nodes fed by Shape/Size, transitively, and constants) and
    replace each such node by a Constant with the same name and output. Returns how many."""
    import numpy as np
    from onnx import helper, numpy_helper
    g = model.graph
    values: dict[str, Any] = {}
    for init in g.initializer:
        if init.data_location != 1 and math.prod(init.dims) <= FOLD_MAX_ELEMENTS:
            with contextlib.suppress(Exception):  # an odd dtype: not shape arithmetic
                values[init.name] = _tensor_array(init)
    derived: set[str] = set()
    folded = 0
    for node in g.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        outs = [o for o in node.output if o]
        if node.op_type == "Constant":
            v = _constant_value(node)
            if v is not None and outs:
                values[outs[0]] = v
            continue
        ins = list(node.input)
        if len(outs) != 1:
            continue
        is_shape = node.op_type in META_OPS
        if not is_shape and not any(i in derived for i in ins if i):
            continue
        if not is_shape and not all((not i) or i in values for i in ins):
            continue
        vals = [values.get(i) if i else None for i in ins]
        try:
            with np.errstate(all="ignore"):
                v = _eval_node(node, vals, [types.shape(i) if i else None for i in ins])
        except Exception:  # noqa: BLE001 - leave the node to shape inference
            v = None
        if v is None:
            continue
        v = np.asarray(v)
        if v.size > FOLD_MAX_ELEMENTS:
            continue
        values[outs[0]] = v
        derived.add(outs[0])
        node.CopyFrom(helper.make_node("Constant", [], outs, name=node.name,
                                       value=numpy_helper.from_array(v, outs[0])))
        folded += 1
    return folded


def _infer_with_assumptions(model: Any, src: str) -> tuple[Any, _Types, list[str], int]:
    """Shape inference, repeated while it helps: shape arithmetic is evaluated (``_fold_shapes``);
    outputs of ops without a schema (custom domains) that stay unknown get their first input's
    type and shape (one output only), reported."""
    onnx = _onnx()
    from onnx import helper
    assumed: list[str] = []
    folded = 0
    m = model
    for _ in range(len(model.graph.node) + 1):
        m = _infer(m, src)
        types = _Types(m.graph)
        n = _fold_shapes(m, types)
        folded += n
        added = n > 0
        for node in m.graph.node:
            if onnx.defs.has(node.op_type, "" if node.domain in ("", "ai.onnx") else node.domain):
                continue
            outs = [o for o in node.output if o]
            ins = [i for i in node.input if i]
            if len(outs) != 1 or types.shape(outs[0]) is not None or not ins:
                continue
            if types.shape(ins[0]) is None:
                continue
            m.graph.value_info.append(helper.make_tensor_value_info(
                outs[0], types.elem(ins[0]), list(types.shape(ins[0]))))
            assumed.append(_label(node))
            added = True
        if not added:
            return m, types, assumed, folded
    return m, _Types(m.graph), assumed, folded  # pragma: no cover - converges


# --- graph analysis ------------------------------------------------------------------------------

def _label(node: Any) -> str:
    op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
    return f"{op} {node.name!r}" if node.name else op


def _op(node: Any) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def _subgraph_inputs(node: Any) -> list[str]:
    """Outer-scope tensors read by the subgraphs of If/Loop/Scan (implicit inputs)."""
    out: list[str] = []

    def walk(g: Any, outer_defined: set[str]) -> None:
        defined = set(outer_defined)
        defined |= {i.name for i in g.input} | {i.name for i in g.initializer}
        for n in g.node:
            for i in n.input:
                if i and i not in defined:
                    out.append(i)
            for a in n.attribute:
                for sg in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    walk(sg, defined)
            defined |= {o for o in n.output if o}

    for a in node.attribute:
        for sg in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            walk(sg, set())
    return list(dict.fromkeys(out))


@dataclass
class _Graph:
    nodes: list[Any]                 # topological order
    ins: list[list[str]]             # per node: tensors read (explicit + implicit)
    kind: dict[str, str]             # tensor -> input | param | const | meta | act
    grad: dict[str, bool]            # tensor requires grad
    producer: dict[str, int]
    last_use: dict[str, int]
    alias: dict[str, str]            # tensor -> storage root
    types: _Types
    graph_inputs: list[str]
    graph_outputs: list[str]
    buffers: set[str]                # batch-norm running statistics


VIEW_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose", "Expand",
            "Slice", "Split"}
META_OPS = {"Shape", "Size"}


def _analyse(model: Any, types: _Types, src: str) -> _Graph:
    g = model.graph
    init_names = [i.name for i in g.initializer] + [s.values.name for s in g.sparse_initializer]
    inits = set(init_names)
    graph_inputs = [vi.name for vi in g.input if vi.name not in inits]
    nodes = list(g.node)
    ins = [[i for i in n.input if i] + _subgraph_inputs(n) for n in nodes]
    # stable topological sort (Kahn, smallest original index first)
    producer_orig: dict[str, int] = {}
    for k, n in enumerate(nodes):
        for o in n.output:
            if o:
                if o in producer_orig or o in inits or o in graph_inputs:
                    raise InputError(f"tensor {o!r} is defined twice (node {_label(n)})",
                                     source=src)
                producer_orig[o] = k
    available = set(graph_inputs) | inits
    deps: list[set[int]] = []
    for k, n in enumerate(nodes):
        d = set()
        for i in ins[k]:
            if i in producer_orig:
                d.add(producer_orig[i])
            elif i not in available:
                raise InputError(f"node {_label(n)} reads {i!r}, which no node, input or "
                                 "initializer defines", source=src)
        deps.append(d)
    users: list[list[int]] = [[] for _ in nodes]
    indeg = [0] * len(nodes)
    for k, d in enumerate(deps):
        for j in d:
            users[j].append(k)
        indeg[k] = len(d)
    heap = [k for k in range(len(nodes)) if indeg[k] == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        k = heapq.heappop(heap)
        order.append(k)
        for u in users[k]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(heap, u)
    if len(order) != len(nodes):
        raise InputError("the graph has a cycle", source=src)
    nodes = [nodes[k] for k in order]
    ins = [ins[k] for k in order]

    kind: dict[str, str] = {}
    grad: dict[str, bool] = {}
    buffers: set[str] = set()
    for n in nodes:
        if n.op_type == "BatchNormalization" and n.domain in ("", "ai.onnx"):
            buffers |= {i for i in list(n.input)[3:5] if i in inits}
    for name in init_names:
        kind[name] = "param" if _is_float(types.elem(name)) and name not in buffers else "const"
        grad[name] = kind[name] == "param"
    for name in graph_inputs:
        kind[name] = "input"
        grad[name] = False
    producer: dict[str, int] = {}
    last_use: dict[str, int] = {}
    alias: dict[str, str] = {}
    for k, (n, reads) in enumerate(zip(nodes, ins)):
        in_kinds = {kind.get(i, "const") for i in reads}
        if n.op_type in META_OPS or (in_kinds and in_kinds <= {"const", "param", "meta"}
                                     and "meta" in in_kinds):
            out_kind = "meta"
        elif not in_kinds & {"input", "act"}:
            out_kind = "const"
        else:
            out_kind = "act"
        any_grad = any(grad.get(i, False) for i in reads) and n.op_type not in META_OPS
        explicit = [i for i in n.input if i]
        for o in n.output:
            if not o:
                continue
            producer[o] = k
            kind[o] = out_kind
            grad[o] = any_grad and _is_float(types.elem(o))
            if n.op_type in VIEW_OPS and n.domain in ("", "ai.onnx") and explicit:
                alias[o] = alias.get(explicit[0], explicit[0])
        for i in reads:
            last_use[i] = k
    end = len(nodes)
    for o in g.output:
        last_use[o.name] = end
    return _Graph(nodes=nodes, ins=ins, kind=kind, grad=grad, producer=producer,
                  last_use=last_use, alias=alias, types=types, graph_inputs=graph_inputs,
                  graph_outputs=[o.name for o in g.output], buffers=buffers)


def _cuts(G: _Graph, tuples: bool = False) -> list[tuple[int, tuple[str, ...]]]:
    """Cut points ``(k, tensors)`` between node k and node k+1 of the topological order.

    A candidate is a position where exactly one activation tensor is live (an articulation
    point), or, with ``tuples``, several: the recurrent state ``(h, c)`` of an unrolled RNN,
    parallel branches. Every live tensor must have a known size. Consecutive cuts must leave
    each stage reading only what the stage before produced: every tensor live at a cut was
    produced after the previous cut (so a residual block's input, live until its ``Add``,
    forbids every cut inside the block). Among compatible sets of candidates the one with the
    most cuts is taken, then the fewest bytes crossing them, then the earliest."""
    import bisect
    n = len(G.nodes)
    starts: list[list[str]] = [[] for _ in range(n + 1)]
    ends: list[list[str]] = [[] for _ in range(n + 1)]
    for t, kd in G.kind.items():
        if kd != "act" or t not in G.producer:
            continue
        p, u = G.producer[t], G.last_use.get(t, -1)
        if u <= p:
            continue  # dead, or never used after its own node
        starts[p].append(t)
        ends[u].append(t)
    cand: list[tuple[int, int, int, tuple[str, ...]]] = []  # k, earliest producer, bytes, ts
    live: dict[str, int] = {}
    for k in range(n - 1):
        for t in ends[k]:
            live.pop(t, None)
        for t in starts[k]:
            live[t] = G.producer[t]
        if not live or (len(live) > 1 and not tuples):
            continue
        sizes = [G.types.nbytes(t) for t in live]
        if any(b is None for b in sizes):
            continue
        cand.append((k, min(live.values()), sum(sizes),  # type: ignore[arg-type]
                     tuple(sorted(live, key=lambda t: (live[t], t)))))
    if not cand:
        return []
    # longest chain of compatible candidates (k_prev < earliest producer of the next)
    ks = [c[0] for c in cand]
    score: list[tuple[int, int]] = []
    parent: list[int] = []
    prefix: list[int] = []  # prefix[m]: index of the best chain among cand[:m+1]
    for i, (_k, e, b, _) in enumerate(cand):
        m = bisect.bisect_left(ks, e)  # candidates cand[:m] end before e
        if m > 0:
            j = prefix[m - 1]
            score.append((score[j][0] + 1, score[j][1] - b))
            parent.append(j)
        else:
            score.append((1, -b))
            parent.append(-1)
        if not prefix or score[i] > score[prefix[-1]]:
            prefix.append(i)
        else:
            prefix.append(prefix[-1])
    i = prefix[-1]
    chosen: list[int] = []
    while i >= 0:
        chosen.append(i)
        i = parent[i]
    return [(cand[i][0], cand[i][3]) for i in reversed(chosen)]


# --- per-op rules --------------------------------------------------------------------------------

PRODUCT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
HEAVY_OPS = PRODUCT_OPS | {"Einsum", "LSTM", "GRU", "RNN", "Attention", "QLinearConv",
                           "QLinearMatMul", "MatMulInteger", "ConvInteger"}
ELEMENTWISE = {
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Reciprocal", "Abs",
    "Neg", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Clip", "Erf", "Gelu",
    "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Mish",
    "ThresholdedRelu", "Sin", "Cos", "Tan", "Atan", "Asin", "Acos", "Sinh", "Cosh", "Floor",
    "Ceil", "Round", "Sign", "Where", "Dropout", "Equal", "Less", "LessOrEqual", "Greater",
    "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf", "Mod", "BitShift",
    "QuantizeLinear", "DequantizeLinear"}
ZERO_FLOP = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose", "Concat",
             "Split", "Slice", "Pad", "Expand", "Tile", "Cast", "CastLike", "Shape", "Size",
             "Constant", "ConstantOfShape", "Gather", "GatherElements", "GatherND",
             "DepthToSpace", "SpaceToDepth", "Range", "OneHot", "EyeLike", "Trilu", "NonZero",
             "ScatterND", "ScatterElements", "ReverseSequence", "Compress"}
NORMS = {"BatchNormalization", "LayerNormalization", "GroupNormalization",
         "InstanceNormalization"}
REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
          "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin",
          "CumSum", "GlobalAveragePool", "GlobalMaxPool"}
# what autograd keeps (when the node has a backward: some input requires grad)
KEEP_OUTPUT = {"Relu", "Sigmoid", "Tanh", "Exp", "Sqrt", "Reciprocal", "Softmax", "LogSoftmax"}
KEEP_INPUTS = {"LeakyRelu", "PRelu", "Gelu", "Erf", "Clip", "HardSigmoid", "HardSwish", "Log",
               "Abs", "Sin", "Cos", "Tan", "Atan", "Asin", "Acos", "Sinh", "Cosh", "Softplus",
               "Softsign", "Mish", "Celu", "Elu", "Selu", "ThresholdedRelu", "Pow", "Max", "Min",
               "AveragePool", "ReduceSumSquare", "Mod"}
KEEP_IN_OUT = {"ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
               "ReduceLogSumExp"}
STAT_BYTES = 4  # float32 per-row / per-channel statistics, as PyTorch keeps them


@dataclass
class NodeCost:
    fwd: int = 0
    bwd: int = 0
    keep: list[str] = field(default_factory=list)
    extra: int = 0                   # saved bytes that are no graph tensor
    reason: str | None = None        # why the FLOPs could not be counted


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def cost_node(node: Any, G: _Graph, reads: list[str] | None = None) -> NodeCost:
    """FLOPs and kept tensors of one node (the rules of docs/importing.md, ONNX section)."""
    T = G.types
    op = node.op_type
    ins = list(node.input)
    outs = [o for o in node.output if o]
    x = ins[0] if ins else ""
    y = outs[0] if outs else ""
    ny = T.numel(y) if y else None
    nx = T.numel(x) if x else None
    g = G.grad
    has_bwd = any(g.get(i, False) for i in (reads if reads is not None else ins) if i)
    c = NodeCost()
    if outs and all(G.kind.get(o) == "meta" for o in outs):
        return c  # shape arithmetic: not part of the training compute
    if node.domain not in ("", "ai.onnx"):
        c.reason = "custom domain: no cost rule"
        c.keep = [i for i in ins if i] if has_bwd else []
        return c
    if node.attribute and any(a.HasField("g") or len(a.graphs) for a in node.attribute):
        c.reason = "control flow (subgraph): not costed"
        c.keep = [i for i in (reads or ins) if i] if has_bwd else []
        return c

    def need(names: Iterable[str]) -> None:
        missing = [n for n in names if n and T.shape(n) is None]
        if missing:
            raise _Unknown(f"shape of {missing[0]!r} unknown")

    try:
        if op in PRODUCT_OPS:
            w = ins[1] if len(ins) > 1 else ""
            b = ins[2] if len(ins) > 2 else ""
            need([x, w, y])
            if op == "Conv":
                mm = 2 * ny * math.prod(T.shape(w)[1:])
            elif op == "ConvTranspose":
                mm = 2 * nx * math.prod(T.shape(w)[1:])
            elif op == "Gemm":
                sa = T.shape(x)
                k = sa[0] if _attr(node, "transA", 0) else sa[-1]
                mm = 2 * ny * k
            else:  # MatMul, batched or not: every output element is a K-long dot product
                mm = 2 * ny * T.shape(x)[-1]
            bias = ny if b else 0
            c.fwd = mm + bias
            c.bwd = (mm if g.get(x, False) else 0) + (mm if g.get(w, False) else 0) + \
                (ny if b and g.get(b, False) else 0)
            if g.get(w, False):
                c.keep.append(x)
            if g.get(x, False):
                c.keep.append(w)
            return c
        if op in NORMS:
            need([x])
            c.fwd = 7 * nx
            c.bwd = c.fwd if has_bwd else 0
            if has_bwd:
                c.keep.append(x)
                s = T.shape(x)
                if op == "BatchNormalization":
                    rows = s[1] if len(s) > 1 else 1
                elif op == "LayerNormalization":
                    axis = _attr(node, "axis", -1)
                    axis = axis + len(s) if axis < 0 else axis
                    rows = math.prod(s[:axis])
                elif op == "GroupNormalization":
                    rows = s[0] * _attr(node, "num_groups", 1)
                else:  # InstanceNormalization
                    rows = s[0] * (s[1] if len(s) > 1 else 1)
                c.extra = 2 * rows * STAT_BYTES
            return c
        if op in ("Softmax", "LogSoftmax"):
            need([x])
            c.fwd = 5 * nx
        elif op in ELEMENTWISE:
            need([y])
            n_in = max(len([i for i in ins if i]), 2)
            c.fwd = ny * (n_in - 1) if op in ("Sum", "Mean", "Max", "Min") else ny
            if op == "Where":
                c.fwd = ny
            if op == "Dropout" and has_bwd:
                c.extra = ny  # a 1-byte mask per element
        elif op in ("SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"):
            need([x])
            if op == "SoftmaxCrossEntropyLoss":
                c.fwd = 4 * nx  # log-softmax (max, subtract, exp, sum) per score
                if has_bwd:
                    c.extra = T.nbytes(x)  # the log-probabilities
            else:
                c.fwd = nx // max(T.shape(x)[1] if len(T.shape(x)) > 1 else 1, 1)
                if has_bwd and len(ins) > 1:
                    c.keep.append(ins[1])
        elif op in ("MaxPool", "AveragePool", "LpPool"):
            need([y])
            ks = _attr(node, "kernel_shape", None)
            if not ks:
                raise _Unknown("no kernel_shape")
            c.fwd = ny * math.prod(ks)
            if op == "MaxPool" and has_bwd:
                c.keep.append(x)
                c.extra = ny * 8  # int64 indices, as PyTorch's max_pool keeps them
        elif op in REDUCE:
            need([x])
            c.fwd = nx
            if op == "GlobalMaxPool" and has_bwd:
                c.keep.append(x)
                c.extra = ny * 8 if ny is not None else 0
        elif op == "Resize":
            mode = _attr(node, "mode", b"nearest")
            mode = mode.decode() if isinstance(mode, bytes) else str(mode)
            if mode != "nearest":
                raise _Unknown(f"Resize mode {mode!r} has no cost rule")
            c.fwd = 0
        elif op in ZERO_FLOP:
            c.fwd = 0
            if op in ("Gather", "GatherElements", "GatherND") and has_bwd and len(ins) > 1:
                c.keep.append(ins[1])
        else:
            c.reason = "no cost rule for this op"
            c.keep = [i for i in ins if i] if has_bwd else []
            return c
    except _Unknown as e:
        c.reason = str(e)
        c.fwd = 0
    c.bwd = c.fwd if has_bwd else 0
    if has_bwd:
        if op in KEEP_OUTPUT:
            c.keep.append(y)
        elif op in KEEP_INPUTS:
            c.keep += [i for i in ins if i]
        elif op in KEEP_IN_OUT:
            c.keep += [x, y]
        elif op == "Mul":
            a, b = (ins + ["", ""])[:2]
            if g.get(b, False):
                c.keep.append(a)
            if g.get(a, False):
                c.keep.append(b)
        elif op == "Div":
            a, b = (ins + ["", ""])[:2]
            c.keep.append(b)
            if g.get(b, False):
                c.keep.append(a)
        elif op == "Where":
            c.keep.append(x)
    if c.reason is not None and not c.keep and has_bwd:
        c.keep = [i for i in ins if i]
    return c


class _Unknown(Exception):
    pass


# --- stages --------------------------------------------------------------------------------------

def _balance(weights: list[int], n: int) -> list[int]:
    """Split ``weights`` into ``min(n, len)`` consecutive groups minimising the largest sum;
    returns the group sizes."""
    m = len(weights)
    n = max(1, min(n, m))
    if n == m:
        return [1] * m

    def greedy(cap: int) -> list[int]:
        sizes: list[int] = []
        s = cnt = 0
        for w in weights:
            if cnt and s + w > cap:
                sizes.append(cnt)
                s = cnt = 0
            s += w
            cnt += 1
        sizes.append(cnt)
        return sizes

    lo, hi = max(weights), sum(weights)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(greedy(mid)) <= n:
            hi = mid
        else:
            lo = mid + 1
    sizes = greedy(lo)
    while len(sizes) < n:  # split the heaviest multi-item group: never raises the maximum
        best, bw = -1, -1
        pos = 0
        for j, sz in enumerate(sizes):
            w = sum(weights[pos:pos + sz])
            if sz > 1 and w > bw:
                best, bw = j, w
            pos += sz
        start = sum(sizes[:best])
        items = weights[start:start + sizes[best]]
        acc, cut = 0, 1
        for j in range(1, len(items)):
            acc += items[j - 1]
            cut = j
            if 2 * acc >= bw:
                break
        sizes[best:best + 1] = [cut, sizes[best] - cut]
    return sizes


_NAME_OK = re.compile(r"[^A-Za-z0-9_.\-]+")


def _path_label(nodes: list[Any]) -> str:
    """The common module path of exporter-style node names (``/layer1/layer1.0/conv1/Conv``):
    ``layer1.0``; empty when the nodes share none."""
    paths = []
    for n in nodes:
        comps = [c for c in n.name.split("/") if c]
        paths.append(comps[:-1] if len(comps) > 1 else [])
    prefix = paths[0] if paths else []
    for p in paths[1:]:
        k = 0
        while k < min(len(prefix), len(p)) and prefix[k] == p[k]:
            k += 1
        prefix = prefix[:k]
    parts: list[str] = []
    for c in prefix:
        if parts and c.startswith(parts[-1] + "."):
            parts[-1] = c
        else:
            parts.append(c)
    return ".".join(parts)


def _stage_name(nodes: list[Any], index: int, used: set[str]) -> str:
    """A readable unique stage name: the common module path of the nodes, else of the weighted
    ones, else the first weighted (or costed) node's name or op type."""
    heavy = [n for n in nodes if n.op_type in HEAVY_OPS]
    label = _path_label(nodes) or (_path_label(heavy) if heavy else "")
    if label and _NAME_OK.sub("_", label).strip("_.-") in used and heavy:
        label = _path_label(heavy) or label  # e.g. layer3.mlp after layer3 (attention)
    if not label:
        h = (heavy or [n for n in nodes if n.op_type not in ZERO_FLOP] or nodes)[0]
        label = h.name if h.name and "/" not in h.name else h.op_type.lower()
    label = _NAME_OK.sub("_", label).strip("_.-")[:60] or f"stage{index}"
    if not re.match(r"[A-Za-z_]", label):
        label = f"s{label}"
    base, k = label, 2
    while label in used:
        label = f"{base}_{k}"
        k += 1
    used.add(label)
    return label


def parse_stages(value: str) -> str | int:
    v = str(value).strip().lower()
    if v in ("auto", "nodes"):
        return v
    try:
        n = int(v)
    except ValueError:
        raise InputError(f"expected auto, nodes or a number of stages, got {value!r}",
                         param="stages") from None
    if n < 1:
        raise InputError(f"expected a number of stages >= 1, got {n}", param="stages")
    return n


def parse_dims(items: Iterable[str]) -> dict[str, int]:
    """``["seq=128"]`` -> ``{"seq": 128}``."""
    out: dict[str, int] = {}
    for it in items:
        name, sep, val = it.partition("=")
        name = name.strip()
        try:
            n = int(val)
        except ValueError:
            n = 0
        if not sep or not name or n < 1:
            raise InputError(f"expected NAME=SIZE with SIZE >= 1, got {it!r}", param="dim")
        out[name] = n
    return out


def import_onnx(path: str | Path, *, batch: int | None = None, dims: dict[str, int] | None = None,
                stages: str | int = "auto", tuple_cuts: bool = False, name: str | None = None,
                description: str | None = None) -> OnnxImportResult:
    """Read an ONNX file and estimate its chain (see the module docstring)."""
    onnx = _onnx()
    src = str(path)
    if batch is not None and batch < 1:
        raise InputError(f"expected a batch >= 1, got {batch}", param="batch")
    if isinstance(stages, str):
        stages = parse_stages(stages)
    model = load(path)
    batch, dims_used, notes = _set_dims(model, batch, dict(dims or {}), src)
    inferred, types, assumed, folded = _infer_with_assumptions(model, src)
    G = _analyse(inferred, types, src)
    if folded:
        notes.append(f"{folded} shape-arithmetic nodes (fed by Shape/Size) were evaluated and "
                     "replaced by constants so that shape inference could resolve reshapes")
    if assumed:
        notes.append("no shape rule for " + ", ".join(assumed) + ": output shape and type "
                     "assumed equal to the first input's")

    # graph inputs
    inputs = []
    input_bytes = 0
    for t in G.graph_inputs:
        nb = types.nbytes(t)
        if nb is None:
            raise InputError(f"the size of graph input {t!r} is unknown", source=src)
        inputs.append((t, types.shape(t), _type_name(types.elem(t))))
        input_bytes += nb

    # loss tensor and the graph outputs
    outs = [o for o in G.graph_outputs if G.kind.get(o) == "act"]
    if not outs:
        raise InputError("no graph output depends on the graph inputs", source=src)
    for o in outs:
        if types.nbytes(o) is None:
            raise InputError(f"the size of graph output {o!r} is unknown after shape inference",
                             source=src, hint="export with static shapes, or give --batch/--dim")
    float_outs = [o for o in outs if _is_float(types.elem(o))]
    if not float_outs:
        raise InputError("no floating-point graph output to put a loss on", source=src)
    loss_t = float_outs[0]
    if len(outs) > 1:
        notes.append(f"the graph has {len(outs)} outputs ({', '.join(outs)}); the loss is on "
                     f"{loss_t!r}, and the last graph stage's out counts all of them")

    # node costs
    costs = [cost_node(n, G, r) for n, r in zip(G.nodes, G.ins)]
    uncosted_all: list[Uncosted] = []

    # articulation segments
    cuts = _cuts(G, tuple_cuts)
    bounds: list[tuple[int, int, tuple[str, ...] | None]] = []  # [start, end], cut tensors
    start = 0
    for k, t in cuts:
        bounds.append((start, k, t))
        start = k + 1
    bounds.append((start, len(G.nodes) - 1, None))
    seg_flops = [sum(costs[j].fwd + costs[j].bwd for j in range(a, b + 1)) for a, b, _ in bounds]
    heavy = [any(G.nodes[j].op_type in HEAVY_OPS for j in range(a, b + 1)) for a, b, _ in bounds]

    if stages == "nodes":
        sizes = [1] * len(bounds)
    elif stages == "auto":
        sizes = []
        cur, cur_heavy = 0, False
        for h in heavy:
            if h and cur_heavy:
                sizes.append(cur)
                cur, cur_heavy = 0, False
            cur += 1
            cur_heavy = cur_heavy or h
        sizes.append(cur)
        if len(sizes) > AUTO_MAX_STAGES:
            w, pos = [], 0
            for sz in sizes:
                w.append(sum(seg_flops[pos:pos + sz]))
                pos += sz
            groups = _balance(w if any(w) else [1] * len(w), AUTO_MAX_STAGES)
            merged, pos = [], 0
            for gsz in groups:
                merged.append(sum(sizes[pos:pos + gsz]))
                pos += gsz
            sizes = merged
    else:
        if stages > len(bounds):
            notes.append(f"--stages {stages}: the graph has only {len(bounds)} articulation "
                         f"segments; one stage per segment")
        sizes = _balance(seg_flops if any(seg_flops) else [1] * len(seg_flops), stages)

    # per-stage quantities
    result_stages: list[OnnxStage] = []
    used_names: set[str] = set()
    counted_params: set[str] = set()
    pos = 0
    prev_cut: tuple[str, ...] = ()
    for si, sz in enumerate(sizes):
        segs = bounds[pos:pos + sz]
        pos += sz
        a, b, cut_t = segs[0][0], segs[-1][1], segs[-1][2]
        nodes = G.nodes[a:b + 1]
        core = [n for n in nodes if any(G.kind.get(o) == "act" for o in n.output)] or nodes
        sname = _stage_name(core, si + 1, used_names)
        st = OnnxStage(name=sname, out_bytes=0, saved_bytes=0, fwd_flops=0, bwd_flops=0,
                       nodes=[n.name or _op(n) for n in nodes], segments=sz)
        in_roots = {G.alias.get(t, t) for t in prev_cut}
        roots: dict[str, int] = {}
        unknown_saved: list[str] = []
        for j in range(a, b + 1):
            c = costs[j]
            st.fwd_flops += c.fwd
            st.bwd_flops += c.bwd
            st.saved_extra_bytes += c.extra
            if c.reason is not None:
                u = Uncosted(node=G.nodes[j].name, op=_op(G.nodes[j]), reason=c.reason,
                             stage=sname)
                st.uncosted.append(u)
                uncosted_all.append(u)
            for t in c.keep:
                if not t:
                    continue
                r = G.alias.get(t, t)
                if G.kind.get(r) != "act" or r in in_roots or r in roots:
                    continue
                nb = types.nbytes(r)
                if nb is None:
                    unknown_saved.append(r)
                    continue
                roots[r] = nb
            for i in G.ins[j]:
                if G.kind.get(i) == "param" and i not in counted_params:
                    counted_params.add(i)
                    st.param_bytes += types.nbytes(i) or 0
                    st.param_count += types.numel(i) or 0
        out_ts = list(cut_t) if cut_t is not None else outs
        st.out_tensors = list(out_ts)
        st.out_bytes = sum(types.nbytes(t) for t in out_ts)
        kept = sum(roots.values()) + st.saved_extra_bytes
        extra_out = 0
        for t in out_ts:
            if G.alias.get(t, t) not in roots:
                extra_out += types.nbytes(t)
        st.saved_bytes = max(kept + extra_out, st.out_bytes)
        st.saved_tensors = list(roots)
        if unknown_saved:
            notes.append(f"stage {sname}: kept tensor(s) of unknown size not counted in saved: "
                         + ", ".join(sorted(set(unknown_saved))))
        result_stages.append(st)
        prev_cut = cut_t or ()

    # the loss stage, unless the graph already ends in a scalar (its own loss)
    lb = types.nbytes(loss_t)
    le = types.numel(loss_t)
    loss_added = le != 1
    if loss_added:
        loss_name = "loss"
        k = 2
        while loss_name in used_names:
            loss_name = f"loss_{k}"
            k += 1
        result_stages.append(OnnxStage(
            name=loss_name, out_bytes=4, saved_bytes=lb + 4, fwd_flops=4 * le, bwd_flops=2 * le,
            nodes=[], out_tensors=["loss"], saved_tensors=[f"log_softmax({loss_t})"], segments=0))

    pcount = sum(s.param_count for s in result_stages)
    pbytes = sum(s.param_bytes for s in result_stages)
    ptypes: dict[str, int] = {}
    for t, kd in G.kind.items():
        if kd == "param":
            tn = _type_name(types.elem(t))
            ptypes[tn] = ptypes.get(tn, 0) + (types.nbytes(t) or 0)
    main_t = max(ptypes, key=ptypes.get) if ptypes else _type_name(types.elem(loss_t))
    stem = Path(src).stem
    if not name:
        name = _NAME_OK.sub("_", stem).strip("_.-") or "model"
    if description is None:
        shapes = "; ".join(f"{t} {'x'.join(map(str, s))} {_FILE_DTYPES.get(tn, tn.lower())}"
                           for t, s, tn in inputs)
        count = f"{pcount / 1e6:.2f} M" if pcount >= 100_000 else f"{pcount:,}"
        description = (f"{stem} (ONNX, {len(G.nodes)} nodes); {count} parameters; batch {batch}, "
                       f"input {shapes}")
    opset = next((o.version for o in inferred.opset_import if o.domain in ("", "ai.onnx")), 0)
    producer = " ".join(p for p in (inferred.producer_name, inferred.producer_version) if p)
    return OnnxImportResult(
        name=name, description=description, path=src, batch=batch, inputs=inputs,
        input_bytes=input_bytes, stages=result_stages, param_count=pcount, param_bytes=pbytes,
        onnx_version=str(onnx.__version__), opset=int(opset), producer=producer,
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"), node_count=len(G.nodes),
        segment_count=len(bounds), stages_mode=str(stages), tuple_cuts=tuple_cuts,
        dims=dims_used,
        precision=_PRECISION.get(main_t), loss_tensor=loss_t, loss_added=loss_added,
        uncosted=uncosted_all, notes=notes)


# --- writing model format 1 ----------------------------------------------------------------------



def uncosted_summary(r: OnnxImportResult) -> str:
    """``"Einsum x2, com.acme::Fancy x1"`` (empty when every op was costed)."""
    counts: dict[str, int] = {}
    for u in r.uncosted:
        counts[u.op] = counts.get(u.op, 0) + 1
    return ", ".join(f"{op} x{n}" for op, n in counts.items())


def derivation_text(r: OnnxImportResult, width: int = 92) -> str:
    """The ``derivation:`` text: how every number in the file was obtained."""
    import textwrap

    def para(text: str, bullet: bool = False) -> list[str]:
        if bullet:
            return textwrap.wrap(text, width, initial_indent="- ", subsequent_indent="  ",
                                 break_on_hyphens=False)
        return textwrap.wrap(text, width, break_on_hyphens=False)

    dims = "".join(f", {k}={v}" for k, v in r.dims.items())
    out = para(
        f"Estimated by `edgeplan import onnx` on {r.date} with onnx {r.onnx_version} from the "
        f"graph alone (nothing was run): {r.node_count} nodes, opset {r.opset}"
        + (f", produced by {r.producer}" if r.producer else "") +
        f". Shapes from onnx.shape_inference (data propagation on) at batch {r.batch}{dims}; "
        "bytes = elements x the ONNX element type's size.")
    cut = ("the chain is cut where exactly one activation tensor is live" if not r.tuple_cuts else
           "the chain is cut where exactly one activation tensor is live or (--tuple-cuts) "
           "several, all produced since the previous cut (a_i is then the tuple)")
    out += para(
        f"Stages: the nodes in topological order; {cut} (graph inputs, initializers, constants "
        "and shape metadata are not activations; a_0 is resident all iteration); a tensor live "
        "across a cut must be made after the previous one, so no cut falls inside a residual "
        f"block. {r.segment_count} articulation segments; --stages {r.stages_mode}: "
        + ("one stage per segment." if r.stages_mode == "nodes" else
           "a stage starts at each segment with a weighted op (Conv, Gemm, MatMul, ...), "
           "weightless segments join the stage before." if r.stages_mode == "auto" else
           "consecutive segments merged to balance forward+backward FLOPs."), True)
    out += para(
        "out: bytes of the tensor crossing the cut after the stage (of all of them for a tuple "
        "cut; the last graph stage: all graph outputs).", True)
    out += para(
        "saved: what autograd would keep for the stage's ops: Conv/ConvTranspose/Gemm/MatMul/Mul "
        "keep each operand whose partner needs a gradient (weights are parameters, not counted); "
        "Div keeps the divisor (and the dividend when the divisor needs a gradient); "
        "Relu/Sigmoid/Tanh/Exp/Sqrt/Reciprocal/Softmax/LogSoftmax keep their output; "
        "BatchNormalization/LayerNormalization/Group-/InstanceNormalization keep their input "
        "plus 2 float32 statistics per channel or row; MaxPool keeps its input plus int64 "
        "indices of the output's size; AveragePool, Gelu/Erf/LeakyRelu/Clip/Pow and similar "
        "keep their input; Dropout keeps a 1-byte mask per element; Add/Sub/Concat/Split/Slice/"
        "Pad/Cast/GlobalAveragePool/ReduceMean/ReduceSum keep nothing; Reshape/Flatten/Squeeze/"
        "Unsqueeze/Identity/Transpose/Expand/Slice/Split are views of their input (no memory of "
        "their own). Kept tensors are counted once per storage, excluding the stage input "
        "a_{i-1} (held by the previous stage), graph inputs, parameters and constants; ops "
        "without a rule keep all their inputs. Then saved = max(kept + out_not_kept, out). Ops "
        "whose inputs need no gradient keep nothing.", True)
    out += para(
        "fwd_flops: Conv 2 x output elements x Cin/groups x kernel (+1 per output element for "
        "a bias); ConvTranspose 2 x input elements x Cout/groups x kernel; Gemm/MatMul (batched) "
        "2 x output elements x K (+1 per output element for Gemm's C); elementwise ops "
        "(activations, Add/Mul/..., Clip, Where, Dropout) 1 per output element; Batch/Layer/"
        "Group/InstanceNormalization 7 per element (statistics 3, normalise 2, affine 2); "
        "Softmax/LogSoftmax 5 per element; MaxPool/AveragePool kernel size per output element; "
        "GlobalAveragePool and reductions 1 per input element; reshapes, transposes, Concat, "
        "Slice, Gather, Cast, Pad and other data movement 0.", True)
    out += para(
        "bwd_flops: Conv/ConvTranspose/Gemm/MatMul: the matmul FLOPs once per operand that needs "
        "a gradient (input gradient + weight gradient = 2x forward; the input gradient is "
        "omitted where the input is a_0 or a constant) plus the bias gradient; every other op "
        "1x its forward, 0 where no input needs a gradient.", True)
    if r.loss_added:
        out += para(
            f"loss: the graph has no loss; a final stage `{r.stages[-1].name}` adds "
            f"cross-entropy over {r.loss_tensor!r}: fwd 4 FLOPs per logit, bwd 2 per logit, out "
            "4 bytes (the scalar loss), saved = the log-probabilities (the logits' bytes) + 4. "
            "The labels are not counted.", True)
    else:
        out += para(
            f"loss: the graph's output {r.loss_tensor!r} is a scalar, taken to be the loss (it "
            "is part of the last stage); no loss stage was added. SoftmaxCrossEntropyLoss: 4 "
            "FLOPs per score, keeps the log-probabilities.", True)
    out += para(
        "params: bytes of the floating-point initializers the stage's nodes read, each counted "
        "once, in the first stage that reads it; batch-norm running mean/var are buffers (not "
        "trained, not counted); integer initializers and Constant nodes are constants.", True)
    out += para("fwd_tmp / bwd_tmp: not estimated (written as 0); they depend on the device's "
                "kernels.", True)
    if r.uncosted:
        out += para(f"NOT COSTED ({len(r.uncosted)} ops: {uncosted_summary(r)}): these ops' "
                    "FLOPs are not in the file (the stage counts only what it can), so the "
                    "stages listing them under-state compute; their outputs' bytes are counted "
                    "where shape inference knows them.", True)
        for u in r.uncosted[:MAX_LISTED]:
            label = f"{u.op} {u.node!r}" if u.node else u.op
            out += para(f"{label} in stage {u.stage}: {u.reason}", True)
        if len(r.uncosted) > MAX_LISTED:
            out += para(f"... and {len(r.uncosted) - MAX_LISTED} more (see the stages' "
                        "comments)", True)
    for n in r.notes:
        out += para(f"note: {n}", True)
    return "\n".join(out)


def to_yaml(r: OnnxImportResult, *, command: str | None = None,
            optimizer: str = "momentum") -> str:
    """Model format 1 text with exact integer bytes and FLOPs (readable values in comments)."""
    if optimizer not in OPTIMIZERS:
        raise InputError(f"expected one of {', '.join(OPTIMIZERS)}, got {optimizer!r}",
                         param="optimizer")
    out: list[str] = []
    if command:
        out.append(f"# produced by: {command}")
    out.append(f"# onnx {r.onnx_version}, opset {r.opset}, {r.date}; {r.param_count:,} "
               f"parameters ({iec(r.param_bytes)}); {len(r.stages)} stages; sum of saved "
               f"{iec(r.total_saved_bytes)}"
               + (f"; NOT COSTED: {uncosted_summary(r)}" if r.uncosted else ""))
    out += model_head(r.name, r.description, derivation_text(r), r.batch)
    if r.input_shape is not None:
        out.append(shape_input(r.input_shape, r.input_dtype, r.input_bytes))
    else:
        names = ", ".join(t for t, _, _ in r.inputs)
        out.append(f"input: {r.input_bytes:<18d} # {iec(r.input_bytes)}: {names}")
    if r.precision:
        out.append(f"precision: {r.precision}")
    out.append(f"optimizer: {optimizer}")
    out.append("stages:")
    for s in r.stages:
        out.append(f"  - name: {scalar(s.name)}")
        if s.uncosted:
            ops = ", ".join(f"{u.op} {u.node!r}" if u.node else u.op
                            for u in s.uncosted[:MAX_LISTED])
            if len(s.uncosted) > MAX_LISTED:
                ops += f", ... ({len(s.uncosted)} in all)"
            out.append(f"    # NOT COSTED (FLOPs below exclude them): {ops}")
        out.append(f"    fwd_flops: {s.fwd_flops:<14d} # {flops_txt(s.fwd_flops)}")
        out.append(f"    bwd_flops: {s.bwd_flops:<14d} # {flops_txt(s.bwd_flops)}")
        out.append(f"    out: {s.out_bytes:<20d} # {iec(s.out_bytes)}")
        out.append(f"    saved: {s.saved_bytes:<18d} # {iec(s.saved_bytes)}")
        out.append(f"    fwd_tmp: {s.fwd_tmp_bytes:<16d} # not estimated")
        out.append(f"    bwd_tmp: {s.bwd_tmp_bytes:<16d} # not estimated")
        out.append(f"    params: {s.param_bytes:<17d} # {s.param_count:,} parameters")
    return "\n".join(out) + "\n"


def summary_rows(r: OnnxImportResult) -> list[tuple[str, ...]]:
    """Rows for a human summary: name, nodes, out, saved, fwd FLOP, params."""
    return [(s.name, str(len(s.nodes)) if s.segments else "-", iec(s.out_bytes),
             iec(s.saved_bytes), flops_txt(s.fwd_flops), f"{s.param_count:,}")
            for s in r.stages]


__all__ = ["OnnxStage", "OnnxImportResult", "Uncosted", "NodeCost", "import_onnx", "load",
           "cost_node", "parse_stages", "parse_dims", "to_yaml", "derivation_text",
           "summary_rows", "uncosted_summary", "OPTIMIZERS", "AUTO_MAX_STAGES"]
