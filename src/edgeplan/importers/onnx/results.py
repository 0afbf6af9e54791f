"""The results of an ONNX import: stages, uncosted nodes, the whole import.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._nodes import FILE_DTYPES

AUTO_MAX_STAGES = 100


MAX_LISTED = 20  # uncosted nodes listed one by one in the derivation and per stage


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
    largest_param_bytes: int = 0    # the largest of those initializers (optimizer step)
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
    amp: str | None = None               # computed as under torch.autocast (autocast.py)
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
            if shape and shape[0] == self.batch and t in FILE_DTYPES:
                return tuple(shape[1:])
        return None

    @property
    def input_dtype(self) -> str | None:
        return FILE_DTYPES.get(self.inputs[0][2]) if len(self.inputs) == 1 else None
