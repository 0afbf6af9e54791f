"""Capacity gates for CI (``edgeplan check``): thresholds, their evaluation and the results.

A gate compares one measured number of a plan with a threshold:

=============  ==============================================================  ========
gate           measured                                                        passes
=============  ==============================================================  ========
fits           least memory for training (``Plan.min_memory_bytes``) vs the    a schedule
               memory available (device total - reserved, or ``--memory``)     exists
max-overhead   recompute overhead of the optimal schedule (fraction)           ``<=`` limit
max-step-time  time per iteration of the optimal schedule (seconds)            ``<=`` limit
min-batch      largest batch that fits with overhead within ``max-overhead``   ``>=`` limit
budget         least memory for training (bytes, fixed part included, device   ``<=`` limit
               reserve excluded): a memory-size regression gate
min-trainable  the fine-tuning plan recommended by ``finetune.plan_finetune``   one fits
               among those that train at least the requirement (``last:4``,
               ``10%``, ``8 MiB``): its ``--train`` selection
=============  ==============================================================  ========

Every gate plans the model with the ``train`` selection and ``optimizer`` given (default: the
file's); ``min-trainable`` searches the selections itself.

``fits`` is always evaluated; the others only when their threshold is set. When no schedule
fits, ``max-overhead`` and ``max-step-time`` fail with ``measured = None``. This module computes
and never prints; ``report.gate_report`` renders a ``CheckResult`` (table, JSON, JUnit XML) and
``config`` reads thresholds from ``edgeplan.yaml`` / ``pyproject.toml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .batch import OVERHEAD_TOLERANCE, largest_batch
from .device import DeviceProfile
from .discretize import DEFAULT_SLOTS
from .finetune import Finetune, plan_finetune
from .model import ModelSpec
from .plan import Plan, make_plan

GATES = ("fits", "max-overhead", "max-step-time", "min-batch", "budget", "min-trainable")

#: The min-batch search stops here (or at the threshold, when larger); a result equal to the
#: limit means "at least this many".
BATCH_SEARCH_LIMIT = 65536
_TIME_TOLERANCE = 1e-12


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Gate limits; None leaves a gate out. ``max_overhead`` is a fraction (0.3 = 30 %)."""

    max_overhead: float | None = None
    max_step_time_s: float | None = None
    min_batch: int | None = None
    budget_bytes: int | None = None
    min_trainable: str | None = None

    def overridden_by(self, other: Thresholds) -> Thresholds:
        """These thresholds with every value that ``other`` sets replaced (flags over config).

        Examples
        --------
        >>> Thresholds(max_overhead=0.3, min_batch=8).overridden_by(Thresholds(min_batch=4))
        ... # doctest: +NORMALIZE_WHITESPACE
        Thresholds(max_overhead=0.3, max_step_time_s=None, min_batch=4, budget_bytes=None,
                   min_trainable=None)
        """
        return replace(self, **{k: v for k, v in other.to_dict().items() if v is not None})

    def to_dict(self) -> dict:
        return {"max_overhead": self.max_overhead, "max_step_time_s": self.max_step_time_s,
                "min_batch": self.min_batch, "budget_bytes": self.budget_bytes,
                "min_trainable": self.min_trainable}


@dataclass(frozen=True, kw_only=True)
class GateOutcome:
    """One gate on one target.

    ``unit`` is ``bytes``, ``fraction``, ``s``, ``batch`` or ``selection`` (a ``--train``
    text); ``relation`` is how ``measured`` must compare with ``threshold`` (``<=``, ``>=``, or
    ``meets`` for a selection). ``measured`` is None when it could not be measured (no schedule
    fits; no batch fits; no plan meets the requirement).
    """

    gate: str
    passed: bool
    measured: int | float | str | None
    threshold: int | float | str | None
    unit: str
    relation: str

    def to_dict(self) -> dict:
        return {"gate": self.gate, "passed": self.passed, "measured": self.measured,
                "threshold": self.threshold, "unit": self.unit, "relation": self.relation}


@dataclass(frozen=True, kw_only=True)
class TargetCheck:
    """Every gate of one model on one device (or on ``--memory`` alone: ``device`` None)."""

    name: str
    plan: Plan
    gates: tuple[GateOutcome, ...]
    largest_batch: int | None = None       # set when min-batch was evaluated
    batch_search_limit: int | None = None
    finetune: Finetune | None = None       # set when min-trainable was evaluated

    @property
    def device(self) -> DeviceProfile | None:
        return self.plan.device

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failures(self) -> tuple[GateOutcome, ...]:
        return tuple(g for g in self.gates if not g.passed)


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    model: ModelSpec
    thresholds: Thresholds
    targets: tuple[TargetCheck, ...]

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.targets)

    @property
    def gate_count(self) -> int:
        return sum(len(t.gates) for t in self.targets)

    @property
    def failures(self) -> tuple[tuple[str, GateOutcome], ...]:
        """``(target name, gate)`` for every failed gate, in order."""
        return tuple((t.name, g) for t in self.targets for g in t.failures)

    @property
    def notes(self) -> tuple[str, ...]:
        out: list[str] = []
        for t in self.targets:
            out.extend(f"{t.name}: {n}" for n in t.plan.result.notes)
        return tuple(out)


