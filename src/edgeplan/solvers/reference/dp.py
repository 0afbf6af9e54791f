"""REFERENCE (test oracle): the original dense numpy kernel of the optimal chain DP
(docs/chain-model.md §4), kept unchanged. ``dp_kernel`` is the kernel in use and must match
this one bit for bit (``tests/test_dp_kernel.py``, ``benchmarks/solve_bench.py``). Memory
``O(L^2 M)`` dense: small tables only.

See ``edgeplan.solvers.optimal`` for the recurrence. ``fill_table`` has no validation;
``rebuild`` is iterative (no recursion limit on long chains).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...discretize import SlotChain
from ...errors import InfeasibleError
from ...schedule import Op, OpKind, Schedule

INF = np.inf
# Cap on elements of one temporary block (P pairs x l splits x M slots) in the kernel.
_BLOCK_ELEMS = 4_000_000
# Refuse tables larger than this many cells (cost + choice arrays) up front.
MAX_TABLE_CELLS = 400_000_000


@dataclass
class DPTable:
    """Filled tables. ``cost[s, t, m]``, ``choice[s, t, m]``: -1 infeasible, 0 record,
    k checkpoint."""

    sc: SlotChain
    cost: np.ndarray
    choice: np.ndarray
    max_slots: int

    def answer(self, m: int) -> float:
        if m < 0:
            return INF
        return float(self.cost[1, self.sc.length, min(m, self.max_slots)])

    def column(self) -> np.ndarray:
        """``C(1, L, m)`` for ``m = 0..max_slots`` (the whole trade-off curve, in slots)."""
        return self.cost[1, self.sc.length, :]


def table_cells(length: int, max_slots: int) -> int:
    return (length + 2) * (length + 2) * (max_slots + 1)


def fill_table(sc: SlotChain, max_slots: int,
               progress: Callable[[int, int], None] | None = None) -> DPTable:
    """Fill ``C(s, t, m)`` for ``1 <= s <= t <= L`` and ``0 <= m <= max_slots``.

    Vectorised over all pairs ``(s, t)`` of one length, all split points ``k`` and all ``m``.
    ``progress(done, total)`` is called after each length if given.
    """
    L = sc.length
    M = max_slots
    x, s, d, f, b, tf, tb = sc.x, sc.s, sc.d, sc.f, sc.b, sc.tf, sc.tb
    cost = np.full((L + 2, L + 2, M + 1), INF, dtype=np.float64)
    choice = np.full((L + 2, L + 2, M + 1), -1, dtype=np.int32 if L >= 32000 else np.int16)
    mrange = np.arange(M + 1, dtype=np.int64)
    TF = np.concatenate(([0.0], np.cumsum(tf[1:])))  # TF[i] = tf_1 + .. + tf_i

    # Leaves: C(i, i, m) = tf_i + tb_i from the threshold on.
    for i in range(1, L + 1):
        thr = d[i] + s[i] + max(f[i], d[i - 1] + b[i])
        if thr <= M:
            cost[i, i, thr:] = tf[i] + tb[i]
            choice[i, i, thr:] = 0
    # g[j]: memory of Fn j beyond d_t when its input is an intermediate (x_{j-1} + x_j + f_j).
    g = np.zeros(L + 1, dtype=np.int64)
    g[1:] = x[:-1] + x[1:] + f[1:]

    for ell in range(1, L):
        S_all = np.arange(1, L - ell + 1)
        chunk = max(1, _BLOCK_ELEMS // max(1, ell * (M + 1)))
        for c0 in range(0, len(S_all), chunk):
            S = S_all[c0:c0 + chunk]
            T = S + ell
            # --- record stage s ---
            thr_rec = np.maximum(d[T] + s[S] + f[S], s[S] + d[S] + d[S - 1] + b[S])
            idx = mrange[None, :] - s[S][:, None]
            rec = cost[(S + 1)[:, None], T[:, None], np.clip(idx, 0, M)]
            rec = rec + (tf[S] + tb[S])[:, None]
            rec[mrange[None, :] < thr_rec[:, None]] = INF
            # --- checkpoint a_{k-1}, k = s+1..t ---
            q = np.arange(ell)
            K = S[:, None] + 1 + q[None, :]                     # (P, ell)
            J = S[:, None] + q[None, :]                         # j = s..t-1
            G = g[J]
            G[:, 0] = x[S] + f[S]
            need = np.maximum.accumulate(G, axis=1) + d[T][:, None]   # Fn s..k-1 fit
            xk = x[K - 1]
            midx = mrange[None, None, :] - xk[:, :, None]
            right = cost[K[:, :, None], T[:, None, None], np.clip(midx, 0, M)]
            right[midx < 0] = INF
            left = cost[S[:, None], K - 1, :]
            tot = right + left
            tot += (TF[K - 1] - TF[S - 1][:, None])[:, :, None]
            tot[mrange[None, None, :] < need[:, :, None]] = INF
            best_q = np.argmin(tot, axis=1)                     # (P, M+1)
            best = np.take_along_axis(tot, best_q[:, None, :], axis=1)[:, 0, :]
            use_rec = rec <= best
            val = np.where(use_rec, rec, best)
            ch = np.where(use_rec, 0, S[:, None] + 1 + best_q)
            ch[~np.isfinite(val)] = -1
            cost[S, T, :] = val
            choice[S, T, :] = ch
        if progress is not None:
            progress(ell, L - 1)
    return DPTable(sc=sc, cost=cost, choice=choice, max_slots=M)


def rebuild(table: DPTable, m: int) -> Schedule:
    """The schedule of ``C(1, L, m)``, rebuilt iteratively from the choice table."""
    sc = table.sc
    L = sc.length
    m = min(m, table.max_slots)
    if m < 0 or table.choice[1, L, m] < 0:
        raise InfeasibleError("no schedule in this memory")
    ops: list[Op] = []
    # Work stack: ("solve", s, t, m) or ("op", Op).
    stack: list[tuple] = [("solve", 1, L, m)]
    while stack:
        item = stack.pop()
        if item[0] == "op":
            ops.append(item[1])
            continue
        _, s, t, mm = item
        c = int(table.choice[s, t, mm])
        if c < 0:  # pragma: no cover - the table is consistent by construction
            raise AssertionError(f"rebuild reached an infeasible cell C({s},{t},{mm})")
        if s == t:
            ops.append(Op(OpKind.FALL, s))
            ops.append(Op(OpKind.B, s))
        elif c == 0:
            ops.append(Op(OpKind.FALL, s))
            stack.append(("op", Op(OpKind.B, s)))
            stack.append(("solve", s + 1, t, mm - int(sc.s[s])))
        else:
            k = c
            for j in range(s, k):
                ops.append(Op(OpKind.FN, j))
                if j > s:
                    ops.append(Op(OpKind.FREE_A, j - 1))
            # push in reverse: right part, free a_{k-1}, left part
            stack.append(("solve", s, k - 1, mm))
            stack.append(("op", Op(OpKind.FREE_A, k - 1)))
            stack.append(("solve", k, t, mm - int(sc.x[k - 1])))
    return Schedule(tuple(ops))


