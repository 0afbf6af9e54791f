"""Loading a model, fixing its symbolic dimensions and inferring every shape (with shape
arithmetic folded to constants first).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

from ...errors import InputError
from ._nodes import META_OPS, attr, bits, label, onnx_module


def load(path: str | Path) -> Any:
    """Read an ONNX file (external weight data is not loaded: only shapes are needed)."""
    onnx = onnx_module()
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


def set_dims(model: Any, batch: int | None, dims: dict[str, int], src: str
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
    onnx = onnx_module()
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
                                                 data_prop=True)
    except Exception as e:  # noqa: BLE001 - InferenceError, ValueError (> 2 GB), ...
        msg = str(e).strip().splitlines()
        raise InputError(f"ONNX shape inference failed: {msg[0] if msg else type(e).__name__}",
                         source=src) from None


class Types:
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
        n, b = self.numel(name), bits(self.elem(name))
        if n is None or b is None:
            return None
        return (n * b + 7) // 8


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
    a = attr(node, "axes", None)
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
        start, end = attr(node, "start", 0), attr(node, "end", None)
        return np.array(shp[start:end] if end is not None else shp[start:], dtype=np.int64)
    if op == "Size":
        return None if in_shapes[0] is None else np.array(math.prod(in_shapes[0]), dtype=np.int64)
    if any(v is None for v in vals[:1]):
        return None
    if op == "Identity":
        return x
    if op == "Cast":
        return x.astype(helper.tensor_dtype_to_np_dtype(attr(node, "to")))
    if op == "Gather":
        return np.take(x, vals[1], axis=attr(node, "axis", 0))
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
        return np.concatenate(vals, axis=attr(node, "axis", 0))
    if op == "Slice":
        if len(vals) >= 3:
            starts, ends = vals[1].reshape(-1), vals[2].reshape(-1)
            axes = vals[3].reshape(-1) if len(vals) > 3 and vals[3] is not None else range(
                len(starts))
            steps = vals[4].reshape(-1) if len(vals) > 4 and vals[4] is not None else [1] * len(
                starts)
        else:
            starts, ends = attr(node, "starts"), attr(node, "ends")
            axes = attr(node, "axes", list(range(len(starts))))
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
        t = attr(node, "value", None)
        fill = np.zeros(1, np.float32) if t is None else _tensor_array(t)
        n = int(np.prod(x)) if x.size else 1
        if n > FOLD_MAX_ELEMENTS:
            return None
        return np.full(tuple(int(d) for d in x.reshape(-1)), fill.reshape(-1)[0], fill.dtype)
    if op == "Reshape":
        shape = [int(d) for d in vals[1].reshape(-1)]
        shape = [x.shape[k] if d == 0 and not attr(node, "allowzero", 0) else d
                 for k, d in enumerate(shape)]
        return x.reshape(shape)
    if op in ("ReduceProd", "ReduceSum", "ReduceMin", "ReduceMax"):
        axes = _axes(node, vals, 1)
        f = {"ReduceProd": np.prod, "ReduceSum": np.sum, "ReduceMin": np.min,
             "ReduceMax": np.max}[op]
        keep = bool(attr(node, "keepdims", 1))
        return np.asarray(f(x, axis=None if not axes else tuple(axes), keepdims=keep))
    if op == "Transpose":
        return np.transpose(x, attr(node, "perm", None))
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


def _fold_shapes(model: Any, types: Types) -> int:
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


def infer_with_assumptions(model: Any, src: str) -> tuple[Any, Types, list[str], int]:
    """Shape inference, repeated while it helps: shape arithmetic is evaluated (``_fold_shapes``);
    outputs of ops without a schema (custom domains) that stay unknown get their first input's
    type and shape (one output only), reported."""
    onnx = onnx_module()
    from onnx import helper
    assumed: list[str] = []
    folded = 0
    m = model
    for _ in range(len(model.graph.node) + 1):
        m = _infer(m, src)
        types = Types(m.graph)
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
            assumed.append(label(node))
            added = True
        if not added:
            return m, types, assumed, folded
    return m, Types(m.graph), assumed, folded  # pragma: no cover - converges
