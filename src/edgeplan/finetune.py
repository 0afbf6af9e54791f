"""What to train on a device: fine-tuning candidates, their Pareto front, the recommended one.

``edgeplan finetune`` (docs/finetune.md) answers "within this memory, what is the cheapest way
to train this model, and what does it give up?". A **candidate** is a ``--train`` selection
(``training.parse_train``) and a number of micro-batches per optimizer step, each planned with
the optimal checkpointing schedule (``plan.make_plan``: the DP of docs/chain-model.md §4 on the
chain of §8). The candidates are:

- ``all``, and ``last:K`` for every K below the number of stages with parameters (at most 24
  depths: every one up to 24, else 1-4, 6, 8, 12, 16, ... by about half octaves);
- with bias-only numbers in the file: ``bias`` and ``last:K,bias`` for K = 1, 2, 4;
- for every LoRA rank R in the file: ``lora:R`` and ``lora:R,last:1`` (adapters plus a trained
  head);
- for each of several measurements of the model (``import torch`` in fp32 and ``--amp bf16``:
  a precision each);
- each with 1, 2, 4, ... micro-batches (powers of two dividing the batch), stopping at the
  first count that needs no recomputation: more micro-batches cannot make it faster in the
  cost model.

A candidate is on the **Pareto front** when no other candidate that fits is at least as good
in all of peak memory, time per sample and trainable bytes, and better in one. The
**recommended** candidate fits, meets the ``--min-trainable`` requirement, and then (``prefer
= "trainable"``) trains the most parameter bytes, or (``prefer = "time"``) takes the least time
per sample; among those within 2% of the least time per sample, the fewest micro-batches win:
the cost model prices a FLOP the same at any micro-batch, while real devices run small batches
below their sustained rate.

Nothing here prints; ``report.finetune_report`` renders a ``Finetune``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from . import units
from .device import DeviceProfile
from .discretize import DEFAULT_SLOTS
from .errors import InputError
from .model import ModelSpec
from .plan import Plan, make_plan
from .training import (
    BIAS,
    TRAIN,
    Training,
    everything,
    first_trained,
    lora_rank,
    parse_train,
)

__all__ = ["Candidate", "Finetune", "Requirement", "candidate_selections", "parse_min_trainable",
           "plan_finetune"]

PREFER = ("trainable", "time")
MAX_DEPTHS = 24
#: Times per sample within this fraction of the least count as equal (then fewer
#: micro-batches win).
TIME_TIE = 0.02
_DEPTHS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


@dataclass(frozen=True, kw_only=True)
class Requirement:
    """``--min-trainable``: what a candidate must train (every given part must hold)."""

    text: str
    first_stage: int | None = None   # 0-based: this stage and every later one train fully
    fraction: float | None = None    # of the parameter bytes
    trainable_bytes: int | None = None

    def met_by(self, training: Training) -> bool:
        if self.first_stage is not None and any(
                m != TRAIN for m in training.modes[self.first_stage:]):
            return False
        if self.fraction is not None and training.trainable_fraction < self.fraction - 1e-12:
            return False
        return self.trainable_bytes is None or training.trainable_bytes >= self.trainable_bytes


def parse_min_trainable(text: str, model: ModelSpec, *,
                        param: str = "min_trainable") -> Requirement:
    """``last:K`` / ``from:NAME`` (those stages train fully), ``P%`` (of the parameter bytes)
    or a size (``8 MiB`` of trainable parameters); a comma list must hold together."""
    first = fraction = size = None
    for raw in (t.strip() for t in text.split(",")):
        if not raw:
            continue
        key = raw.partition(":")[0].strip().lower()
        if key in ("last", "from"):
            spec = parse_train(raw, param=param)
            first = first_trained(model, spec, param=param)
        elif raw.endswith("%"):
            fraction = units.parse_percent(raw)
        else:
            try:
                size = units.parse_size(raw)
            except InputError:
                raise InputError(f"expected last:K, from:NAME, a percentage like 10% or a size "
                                 f"like 8 MiB, got {raw!r}", param=param) from None
    if first is None and fraction is None and size is None:
        raise InputError("expected what must train, e.g. last:4, 10% or 8 MiB", param=param)
    return Requirement(text=text, first_stage=first, fraction=fraction, trainable_bytes=size)


def candidate_selections(model: ModelSpec) -> list[str]:
    """The ``--train`` selections the planner tries on ``model`` (module docstring)."""
    with_params = [i for i, s in enumerate(model.stages) if s.param_bytes > 0]
    n = len(with_params)
    if n <= 1:
        return ["all"]
    depths = list(range(1, n)) if n <= MAX_DEPTHS else [k for k in _DEPTHS if k < n]
    out = ["all"] + [f"last:{k}" for k in reversed(depths)]
    if all(BIAS in model.stages[i].modes for i in with_params):
        out += ["bias"] + [f"last:{k},bias" for k in (1, 2, 4) if k < n]
    ranks = sorted({r for s in model.stages for m in s.modes if (r := lora_rank(m)) is not None})
    for r in ranks:
        out += [f"lora:{r}", f"last:1,lora:{r}"]
    return [parse_train(s).text for s in out]


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One fine-tuning plan: a selection, micro-batches, the optimal schedule's plan."""

    train: str
    grad_accum: int
    plan: Plan
    meets: bool = True          # the requirement (True without one)
    pareto: bool = False

    @property
    def training(self) -> Training:
        return self.plan.problem.training or everything(self.plan.model)

    @property
    def feasible(self) -> bool:
        return self.plan.feasible

    @property
    def peak_bytes(self) -> int | None:
        """Usable memory the recommended schedule takes: fixed part + its activation peak."""
        p = self.plan.result.peak_bytes
        return None if p is None or not self.feasible else p + self.plan.memory.fixed_bytes

    @property
    def time_per_sample_s(self) -> float | None:
        return self.plan.problem.time_per_sample_s(self.plan.time_s)

    @property
    def time_per_step_s(self) -> float | None:
        return self.plan.problem.time_per_step_s(self.plan.time_s)

    @property
    def trainable_bytes(self) -> int:
        return self.training.trainable_bytes

    @property
    def micro_batch(self) -> int:
        return self.plan.model.batch

    @property
    def precision(self) -> str | None:
        """The precision the file was measured in (its ``precision:``)."""
        return self.plan.model.precision


