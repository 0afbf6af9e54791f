"""Compiled (numba) ``StepReplay``: exact-byte peak and cost of every step of the curve.

``optimal.StepReplay`` walks the tree of the table's choices for one memory ``m`` and memoises
each sub-chain cell ``(s, t, m)``; the frontier asks it for every step of ``C(1, L, m)``
(hundreds), which is most of a large solve's time after the fill. This is the same walk,
compiled, over all the steps at once with one memo (an open-addressing hash table of int64
cell keys in plain arrays: it compiles in a fraction of a typed dict's time). The peak
arithmetic is on exact int64 bytes and every cost is summed in the same order as
``StepReplay._cell``, so the results are identical (``tests/test_optimal.py``). Used by
``optimal.frontier_from_table`` when the fill used the numba back end (numba is then loaded and
the function comes from numba's on-disk cache).
"""

from __future__ import annotations

import numpy as np
from numba import njit

LO, HV, OFF, ROFF, NRUN = 0, 1, 2, 3, 4


@njit(cache=True)
def _choice(meta, rst, rch, M, s, t, m):
    """``DPTable.choice_at`` (``-1``: infeasible)."""
    if m > M:
        m = M
    lo = meta[s, t, LO]
    if m < lo or lo > M:
        return -1
    roff = meta[s, t, ROFF]
    nrun = meta[s, t, NRUN]
    key = m - lo
    a, b = roff, roff + nrun  # bisect_right(rst, key, roff, roff + nrun) - 1
    while a < b:
        mid = (a + b) // 2
        if key < rst[mid]:
            b = mid
        else:
            a = mid + 1
    return rch[a - 1]


@njit(cache=True)
def _find(keys, key):
    """Slot of ``key`` in the table ``keys`` (linear probing), or the empty slot it would take."""
    mask = len(keys) - 1
    h = (key * np.int64(-7046029254386353131)) & mask  # Fibonacci hashing (wraps in int64)
    while keys[h] != -1 and keys[h] != key:
        h = (h + 1) & mask
    return h


@njit(cache=True)
def _grow(keys, vals):
    """The table at twice the size, every entry rehashed."""
    nk = np.full(len(keys) * 2, -1, dtype=np.int64)
    nv = np.zeros(len(keys) * 2, dtype=np.int64)
    for i in range(len(keys)):
        if keys[i] != -1:
            h = _find(nk, keys[i])
            nk[h] = keys[i]
            nv[h] = vals[i]
    return nk, nv


@njit(cache=True)
def _get(keys, vals, key):
    """The value of ``key``, -1 when absent."""
    h = _find(keys, key)
    return vals[h] if keys[h] == key else -1


@njit(cache=True)
def replay_steps(ms, L, M, meta, rst, rch, slot_s, slot_x, x, sv, f, b, d, tf, tb):
    """``(peak above x_0, cost)`` of the schedule of ``C(1, L, m)`` for each ``m`` in ``ms``;
    ``ok[i]`` is False where a choice on the way is infeasible."""
    n = len(ms)
    peaks = np.zeros(n, dtype=np.int64)
    costs = np.zeros(n, dtype=np.float64)
    ok = np.ones(n, dtype=np.bool_)
    W = M + 1
    hk = np.full(4096, -1, dtype=np.int64)  # memo: cell key -> index into mp / mc
    hv = np.zeros(4096, dtype=np.int64)
    mp = np.zeros(1024, dtype=np.int64)     # memoised peaks, by memo index
    mc = np.zeros(1024, dtype=np.float64)   # memoised costs
    used = 0
    # the DFS stack: every child is a strictly shorter sub-chain and a cell pushes at most
    # two, so it never holds more than 2 (L + 1) + 1 cells
    st = np.zeros((2 * L + 4, 3), dtype=np.int64)
    for i in range(n):
        root_m = min(ms[i], M)
        st[0, 0], st[0, 1], st[0, 2] = 1, L, root_m
        top = 1
        bad = False
        while top > 0:
            s, t, mm = st[top - 1, 0], st[top - 1, 1], st[top - 1, 2]
            key = (s * (L + 2) + t) * W + mm
            if _get(hk, hv, key) >= 0:
                top -= 1
                continue
            c = _choice(meta, rst, rch, M, s, t, mm)
            if c < 0:
                bad = True
                break
            # children (s, t, m) as StepReplay._children, m capped at M
            k1s = k1t = k1m = k2s = k2t = k2m = -1
            nk = 0
            if s != t:
                if c == 0:
                    k1s, k1t, k1m = s + 1, t, min(mm - slot_s[s], M)
                    nk = 1
                else:
                    k1s, k1t, k1m = c, t, min(mm - slot_x[c - 1], M)
                    k2s, k2t, k2m = s, c - 1, min(mm, M)
                    nk = 2
            pending = False
            if nk >= 1:
                key1 = (k1s * (L + 2) + k1t) * W + k1m
                if _get(hk, hv, key1) < 0:
                    pending = True
                    st[top, 0], st[top, 1], st[top, 2] = k1s, k1t, k1m
                    top += 1
            if nk == 2:
                key2 = (k2s * (L + 2) + k2t) * W + k2m
                if _get(hk, hv, key2) < 0:
                    pending = True
                    st[top, 0], st[top, 1], st[top, 2] = k2s, k2t, k2m
                    top += 1
            if pending:
                continue
            top -= 1
            # the cell, as StepReplay._cell (same integer and float operations, same order)
            if s == t:
                peak = max(sv[s] + f[s], sv[s] + d[s - 1] + b[s])
                cost = tf[s] + tb[s]
            elif c == 0:
                j1 = _get(hk, hv, (k1s * (L + 2) + k1t) * W + k1m)
                pc, tc = mp[j1], mc[j1]
                peak = max(sv[s] + f[s], sv[s] + pc, sv[s] - d[t] + d[s] + d[s - 1] + b[s])
                cost = tf[s] + tc + tb[s]
            else:
                j1 = _get(hk, hv, (k1s * (L + 2) + k1t) * W + k1m)
                j2 = _get(hk, hv, (k2s * (L + 2) + k2t) * W + k2m)
                pr, tr = mp[j1], mc[j1]
                pl, tl = mp[j2], mc[j2]
                sweep = x[s] + f[s]
                for j in range(s + 1, c):
                    sweep = max(sweep, x[j - 1] + x[j] + f[j])
                peak = max(sweep, x[c - 1] + pr, d[c - 1] - d[t] + pl)
                acc = 0.0
                for j in range(s, c):
                    acc += tf[j]
                cost = acc + tr + tl
            if used >= len(mp):
                mp = np.concatenate((mp, np.zeros(len(mp), dtype=np.int64)))
                mc = np.concatenate((mc, np.zeros(len(mc), dtype=np.float64)))
            mp[used] = peak
            mc[used] = cost
            if 2 * (used + 1) > len(hk):
                hk, hv = _grow(hk, hv)
            h = _find(hk, key)
            hk[h] = key
            hv[h] = used
            used += 1
        if bad:
            ok[i] = False
            continue
        j = _get(hk, hv, (1 * (L + 2) + L) * W + root_m)
        peaks[i] = mp[j]
        costs[i] = mc[j]
    return peaks, costs, ok
