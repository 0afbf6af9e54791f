"""What ``torch.autocast`` would make of an fp32 graph: computed, not measured.

An ONNX file cannot be run under autocast, so ``import onnx --amp bf16|fp16`` propagates the
element types autocast would give each tensor through the graph, by the rules of PyTorch's CPU
autocast (the lists checked against torch 2.13 in tests/test_import_onnx_amp.py; the importer
for PyTorch measures the same autocast, docs/importing.md "Mixed precision"):

* **lower-precision ops** (``Conv``, ``ConvTranspose``, ``Gemm``, ``MatMul``, ``Einsum``,
  ``PRelu``, ``LSTM``, ``Attention``: autocast's conv / linear / matmul / bmm / einsum / prelu /
  rnn / sdpa): every fp32 input is cast to the 16-bit type and the output is 16-bit. A cast is
  a new tensor, so what such an op keeps of an fp32 input is the 16-bit *copy*
  (:meth:`Autocast.kept`): one per op for an activation or a graph input, one per parameter
  for the whole forward (autocast caches the casts of leaf tensors that require grad);
* **fp32 ops** (``SoftmaxCrossEntropyLoss``, ``NegativeLogLikelihoodLoss``): fp32 output;
* **every other op** runs in its inputs' widest float type (type promotion), except that a
  zero-dim or one-element tensor does not promote a larger one (PyTorch's rule for 0-dim
  tensors and Python scalars), the parameters of a normalisation (scale, bias, mean, var) take
  the input's type (``batch_norm`` / ``layer_norm`` / ``group_norm`` accept fp32 weights with a
  16-bit input), and the 1-D bias ``Add`` of a ``MatMul`` is one linear layer (``addmm``):
  it keeps the ``MatMul``'s type. ``Cast`` gives its target type.

Only fp32 tensors change: float64 graphs are left as they are (autocast does not touch
float64), integer and bool tensors too. CUDA's autocast runs more ops in fp32 (softmax,
layer_norm, ...): numbers computed here follow the CPU lists, as ``import torch --amp`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._nodes import bits, is_float
from .costs import NORMS
from .graph import Graph

LOW_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "PRelu", "LSTM", "Attention"}
FP32_OPS = {"SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"}
AMP_BYTES = {"bf16": 2, "fp16": 2}


@dataclass
class Autocast:
    """Element sizes under autocast and the 16-bit copies lower-precision ops keep."""

    dtype: str
    G: Graph
    elsize: dict[str, int] = field(default_factory=dict)  # float tensor -> bytes per element

    def __post_init__(self) -> None:
        low = AMP_BYTES[self.dtype]
        T = self.G.types
        for node in self.G.nodes:
            op = node.op_type
            outs = [o for o in node.output if o]
            floats = [i for i in node.input if i and is_float(T.elem(i))]
            if node.domain not in ("", "ai.onnx"):
                size = self._promote(floats)
            elif op in LOW_OPS:
                size = low if all(self.size(i) in (4, low) for i in floats) else \
                    self._promote(floats)
            elif op in FP32_OPS:
                size = 4
            elif op in NORMS:
                size = self.size(node.input[0]) if node.input else 4
            elif op in ("Add", "Sub") and self._is_bias_of_matmul(node):
                act = next(i for i in node.input if self.G.kind.get(i) != "param")
                size = self.size(act)
            elif op in ("Cast", "CastLike"):
                size = 0  # the output's own type
            else:
                size = self._promote(floats)
            for o in outs:
                if size and bits(T.elem(o)) == 32 and is_float(T.elem(o)):
                    self.elsize[o] = size

    def size(self, t: str) -> int:
        """Bytes per element of float tensor ``t`` under autocast."""
        if t in self.elsize:
            return self.elsize[t]
        b = bits(self.G.types.elem(t))
        return (b or 32) // 8

    def _promote(self, floats: list[str]) -> int:
        if not floats:
            return 0
        T = self.G.types
        big = [i for i in floats if (T.numel(i) or 2) > 1]
        return max(self.size(i) for i in (big or floats))

    def _is_bias_of_matmul(self, node) -> bool:
        ins = [i for i in node.input if i]
        if len(ins) != 2:
            return False
        params = [i for i in ins if self.G.kind.get(i) == "param"]
        acts = [i for i in ins if self.G.kind.get(i) != "param"]
        if len(params) != 1 or len(acts) != 1:
            return False
        shape = self.G.types.shape(params[0])
        p = self.G.producer.get(acts[0])
        return (shape is not None and len(shape) == 1 and p is not None
                and self.G.nodes[p].op_type == "MatMul")

    def nbytes(self, t: str) -> int | None:
        """Bytes of tensor ``t`` under autocast (its file type where autocast leaves it)."""
        if t in self.elsize:
            n = self.G.types.numel(t)
            return None if n is None else n * self.elsize[t]
        return self.G.types.nbytes(t)

    def kept(self, j: int, t: str) -> tuple[str, int] | None:
        """The 16-bit copy that node ``j`` (a lower-precision op) keeps of its input ``t``, as
        ``(storage key, bytes)``, or None when ``t`` itself is kept (already 16-bit, or the op
        is not cast)."""
        node = self.G.nodes[j]
        T = self.G.types
        if (node.op_type not in LOW_OPS or node.domain not in ("", "ai.onnx")
                or not is_float(T.elem(t)) or self.size(t) != 4 or bits(T.elem(t)) != 32):
            return None
        n = T.numel(t)
        if n is None:
            return None
        key = f"{t}:{self.dtype}" if self.G.kind.get(t) == "param" else f"{t}:{self.dtype}@{j}"
        return key, n * AMP_BYTES[self.dtype]