@dataclass(frozen=True, kw_only=True)
class Finetune:
    """Every candidate, which are on the front, and the recommended one."""

    candidates: tuple[Candidate, ...]
    recommended: Candidate | None
    requirement: Requirement | None
    prefer: str
    notes: tuple[str, ...] = ()

    @property
    def usable_bytes(self) -> int:
        """Memory available to training (the same for every candidate)."""
        return self.candidates[0].plan.memory.usable_bytes

    @property
    def several_models(self) -> bool:
        """The candidates come from several measurements of the model (precisions)."""
        return len({c.plan.model.source for c in self.candidates}) > 1

    @property
    def feasible(self) -> bool:
        return self.recommended is not None

    @property
    def front(self) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if c.pareto)

    @property
    def least_memory(self) -> Candidate | None:
        """The candidate meeting the requirement that needs the least memory (what to report
        when nothing fits)."""
        ok = [c for c in self.candidates if c.meets and c.plan.min_memory_bytes is not None]
        return min(ok, key=lambda c: (c.plan.min_memory_bytes, -c.trainable_bytes),
                   default=None)


def _accum_counts(batch: int) -> list[int]:
    out, k = [], 1
    while k <= batch:
        if batch % k == 0:
            out.append(k)
        k *= 2
    return out


def _dominates(a: Candidate, b: Candidate) -> bool:
    ka = (a.peak_bytes, a.time_per_sample_s, -a.trainable_bytes)
    kb = (b.peak_bytes, b.time_per_sample_s, -b.trainable_bytes)
    return all(x <= y for x, y in zip(ka, kb, strict=True)) and ka != kb  # type: ignore[operator]


def _same_model(models: Sequence[ModelSpec]) -> None:
    """Several files must measure the same model (in several precisions)."""
    first = models[0]
    for m in models[1:]:
        if [s.name for s in m.stages] != [s.name for s in first.stages]:
            raise InputError(f"{m.source} and {first.source} are not the same model (their "
                             "stages differ); give one model measured in several precisions",
                             param="model")


