"""Batch-size planning: the largest batch that trains within the memory and an overhead limit.

Activations, the input and compute scale linearly with the batch (``ModelSpec.scaled_to_batch``);
parameters, gradients and optimizer state do not. The activation budget is therefore the same
for every batch while the chain grows, so feasibility is monotone in the batch: a schedule that
fits batch ``b`` fits every smaller batch (its replayed peak only shrinks). The recompute overhead
is monotone too: with all times scaled by the same factor, a larger batch sees a relatively
smaller budget and the optimal overhead can only grow. ``search_largest`` exploits this with a
galloping search (1, 2, 4, ... until a batch fails) followed by bisection, so the answer costs
about ``2 log2(best)`` solves instead of ``max_batch``.

Each probe of the search is a solve *without* the trade-off frontier (fast); the representative
rows of a ``BatchPlan`` are full ``make_plan`` runs, which also give the least memory.

In this linear model the throughput (samples/s = batch / time per iteration) never improves with
the batch: time per sample is ``t1 * (1 + overhead)``. The largest batch matters for
convergence and for devices whose FLOP/s grow with the batch, which a profile's sustained rate
does not capture. This module never prints; ``report.batch_report`` renders a ``BatchPlan``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .device import DeviceProfile
from .discretize import DEFAULT_SLOTS
from .model import ModelSpec
from .plan import Plan, make_plan
from .problem import prepare, solve_problem

#: Relative slack when comparing an overhead with a limit (float noise of scaled times).
OVERHEAD_TOLERANCE = 1e-9
#: Largest batch the CLI accepts anywhere (matches ``solve --batch``).
MAX_BATCH = 10**7


def within_overhead(overhead: float | None, max_overhead: float | None) -> bool:
    """True when a schedule exists (``overhead`` not None) and it is within ``max_overhead``.

    Examples
    --------
    >>> within_overhead(0.25, 0.30), within_overhead(0.31, 0.30), within_overhead(None, None)
    (True, False, False)
    >>> within_overhead(0.9, None)
    True
    """
    if overhead is None:
        return False
    return max_overhead is None or overhead <= max_overhead + OVERHEAD_TOLERANCE


def search_largest(passes: Callable[[int], bool], max_batch: int) -> int | None:
    """Largest ``b`` in ``1..max_batch`` with ``passes(b)``, for a monotone ``passes``.

    Galloping (1, 2, 4, ...) brackets the answer, bisection finds it; ``passes`` is called
    O(log best) times, never twice with the same batch. None when ``passes(1)`` is False.

    Examples
    --------
    >>> search_largest(lambda b: b <= 37, 64)
    37
    >>> search_largest(lambda b: True, 50), search_largest(lambda b: False, 50)
    (50, None)
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    seen: dict[int, bool] = {}

    def ok(b: int) -> bool:
        if b not in seen:
            seen[b] = bool(passes(b))
        return seen[b]

    if not ok(1):
        return None
    lo, b = 1, 2
    while True:
        if b >= max_batch:
            if ok(max_batch):
                return max_batch
            hi = max_batch
            break
        if not ok(b):
            hi = b
            break
        lo, b = b, b * 2
    while hi - lo > 1:  # invariant: ok(lo), not ok(hi)
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True, kw_only=True)
class Probe:
    """A quick solve at one batch size: feasibility, time per iteration and overhead."""

    batch: int
    feasible: bool
    time_s: float | None
    compute_time_s: float

    @property
    def overhead(self) -> float | None:
        if self.time_s is None:
            return None
        if self.compute_time_s <= 0:
            return 0.0
        return max(0.0, self.time_s / self.compute_time_s - 1.0)


