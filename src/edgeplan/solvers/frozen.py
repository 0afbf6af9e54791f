"""Solving a chain with a frozen prefix (docs/chain-model.md §8) with any strategy.

Stages ``1..p`` train nothing and need no input gradient, so every schedule starts with their
forward (``Fn 1 .. Fn p``, each input freed when the next activation exists) and keeps ``a_p``:
the trained part ``p+1..L`` is then a chain of its own whose input is ``a_p``, with the input batch
``a_0`` resident beside it. A strategy plans that trained part within ``budget - x_0``; this
module lifts its answer back:

* schedule: the prefix's forward, then the trained part's ops shifted by ``p`` (replayed by the
  simulator on the whole chain: the peak and cost shown are the simulator's);
* peak: ``max(prefix forward peak, x_0 + trained part's peak)``; cost: ``+ tf_1 + .. + tf_p``;
* least budget and the trade-off curve: the same two rules, point by point.

Recomputing ``a_p`` from ``a_0`` instead of keeping it could save ``x_p`` bytes at the price of
the prefix's forward; these lifted schedules never do, so they are optimal among schedules that
keep ``a_p`` (the exhaustive ``exact`` strategy searches the whole chain, natively, and the tests
check ``exact <= lifted``).
"""

from __future__ import annotations

from dataclasses import replace

from ..chain import Chain
from ..device import StorageTier
from ..schedule import Op, Schedule
from ..simulator import simulate
from .base import FrontierPoint, SolveResult, frozen_prefix_ops


def prefix_peak_bytes(chain: Chain) -> int:
    """The largest transient of the prefix's forward: ``x_0 + x_{j-1} + x_j + f_j`` (``a_{j-1}``
    counted once for ``j = 1``, where it is the resident ``a_0``)."""
    x0 = chain.input_bytes
    peak = x0
    for j in range(1, chain.frozen_prefix + 1):
        st = chain.stage(j)
        peak = max(peak, x0 + (chain.x(j - 1) if j >= 2 else 0) + st.out_bytes
                   + st.fwd_tmp_bytes)
    return peak


def prefix_time_s(chain: Chain) -> float:
    return float(sum(chain.stage(j).fwd_time_s for j in range(1, chain.frozen_prefix + 1)))


def shifted(schedule: Schedule, p: int) -> Schedule:
    return Schedule(tuple(Op(op.kind, op.stage + p) for op in schedule.ops))


def lift(chain: Chain, budget_bytes: int, sub: SolveResult, *,
         tier: StorageTier | None = None, storage_bytes: int | None = None) -> SolveResult:
    """``sub`` (a strategy's answer on ``chain.trained_part()`` within ``budget - x_0``) as the
    answer on ``chain`` within ``budget_bytes``."""
    p = chain.frozen_prefix
    x0 = chain.input_bytes
    floor = prefix_peak_bytes(chain)
    t0 = prefix_time_s(chain)

    def up(b: int | None) -> int | None:
        return None if b is None else max(floor, b + x0)

    frontier: list[FrontierPoint] = []
    for pt in sub.frontier:
        lifted = FrontierPoint(budget_bytes=max(floor, pt.budget_bytes + x0),
                               peak_bytes=max(floor, pt.peak_bytes + x0), cost_s=pt.cost_s + t0)
        # points whose budget the prefix's peak swallows collapse into the cheapest of them
        if frontier and frontier[-1].budget_bytes == lifted.budget_bytes:
            frontier[-1] = lifted
        else:
            frontier.append(lifted)
    params = dict(sub.params)
    if params.get("recompute_min_budget_bytes") is not None:
        params["recompute_min_budget_bytes"] = up(params["recompute_min_budget_bytes"])
    out = replace(sub, budget_bytes=budget_bytes, min_budget_bytes=up(sub.min_budget_bytes),
                  frontier=tuple(frontier), params=params)
    if not sub.feasible or sub.schedule is None:
        return out
    if floor > budget_bytes:  # the trained part fits, the prefix's forward does not
        return replace(out, feasible=False, schedule=None, trace=None, io=None)
    sched = Schedule(frozen_prefix_ops(p) + shifted(sub.schedule, p).ops)
    trace = simulate(chain, sched, budget_bytes, tier=tier, storage_bytes=storage_bytes)
    io = sub.io
    if io is not None:
        span = trace.makespan(io.mode == "async")
        rc = None if io.recompute_cost_s is None else io.recompute_cost_s + t0
        io = replace(io, makespan_s=span, sync_cost_s=trace.cost_s,
                     async_cost_s=trace.makespan(True), recompute_cost_s=rc,
                     gain_s=None if rc is None else rc - span,
                     gain_fraction=None if rc is None or rc <= 0 else (rc - span) / rc)
    return replace(out, schedule=sched, trace=trace, io=io)
