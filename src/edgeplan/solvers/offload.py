"""Offloading checkpoints to a slower storage tier (docs/chain-model.md §6; docs/offload.md).

The optimal chain DP of docs/chain-model.md §4 extended with "write a checkpoint to storage,
free it, read it back later". Three tables, by what the caller's input ``a_{s-1}`` is (all three:
``a_{s-1}`` is available and **not** counted in ``m``; ``d_t`` is live and counted; nothing else
of stages ``s..t`` is live; on return ``d_{s-1}`` is live and ``a_{s-1}`` available again):

* ``P(s, t, m)`` - *pinned*: ``a_{s-1}`` may not be freed (it is ``a_0``, or it sits inside a
  recorded ``A_{s-1}``). This is ``C(s, t, m)`` of section 4 with offload allowed below.
* ``W(s, t, m)`` - *freeable*: ``a_{s-1}`` is a plain checkpoint the caller will free after
  the call; it is not on storage.
* ``D(s, t, m)`` - *freeable and already on storage* (an ancestor wrote it and frees the copy).

Options (``TF = tf_s + .. + tf_{k-1}``; ``s < k <= t``; every table ``X`` has the first three):

* leaf ``s = t``: ``Fall s; B s`` (as section 4);
* record ``s``: ``Fall s``, ``P(s+1, t, m - s_s)``, ``B s`` (``a_s`` sits inside ``A_s``: pinned);
* checkpoint ``a_{k-1}`` in memory: ``Fn s..k-1`` (freeing intermediates), ``W(k, t, m - x_{k-1})``,
  ``free a_{k-1}``, ``X(s, k-1, m)``;
* offload ``a_{s-1}`` (``W`` and ``D`` only, ``s >= 2``): [``W s-1``, cost ``w_{s-1}``, in ``W``
  only], ``Fn s..k-1`` freeing ``a_{s-1}`` once it is no longer needed, ``W(k, t, m + x_{s-1} -
  x_{k-1})`` (the input's bytes are free now), ``free a_{k-1}``, ``R s-1`` (cost ``r_{s-1}``),
  ``D(s, k-1, m)``, [``free_s s-1`` in ``W``]. ``Fn s`` must fit in ``m``, later ``Fn j`` in
  ``m + x_{s-1}``. The stored copy may be read again inside ``D`` (multi-read, as in 1D-Revolve).

Answer: ``P(1, L, B - x_0)``. Ties go to recording, then the in-memory checkpoint (smallest
``k``), then offloading: with equal cost no I/O is done. Because ``W <= P`` and the in-memory
options are all there, ``P`` is never above the in-memory DP's ``C`` on the same slots.

What is optimal and what is not (synchronous I/O): optimal among schedules of this recursive
class (persistent in-memory checkpoints as in section 4, each storage copy written once when its
activation is a checkpoint and read back at the start of each left part that uses it), in the
memory slots of the discretisation; storage capacity is handled by a heuristic (see
:func:`solve_offload`). Asynchronous writes: heuristic. The DP is re-run with the write cost
scaled by each factor of ``ASYNC_WRITE_FACTORS`` and every schedule is replayed by the
asynchronous simulator; the best replayed makespan wins. Every schedule returned has been replayed
by :func:`edgeplan.simulate.simulate` with the tier; its costs and peak come from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..chain import Chain
from ..device import DeviceProfile, StorageTier
from ..discretize import DEFAULT_SLOTS, Discretization, SlotChain, choose, slot_chain
from ..errors import InputError, LimitError, ScheduleError, UnknownNameError
from ..schedule import Op, OpKind, Schedule
from ..simulator import Trace, simulate
from .base import IOStats, SolveResult, store_all_peak_bytes, store_all_schedule
from .optimal import solve_optimal

INF = np.inf
P_STATE, W_STATE, D_STATE = 0, 1, 2
# Refuse tables above this many cells (3 tables x (L+2)^2 x (slots+1), 12 bytes a cell).
MAX_OFFLOAD_CELLS = 40_000_000
# Elements of one temporary block (cells x split points x slots).
_BLOCK_ELEMS = 1_000_000
# Write-cost factors tried for asynchronous writes (1.0 = the synchronous DP).
ASYNC_WRITE_FACTORS = (1.0, 0.5, 0.25, 0.1, 0.0)


# ---------------------------------------------------------------------------------------------
# tiers


def storage_tier(device: DeviceProfile, name: str | None = None) -> StorageTier:
    """The storage tier ``name`` of ``device`` (its first tier when ``name`` is None)."""
    if not device.storage:
        raise InputError(f"device {device.name!r} lists no storage tier", source=device.path or
                         device.name, where="storage")
    if name is None:
        return device.storage[0]
    for t in device.storage:
        if t.name == name:
            return t
    names = [t.name for t in device.storage]
    raise UnknownNameError(f"device {device.name!r} has no storage tier {name!r}",
                           suggestions=tuple(names), hint=f"tiers: {', '.join(names)}")


def io_costs(chain: Chain, tier: StorageTier, *, write_factor: float = 1.0,
             forbid: frozenset[int] | set[int] = frozenset()) -> tuple[np.ndarray, np.ndarray]:
    """Write and read cost of each ``a_i`` (index 0..L) in exact bytes; ``a_0`` (never freed)
    and the indices in ``forbid`` cannot be written (infinite cost)."""
    L = chain.length
    w = np.full(L + 1, INF)
    r = np.full(L + 1, INF)
    for i in range(1, L + 1):
        xi = chain.x(i)
        r[i] = tier.read_time_s(xi)
        if i not in forbid:
            w[i] = tier.write_time_s(xi) * write_factor
    return w, r


# ---------------------------------------------------------------------------------------------
# the DP


@dataclass
class OffloadTable:
    """Filled tables ``cost[X, s, t, m]`` and ``choice[X, s, t, m]`` for ``X`` in P, W, D:
    -1 infeasible, 0 record, ``k > 0`` checkpoint ``a_{k-1}`` in memory, ``-k`` offload the input
    and split at ``k``."""

    sc: SlotChain
    max_slots: int
    cost: np.ndarray
    choice: np.ndarray
    w: np.ndarray
    r: np.ndarray

    def answer(self, m: int) -> float:
        if m < 0:
            return float(INF)
        return float(self.cost[P_STATE, 1, self.sc.length, min(m, self.max_slots)])

    def column(self) -> np.ndarray:
        return self.cost[P_STATE, 1, self.sc.length, :]


def offload_table_cells(length: int, max_slots: int) -> int:
    return 3 * (length + 2) * (length + 2) * (max_slots + 1)


def fill_offload_table(sc: SlotChain, max_slots: int, w: np.ndarray, r: np.ndarray,
                       progress: Callable[[int, int], None] | None = None) -> OffloadTable:
    """Fill ``P``, ``W``, ``D`` for ``1 <= s <= t <= L`` and ``0 <= m <= max_slots``.

    ``w[i]``, ``r[i]``: write and read cost of ``a_i`` (``inf``: never written).
    """
    L, M = sc.length, int(max_slots)
    if M < 0:
        raise ValueError("max_slots must be >= 0")
    x, sv, d, f, b = (np.asarray(a, dtype=np.int64) for a in (sc.x, sc.s, sc.d, sc.f, sc.b))
    tf, tb = np.asarray(sc.tf, dtype=np.float64), np.asarray(sc.tb, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    cost = np.full((3, L + 2, L + 2, M + 1), INF)
    choice = np.full((3, L + 2, L + 2, M + 1), -1, dtype=np.int32)
    mr = np.arange(M + 1, dtype=np.int64)
    TF = np.concatenate(([0.0], np.cumsum(tf[1:])))
    for i in range(1, L + 1):
        thr = int(d[i] + sv[i] + max(f[i], d[i - 1] + b[i]))
        if thr <= M:
            cost[:, i, i, thr:] = tf[i] + tb[i]
            choice[:, i, i, thr:] = 0
    g = np.zeros(L + 1, dtype=np.int64)
    g[1:] = x[:-1] + x[1:] + f[1:]
    for ell in range(1, L):
        S_all = np.arange(1, L - ell + 1)
        chunk = max(1, _BLOCK_ELEMS // max(1, ell * (M + 1)))
        for c0 in range(0, len(S_all), chunk):
            S = S_all[c0:c0 + chunk]
            T = S + ell
            # record stage s (the same for the three tables)
            thr_rec = np.maximum(d[T] + sv[S] + f[S], sv[S] + d[S] + d[S - 1] + b[S])
            idx = mr[None, :] - sv[S][:, None]
            rec = cost[P_STATE, (S + 1)[:, None], T[:, None], np.clip(idx, 0, M)] \
                + (tf[S] + tb[S])[:, None]
            rec[mr[None, :] < thr_rec[:, None]] = INF
            # split points k = s+1..t; Fn s..k-1
            q = np.arange(ell)
            K = S[:, None] + 1 + q[None, :]
            J = S[:, None] + q[None, :]
            G = g[J]
            G[:, 0] = x[S] + f[S]
            need = np.maximum.accumulate(G, axis=1) + d[T][:, None]
            xk = x[K - 1]
            tfs = (TF[K - 1] - TF[S - 1][:, None])[:, :, None]
            # in-memory checkpoint: right part W(k, t, m - x_{k-1})
            midx = mr[None, None, :] - xk[:, :, None]
            right = cost[W_STATE, K[:, :, None], T[:, None, None], np.clip(midx, 0, M)]
            right[midx < 0] = INF
            right += tfs
            right[mr[None, None, :] < need[:, :, None]] = INF
            # offload the input a_{s-1}: right part W(k, t, m + x_{s-1} - x_{k-1})
            H = G.astype(np.float64)
            H[:, 0] = -INF
            later = np.maximum.accumulate(H, axis=1) + (d[T] - x[S - 1])[:, None]
            need_off = np.maximum((x[S] + f[S] + d[T])[:, None], later)
            oidx = mr[None, None, :] + (x[S - 1][:, None] - xk)[:, :, None]
            oright = cost[W_STATE, K[:, :, None], T[:, None, None], np.clip(oidx, 0, M)]
            oright[oidx < 0] = INF
            oright += tfs
            oright += r[S - 1][:, None, None]
            oright[mr[None, None, :] < need_off[:, :, None]] = INF
            oright[S < 2] = INF
            for X in (P_STATE, W_STATE, D_STATE):
                ck = right + cost[X, S[:, None], K - 1, :]
                bq = np.argmin(ck, axis=1)
                best = np.take_along_axis(ck, bq[:, None, :], axis=1)[:, 0, :]
                if X == P_STATE:
                    bo = np.zeros_like(bq)
                    besto = np.full_like(best, INF)
                else:
                    off = oright + cost[D_STATE, S[:, None], K - 1, :]
                    if X == W_STATE:
                        off += w[S - 1][:, None, None]
                    bo = np.argmin(off, axis=1)
                    besto = np.take_along_axis(off, bo[:, None, :], axis=1)[:, 0, :]
                use_rec = rec <= np.minimum(best, besto)
                use_ck = ~use_rec & (best <= besto)
                val = np.where(use_rec, rec, np.where(use_ck, best, besto))
                ch = np.where(use_rec, 0, np.where(use_ck, S[:, None] + 1 + bq,
                                                   -(S[:, None] + 1 + bo)))
                ch[~np.isfinite(val)] = -1
                cost[X, S, T, :] = val
                choice[X, S, T, :] = ch
        if progress is not None:
            progress(ell, L - 1)
    return OffloadTable(sc=sc, max_slots=M, cost=cost, choice=choice, w=w, r=r)


def rebuild_offload(table: OffloadTable, m: int) -> Schedule:
    """The schedule of ``P(1, L, m)``, rebuilt iteratively. In an offload, ``W s-1`` comes first
    (so an asynchronous write overlaps the ``Fn`` sweep) and ``a_{s-1}`` is freed as late as the
    memory ``m`` allows."""
    sc = table.sc
    L, M = sc.length, table.max_slots
    x, d, f, sv = sc.x, sc.d, sc.f, sc.s
    m = min(m, M)
    if m < 0 or table.choice[P_STATE, 1, L, m] < 0:
        raise ValueError("no schedule in this memory")
    ops: list[Op] = []
    stack: list[tuple] = [("solve", P_STATE, 1, L, m)]
    while stack:
        item = stack.pop()
        if item[0] == "op":
            ops.append(item[1])
            continue
        _, X, s, t, mm = item
        c = int(table.choice[X, s, t, mm])
        if c == -1:  # pragma: no cover - the table is consistent by construction
            raise AssertionError(f"rebuild reached an infeasible cell {X}({s},{t},{mm})")
        if s == t:
            ops += [Op(OpKind.FALL, s), Op(OpKind.B, s)]
        elif c == 0:
            ops.append(Op(OpKind.FALL, s))
            stack.append(("op", Op(OpKind.B, s)))
            stack.append(("solve", P_STATE, s + 1, t, mm - int(sv[s])))
        elif c > 0:
            k = c
            for j in range(s, k):
                ops.append(Op(OpKind.FN, j))
                if j > s:
                    ops.append(Op(OpKind.FREE_A, j - 1))
            stack.append(("solve", X, s, k - 1, mm))
            stack.append(("op", Op(OpKind.FREE_A, k - 1)))
            stack.append(("solve", W_STATE, k, t, mm - int(x[k - 1])))
        else:
            k = -c
            if X == W_STATE:
                ops.append(Op(OpKind.W, s - 1))
            keep = True
            for j in range(s, k):
                if j > s and keep and int(d[t] + x[j - 1] + x[j] + f[j]) > mm:
                    ops.append(Op(OpKind.FREE_A, s - 1))
                    keep = False
                ops.append(Op(OpKind.FN, j))
                if j > s:
                    ops.append(Op(OpKind.FREE_A, j - 1))
            if keep:
                ops.append(Op(OpKind.FREE_A, s - 1))
            if X == W_STATE:
                stack.append(("op", Op(OpKind.FREE_S, s - 1)))
            stack.append(("solve", D_STATE, s, k - 1, mm))
            stack.append(("op", Op(OpKind.R, s - 1)))
            stack.append(("op", Op(OpKind.FREE_A, k - 1)))
            stack.append(("solve", W_STATE, k, t, min(M, mm + int(x[s - 1]) - int(x[k - 1]))))
    return Schedule(tuple(ops))


# ---------------------------------------------------------------------------------------------
# the solver


def _fill(chain: Chain, disc: Discretization, max_slots: int, w: np.ndarray, r: np.ndarray,
          progress: Callable[[int, int], None] | None = None) -> OffloadTable:
    cells = offload_table_cells(chain.length, max_slots)
    if cells > MAX_OFFLOAD_CELLS:
        raise LimitError(
            f"the offload DP would need {cells:,} cells (~{cells * 12 / 2**30:.1f} GiB) for "
            f"{chain.length} stages x {max_slots + 1} slots; use fewer --slots or merge stages")
    return fill_offload_table(slot_chain(chain, disc), max_slots, w, r, progress)


def _capacity_breach(chain: Chain, sched: Schedule, cap: int) -> set[int] | None:
    """The set of stored activations when the storage first exceeds ``cap`` bytes, or None."""
    stored: set[int] = set()
    used = 0
    for op in sched.ops:
        if op.kind is OpKind.W:
            stored.add(op.stage)
            used += chain.x(op.stage)
            if used > cap:
                return stored
        elif op.kind is OpKind.FREE_S:
            stored.discard(op.stage)
            used -= chain.x(op.stage)
    return None


def _dp_schedule(chain: Chain, tier: StorageTier, disc: Discretization, m: int, max_slots: int,
                 cap: int | None, write_factor: float,
                 progress: Callable[[int, int], None] | None = None
                 ) -> tuple[Schedule | None, frozenset[int], OffloadTable | None]:
    """Fill, rebuild and (with a capacity) forbid offloading the largest stored activation until
    the storage fits. Returns the schedule (None if infeasible) and the forbidden indices."""
    forbid: set[int] = set()
    while True:
        w, r = io_costs(chain, tier, write_factor=write_factor, forbid=forbid)
        table = _fill(chain, disc, max_slots, w, r, progress)
        if not np.isfinite(table.answer(m)):
            return None, frozenset(forbid), table
        sched = rebuild_offload(table, m)
        breach = None if cap is None else _capacity_breach(chain, sched, cap)
        if breach is None:
            return sched, frozenset(forbid), table
        forbid.add(max(breach, key=lambda i: (chain.x(i), i)))


def solve_offload(chain: Chain, budget_bytes: int, tier: StorageTier, *,
                  asynchronous: bool = False, slots: int = DEFAULT_SLOTS,
                  storage_bytes: int | None = None, recompute: SolveResult | None = None,
                  progress: Callable[[int, int], None] | None = None) -> SolveResult:
    """Least-cost schedule with checkpoints offloaded to ``tier`` within ``budget_bytes`` of
    activation memory.

    ``asynchronous``: rank schedules by the makespan with asynchronous writes (heuristic, see the
    module docstring) instead of synchronous I/O (optimal in the DP's class and slots).
    ``storage_bytes`` caps the bytes on storage (default ``tier.capacity_bytes``); when the DP's
    schedule exceeds it, offloading the largest activation stored at that moment is forbidden
    and the DP re-run (a heuristic; at worst the in-memory optimum).

    The in-memory optimal DP (:func:`solve_optimal`) is always a candidate too and returned if it
    is not worse, so offload is never worse than recomputation; ``recompute`` is that answer when
    the caller already has it (same chain, budget and slots), so it is not solved twice.
    ``io`` (an ``IOStats``) says which won and by how much, and gives the storage traffic;
    ``params``: ``tier``, ``mode`` (``"sync"``/``"async"``), ``recompute_min_budget_bytes``,
    ``storage_capacity_bytes``, ``write_factor`` (the write-cost factor of the DP that won,
    async), ``forbidden`` (indices barred from storage by the capacity heuristic), ``optimal``
    (a sentence: what is optimal).

    ``trace`` is the simulator's replay with the tier (``trace.cost_s`` is the synchronous
    makespan, ``trace.async_cost_s`` the asynchronous one).
    """
    if budget_bytes < 0:
        raise InputError("the activation budget is negative: nothing fits")
    cap = storage_bytes if storage_bytes is not None else tier.capacity_bytes
    mode = "async" if asynchronous else "sync"
    notes: list[str] = []
    all_peak = store_all_peak_bytes(chain)

    def finish(sched: Schedule, tr: Trace, disc: Discretization | None, extra: dict,
               rec: SolveResult,
               min_budget: int | None) -> SolveResult:
        rc = rec.cost_s if rec.feasible else None
        span = tr.makespan(asynchronous)
        io = IOStats(mode=mode, makespan_s=span, sync_cost_s=tr.cost_s,
                     async_cost_s=tr.makespan(True), bytes_written=tr.bytes_written,
                     bytes_read=tr.bytes_read, writes=tr.write_ops, reads=tr.read_ops,
                     write_time_s=tr.write_time_s, read_time_s=tr.read_time_s,
                     storage_peak_bytes=tr.storage_peak_bytes,
                     offload_used=tr.write_ops > 0 or tr.read_ops > 0, recompute_cost_s=rc,
                     gain_s=None if rc is None else rc - span,
                     gain_fraction=None if rc is None or rc <= 0 else (rc - span) / rc)
        params = {"tier": tier.name, "mode": mode,
                  "recompute_min_budget_bytes": rec.min_budget_bytes,
                  "storage_capacity_bytes": cap, **extra}
        return SolveResult(solver="offload", budget_bytes=budget_bytes, feasible=True,
                           schedule=sched, trace=tr, min_budget_bytes=min_budget,
                           discretization=disc, notes=tuple(notes), params=params, io=io)

    if budget_bytes >= all_peak:
        sched = store_all_schedule(chain)
        tr = simulate(chain, sched, budget_bytes, tier=tier, storage_bytes=cap)
        rec = SolveResult(solver="optimal", budget_bytes=budget_bytes, feasible=True,
                          schedule=sched, trace=tr)
        notes.append("the budget holds every activation: no recomputation or offload needed")
        return finish(sched, tr, None, {"write_factor": None, "forbidden": [],
                                        "optimal": "store-all: no recomputation, no I/O"},
                      rec, None)

    rec = recompute if recompute is not None else \
        solve_optimal(chain, budget_bytes, slots=slots, with_frontier=False)
    disc = choose(budget_bytes, slots)
    max_slots = disc.down(budget_bytes) - disc.up(chain.input_bytes)
    candidates: list[tuple[Schedule, Trace, float | None, frozenset[int]]] = []
    if rec.feasible:
        assert rec.schedule is not None
        candidates.append((rec.schedule, simulate(chain, rec.schedule, budget_bytes, tier=tier,
                                                  storage_bytes=cap), None, frozenset()))
    table = None
    if max_slots >= 0:
        for factor in (ASYNC_WRITE_FACTORS if asynchronous else (1.0,)):
            found, forbid, tab = _dp_schedule(chain, tier, disc, max_slots, max_slots, cap,
                                              factor, progress)
            table = table if table is not None else tab
            if found is None:
                break  # the write cost does not change feasibility
            tr = simulate(chain, found, budget_bytes, tier=tier, storage_bytes=cap)
            candidates.append((found, tr, factor, forbid))
    if candidates:
        # least makespan in the mode; ties: fewer bytes written (the in-memory schedule first)
        best = min(enumerate(candidates),
                   key=lambda c: (c[1][1].makespan(asynchronous), c[1][1].bytes_written, c[0]))[1]
        sched, tr, won_factor, forbid = best
        if forbid:
            notes.append(f"storage capacity: a_{', a_'.join(map(str, sorted(forbid)))} kept "
                         "off storage (heuristic)")
        min_b = _min_budget(chain, table, tier, cap)
        return finish(sched, tr, disc, {"write_factor": won_factor, "forbidden": sorted(forbid),
                                        "optimal": _optimality(asynchronous, disc)}, rec, min_b)
    # Nothing fits in these slots. Fill over the store-all range and replay each step of the
    # trade-off curve in exact bytes: one may still fit (slot rounding is conservative);
    # otherwise the least replayed peak is the least budget that would fit.
    disc2 = choose(all_peak, slots)
    max2 = disc2.down(all_peak) - disc2.up(chain.input_bytes)
    fitting: list[tuple[Schedule, Trace]] = []
    min_b = rec.min_budget_bytes
    forbid2: frozenset[int] = frozenset()
    if max2 >= 0:
        sched2, forbid2, tab2 = _dp_schedule(chain, tier, disc2, max2, max2, cap, 1.0, progress)
        if sched2 is not None and tab2 is not None:
            col = tab2.column()
            prev = INF
            for m in range(len(col)):
                v = col[m]
                if not (np.isfinite(v) and v < prev):
                    continue
                prev = v
                sm = rebuild_offload(tab2, m)
                try:
                    trm = simulate(chain, sm, tier=tier, storage_bytes=cap)
                except ScheduleError:  # a capacity breach below the top: skip this step
                    continue
                min_b = trm.peak_bytes if min_b is None else min(min_b, trm.peak_bytes)
                if trm.peak_bytes <= budget_bytes:
                    fitting.append((sm, simulate(chain, sm, budget_bytes, tier=tier,
                                                 storage_bytes=cap)))
    if fitting:
        sched, tr = min(fitting, key=lambda c: (c[1].makespan(asynchronous), c[1].bytes_written))
        notes.append(f"found with coarser slots of {disc2.unit_bytes} bytes")
        return finish(sched, tr, disc2, {"write_factor": 1.0, "forbidden": sorted(forbid2),
                                         "optimal": _optimality(asynchronous, disc2)},
                      rec, min_b)
    notes.append("no schedule fits, with or without offloading")
    return SolveResult(solver="offload", budget_bytes=budget_bytes, feasible=False, schedule=None,
                       trace=None, min_budget_bytes=min_b, discretization=disc,
                       notes=tuple(notes),
                       params={"tier": tier.name, "mode": mode,
                               "recompute_min_budget_bytes": rec.min_budget_bytes})


def _optimality(asynchronous: bool, disc: Discretization) -> str:
    if asynchronous:
        return ("asynchronous writes: heuristic (best replayed makespan of the DP with write "
                "costs scaled by " + ", ".join(f"{f:g}" for f in ASYNC_WRITE_FACTORS)
                + ", and of the in-memory optimum)")
    return ("synchronous I/O: optimal among persistent-checkpoint schedules that may offload "
            f"checkpoints (docs/chain-model.md §6), in memory slots of {disc.unit_bytes} bytes")


def _min_budget(chain: Chain, table: OffloadTable | None, tier: StorageTier,
                cap: int | None) -> int | None:
    """Replayed peak of the schedule at the least feasible slot count of ``table``."""
    if table is None:
        return None
    col = table.column()
    fin = np.flatnonzero(np.isfinite(col))
    if len(fin) == 0:
        return None
    sched = rebuild_offload(table, int(fin[0]))
    try:
        return simulate(chain, sched, tier=tier, storage_bytes=cap).peak_bytes
    except ScheduleError:  # capacity breach at the minimum: no claim
        return None
