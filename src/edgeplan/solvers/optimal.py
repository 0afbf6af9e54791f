"""The optimal heterogeneous-chain dynamic program (Rotor class), docs/chain-model.md §4.

``C(s, t, m)``: least cost to run backward stages ``t..s`` when ``a_{s-1}`` is held by the caller
(not counted in ``m``), ``d_t`` is live (counted), nothing else of ``s..t`` is live. Options:

* leaf ``s = t``: ``Fall s; B s`` if ``d_s + s_s + f_s <= m`` and ``d_s + s_s + d_{s-1} + b_s <=
m``;
* record ``s``: ``Fall s``, ``C(s+1, t, m - s_s)``, ``B s``; needs ``d_t + s_s + f_s <= m`` and
  ``s_s + d_s + d_{s-1} + b_s <= m``;
* checkpoint ``a_{k-1}`` (``s < k <= t``): ``Fn s..k-1`` (freeing intermediates),
  ``C(k, t, m - x_{k-1})``, ``free a_{k-1}``, ``C(s, k-1, m)``; each ``Fn j`` needs
  ``d_t + [j > s] x_{j-1} + x_j + f_j <= m``.

The answer for an activation budget ``Bu`` is ``C(1, L, Bu - x_0)``; the table holds every ``m``,
so one fill gives the whole trade-off curve. Sizes are in slots (``discretize``): sizes round up,
the budget rounds down, so a schedule that fits in slots fits in bytes.

Layers: ``fill_table`` (``dp_kernel``: banded tables, numpy or numba back end, no
validation), ``rebuild`` (iterative, no recursion limit), ``solve_optimal`` (the documented
entry point; replays every schedule in the simulator).
Ties between recording and checkpointing go to recording (no needless checkpoint when stages take
zero time); ties between checkpoints go to the smallest ``k``.
"""

from __future__ import annotations

import numpy as np

from ..chain import Chain, make_chain
from ..discretize import DEFAULT_SLOTS, Discretization, choose, slot_chain
from ..errors import InfeasibleError, LimitError
from ..progress import Progress
from .base import FrontierPoint, SolveResult, store_all_peak_bytes, store_all_schedule, verified
from .dp_kernel import INF, MAX_TABLE_CELLS, DPTable, fill_table, rebuild, table_cells


def _solve_range(chain: Chain, range_bytes: int, slots: int, progress: Progress | None = None,
                 cover_store_all: bool = False) -> tuple[Discretization, DPTable | None]:
    """Fill the table for budgets up to ``range_bytes`` in about ``slots`` slots.

    With ``cover_store_all`` the table reaches the store-all peak *in rounded sizes*, so the
    curve ends at the no-recompute point despite rounding up.
    """
    disc = choose(range_bytes, slots)
    sc = slot_chain(chain, disc)
    max_slots = disc.down(range_bytes) - int(sc.x[0])
    if cover_store_all:
        rounded = make_chain("rounded", fwd=list(sc.tf[1:]), bwd=list(sc.tb[1:]),
                             out=list(sc.x[1:]), saved=list(sc.s[1:]), input_bytes=int(sc.x[0]),
                             fwd_tmp=list(sc.f[1:]), bwd_tmp=list(sc.b[1:]))
        max_slots = max(max_slots, store_all_peak_bytes(rounded) - int(sc.x[0]))
    if max_slots < 0:
        return disc, None
    cells = table_cells(chain.length, max_slots)
    if cells > MAX_TABLE_CELLS:
        raise LimitError(
            f"the DP table would need {cells:,} cells (~{cells * 10 / 2**30:.1f} GiB) for "
            f"{chain.length} stages x {max_slots + 1} slots; use fewer --slots or merge stages")
    return disc, fill_table(sc, max_slots, progress)


