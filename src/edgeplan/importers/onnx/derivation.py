"""Writing the import as model format 1: the derivation text, the YAML, the summary.
"""

from __future__ import annotations

from ...formats.model_file import ImportedModel, ImportedStage, flops_txt, iec, write_model
from .results import MAX_LISTED, OnnxImportResult


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
    if r.amp:
        out += para(
            f"mixed precision (--amp {r.amp}): computed, not measured: the element type torch."
            "autocast (CPU lists) would give each tensor of this fp32 graph: Conv/ConvTranspose/"
            "Gemm/MatMul/Einsum/PRelu/LSTM/Attention cast their fp32 inputs to 16 bit and give "
            "16-bit outputs, and what they keep of an fp32 input is the 16-bit copy (an "
            "activation's per op, a parameter's once); the losses run in fp32; every other op "
            "in its inputs' widest type (one-element tensors, normalisation parameters and a "
            "MatMul's 1-D bias do not promote). Parameters, gradients and optimizer state stay "
            "fp32. CUDA's autocast runs more ops in fp32 (softmax, layer_norm).", True)
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
        "trained, not counted); integer initializers and Constant nodes are constants. "
        "largest_param: the largest of them.", True)
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


def imported_model(r: OnnxImportResult) -> ImportedModel:
    """The import as ``formats.model_file`` writes it."""
    stages = []
    for st in r.stages:
        comment = None
        if st.uncosted:
            ops = ", ".join(f"{u.op} {u.node!r}" if u.node else u.op
                            for u in st.uncosted[:MAX_LISTED])
            if len(st.uncosted) > MAX_LISTED:
                ops += f", ... ({len(st.uncosted)} in all)"
            comment = f"NOT COSTED (FLOPs below exclude them): {ops}"
        stages.append(ImportedStage(
            name=st.name, fwd_flops=st.fwd_flops, bwd_flops=st.bwd_flops, out_bytes=st.out_bytes,
            saved_bytes=st.saved_bytes, fwd_tmp_bytes=st.fwd_tmp_bytes,
            bwd_tmp_bytes=st.bwd_tmp_bytes, param_bytes=st.param_bytes,
            param_count=st.param_count, largest_param_bytes=st.largest_param_bytes,
            tmp_estimated=False, comment=comment))
    provenance = (f"onnx {r.onnx_version}, opset {r.opset}, {r.date}; {r.param_count:,} "
                  f"parameters ({iec(r.param_bytes)}); {len(r.stages)} stages; sum of saved "
                  f"{iec(r.total_saved_bytes)}"
                  + (f"; NOT COSTED: {uncosted_summary(r)}" if r.uncosted else ""))
    shape = r.input_shape
    return ImportedModel(
        name=r.name, description=r.description, derivation=derivation_text(r),
        provenance=provenance, batch=r.batch, input_bytes=r.input_bytes, stages=tuple(stages),
        input_shape=shape, input_dtype=r.input_dtype if shape is not None else None,
        input_comment=None if shape is not None else ", ".join(t for t, _, _ in r.inputs),
        precision=r.precision, amp=r.amp)


def to_yaml(r: OnnxImportResult, *, command: str | None = None,
            optimizer: str = "momentum") -> str:
    """Model format 1 text with exact integer bytes and FLOPs (readable values in comments)."""
    return write_model(imported_model(r), command=command, optimizer=optimizer)


def summary_rows(r: OnnxImportResult) -> list[tuple[str, ...]]:
    """Rows for a human summary: name, nodes, out, saved, fwd FLOP, params."""
    return [(s.name, str(len(s.nodes)) if s.segments else "-", iec(s.out_bytes),
             iec(s.saved_bytes), flops_txt(s.fwd_flops), f"{s.param_count:,}")
            for s in r.stages]