def probe(model: ModelSpec, device: DeviceProfile | None, batch: int, *,
          memory_bytes: int | None = None, slots: int = DEFAULT_SLOTS,
          precision: str | None = None) -> Probe:
    """Solve ``model`` at ``batch`` without the trade-off frontier (the fast path of a search).

    Gives the same feasibility and time as ``make_plan`` (same solver, same budget), but not the
    least memory, which needs the frontier.
    """
    problem = prepare(model, device, memory_bytes=memory_bytes, batch=batch, precision=precision)
    res = solve_problem(problem, "optimal", slots=slots)
    return Probe(batch=batch, feasible=res.feasible, time_s=res.cost_s,
                 compute_time_s=problem.compute_time_s)


def largest_batch(model: ModelSpec, device: DeviceProfile | None, *, max_batch: int,
                  max_overhead: float | None = None, memory_bytes: int | None = None,
                  slots: int = DEFAULT_SLOTS, precision: str | None = None) -> int | None:
    """Largest batch in ``1..max_batch`` that fits the memory with overhead <= ``max_overhead``.

    None when not even batch 1 does. ``max_overhead`` is a fraction (0.3 for 30 %), None for
    no limit.
    """
    def passes(b: int) -> bool:
        p = probe(model, device, b, memory_bytes=memory_bytes, slots=slots, precision=precision)
        return within_overhead(p.overhead if p.feasible else None, max_overhead)
    return search_largest(passes, max_batch)


@dataclass(frozen=True, kw_only=True)
class BatchRow:
    """One batch size of a ``BatchPlan`` (a full plan; values None when nothing fits)."""

    batch: int
    feasible: bool                 # a schedule fits the memory
    within_limit: bool             # ... and its overhead is within the limit
    activation_budget_bytes: int   # memory left for activations (same for every batch)
    min_activation_bytes: int | None
    min_memory_bytes: int | None   # least memory for training at this batch (fixed part included)
    time_s: float | None           # time per iteration of the optimal schedule
    overhead: float | None         # recompute overhead (fraction of the no-recompute time)
    energy_j: float | None         # energy per iteration (device training power x time)

    @property
    def throughput(self) -> float | None:
        """Samples per second: batch / time per iteration."""
        if self.time_s is None or self.time_s <= 0:
            return None
        return self.batch / self.time_s

    @property
    def energy_per_sample_j(self) -> float | None:
        return None if self.energy_j is None else self.energy_j / self.batch

    def to_dict(self) -> dict:
        return {"batch": self.batch, "feasible": self.feasible, "within_limit": self.within_limit,
                "activation_budget_bytes": self.activation_budget_bytes,
                "min_activation_bytes": self.min_activation_bytes,
                "min_memory_bytes": self.min_memory_bytes, "time_s": self.time_s,
                "overhead": self.overhead, "energy_j": self.energy_j,
                "throughput_samples_per_s": self.throughput,
                "energy_per_sample_j": self.energy_per_sample_j}


def row_from_plan(plan: Plan, max_overhead: float | None = None) -> BatchRow:
    """A ``BatchRow`` from a full plan at that batch."""
    overhead = None if plan.overhead is None else max(0.0, plan.overhead)
    return BatchRow(batch=plan.model.batch, feasible=plan.feasible,
                    within_limit=plan.feasible and within_overhead(overhead, max_overhead),
                    activation_budget_bytes=plan.memory.activation_bytes,
                    min_activation_bytes=plan.min_activation_bytes,
                    min_memory_bytes=plan.min_memory_bytes, time_s=plan.time_s,
                    overhead=overhead, energy_j=plan.energy_j(plan.time_s))


