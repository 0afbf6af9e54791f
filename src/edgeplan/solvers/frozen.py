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

Keeping ``a_p`` all along can cost more memory than training everything (which keeps only
``a_0`` and recomputes): a frozen stem with a large output would make fine-tuning *less* need
*more* memory. So the strategy also plans ``Chain.merged_prefix()`` -- the prefix as one stage
``P`` that records nothing and has a free backward, so that ``a_p`` is a checkpoint like any
other, dropped and recomputed from ``a_0`` where that pays -- and :func:`unmerge` expands its
schedule (each forward of ``P`` is ``Fn 1 .. Fn p``). :func:`best` keeps, at the budget, the
cheaper of the two replayed answers, and the lower envelope of both trade-off curves. The
exhaustive ``exact`` strategy searches the whole chain, natively, and the tests check ``exact
<=`` both.
"""

from __future__ import annotations

from dataclasses import replace

from ..chain import Chain
from ..device import StorageTier
from ..schedule import Op, OpKind, Schedule
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


def unmerged(schedule: Schedule, p: int) -> Schedule:
    """A schedule of ``Chain.merged_prefix()`` as one of the whole chain: a forward of ``P``
    (no-grad or "recording": it records nothing) becomes the prefix's forward keeping ``a_p``,
    its backward disappears, dropping ``P`` frees ``a_p``; every other op moves to its stage
    ``+ p - 1``. The whole chain's backward ends with ``B p+1``: what the merged schedule
    does with ``P`` after it is dropped."""
    ops: list[Op] = []
    done = False
    for op in schedule.ops:
        if done:
            continue
        if op.kind is OpKind.B and op.stage == 2:
            done = True
        if op.stage != 1:
            ops.append(Op(op.kind, op.stage + p - 1))
        elif op.kind in (OpKind.FN, OpKind.FALL):
            ops += frozen_prefix_ops(p)
        elif op.kind in (OpKind.FREE_A, OpKind.FREE_ALL):
            ops.append(Op(OpKind.FREE_A, p))
        # B P: the prefix has no backward
    return Schedule(tuple(ops))


def unmerge(chain: Chain, budget_bytes: int, sub: SolveResult, *,
            tier: StorageTier | None = None, storage_bytes: int | None = None) -> SolveResult:
    """``sub`` (a strategy's answer on ``chain.merged_prefix()`` within ``budget_bytes``) as
    the answer on ``chain``: the same costs (``P``'s forward time is the prefix's, its backward
    free), budgets that over-estimate by at most ``x_p`` (the gradient of ``P`` the chain model
    counts), the schedule expanded by :func:`unmerged` and replayed."""
    p = chain.frozen_prefix
    params = dict(sub.params, frozen_prefix="recomputed")
    out = replace(sub, budget_bytes=budget_bytes, params=params)
    if not sub.feasible or sub.schedule is None:
        return out
    sched = unmerged(sub.schedule, p)
    trace = simulate(chain, sched, budget_bytes, tier=tier, storage_bytes=storage_bytes)
    io = sub.io
    if io is not None:
        span = trace.makespan(io.mode == "async")
        rc = io.recompute_cost_s
        io = replace(io, makespan_s=span, sync_cost_s=trace.cost_s,
                     async_cost_s=trace.makespan(True),
                     gain_s=None if rc is None else rc - span,
                     gain_fraction=None if rc is None or rc <= 0 else (rc - span) / rc)
    return replace(out, schedule=sched, trace=trace, io=io)


def _envelope(points: list[FrontierPoint]) -> tuple[FrontierPoint, ...]:
    """The lower envelope: by budget, each point cheaper than every point at a lower budget."""
    out: list[FrontierPoint] = []
    for pt in sorted(points, key=lambda q: (q.budget_bytes, q.cost_s)):
        if out and pt.cost_s >= out[-1].cost_s - 1e-12:
            continue
        if out and out[-1].budget_bytes == pt.budget_bytes:
            out[-1] = pt
        else:
            out.append(pt)
    return tuple(out)


def best(kept: SolveResult, recomputed: SolveResult) -> SolveResult:
    """The better answer at the budget (feasible, then cheaper, then the lower peak; ``kept``
    on ties), with the least budget and the trade-off curve of both."""
    def key(r: SolveResult) -> tuple[int, float, int]:
        return (0 if r.feasible else 1, r.cost_s if r.cost_s is not None else 0.0,
                r.peak_bytes if r.peak_bytes is not None else 0)
    win = recomputed if key(recomputed) < key(kept) else kept
    if win is kept:
        win = replace(kept, params=dict(kept.params, frozen_prefix="kept"))
    mins = [m for m in (kept.min_budget_bytes, recomputed.min_budget_bytes) if m is not None]
    frontier = _envelope(list(kept.frontier) + list(recomputed.frontier)) \
        if kept.frontier and recomputed.frontier else (kept.frontier or recomputed.frontier)
    return replace(win, min_budget_bytes=min(mins) if mins else None, frontier=frontier)