class StepReplay:
    """Exact-byte peak and cost of the schedule ``rebuild(table, m)`` would give, without building
    it: the schedule is the tree of the table's choices, and docs/chain-model.md §3 charges each
    sub-chain's ops relative to what is live around it, so a sub-chain's peak above its base and
    its cost are properties of the cell ``(s, t, m)`` alone and are computed once for all steps
    of the curve (memoised). Sizes are the chain's exact bytes; only the choices come from the
    slot table. ``tests/test_optimal.py`` checks it against ``simulate(rebuild(...))``.

    Per cell, relative to the base (the bytes live around the sub-chain, ``d_t`` included):

    * leaf ``Fall s; B s``: ``max(s_s + f_s, s_s + d_{s-1} + b_s)``;
    * record ``s``: ``max(s_s + f_s, s_s + P(s+1, t), s_s - d_t + d_s + d_{s-1} + b_s)``;
    * checkpoint ``a_{k-1}``: the sweep ``Fn s .. Fn k-1`` (``x_s + f_s``, then
      ``x_{j-1} + x_j + f_j``), ``x_{k-1} + P(k, t)``, and ``d_{k-1} - d_t + P(s, k-1)``.
    """

    def __init__(self, chain: Chain, table: DPTable):
        self.table = table
        cl = chain.lists()
        self.x, self.sv, self.f, self.b = cl.x, cl.s, cl.f, cl.b
        self.tf, self.tb = cl.tf, cl.tb
        self.d = [cl.dsize(i) if i >= 1 else 0 for i in range(chain.length + 1)]
        self.x0 = chain.input_bytes
        sc = table.sc
        self.slot_s = [int(v) for v in sc.s]
        self.slot_x = [int(v) for v in sc.x]
        self.memo: dict[tuple[int, int, int], tuple[int, float]] = {}

    def _children(self, s: int, t: int, mm: int, c: int) -> list[tuple[int, int, int]]:
        if s == t:
            return []
        if c == 0:
            return [(s + 1, t, mm - self.slot_s[s])]
        return [(c, t, mm - self.slot_x[c - 1]), (s, c - 1, mm)]

    def _cell(self, s: int, t: int, c: int, kids: list[tuple[int, float]]) -> tuple[int, float]:
        x, sv, f, b, d = self.x, self.sv, self.f, self.b, self.d
        if s == t:
            return max(sv[s] + f[s], sv[s] + d[s - 1] + b[s]), self.tf[s] + self.tb[s]
        if c == 0:
            (pc, tc), = kids
            peak = max(sv[s] + f[s], sv[s] + pc, sv[s] - d[t] + d[s] + d[s - 1] + b[s])
            return peak, self.tf[s] + tc + self.tb[s]
        k = c
        (pr, tr), (pl, tl) = kids
        sweep = x[s] + f[s]
        for j in range(s + 1, k):
            sweep = max(sweep, x[j - 1] + x[j] + f[j])
        peak = max(sweep, x[k - 1] + pr, d[k - 1] - d[t] + pl)
        return peak, sum(self.tf[s:k]) + tr + tl

    def peak_cost(self, m: int) -> tuple[int, float]:
        """``(peak bytes, cost s)`` of the schedule of ``C(1, L, m)``."""
        table, memo = self.table, self.memo
        L = table.sc.length
        root = (1, L, min(m, table.max_slots))
        stack = [root]
        while stack:
            s, t, mm = key = stack[-1]
            if key in memo:
                stack.pop()
                continue
            c = table.choice_at(s, t, mm)
            if c < 0:
                raise InfeasibleError("no schedule in this memory")
            kids = [(a, b_, min(m_, table.max_slots)) for a, b_, m_ in self._children(s, t, mm,
                                                                                     c)]
            todo = [k_ for k_ in kids if k_ not in memo]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            memo[key] = self._cell(s, t, c, [memo[k_] for k_ in kids])
        peak, cost = memo[root]
        return self.x0 + max(peak, 0), cost


def _replay_compiled(chain: Chain, table: DPTable, steps: list[int]
                     ) -> list[tuple[int, float]]:
    """``StepReplay.peak_cost`` of every step, compiled by the back end that filled the table
    (``replay_numba``, or ``dp_native``: already loaded)."""
    if table.backend == "native":
        from .dp_native import replay_steps
    else:
        from .replay_numba import replay_steps
    a = chain.arrays()  # exact bytes (d: 0 for d_0 .. d_p and d_L) and seconds, index 0..L
    i64 = np.int64
    peaks, costs, ok = replay_steps(
        np.array(steps, dtype=i64), chain.length, table.max_slots, table.meta, table.rst,
        table.rch, np.asarray(table.sc.s, dtype=i64), np.asarray(table.sc.x, dtype=i64),
        a.x, a.s, a.f, a.b, a.d, a.tf, a.tb)
    if not ok.all():
        raise InfeasibleError("no schedule in this memory")
    x0 = chain.input_bytes
    return [(x0 + max(int(p), 0), float(c)) for p, c in zip(peaks, costs, strict=True)]


def frontier_from_table(chain: Chain, disc: Discretization, table: DPTable, *,
                        replay: str = "fast") -> tuple[FrontierPoint, ...]:
    """Every step of ``C(1, L, m)`` over ``m``: the exact-byte peak and the cost of each step's
    schedule (``replay="fast"``: :class:`StepReplay`; ``"simulate"``: rebuild every schedule and
    replay it in the simulator, the reference)."""
    col = table.column()
    x0s = int(table.sc.x[0])
    steps = []
    prev = INF
    for m in range(len(col)):
        v = col[m]
        if np.isfinite(v) and v < prev - 1e-12 * max(1.0, abs(v)):
            steps.append(m)
            prev = v
    if replay == "fast" and table.backend in ("numba", "native"):
        replayed = _replay_compiled(chain, table, steps)
    elif replay == "fast":
        fast = StepReplay(chain, table)
        replayed = [fast.peak_cost(m) for m in steps]
    else:
        replayed = []
        for m in steps:
            tr = verified(chain, rebuild(table, m))
            replayed.append((tr.peak_bytes, tr.cost_s))
    points = [FrontierPoint(budget_bytes=(m + x0s) * disc.unit_bytes, peak_bytes=peak,
                            cost_s=cost) for m, (peak, cost) in zip(steps, replayed, strict=True)]
    # Keep the Pareto front in exact bytes: a step whose replayed peak is not below a cheaper
    # step's peak is dominated (slot rounding can make that happen).
    front: list[FrontierPoint] = []
    for p in sorted(points, key=lambda p: (p.peak_bytes, p.cost_s)):
        if not front or p.cost_s < front[-1].cost_s:
            if front and front[-1].peak_bytes == p.peak_bytes:
                front.pop()
            front.append(p)
    return tuple(front)


