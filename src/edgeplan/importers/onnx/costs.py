"""Per-op rules: forward/backward FLOPs and what autograd keeps, for one node.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ._nodes import attr
from .graph import Graph

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


def cost_node(node: Any, G: Graph, reads: list[str] | None = None) -> NodeCost:
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
                k = sa[0] if attr(node, "transA", 0) else sa[-1]
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
                    axis = attr(node, "axis", -1)
                    axis = axis + len(s) if axis < 0 else axis
                    rows = math.prod(s[:axis])
                elif op == "GroupNormalization":
                    rows = s[0] * attr(node, "num_groups", 1)
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
            ks = attr(node, "kernel_shape", None)
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
            mode = attr(node, "mode", b"nearest")
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
