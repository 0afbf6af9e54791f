"""Compiled (numba) fill of the banded DP table: the fast back end of ``dp_kernel.fill_table``.

Imported only when numba is installed (``pip install 'edgeplan[fast]'``) and the table is large
enough to pay for it; ``dp_kernel`` has the pure-numpy back end with the same results. Storage,
bands, choice runs and tie rules are described in ``dp_kernel``. The kernel is memory-bound
(each candidate reads two bands), so the work is ordered for cache reuse:

* **Tile wavefront.** The cells ``(s, t)`` are cut into ``B x B`` tiles; tile ``(I, J)`` (rows
  ``s`` in block ``I``, columns ``t`` in block ``J``) needs only tiles ``(I, J - 1)`` and
  ``(I + 1, J)``, because ``C(s, t, .)`` reads row ``s`` left of ``t`` and column ``t`` below
  ``s``. The tiles of one diagonal ``J - I`` run in parallel (``prange``).
* **Inside a tile**, the checkpoints ``k`` in ``(s1, t0]`` (``s1``: the tile's last row, ``t0``:
  its first column) read only cells outside the tile; they are done first for all the tile's
  cells at once, ``k`` by ``k``, so that each left band ``(s, k-1)`` and right band ``(k, t)`` is
  read once per tile and used by a whole row / column of cells from cache. Then, cell by cell
  (``s`` descending, ``t`` ascending), the record candidate and the checkpoints whose sub-chains
  lie inside the tile. A cell accumulates in a per-thread scratch indexed by absolute ``m``.
* **Exact pruning.** A candidate never costs less than its lower bound ``LB``: both sub-chains at
  the top of the memory range plus the added time (float addition is monotone, so this holds for
  the computed values). The running minimum is non-increasing in ``m``, so a candidate can only
  improve on or tie it where the minimum is ``>= LB``: a prefix of the band, found by bisection.
* Every candidate value is computed with exactly the float operations of the reference kernel,
  and ties go to record, then to the smallest ``k`` (a rule that does not depend on the order in
  which candidates are visited): the table is bit-identical to the reference.

Per-cell index arrays are kept twice, ``meta[s, t, :]`` and its transpose ``metaT[t, s, :]``
(fields ``LO, HV, OFF, ROFF, NRUN``; likewise ``cend``/``cendT``, the cost at ``max_slots``), so
that both the row and the column a cell reads are contiguous.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_INF = np.inf
LO, HV, OFF, ROFF, NRUN = 0, 1, 2, 3, 4


@njit(cache=True)
def _candidates(s, t, M, x, sv, d, f, b, tf, tb, TF, meta, metaT, cend, cendT, ci, cf):
    """The feasible candidates of cell ``(s, t)``; returns their count ``n``.

    ``ci[j] = (k, start, const_point, r_base, r_top, l_base, l_top)``, ``cf[j] = (bound, F)``:
    candidate ``k`` (0: record) is finite from ``m = start`` and constant from ``const_point``;
    at memory ``m`` its right (recorded) part is ``val[r_base + m]`` for ``m <= r_top`` and
    constant beyond, its left part ``val[l_base + m]`` for ``m <= l_top``; ``F`` is the added
    time (``tf_s + tb_s`` for record, ``TF[k-1] - TF[s-1]`` for a checkpoint).
    """
    n = 0
    dt = d[t]
    # record stage s: C(s+1, t, m - s_s) + (tf_s + tb_s)
    thr = max(dt + sv[s] + f[s], sv[s] + d[s] + d[s - 1] + b[s])
    mr = metaT[t, s + 1]
    a0 = max(thr, mr[LO] + sv[s])
    if a0 <= M:
        ci[n, 0] = 0
        ci[n, 1] = a0
        ci[n, 2] = max(thr, mr[HV] + sv[s])
        ci[n, 3] = mr[OFF] - mr[LO] - sv[s]
        ci[n, 4] = mr[HV] + sv[s]
        ci[n, 5] = 0
        ci[n, 6] = 0
        cf[n, 0] = cendT[t, s + 1] + (tf[s] + tb[s])
        cf[n, 1] = tf[s] + tb[s]
        n += 1
    # checkpoint a_{k-1}: (C(k, t, m - x_{k-1}) + C(s, k-1, m)) + (TF[k-1] - TF[s-1]);
    # every Fn j (j = s..k-1) must fit: d_t + [j > s] x_{j-1} + x_j + f_j <= m
    pm = x[s] + f[s]
    for k in range(s + 1, t + 1):
        if k - 1 > s:
            g = x[k - 2] + x[k - 1] + f[k - 1]
            if g > pm:
                pm = g
        xk = x[k - 1]
        mr = metaT[t, k]
        ml = meta[s, k - 1]
        a1 = max(dt + pm, max(ml[LO], mr[LO] + xk))
        if a1 <= M:
            ci[n, 0] = k
            ci[n, 1] = a1
            ci[n, 2] = max(a1, max(ml[HV], mr[HV] + xk))
            ci[n, 3] = mr[OFF] - mr[LO] - xk
            ci[n, 4] = mr[HV] + xk
            ci[n, 5] = ml[OFF] - ml[LO]
            ci[n, 6] = ml[HV]
            F = TF[k - 1] - TF[s - 1]
            cf[n, 0] = (cendT[t, k] + cend[s, k - 1]) + F
            cf[n, 1] = F
            n += 1
    return n


@njit(cache=True)
def _relax(src, tv, tb_, cb, cb_, i0, i1, k, r0, iR, l0, iL, F):
    """Relax one candidate on indices ``i0..i1`` of a cell whose values are ``tv[tb_ + i]`` and
    choices ``cb[cb_ + i]``.

    ``R`` (right, or recorded, part) is ``src[r0 + i]`` up to ``i = iR`` and constant beyond;
    ``L`` (checkpoint only) is ``src[l0 + i]`` up to ``iL``. The loops are branch-free and
    index with unsigned integers (no negative-index code), so that LLVM vectorises them. A value
    is kept where it is strictly cheaper, or as cheap with a smaller ``k`` (record is 0; -1 is
    "nothing yet" and always loses a tie).
    """
    kk = cb.dtype.type(k)
    if k == 0:
        iL = i1 + 1            # no left part
    # segment 1: both parts read from their bands
    e1 = min(i1, min(iR, iL))
    if e1 >= i0:
        ur = np.uint64(r0 + i0)
        vo = np.uint64(tb_ + i0)
        co = np.uint64(cb_ + i0)
        if k == 0:
            for q in range(e1 - i0 + 1):
                i = np.uint64(q)
                v = src[ur + i] + F
                cur = tv[vo + i]
                c = cb[co + i]
                take = (v < cur) | ((v == cur) & (c > kk))
                tv[vo + i] = v if take else cur
                cb[co + i] = kk if take else c
        else:
            ul = np.uint64(l0 + i0)
            for q in range(e1 - i0 + 1):
                i = np.uint64(q)
                v = (src[ur + i] + src[ul + i]) + F
                cur = tv[vo + i]
                c = cb[co + i]
                take = (v < cur) | ((v == cur) & (c > kk))
                tv[vo + i] = v if take else cur
                cb[co + i] = kk if take else c
    if i1 <= e1:
        return
    # segment 2 (checkpoint): one part constant (R + L == L + R exactly)
    s2 = max(e1 + 1, i0)
    e2 = e1
    if k != 0:
        e2 = min(i1, max(iR, iL))
        if e2 >= s2:
            if iR > iL:
                o2 = r0
                cst = src[l0 + iL]
            else:
                o2 = l0
                cst = src[r0 + iR]
            ua = np.uint64(o2 + s2)
            vo = np.uint64(tb_ + s2)
            co = np.uint64(cb_ + s2)
            for q in range(e2 - s2 + 1):
                i = np.uint64(q)
                v = (src[ua + i] + cst) + F
                cur = tv[vo + i]
                c = cb[co + i]
                take = (v < cur) | ((v == cur) & (c > kk))
                tv[vo + i] = v if take else cur
                cb[co + i] = kk if take else c
    # segment 3: constant
    s3 = max(max(e1, e2) + 1, i0)
    if i1 >= s3:
        if k == 0:
            v = src[r0 + iR] + F
        else:
            v = (src[r0 + iR] + src[l0 + iL]) + F
        vo = np.uint64(tb_ + s3)
        co = np.uint64(cb_ + s3)
        for q in range(i1 - s3 + 1):
            i = np.uint64(q)
            cur = tv[vo + i]
            c = cb[co + i]
            take = (v < cur) | ((v == cur) & (c > kk))
            tv[vo + i] = v if take else cur
            cb[co + i] = kk if take else c


@njit(cache=True)
def _prefix_end(tv, tb_, u, last, LB):
    """The last ``i`` in ``[u, last]`` with ``tv[tb_ + i] >= LB`` (``tv[tb_ + u] >= LB``; the
    running minimum is non-increasing): beyond it a candidate never below ``LB`` can neither
    improve on nor tie the running minimum."""
    if tv[tb_ + last] >= LB:
        return last
    p = u
    hi_i = last
    while p < hi_i:
        mid = (p + hi_i + 1) >> 1
        if tv[tb_ + mid] >= LB:
            p = mid
        else:
            hi_i = mid - 1
    return p


@njit(cache=True)
def _set_meta(s, t, meta, metaT, cend, cendT, lo, hv, off, roff, nrun, ce):
    meta[s, t, LO] = lo
    meta[s, t, HV] = hv
    meta[s, t, OFF] = off
    meta[s, t, ROFF] = roff
    meta[s, t, NRUN] = nrun
    metaT[t, s, LO] = lo
    metaT[t, s, HV] = hv
    metaT[t, s, OFF] = off
    metaT[t, s, ROFF] = roff
    metaT[t, s, NRUN] = nrun
    cend[s, t] = ce
    cendT[t, s] = ce


@njit(cache=True)
def _external(s0, s1, t0, t1, B, M, x, d, f, TF, meta, metaT, cend, cendT, val, VB, CB, pm):
    """Phase 1 of an off-diagonal tile: the checkpoints ``k`` in ``(s1, t0]`` of all its cells,
    whose two sub-chains lie outside the tile (complete). For each ``k``, the left bands
    ``(s, k-1)`` of the tile's rows and the right bands ``(k, t)`` of its columns are each read
    once and used by a whole row / column of cells. Cell ``(s, t)`` accumulates in its scratch
    ``VB/CB[c * (M+1) + m]`` (absolute ``m``; ``c = (s - s0) * B + (t - t0)``)."""
    # pm[s - s0]: max over j = s..k-1 of the forward need of Fn j beyond d_t
    for s in range(s0, s1 + 1):
        g = x[s] + f[s]
        for j in range(s + 1, s1 + 1):
            g = max(g, x[j - 1] + x[j] + f[j])
        pm[s - s0] = g
    for k in range(s1 + 1, t0 + 1):
        xk = x[k - 1]
        if k - 1 > s1:
            gk = x[k - 2] + x[k - 1] + f[k - 1]
            for s in range(s0, s1 + 1):
                if gk > pm[s - s0]:
                    pm[s - s0] = gk
        for s in range(s0, s1 + 1):
            ml = meta[s, k - 1]
            if ml[LO] > M:
                continue
            F = TF[k - 1] - TF[s - 1]
            cl = cend[s, k - 1]
            l0 = ml[OFF] - ml[LO]
            iL = ml[HV]
            for t in range(t0, t1 + 1):
                mr = metaT[t, k]
                st = max(d[t] + pm[s - s0], max(ml[LO], mr[LO] + xk))
                if st > M:
                    continue
                LB = (cendT[t, k] + cl) + F
                cb_ = ((s - s0) * B + (t - t0)) * (M + 1)
                if VB[cb_ + st] < LB:
                    continue
                p = _prefix_end(VB, cb_, st, M, LB)
                _relax(val, VB, cb_, CB, cb_, st, p, k, mr[OFF] - mr[LO] - xk, mr[HV] + xk,
                       l0, iL, F)


@njit(cache=True)
def _cell(s, t, M, x, sv, d, f, b, tf, tb, TF, meta, metaT, cend, cendT, val, rst, rch, ptr,
          rptr, VB, CB, cb_, klo, khi, ci, cf):
    """Phase 2 for cell ``(s, t)``: every candidate except the checkpoints ``k`` in
    ``(klo, khi]`` (done by ``_external`` into the scratch ``VB/CB[cb_ + m]``), then store the
    band ``[lo, e]``: values into ``val[ptr:]`` (trimmed after their last change), choice runs into
    ``rst/rch[rptr:]``; set the cell's index. Returns the new ``(ptr, rptr)``."""
    if s == t:
        thr = d[s] + sv[s] + max(f[s], d[s - 1] + b[s])
        if thr <= M:
            val[ptr] = tf[s] + tb[s]
            rst[rptr] = 0
            rch[rptr] = 0
            _set_meta(s, t, meta, metaT, cend, cendT, thr, thr, ptr, rptr, 1, val[ptr])
            return ptr + 1, rptr + 1
        _set_meta(s, t, meta, metaT, cend, cendT, M + 1, M + 1, ptr, rptr, 0, _INF)
        return ptr, rptr
    n = _candidates(s, t, M, x, sv, d, f, b, tf, tb, TF, meta, metaT, cend, cendT, ci, cf)
    if n == 0:
        _set_meta(s, t, meta, metaT, cend, cendT, M + 1, M + 1, ptr, rptr, 0, _INF)
        return ptr, rptr
    a = M + 1
    e = 0
    for j in range(n):
        a = min(a, ci[j, 1])
        e = max(e, ci[j, 2])
    e = min(e, M)
    for j in range(n):
        k = ci[j, 0]
        if klo < k <= khi:
            continue
        LB = cf[j, 0]
        u = ci[j, 1]
        if VB[cb_ + u] < LB:
            continue
        p = _prefix_end(VB, cb_, u, e, LB)
        _relax(val, VB, cb_, CB, cb_, u, p, k, ci[j, 3], ci[j, 4], ci[j, 5], ci[j, 6], cf[j, 1])
    # values: trim after the last change (constant beyond); choices: runs
    w = e - a + 1
    o = cb_ + a
    iv = 0
    nr = 1
    val[ptr] = VB[o]
    rst[rptr] = 0
    rch[rptr] = CB[o]
    for i in range(1, w):
        v = VB[o + i]
        val[ptr + i] = v
        if v != VB[o + i - 1]:
            iv = i
        if CB[o + i] != CB[o + i - 1]:
            rst[rptr + nr] = i
            rch[rptr + nr] = CB[o + i]
            nr += 1
    _set_meta(s, t, meta, metaT, cend, cendT, a, a + iv, ptr, rptr, nr, val[ptr + iv])
    return ptr + iv + 1, rptr + nr