def _table_params(*tables: DPTable | None) -> dict[str, object]:
    """The DP table's footprint for the result (the largest table filled; its packed bands,
    choice runs and per-cell index) and the back end that filled it."""
    filled = [t for t in tables if t is not None]
    if not filled:
        return {}
    big = max(filled, key=lambda t: t.nbytes)
    return {"dp_table_bytes": int(big.nbytes), "dp_backend": big.backend}


def solve_optimal(chain: Chain, budget_bytes: int, *, slots: int = DEFAULT_SLOTS,
                  with_frontier: bool = True, progress: Progress | None = None) -> SolveResult:
    """Least-cost persistent schedule for ``chain`` within ``budget_bytes`` of activation memory.

    The memory axis spans ``min(budget, store-all peak)`` in ``slots`` slots. When nothing fits,
    a second fill over the store-all range finds the least budget that would
    (``min_budget_bytes``). The frontier lists every step of the trade-off curve up to the
    budget, each replayed by the simulator.
    """
    notes: list[str] = []
    all_peak = store_all_peak_bytes(chain)
    if budget_bytes >= all_peak:
        sched = store_all_schedule(chain)
        tr = verified(chain, sched, budget_bytes)
        disc, table = (_solve_range(chain, all_peak, slots, progress, cover_store_all=True)
                        if with_frontier else (None, None))
        frontier = frontier_from_table(chain, disc, table) \
            if table is not None and disc is not None else ()
        min_b = frontier[0].peak_bytes if frontier else None
        return SolveResult(solver="optimal", budget_bytes=budget_bytes, feasible=True,
                           schedule=sched,
                           trace=tr, min_budget_bytes=min_b, discretization=disc,
                           frontier=frontier, notes=("the budget holds every activation: no "
                                                     "recomputation needed",),
                           params=_table_params(table))
    disc, table = _solve_range(chain, budget_bytes, slots, progress)
    m = disc.down(budget_bytes) - disc.up(chain.input_bytes)
    if table is not None and np.isfinite(table.answer(m)):
        # Among the optimal schedules, take the most frugal one: rebuild at the least memory
        # that reaches the same cost (more headroom, same time).
        col = table.column()
        best = col[min(m, table.max_slots)]
        m = int(np.flatnonzero(col <= best + 1e-12 * max(1.0, abs(best)))[0])
        sched = rebuild(table, m)
        tr = verified(chain, sched, budget_bytes)
        frontier = frontier_from_table(chain, disc, table) if with_frontier else ()
        min_first = None
        if not with_frontier:  # the least budget still comes from the table's first step
            first = int(np.flatnonzero(np.isfinite(table.column()))[0])
            min_first = verified(chain, rebuild(table, first)).peak_bytes
        if frontier and frontier[-1].peak_bytes < all_peak:
            # the curve ends at the no-recompute point (store-all), beyond this budget
            frontier += (FrontierPoint(budget_bytes=all_peak, peak_bytes=all_peak,
                                       cost_s=verified(chain, store_all_schedule(chain)).cost_s),)
        min_b = frontier[0].peak_bytes if frontier else min_first
        return SolveResult(solver="optimal", budget_bytes=budget_bytes, feasible=True,
                           schedule=sched, trace=tr, min_budget_bytes=min_b, discretization=disc,
                           frontier=frontier, notes=tuple(notes), params=_table_params(table))
    # Nothing fits in this discretisation: fill over the whole store-all range. Its steps are
    # replayed in exact bytes, so one of them may still fit the budget (slot rounding is
    # conservative); otherwise the first step is the least budget that would fit.
    disc2, table2 = _solve_range(chain, all_peak, slots, progress, cover_store_all=True)
    assert table2 is not None
    frontier2 = frontier_from_table(chain, disc2, table2)
    fitting = [p for p in frontier2 if p.peak_bytes <= budget_bytes]
    if fitting:
        best = fitting[-1]
        m2 = disc2.down(best.budget_bytes) - disc2.up(chain.input_bytes)
        sched = rebuild(table2, m2)
        tr = verified(chain, sched, budget_bytes)
        notes.append(f"found with coarser slots of {disc2.unit_bytes} bytes")
        return SolveResult(solver="optimal", budget_bytes=budget_bytes, feasible=True,
                           schedule=sched, trace=tr, min_budget_bytes=frontier2[0].peak_bytes,
                           discretization=disc2, frontier=tuple(fitting) if with_frontier else (),
                           notes=tuple(notes), params=_table_params(table, table2))
    return SolveResult(solver="optimal", budget_bytes=budget_bytes, feasible=False, schedule=None,
                       trace=None, min_budget_bytes=frontier2[0].peak_bytes if frontier2
                       else all_peak, discretization=disc,
                       frontier=frontier2 if with_frontier else (), notes=tuple(notes),
                       params=_table_params(table, table2))