def plan_finetune(model: ModelSpec | Sequence[ModelSpec], device: DeviceProfile | None, *,
                  memory_bytes: int | None = None, slots: int = DEFAULT_SLOTS,
                  precision: str | None = None, batch: int | None = None,
                  optimizer: str | None = None, selections: Sequence[str] | None = None,
                  grad_accum: Sequence[int] | None = None,
                  min_trainable: str | Requirement | None = None, prefer: str = "trainable",
                  progress: Callable[[int, int], None] | None = None,
                  master_weights: bool = False) -> Finetune:
    """Plan every candidate (module docstring) and pick the recommended one.

    ``model`` may be several measurements of one model (e.g. fp32 and ``import torch --amp
    bf16``): each is a candidate precision, timed at the device's FLOP/s for the file's
    precision (``precision`` overrides it for all). ``selections`` replaces the candidate
    selections, ``grad_accum`` the micro-batch counts (tried in full, not stopped early).
    Raises ``InputError`` for a bad requirement, a bad ``prefer`` or micro-batch count, models
    that are not one model, or a model that cannot be planned at all.
    """
    if prefer not in PREFER:
        raise InputError(f"expected one of {', '.join(PREFER)}, got {prefer!r}", param="prefer")
    models = [model] if isinstance(model, ModelSpec) else list(model)
    if not models:
        raise InputError("no model to plan", param="model")
    _same_model(models)
    req = (parse_min_trainable(min_trainable, models[0]) if isinstance(min_trainable, str)
           else min_trainable)
    full_batch = batch or models[0].batch
    counts = list(grad_accum) if grad_accum is not None else _accum_counts(full_batch)
    for k in counts:
        if k < 1 or full_batch % k:
            raise InputError(f"the batch ({full_batch}) must split into {k} equal micro-batches",
                             param="grad_accum")
    found: list[Candidate] = []
    notes: list[str] = []
    todo = [(m, sel) for m in models
            for sel in (list(selections) if selections is not None
                        else candidate_selections(m))]
    for n, (m, sel) in enumerate(todo, 1):
        for k in counts:
            try:
                plan = make_plan(m, device, memory_bytes=memory_bytes, slots=slots,
                                 precision=precision, batch=batch, grad_accum=k, train=sel,
                                 optimizer=optimizer, master_weights=master_weights)
            except InputError as e:
                if selections is not None or e.param != "train":
                    raise
                notes.append(f"{sel}: skipped ({e.message})")
                break
            c = Candidate(train=parse_train(sel).text, grad_accum=k, plan=plan)
            found.append(c)
            if grad_accum is None and plan.feasible and plan.fits_without_checkpointing:
                break  # more micro-batches cannot be faster here
        if progress:
            progress(n, len(todo))
    if not found:
        raise InputError("no fine-tuning candidate could be planned: " + "; ".join(notes),
                         param="train")
    marked = [replace(c, meets=req is None or req.met_by(c.training)) for c in found]
    fits = [c for c in marked if c.feasible]
    final = tuple(replace(c, pareto=c.feasible and not any(_dominates(o, c) for o in fits))
                  for c in marked)
    rec = _pick(final, prefer)
    if rec is not None and rec.plan.problem.step_note:
        notes.append(f"recommended plan: {rec.plan.problem.step_note}")
    return Finetune(candidates=final, recommended=rec, requirement=req, prefer=prefer,
                    notes=tuple(notes))


def _pick(candidates: Sequence[Candidate], prefer: str) -> Candidate | None:
    """The recommended candidate (module docstring): among those that fit and meet the
    requirement, the most trainable bytes (``trainable``) or the least time per sample
    (``time``); then, within :data:`TIME_TIE` of the least time, the fewest micro-batches."""
    ok = [c for c in candidates if c.feasible and c.meets]
    if not ok:
        return None
    if prefer == "trainable":
        most = max(c.trainable_bytes for c in ok)
        ok = [c for c in ok if c.trainable_bytes == most]
    fastest = min(c.time_per_sample_s or 0.0 for c in ok)
    near = [c for c in ok if (c.time_per_sample_s or 0.0) <= fastest * (1 + TIME_TIE)]
    return min(near, key=lambda c: (c.grad_accum, -c.trainable_bytes,
                                    c.time_per_sample_s or 0.0))