def evaluate(model: ModelSpec, device: DeviceProfile | None, thresholds: Thresholds, *,
             memory_bytes: int | None = None, slots: int = DEFAULT_SLOTS,
             precision: str | None = None, batch: int | None = None,
             train: str | None = None, optimizer: str | None = None) -> TargetCheck:
    """Run every applicable gate of ``thresholds`` for ``model`` on ``device``.

    Parameters
    ----------
    model, device, memory_bytes, slots, precision, batch, train, optimizer
        As for ``plan.make_plan`` (``device`` may be None with ``memory_bytes`` when the model
        gives times).
    thresholds
        The limits; ``fits`` is always checked.

    Returns
    -------
    TargetCheck
        The plan and one ``GateOutcome`` per gate, in the order of ``GATES``.
    """
    plan = make_plan(model, device, memory_bytes=memory_bytes, slots=slots, precision=precision,
                     batch=batch, train=train, optimizer=optimizer)
    th = thresholds
    gates = [GateOutcome(gate="fits", passed=plan.feasible, measured=plan.min_memory_bytes,
                         threshold=plan.memory.usable_bytes, unit="bytes", relation="<=")]
    overhead = None if not plan.feasible or plan.overhead is None else max(0.0, plan.overhead)
    if th.max_overhead is not None:
        gates.append(GateOutcome(
            gate="max-overhead", measured=overhead, threshold=th.max_overhead, unit="fraction",
            relation="<=", passed=overhead is not None and
            overhead <= th.max_overhead + OVERHEAD_TOLERANCE))
    if th.max_step_time_s is not None:
        t = plan.time_s if plan.feasible else None
        gates.append(GateOutcome(
            gate="max-step-time", measured=t, threshold=th.max_step_time_s, unit="s",
            relation="<=", passed=t is not None and
            t <= th.max_step_time_s * (1 + _TIME_TOLERANCE)))
    best = limit = None
    if th.min_batch is not None:
        limit = max(BATCH_SEARCH_LIMIT, th.min_batch)
        # the planned model: its training modes and optimizer resolved, at any batch
        best = largest_batch(plan.model, device, max_batch=limit, max_overhead=th.max_overhead,
                             memory_bytes=memory_bytes, slots=slots, precision=precision)
        gates.append(GateOutcome(gate="min-batch", measured=best, threshold=th.min_batch,
                                 unit="batch", relation=">=",
                                 passed=best is not None and best >= th.min_batch))
    if th.budget_bytes is not None:
        need = plan.min_memory_bytes
        gates.append(GateOutcome(gate="budget", measured=need, threshold=th.budget_bytes,
                                 unit="bytes", relation="<=",
                                 passed=need is not None and need <= th.budget_bytes))
    ft = None
    if th.min_trainable is not None:
        ft = plan_finetune(model, device, memory_bytes=memory_bytes, slots=slots,
                           precision=precision, batch=batch, optimizer=optimizer,
                           min_trainable=th.min_trainable)
        rec = ft.recommended
        gates.append(GateOutcome(gate="min-trainable", passed=rec is not None,
                                 measured=None if rec is None else rec.train,
                                 threshold=th.min_trainable, unit="selection",
                                 relation="meets"))
    name = device.name if device is not None else "memory"
    return TargetCheck(name=name, plan=plan, gates=tuple(gates), largest_batch=best,
                       batch_search_limit=limit, finetune=ft)


def check(model: ModelSpec, devices: Sequence[DeviceProfile | None], thresholds: Thresholds, *,
          memory_bytes: int | None = None, slots: int = DEFAULT_SLOTS,
          precision: str | None = None, batch: int | None = None, train: str | None = None,
          optimizer: str | None = None) -> CheckResult:
    """Evaluate the gates on every device; ``CheckResult.passed`` is the CI verdict.

    ``devices`` may hold a single None to check against ``memory_bytes`` alone.

    Raises
    ------
    InputError
        No target, or a model in FLOPs without a device (from ``make_plan``).
    """
    from .errors import InputError

    if not devices:
        raise InputError("nothing to check: give --device NAME (repeatable) or --memory SIZE")
    if memory_bytes is None and any(d is None for d in devices):
        raise InputError("a target without a device needs --memory SIZE")
    targets = tuple(evaluate(model, d, thresholds, memory_bytes=memory_bytes, slots=slots,
                             precision=precision, batch=batch, train=train,
                             optimizer=optimizer) for d in devices)
    return CheckResult(model=model, thresholds=thresholds, targets=targets)
