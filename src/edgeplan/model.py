"""Model specifications (``model.yaml``) and their resolution to a chain on a device.

A model file gives per-stage costs as measured times or FLOP counts. Turning FLOPs into seconds
needs a device (docs/chain-model.md §7): ``t = flops / sustained FLOP/s``; a measured time in
the file wins over FLOPs. Backward defaults to 2x forward when not given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .chain import Chain, Stage
from .device import DeviceProfile
from .errors import InputError


@dataclass(frozen=True, kw_only=True)
class ModeSpec:
    """A stage's numbers in one training mode, where they differ from the trained stage's.

    ``None`` keeps the stage's own value; ``trainable_bytes`` are the parameter bytes that train
    in this mode, ``added_bytes`` the parameters the mode adds (LoRA adapters: they exist and
    train). ``computed`` marks numbers edgeplan derived instead of measuring.
    """

    trainable_bytes: int = 0
    added_bytes: int = 0
    saved_bytes: int | None = None
    fwd_tmp_bytes: int | None = None
    bwd_tmp_bytes: int | None = None
    fwd_flops: float | None = None
    fwd_time_s: float | None = None
    bwd_flops: float | None = None
    bwd_time_s: float | None = None
    computed: bool = False


@dataclass(frozen=True, kw_only=True)
class StageSpec:
    name: str
    out_bytes: int
    saved_bytes: int
    fwd_time_s: float | None = None
    fwd_flops: float | None = None
    bwd_time_s: float | None = None
    bwd_flops: float | None = None
    fwd_tmp_bytes: int = 0
    bwd_tmp_bytes: int = 0
    param_bytes: int = 0
    # training modes (``training``): numbers per mode from the file; None: every parameter
    # trains (after ``training.resolve``: the bytes that train in the chosen mode)
    modes: Mapping[str, ModeSpec] = field(default_factory=dict)
    trainable_bytes: int | None = None
    where: str = ""

    def times(self, rate: float | None) -> tuple[float, float]:
        """(forward, backward) seconds; ``rate`` is the device's sustained FLOP/s."""
        def from_flops(flops: float) -> float:
            if rate is None:
                raise InputError("the stage is given in FLOPs; a device (or times) is needed",
                                 where=self.where)
            return flops / rate
        if self.bwd_time_s is not None and self.fwd_time_s is not None:
            return self.fwd_time_s, self.bwd_time_s
        if self.fwd_time_s is not None:  # measured forward time
            fwd = self.fwd_time_s
            if self.bwd_time_s is not None:
                bwd = self.bwd_time_s
            elif self.bwd_flops is not None and self.fwd_flops:
                bwd = fwd * self.bwd_flops / self.fwd_flops  # FLOP ratio for the backward
            else:
                bwd = 2.0 * fwd
            return fwd, bwd
        fwd = from_flops(self.fwd_flops or 0.0)
        if self.bwd_time_s is not None:
            bwd = self.bwd_time_s
        elif self.bwd_flops is not None:
            bwd = from_flops(self.bwd_flops)
        else:
            bwd = 2.0 * fwd
        return fwd, bwd


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    name: str
    stages: tuple[StageSpec, ...]
    input_bytes: int
    param_bytes: int
    optimizer: str = "sgd"
    batch: int = 1
    precision: str | None = None
    amp: str | None = None     # activations measured under torch.autocast; parameters fp32
    lora_targets: tuple[str, ...] | None = None  # the layers the lora-rR modes wrap (file)
    lora_alpha: float | None = None
    description: str = ""
    derivation: str = ""
    source: str = ""
    sha256: str = ""
    notes: tuple[str, ...] = field(default=())
    train: str | None = None   # the file's default selection (``training.parse_train``)
    frozen_prefix: int = 0     # set by ``training.resolve`` (docs/chain-model.md §8)

    @property
    def length(self) -> int:
        return len(self.stages)

    @property
    def param_element_bytes(self) -> int:
        """Bytes per parameter: 2 for a file measured in fp16/bf16 parameters (not under
        autocast, whose parameters are fp32), else 4."""
        return 2 if self.precision in ("fp16", "bf16") and self.amp is None else 4

    @property
    def trainable_bytes(self) -> int:
        """Parameter bytes that train: all of them unless ``training.resolve`` chose modes."""
        listed = sum(s.param_bytes for s in self.stages)
        return int(sum(s.param_bytes if s.trainable_bytes is None else s.trainable_bytes
                       for s in self.stages) + max(0, self.param_bytes - listed))

    @property
    def uses_flops(self) -> bool:
        return any(s.fwd_time_s is None for s in self.stages)

    @property
    def total_fwd_flops(self) -> float:
        return float(sum(s.fwd_flops or 0.0 for s in self.stages))

    def to_chain(self, device: DeviceProfile | None = None, precision: str | None = None) -> Chain:
        """Resolve to a chain in seconds and bytes on ``device`` (needed when FLOPs are used)."""
        rate = None
        if self.uses_flops and device is not None:
            rate = device.flop_rate(precision or self.precision)
        stages = []
        for st in self.stages:
            try:
                fwd, bwd = st.times(rate)
            except InputError as e:
                raise InputError(e.message, source=self.source, where=st.where) from None
            stages.append(Stage(name=st.name, fwd_time_s=fwd, bwd_time_s=bwd,
                                out_bytes=st.out_bytes, saved_bytes=st.saved_bytes,
                                fwd_tmp_bytes=st.fwd_tmp_bytes, bwd_tmp_bytes=st.bwd_tmp_bytes,
                                param_bytes=st.param_bytes))
        return Chain(name=self.name, input_bytes=self.input_bytes, stages=tuple(stages),
                     frozen_prefix=self.frozen_prefix)

    def scaled_to_batch(self, batch: int) -> ModelSpec:
        """Activations, input and compute scale linearly with the batch; parameters do not."""
        if batch < 1:
            raise InputError(f"batch must be >= 1, got {batch}")
        r = batch / self.batch

        def sz(v: int) -> int:
            return int(-(-v * batch // self.batch))

        def tm(v: float | None) -> float | None:
            return None if v is None else v * r

        def osz(v: int | None) -> int | None:
            return None if v is None else sz(v)

        def mode(m: ModeSpec) -> ModeSpec:
            return replace(m, saved_bytes=osz(m.saved_bytes), fwd_tmp_bytes=osz(m.fwd_tmp_bytes),
                           bwd_tmp_bytes=osz(m.bwd_tmp_bytes), fwd_time_s=tm(m.fwd_time_s),
                           bwd_time_s=tm(m.bwd_time_s), fwd_flops=tm(m.fwd_flops),
                           bwd_flops=tm(m.bwd_flops))

        stages = tuple(replace(s, out_bytes=sz(s.out_bytes), saved_bytes=sz(s.saved_bytes),
                               fwd_tmp_bytes=sz(s.fwd_tmp_bytes), bwd_tmp_bytes=sz(s.bwd_tmp_bytes),
                               fwd_time_s=tm(s.fwd_time_s), bwd_time_s=tm(s.bwd_time_s),
                               fwd_flops=tm(s.fwd_flops), bwd_flops=tm(s.bwd_flops),
                               modes={k: mode(m) for k, m in s.modes.items()})
                       for s in self.stages)
        return replace(self, stages=stages, input_bytes=sz(self.input_bytes), batch=batch)