@dataclass(frozen=True, kw_only=True)
class BatchPlan:
    """Representative batch sizes and the largest batch within the memory and overhead limit.

    ``rows`` are sorted by batch: powers of two up to ``max_batch``, ``max_batch`` itself, the
    best batch and the one above it (which shows what stops it). ``limited_by`` says why the best
    batch is not larger: ``"memory"`` (the next batch does not fit), ``"overhead"`` (it fits but
    over the limit) or ``"max_batch"`` (the search range ends there).
    """

    model: ModelSpec
    device: DeviceProfile | None
    memory_bytes: int | None
    max_batch: int
    max_overhead: float | None
    rows: tuple[BatchRow, ...]
    best_batch: int | None
    limited_by: str
    probes: int                    # fast solves spent by the search

    @property
    def best(self) -> BatchRow | None:
        for r in self.rows:
            if r.batch == self.best_batch:
                return r
        return None

    def to_dict(self) -> dict:
        """JSON-ready (raw numbers; ``report._json.dumps`` turns inf/nan into null)."""
        best = self.best
        return {"max_batch": self.max_batch, "max_overhead": self.max_overhead,
                "best_batch": self.best_batch, "limited_by": self.limited_by,
                "best": None if best is None else best.to_dict(),
                "rows": [dict(r.to_dict(), is_best=r.batch == self.best_batch) for r in self.rows],
                "search_probes": self.probes}


def representative_batches(max_batch: int, best: int | None) -> list[int]:
    """Powers of two up to ``max_batch``, ``max_batch``, ``best`` and ``best + 1``.

    Examples
    --------
    >>> representative_batches(40, 13)
    [1, 2, 4, 8, 13, 14, 16, 32, 40]
    """
    out = set()
    b = 1
    while b <= max_batch:
        out.add(b)
        b *= 2
    out.add(max_batch)
    if best is not None:
        out.add(best)
        if best < max_batch:
            out.add(best + 1)
    return sorted(out)


def plan_batches(model: ModelSpec, device: DeviceProfile | None, *, max_batch: int,
                 memory_bytes: int | None = None, max_overhead: float | None = None,
                 slots: int = DEFAULT_SLOTS, precision: str | None = None) -> BatchPlan:
    """Plan batch sizes 1..``max_batch`` for ``model`` on ``device``.

    Parameters
    ----------
    model, device
        As for ``make_plan``; the model's batch is the one its costs were given for.
    max_batch
        Upper end of the search (inclusive).
    memory_bytes
        Replaces the device's usable memory (``--memory``).
    max_overhead
        Largest acceptable recompute overhead, a fraction (0.3 = 30 %); None: any overhead.
    slots, precision
        As for ``make_plan``.

    Returns
    -------
    BatchPlan
        Representative rows (full plans) and the largest batch within the limits.

    Raises
    ------
    InputError
        ``max_batch`` out of range, or the model needs a device to turn FLOPs into seconds.
    """
    from .errors import InputError

    if not 1 <= max_batch <= MAX_BATCH:
        raise InputError(f"expected a maximum batch between 1 and {MAX_BATCH:,}, got {max_batch}",
                         param="max_batch")
    if max_overhead is not None and max_overhead < 0:
        raise InputError(f"expected a non-negative overhead limit, got {max_overhead}",
                         param="max_overhead")
    count = {"n": 0}
    probes: dict[int, Probe] = {}

    def passes(b: int) -> bool:
        count["n"] += 1
        probes[b] = probe(model, device, b, memory_bytes=memory_bytes, slots=slots,
                          precision=precision)
        p = probes[b]
        return within_overhead(p.overhead if p.feasible else None, max_overhead)

    best = search_largest(passes, max_batch)
    rows = tuple(row_from_plan(make_plan(model, device, memory_bytes=memory_bytes, slots=slots,
                                         precision=precision, batch=b), max_overhead)
                 for b in representative_batches(max_batch, best))
    if best == max_batch:
        limited_by = "max_batch"
    else:
        nxt = best + 1 if best is not None else 1
        p = probes.get(nxt) or probe(model, device, nxt, memory_bytes=memory_bytes, slots=slots,
                                     precision=precision)
        limited_by = "overhead" if p.feasible else "memory"
    return BatchPlan(model=model, device=device, memory_bytes=memory_bytes, max_batch=max_batch,
                     max_overhead=max_overhead, rows=rows, best_batch=best,
                     limited_by=limited_by, probes=count["n"])
