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
from .work import FamilyCost, Work, work_time_s


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
    fwd_work: Work | None = None
    bwd_work: Work | None = None
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
    # the largest parameter tensor (``import torch`` records it): the for-loop optimizer
    # step's temporaries are twice the largest trained tensor (optimizers.step_transient_bytes)
    largest_param_bytes: int | None = None
    # per op family (``edgeplan.work``): priced by a device with calibrated families
    fwd_work: Work | None = None
    bwd_work: Work | None = None
    # training modes (``training``): numbers per mode from the file; None: every parameter
    # trains (after ``training.resolve``: the bytes that train in the chosen mode)
    modes: Mapping[str, ModeSpec] = field(default_factory=dict)
    trainable_bytes: int | None = None
    where: str = ""

    def times(self, rate: float | None,
              costs: Mapping[str, FamilyCost] | None = None) -> tuple[float, float]:
        """(forward, backward) seconds. Measured times win; then, with ``costs`` (a device's
        calibrated op families), the work per family (``edgeplan.work``); then FLOPs at
        ``rate``, the device's sustained FLOP/s. A backward given by nothing is 2x forward."""
        def from_flops(flops: float) -> float:
            if rate is None:
                raise InputError("the stage is given in FLOPs; a device (or times) is needed",
                                 where=self.where)
            return flops / rate

        def priced(work: Work | None, flops: float | None, backward: bool = False
                   ) -> float | None:
            if costs is not None and work is not None:
                return work_time_s(work, costs, backward)
            return None if flops is None else from_flops(flops)
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
        f = priced(self.fwd_work, self.fwd_flops or 0.0)
        assert f is not None
        b = self.bwd_time_s if self.bwd_time_s is not None else priced(
            self.bwd_work, self.bwd_flops, backward=True)
        return f, 2.0 * f if b is None else b


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    name: str
    stages: tuple[StageSpec, ...]
    input_bytes: int
    param_bytes: int
    optimizer: str = "sgd"
    batch: int = 1
    precision: str | None = None
    amp: str | None = None     # activations under torch.autocast (measured, or computed from
    #                            an ONNX graph); parameters fp32
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
    def has_work(self) -> bool:
        """Every stage timed from FLOPs has its forward work per op family (``work:``)."""
        return any(s.fwd_work is not None for s in self.stages) and all(
            s.fwd_work is not None for s in self.stages if s.fwd_time_s is None)

    @property
    def total_fwd_flops(self) -> float:
        return float(sum(s.fwd_flops or 0.0 for s in self.stages))

    def family_costs(self, device: DeviceProfile | None,
                     precision: str | None = None) -> Mapping[str, FamilyCost] | None:
        """The device's calibrated op-family costs that price this model's stages (None: its
        times are measured, or FLOPs go at the sustained rate)."""
        if device is None or not self.uses_flops or not self.has_work:
            return None
        return device.family_costs(precision or self.precision)

    def to_chain(self, device: DeviceProfile | None = None, precision: str | None = None) -> Chain:
        """Resolve to a chain in seconds and bytes on ``device`` (needed when FLOPs are used)."""
        rate = None
        if self.uses_flops and device is not None:
            rate = device.flop_rate(precision or self.precision)
        costs = self.family_costs(device, precision)
        stages = []
        for st in self.stages:
            try:
                fwd, bwd = st.times(rate, costs)
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

        def wk(w: Work | None) -> Work | None:
            return None if w is None else w.scaled(r)

        def mode(m: ModeSpec) -> ModeSpec:
            return replace(m, saved_bytes=osz(m.saved_bytes), fwd_tmp_bytes=osz(m.fwd_tmp_bytes),
                           bwd_tmp_bytes=osz(m.bwd_tmp_bytes), fwd_time_s=tm(m.fwd_time_s),
                           bwd_time_s=tm(m.bwd_time_s), fwd_flops=tm(m.fwd_flops),
                           bwd_flops=tm(m.bwd_flops), fwd_work=wk(m.fwd_work),
                           bwd_work=wk(m.bwd_work))

        stages = tuple(replace(s, out_bytes=sz(s.out_bytes), saved_bytes=sz(s.saved_bytes),
                               fwd_tmp_bytes=sz(s.fwd_tmp_bytes), bwd_tmp_bytes=sz(s.bwd_tmp_bytes),
                               fwd_time_s=tm(s.fwd_time_s), bwd_time_s=tm(s.bwd_time_s),
                               fwd_flops=tm(s.fwd_flops), bwd_flops=tm(s.bwd_flops),
                               fwd_work=wk(s.fwd_work), bwd_work=wk(s.bwd_work),
                               modes={k: mode(m) for k, m in s.modes.items()})
                       for s in self.stages)
        return replace(self, stages=stages, input_bytes=sz(self.input_bytes), batch=batch)