@njit(cache=True)
def _tile_range(I, J, B, L):
    return I * B + 1, min((I + 1) * B, L), J * B + 1, min((J + 1) * B, L)


@njit(cache=True)
def _tile_pairs(I, J, B, L):
    s0, s1, t0, t1 = _tile_range(I, J, B, L)
    n = 0
    for t in range(t0, t1 + 1):
        n += max(0, min(s1, t) - s0 + 1)
    return n


@njit(cache=True, parallel=True)
def fill_step(dg, B, L, M, x, sv, d, f, b, tf, tb, TF, meta, metaT, cend, cendT, val, rst, rch,
              used, rused, nthreads):
    """Compute the tiles ``(I, I + dg)`` in parallel; return the new used sizes of ``val`` and of
    the run arrays ``rst/rch``.

    A tile's cells accumulate in a per-thread scratch indexed by absolute ``m``: first the
    checkpoints whose sub-chains lie outside the tile (``_external``), then, cell by cell (``s``
    descending, ``t`` ascending), the other candidates (``_cell``). Each tile writes its bands
    and runs into its own area after ``used`` / ``rused``; they are then packed (moving left
    only) and the offsets updated.
    """
    nb = (L + B - 1) // B
    n = nb - dg
    base = np.empty(n + 1, np.int64)
    base[0] = used
    for i in range(n):
        base[i + 1] = base[i] + _tile_pairs(i, i + dg, B, L) * (M + 1)
    rbase = base - used + rused
    for c in prange(nthreads):
        ci = np.empty((L + 1, 7), np.int64)
        cf = np.empty((L + 1, 2), np.float64)
        VB = np.empty(B * B * (M + 1), np.float64)
        CB = np.empty(B * B * (M + 1), rch.dtype)
        pm = np.empty(B, np.int64)
        for i in range(c, n, nthreads):
            s0, s1, t0, t1 = _tile_range(i, i + dg, B, L)
            for s in range(s0, s1 + 1):
                for t in range(max(s, t0), t1 + 1):
                    cb_ = ((s - s0) * B + (t - t0)) * (M + 1)
                    for m in range(M + 1):
                        VB[cb_ + m] = _INF
                        CB[cb_ + m] = -1
            klo = 0
            khi = 0
            if dg > 0:
                klo = s1
                khi = t0
                _external(s0, s1, t0, t1, B, M, x, d, f, TF, meta, metaT, cend, cendT, val, VB,
                          CB, pm)
            ptr = base[i]
            rptr = rbase[i]
            for s in range(s1, s0 - 1, -1):
                for t in range(max(s, t0), t1 + 1):
                    cb_ = ((s - s0) * B + (t - t0)) * (M + 1)
                    ptr, rptr = _cell(s, t, M, x, sv, d, f, b, tf, tb, TF, meta, metaT, cend,
                                      cendT, val, rst, rch, ptr, rptr, VB, CB, cb_, klo, khi,
                                      ci, cf)
    pos = used
    rpos = rused
    for i in range(n):
        s0, s1, t0, t1 = _tile_range(i, i + dg, B, L)
        for s in range(s1, s0 - 1, -1):
            for t in range(max(s, t0), t1 + 1):
                src = meta[s, t, OFF]
                rsrc = meta[s, t, ROFF]
                meta[s, t, OFF] = pos
                metaT[t, s, OFF] = pos
                meta[s, t, ROFF] = rpos
                metaT[t, s, ROFF] = rpos
                if meta[s, t, LO] <= M:
                    w = meta[s, t, HV] - meta[s, t, LO] + 1
                    if src != pos:
                        for j in range(w):
                            val[pos + j] = val[src + j]
                    pos += w
                    nr = meta[s, t, NRUN]
                    if rsrc != rpos:
                        for j in range(nr):
                            rst[rpos + j] = rst[rsrc + j]
                            rch[rpos + j] = rch[rsrc + j]
                    rpos += nr
    return pos, rpos
