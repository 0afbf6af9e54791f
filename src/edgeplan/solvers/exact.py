"""Exhaustive search over every valid schedule of docs/chain-model.md §3 (short chains only).

A shortest-path search (Dijkstra on op cost) over the simulator's state: which ``a_i`` and
``A_i`` are live and which backward comes next. An op is a transition only when its transient peak
fits the budget, so the first time the final state is reached its cost is the least cost of any
valid schedule within the budget, persistent or not. It is the test oracle of ``optimal``:
``exact <= optimal`` always, with equality wherever persistent schedules are optimal.

Exponential in the number of stages: refused above ``MAX_EXACT_STAGES``.
"""

from __future__ import annotations

import functools
import heapq
import itertools

from ..chain import Chain
from ..device import StorageTier
from ..errors import LimitError
from ..schedule import Op, OpKind, Schedule
from .base import SolveResult, store_all_peak_bytes, verified

MAX_EXACT_STAGES = 8


def exact_cost(chain: Chain, budget_bytes: int, *, tier: StorageTier | None = None,
               storage_bytes: int | None = None) -> tuple[float, Schedule] | None:
    """Least cost and one optimal schedule within ``budget_bytes``, or None if none fits.

    With a storage ``tier`` the search also uses ``W``/``R``/``free_s`` (docs/chain-model.md
    §6, synchronous I/O); the stored set (within ``storage_bytes``, default the tier's
    capacity) is then part of the state.
    """
    L = chain.length
    p = chain.frozen_prefix  # docs/chain-model.md §8: no Fall/B on 1..p, done at k == p
    if L > MAX_EXACT_STAGES:
        raise LimitError(f"exact search is limited to {MAX_EXACT_STAGES} stages "
                         f"(this chain has {L}); use the optimal solver")
    cl = chain.lists()
    x, sv, ft, bt, tf, tb, dsize = cl.x, cl.s, cl.f, cl.b, cl.tf, cl.tb, cl.dsize
    cap: int | None = None
    wc = rc = [0.0] * (L + 1)
    if tier is not None:
        cap = storage_bytes if storage_bytes is not None else tier.capacity_bytes
        wc = [0.0] + [tier.write_time_s(x[i]) for i in range(1, L + 1)]
        rc = [0.0] + [tier.read_time_s(x[i]) for i in range(1, L + 1)]

    def mem_of(a: int, A: int, k: int) -> int:
        m = x[0] + dsize(k)
        for i in range(1, L + 1):
            if a >> i & 1:
                m += x[i]
            if A >> i & 1:
                m += sv[i]
        return m

    def stored_bytes(S: int) -> int:
        return sum(x[i] for i in range(1, L + 1) if S >> i & 1)

    start = (1, 0, L, 0)  # bit 0 of a: a_0 always live; S: the set on storage
    if mem_of(1, 0, L) > budget_bytes:
        return None
    dist = {start: 0.0}
    parent: dict[tuple, tuple[tuple, Op]] = {}
    tie = itertools.count()
    heap = [(0.0, next(tie), start)]
    while heap:
        c, _, st = heapq.heappop(heap)
        if c > dist.get(st, float("inf")):
            continue
        a, A, k, S = st
        if k == p:
            ops = []
            while st in parent:
                st, op = parent[st]
                ops.append(op)
            return c, Schedule(tuple(reversed(ops)))
        M = mem_of(a, A, k)
        avail = a | A | 1
        moves: list[tuple[tuple, Op, float]] = []
        for i in range(1, k + 1):
            if avail >> (i - 1) & 1:
                if not (avail >> i & 1) and M + x[i] + ft[i] <= budget_bytes:
                    moves.append(((a | 1 << i, A, k, S), Op(OpKind.FN, i), tf[i]))
                if i > p and not (A >> i & 1) and M + sv[i] + ft[i] <= budget_bytes:
                    moves.append(((a, A | 1 << i, k, S), Op(OpKind.FALL, i), tf[i]))
            if tier is not None:
                if avail >> i & 1 and not (S >> i & 1) and \
                        (cap is None or stored_bytes(S) + x[i] <= cap):
                    moves.append(((a, A, k, S | 1 << i), Op(OpKind.W, i), wc[i]))
                if S >> i & 1 and not (avail >> i & 1) and M + x[i] <= budget_bytes:
                    moves.append(((a | 1 << i, A, k, S), Op(OpKind.R, i), rc[i]))
        if (A >> k & 1) and (avail >> (k - 1) & 1) and \
                M + (x[k - 1] if k >= p + 2 else 0) + bt[k] <= budget_bytes:
            moves.append(((a, A & ~(1 << k), k - 1, S), Op(OpKind.B, k), tb[k]))
        for i in range(1, L + 1):
            # a_i may not go while the recorded A_{i+1} still needs it (docs/chain-model.md §3)
            needed = (A >> (i + 1) & 1) if i < L else 0
            if a >> i & 1 and not (needed and not (A >> i & 1)):
                moves.append(((a & ~(1 << i), A, k, S), Op(OpKind.FREE_A, i), 0.0))
            if A >> i & 1 and not (needed and not (a >> i & 1)):
                moves.append(((a, A & ~(1 << i), k, S), Op(OpKind.FREE_ALL, i), 0.0))
            if S >> i & 1:
                moves.append(((a, A, k, S & ~(1 << i)), Op(OpKind.FREE_S, i), 0.0))
        for nst, op, dc in moves:
            nc = c + dc
            if nc < dist.get(nst, float("inf")):
                dist[nst] = nc
                parent[nst] = (st, op)
                heapq.heappush(heap, (nc, next(tie), nst))
    return None


@functools.lru_cache(maxsize=32)
def exact_min_budget(chain: Chain) -> int:
    """The least activation budget at which *any* valid schedule exists: binary search with the
    exhaustive search (short chains only; cached per chain).

    Bounds: the store-all peak fits; nothing fits below the transient of any ``B i`` in the
    best case, ``x_0 + d_i + s_i + b_i`` plus, for ``i >= 2``, ``a_{i-1}``, and for ``i >= p + 2``
    the new ``d_{i-1}``."""
    hi = store_all_peak_bytes(chain)
    p = chain.frozen_prefix
    lo = max(chain.input_bytes + chain.d(i) + chain.stage(i).saved_bytes
             + chain.stage(i).bwd_tmp_bytes + (chain.x(i - 1) if i >= 2 else 0)
             + chain.d(i - 1) for i in range(p + 1, chain.length + 1))
    lo = min(lo, hi)
    while lo < hi:
        mid = (lo + hi) // 2
        if exact_cost(chain, mid) is None:
            lo = mid + 1
        else:
            hi = mid
    return hi


def solve_exact(chain: Chain, budget_bytes: int) -> SolveResult:
    """The exhaustive search as a strategy (short chains only: ``LimitError`` above
    ``MAX_EXACT_STAGES``); infeasible with the least budget when nothing fits."""
    found = exact_cost(chain, budget_bytes)
    if found is None:
        return SolveResult(solver="exact", budget_bytes=budget_bytes, feasible=False,
                           schedule=None, trace=None, min_budget_bytes=exact_min_budget(chain),
                           notes=("exact: no schedule of any kind fits this budget",))
    _, sched = found
    return SolveResult(solver="exact", budget_bytes=budget_bytes, feasible=True, schedule=sched,
                       trace=verified(chain, sched, budget_bytes))
