"""What trains: training modes per stage, the ``--train`` selection, optimizers' state bytes.

Fine-tuning changes memory and time more than recomputation does (docs/finetune.md). A stage
trains in one **mode**:

=============  ==============================================================================
mode           meaning
=============  ==============================================================================
``train``      every parameter of the stage trains (the stage's own numbers in the file)
``frozen``     no parameter trains; inside the trained part the backward still runs for the
               input gradient, saving less and costing less (``modes.frozen`` in the file,
               or computed: see :func:`frozen_default`)
``bias``       only the biases train (the "bias-only" update of TinyTL, Cai et al. 2020)
``lora-rR``    frozen weights plus LoRA adapters of rank R on some linear layers (Hu et al.
               2021): adapter parameters are added and train
=============  ==============================================================================

A **selection** (``--train``, :func:`parse_train`) is a comma list of ``all``, ``last:K`` (the
last K stages that have parameters, and every stage after the first of them), ``from:NAME``
(the first stage named NAME or NAME.*, and every later one), ``none``, ``bias`` and ``lora:R``;
stages outside the fully trained part use ``lora-rR`` where the file has it, else ``bias``
where asked and the stage has biases, else ``frozen``. The leading stages that train nothing
form the chain's **frozen prefix** (docs/chain-model.md §8): forward once, no backward.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .errors import InputError, UnknownNameError
from .model import ModelSpec, ModeSpec, StageSpec
from .optimizers import OPTIMIZER_STATE, optimizer_state_bytes

__all__ = ["OPTIMIZER_STATE", "ModeSpec", "optimizer_state_bytes"]

TRAIN = "train"
FROZEN = "frozen"
BIAS = "bias"
_LORA = re.compile(r"lora-r([1-9][0-9]{0,4})$")

def lora_mode(rank: int) -> str:
    return f"lora-r{rank}"


def is_mode(name: str) -> bool:
    return name in (FROZEN, BIAS) or _LORA.match(name) is not None


def lora_rank(mode: str) -> int | None:
    """R of a ``lora-rR`` mode, None for any other mode."""
    m = _LORA.match(mode)
    return None if m is None else int(m.group(1))


def _rank(text: str) -> int | None:
    """R of ``R``, ``rR`` or ``r=R`` (1..99999), None when it is not one."""
    r = text.strip().removeprefix("r=").removeprefix("r")
    return int(r) if r.isdigit() and 1 <= int(r) <= 99999 else None


def parse_modes(text: str | Sequence[str] | None, *, param: str = "modes") -> tuple[str, ...]:
    """``frozen,bias,lora:8`` (or ``lora-r8``) as the modes' file names, in a stable order:
    frozen, bias, then LoRA ranks ascending."""
    if not text:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    found: set[str] = set()
    for raw in items:
        item = raw.strip().lower()
        if not item:
            continue
        if item.startswith("lora:") and (rank := _rank(item[5:])) is not None:
            item = lora_mode(rank)
        if not is_mode(item):
            raise UnknownNameError.for_name("mode", item, (FROZEN, BIAS, "lora:8"), cutoff=0.6,
                                            param=param,
                                            otherwise="modes are frozen, bias and lora:R")
        found.add(item)
    return tuple(sorted(found, key=lambda m: (m != FROZEN, m != BIAS, lora_rank(m) or 0)))


def frozen_default(stage: StageSpec) -> ModeSpec:
    """``frozen`` numbers for a stage whose file has none: what it saves is kept as when it
    trains (an upper bound: a frozen layer may not need its input), and the backward takes half
    the trained backward's FLOPs or time (a linear or convolution layer's backward is one
    input-gradient and one weight-gradient product of equal FLOPs). A stage without parameters
    is the same frozen or not."""
    if stage.param_bytes == 0:
        return ModeSpec()
    return ModeSpec(bwd_flops=None if stage.bwd_flops is None else stage.bwd_flops / 2,
                    bwd_time_s=None if stage.bwd_time_s is None else stage.bwd_time_s / 2,
                    bwd_work=None if stage.bwd_work is None else stage.bwd_work.scaled(0.5),
                    computed=True)


@dataclass(frozen=True, kw_only=True)
class TrainSpec:
    """A parsed ``--train`` selection (see the module docstring)."""

    text: str = "all"
    last: int | None = None        # last K stages with parameters train fully
    start: str | None = None       # from this stage on, everything trains fully
    full: bool = True              # every stage trains fully (no last/from/none given)
    bias: bool = False
    lora_rank: int | None = None

    @property
    def is_all(self) -> bool:
        return self.full and not self.bias and self.lora_rank is None


ALL = TrainSpec()


def parse_train(text: str | TrainSpec | None, *, param: str = "train") -> TrainSpec:
    """Parse ``all``, ``last:K``, ``from:NAME``, ``none``, ``bias``, ``lora:R`` (comma list)."""
    if text is None:
        return ALL
    if isinstance(text, TrainSpec):
        return text
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise InputError("expected what to train, e.g. all, last:3, bias, lora:8,last:1",
                         param=param)
    last: int | None = None
    start: str | None = None
    scope: str | None = None
    bias = False
    rank: int | None = None

    def one_scope(item: str) -> None:
        nonlocal scope
        if scope is not None:
            raise InputError(f"{item!r} and {scope!r} both say which stages train fully; give "
                             "one of all, last:K, from:NAME, none", param=param)
        scope = item

    for item in items:
        key, _, val = item.partition(":")
        key = key.strip().lower()
        val = val.strip()
        if key in ("all", "none") and not val:
            one_scope(key)
        elif key == "last":
            if not val.isdigit() or int(val) < 1:
                raise InputError(f"last: expected a whole number of stages >= 1, got {val!r}",
                                 param=param)
            one_scope(item)
            last = int(val)
        elif key == "from":
            if not val:
                raise InputError("from: expected a stage name, e.g. from:layer4", param=param)
            one_scope(item)
            start = val
        elif key == "bias" and not val:
            bias = True
        elif key == "lora":
            rank = _rank(val)
            if rank is None:
                raise InputError(f"lora: expected a rank like lora:8, got {item!r}", param=param)
        else:
            raise InputError(f"unknown item {item!r}; expected all, last:K, from:NAME, none, "
                             "bias or lora:R", param=param)
    full = scope == "all" or (scope is None and not bias and rank is None)
    canon = [scope] if scope is not None and not (scope == "none" and (bias or rank)) else []
    if rank is not None:
        canon.append(f"lora:{rank}")
    if bias:
        canon.append("bias")
    return TrainSpec(text=",".join(canon) or "all", last=last, start=start, full=full, bias=bias,
                     lora_rank=rank)


def modes_for(spec: TrainSpec | str | None) -> tuple[str, ...]:
    """The per-stage modes a selection needs measured (``import torch --train``)."""
    spec = parse_train(spec)
    if spec.is_all:
        return ()
    need = [FROZEN]
    if spec.bias:
        need.append(BIAS)
    if spec.lora_rank is not None:
        need.append(lora_mode(spec.lora_rank))
    return tuple(need)


@dataclass(frozen=True, kw_only=True)
class Training:
    """What a selection trains on one model: the mode of every stage and the byte counts."""

    spec: TrainSpec
    modes: tuple[str, ...]          # per stage
    frozen_prefix: int
    param_bytes: int                # every parameter held in memory (LoRA adapters included)
    trainable_bytes: int
    computed: tuple[str, ...]       # stages whose mode numbers were computed, not measured

    @property
    def trained_stages(self) -> tuple[int, ...]:
        """1-based indices of the stages with trainable parameters."""
        return tuple(i + 1 for i, m in enumerate(self.modes) if m != FROZEN)

    @property
    def trainable_fraction(self) -> float:
        return self.trainable_bytes / self.param_bytes if self.param_bytes else 0.0

    def to_dict(self, stage_names: tuple[str, ...]) -> dict:
        return {"train": self.spec.text, "trainable_bytes": self.trainable_bytes,
                "param_bytes": self.param_bytes,
                "trainable_fraction": self.trainable_fraction,
                "frozen_prefix": self.frozen_prefix,
                "modes": dict(zip(stage_names, self.modes, strict=True)),
                "stage_modes": list(self.modes),  # in stage order (JSON sorts "modes")
                "computed_modes": list(self.computed)}


def everything(model: ModelSpec) -> Training:
    """Every parameter trains (no selection, or ``all``)."""
    return Training(spec=ALL, modes=(TRAIN,) * model.length, frozen_prefix=0,
                    param_bytes=model.param_bytes, trainable_bytes=model.trainable_bytes,
                    computed=())


def first_trained(model: ModelSpec, spec: TrainSpec, *, param: str = "train") -> int:
    """0-based index of the first stage that trains fully (``len(stages)``: none)."""
    stages = model.stages
    n = len(stages)
    if spec.full:
        return 0
    if spec.last is not None:
        with_params = [i for i, s in enumerate(stages) if s.param_bytes > 0]
        if not with_params:
            raise InputError("last:K needs per-stage parameters (params: on the stages); this "
                             "file gives only a total", source=model.source, param=param)
        if spec.last > len(with_params):
            raise InputError(f"last:{spec.last}: the model has only {len(with_params)} stages "
                             "with parameters", param=param)
        return with_params[-spec.last]
    if spec.start is not None:
        for i, s in enumerate(stages):
            if s.name == spec.start or s.name.startswith(spec.start + "."):
                return i
        raise UnknownNameError.for_name("stage", spec.start, [s.name for s in stages],
                                        param=param)
    return n


def resolve(model: ModelSpec, train: TrainSpec | str | None) -> tuple[ModelSpec, Training]:
    """The model with every stage's numbers in its mode, and what trains.

    Raises ``InputError`` when the selection needs numbers the file lacks (bias-only or LoRA
    modes are measured by ``edgeplan import torch --modes``), when it trains nothing, or when
    per-stage parameters are needed and missing.
    """
    spec = parse_train(train)
    if any(s.trainable_bytes is not None for s in model.stages):
        # already resolved (``Problem.model``, e.g. re-prepared at another batch): keep it
        return model, _summary(model, spec)
    if spec.is_all:
        return model, everything(model)
    if not any(s.param_bytes for s in model.stages):
        raise InputError(f"--train {spec.text} needs per-stage parameters (params: on the "
                         "stages); this file gives only a total", source=model.source,
                         param="train")
    first = first_trained(model, spec)
    lora = None if spec.lora_rank is None else lora_mode(spec.lora_rank)
    if lora is not None and not any(lora in s.modes for s in model.stages):
        have = sorted({m for s in model.stages for m in s.modes if m.startswith("lora")})
        raise InputError(f"the model has no {lora} numbers (it has: {', '.join(have) or 'none'}"
                         "); measure them with `edgeplan import torch ... --modes "
                         f"lora:{spec.lora_rank} --lora-targets ...`", param="train")
    modes: list[str] = []
    new_stages: list[StageSpec] = []
    computed: list[tuple[int, str]] = []
    for i, st in enumerate(model.stages):
        if i >= first:
            mode = TRAIN
        elif lora is not None and lora in st.modes:
            mode = lora
        elif spec.bias and st.param_bytes > 0:
            if BIAS not in st.modes:
                raise InputError(f"stage {st.name!r} has no bias-only numbers (modes.bias); "
                                 "measure them with `edgeplan import torch ... --modes bias`",
                                 source=model.source, where=st.where, param="train")
            mode = BIAS if st.modes[BIAS].trainable_bytes > 0 else FROZEN
        else:
            mode = FROZEN
        modes.append(mode)
        if mode == TRAIN:
            new_stages.append(replace(st, trainable_bytes=st.param_bytes, modes={}))
            continue
        ms = st.modes.get(mode) or frozen_default(st)
        if ms.computed:
            computed.append((i, st.name))
        new_stages.append(_apply(st, ms))
    p = 0
    while p < len(new_stages) and new_stages[p].trainable_bytes == 0:
        p += 1
    if p == len(new_stages):
        raise InputError(f"{spec.text} trains no parameter of this model", param="train")
    # a frozen stage inside the prefix never runs backward: its computed numbers do not matter
    counted = tuple(n for i, n in computed if i >= p)
    # the model's total plus what the modes add (LoRA adapters)
    params = model.param_bytes + sum(new.param_bytes - old.param_bytes
                                     for new, old in zip(new_stages, model.stages, strict=True))
    trainable = sum(s.trainable_bytes or 0 for s in new_stages)
    resolved = replace(model, stages=tuple(new_stages), param_bytes=params, frozen_prefix=p)
    return resolved, Training(spec=spec, modes=tuple(modes), frozen_prefix=p, param_bytes=params,
                              trainable_bytes=trainable, computed=counted)


def _summary(model: ModelSpec, spec: TrainSpec) -> Training:
    """What an already resolved model trains (its modes are gone: ``partial`` for a stage
    that trains some of its parameters)."""
    def mode(s: StageSpec) -> str:
        if not s.trainable_bytes:
            return FROZEN
        return TRAIN if s.trainable_bytes == s.param_bytes else "partial"
    modes = tuple(mode(s) for s in model.stages)
    return Training(spec=spec, modes=modes, frozen_prefix=model.frozen_prefix,
                    param_bytes=model.param_bytes, trainable_bytes=model.trainable_bytes,
                    computed=())


def _apply(st: StageSpec, ms: ModeSpec) -> StageSpec:
    """``st`` with the numbers of mode ``ms``."""
    def pick(new, old):  # type: ignore[no-untyped-def]
        return old if new is None else new
    saved = pick(ms.saved_bytes, st.saved_bytes)
    return replace(st, saved_bytes=max(saved, st.out_bytes),
                   fwd_tmp_bytes=pick(ms.fwd_tmp_bytes, st.fwd_tmp_bytes),
                   bwd_tmp_bytes=pick(ms.bwd_tmp_bytes, st.bwd_tmp_bytes),
                   fwd_flops=pick(ms.fwd_flops, st.fwd_flops),
                   fwd_time_s=pick(ms.fwd_time_s, st.fwd_time_s),
                   bwd_flops=pick(ms.bwd_flops, st.bwd_flops),
                   bwd_time_s=pick(ms.bwd_time_s, st.bwd_time_s),
                   fwd_work=pick(ms.fwd_work, st.fwd_work),
                   bwd_work=pick(ms.bwd_work, st.bwd_work),
                   param_bytes=st.param_bytes + ms.added_bytes,
                   trainable_bytes=ms.trainable_bytes, modes={},
                   # the stage's largest tensor, not its largest trained one (biases, adapters)
                   largest_param_bytes=None)
