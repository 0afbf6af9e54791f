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
    *segments* are the node runs between consecutive cuts (``cuts``).
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

import datetime as _dt
from pathlib import Path

from ...errors import InputError
from ...partition import one_heavy_per_group
from ._nodes import FILE_DTYPES, PRECISION, is_float, onnx_module, op_name, type_name
from .autocast import AMP_BYTES, Autocast
from .costs import HEAVY_OPS, NodeCost, cost_node
from .derivation import derivation_text, imported_model, summary_rows, to_yaml, uncosted_summary
from .graph import analyse, find_cuts
from .results import AUTO_MAX_STAGES, OnnxImportResult, OnnxStage, Uncosted
from .shapes import infer_with_assumptions, load, set_dims
from .stages import NAME_OK, balance, parse_dims, parse_stages, stage_name


def import_onnx(path: str | Path, *, batch: int | None = None, dims: dict[str, int] | None = None,
                stages: str | int = "auto", tuple_cuts: bool = False, name: str | None = None,
                description: str | None = None, amp: str | None = None) -> OnnxImportResult:
    """Read an ONNX file and estimate its chain (see the module docstring); with ``amp``
    (``"bf16"``/``"fp16"``), as trained under ``torch.autocast`` in that type (``autocast.py``)."""
    onnx = onnx_module()
    src = str(path)
    if batch is not None and batch < 1:
        raise InputError(f"expected a batch >= 1, got {batch}", param="batch")
    if isinstance(stages, str):
        stages = parse_stages(stages)
    if amp is not None and amp not in AMP_BYTES:
        raise InputError(f"expected an autocast type, one of {', '.join(AMP_BYTES)}; got {amp!r}",
                         param="amp")
    model = load(path)
    batch, dims_used, notes = set_dims(model, batch, dict(dims or {}), src)
    inferred, types, assumed, folded = infer_with_assumptions(model, src)
    G = analyse(inferred, types, src)
    ac = Autocast(amp, G) if amp else None
    nbytes = ac.nbytes if ac else types.nbytes
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
        inputs.append((t, types.shape(t), type_name(types.elem(t))))
        input_bytes += nb

    # loss tensor and the graph outputs
    outs = [o for o in G.graph_outputs if G.kind.get(o) == "act"]
    if not outs:
        raise InputError("no graph output depends on the graph inputs", source=src)
    for o in outs:
        if types.nbytes(o) is None:
            raise InputError(f"the size of graph output {o!r} is unknown after shape inference",
                             source=src, hint="export with static shapes, or give --batch/--dim")
    float_outs = [o for o in outs if is_float(types.elem(o))]
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
    cuts = find_cuts(G, tuple_cuts)
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
        sizes = one_heavy_per_group(heavy, seg_flops, AUTO_MAX_STAGES)
    else:
        if stages > len(bounds):
            notes.append(f"--stages {stages}: the graph has only {len(bounds)} articulation "
                         f"segments; one stage per segment")
        sizes = balance(seg_flops if any(seg_flops) else [1] * len(seg_flops), stages)

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
        sname = stage_name(core, si + 1, used_names)
        st = OnnxStage(name=sname, out_bytes=0, saved_bytes=0, fwd_flops=0, bwd_flops=0,
                       nodes=[n.name or op_name(n) for n in nodes], segments=sz)
        in_roots = {G.alias.get(t, t) for t in prev_cut}
        roots: dict[str, int] = {}
        unknown_saved: list[str] = []
        for j in range(a, b + 1):
            c = costs[j]
            st.fwd_flops += c.fwd
            st.bwd_flops += c.bwd
            st.saved_extra_bytes += c.extra
            if c.reason is not None:
                u = Uncosted(node=G.nodes[j].name, op=op_name(G.nodes[j]), reason=c.reason,
                             stage=sname)
                st.uncosted.append(u)
                uncosted_all.append(u)
            for t in c.keep:
                if not t:
                    continue
                copy = ac.kept(j, t) if ac else None
                if copy is not None:  # a 16-bit cast of an fp32 input: a tensor of its own
                    roots.setdefault(*copy)
                    continue
                r = G.alias.get(t, t)
                if G.kind.get(r) != "act" or r in in_roots or r in roots:
                    continue
                nb = nbytes(r)
                if nb is None:
                    unknown_saved.append(r)
                    continue
                roots[r] = nb
            for i in G.ins[j]:
                if G.kind.get(i) == "param" and i not in counted_params:
                    counted_params.add(i)
                    nb_i = types.nbytes(i) or 0
                    st.param_bytes += nb_i
                    st.largest_param_bytes = max(st.largest_param_bytes, nb_i)
                    st.param_count += types.numel(i) or 0
        out_ts = list(cut_t) if cut_t is not None else outs
        st.out_tensors = list(out_ts)
        st.out_bytes = sum(nbytes(t) or 0 for t in out_ts)
        kept = sum(roots.values()) + st.saved_extra_bytes
        extra_out = 0
        for t in out_ts:
            if G.alias.get(t, t) not in roots:
                extra_out += nbytes(t) or 0
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
            tn = type_name(types.elem(t))
            ptypes[tn] = ptypes.get(tn, 0) + (types.nbytes(t) or 0)
    main_t = max(ptypes, key=ptypes.get) if ptypes else type_name(types.elem(loss_t))
    if amp and main_t != "FLOAT":
        raise InputError(f"--amp {amp}: autocast trains fp32 parameters in mixed precision, but "
                         f"this graph's parameters are {FILE_DTYPES.get(main_t, main_t)}",
                         source=src)
    stem = Path(src).stem
    if not name:
        name = NAME_OK.sub("_", stem).strip("_.-") or "model"
    if description is None:
        shapes = "; ".join(f"{t} {'x'.join(map(str, s))} {FILE_DTYPES.get(tn, tn.lower())}"
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
        precision=amp or PRECISION.get(main_t), loss_tensor=loss_t, loss_added=loss_added,
        amp=amp,
        uncosted=uncosted_all, notes=notes)


__all__ = ["OnnxStage", "OnnxImportResult", "Uncosted", "NodeCost", "import_onnx", "load",
           "cost_node", "parse_stages", "parse_dims", "to_yaml", "derivation_text",
           "summary_rows", "uncosted_summary", "imported_model", "AUTO_MAX_STAGES"]
