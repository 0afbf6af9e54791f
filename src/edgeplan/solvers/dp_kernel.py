"""The kernel of the optimal chain DP (docs/chain-model.md §4): banded table fill and rebuild.

See ``edgeplan.solvers.optimal`` for the recurrence; ``reference.dp`` holds the straightforward
dense kernel this one must match bit for bit (costs and choices): it is the test oracle.

Storage
-------
For a fixed sub-chain ``(s, t)``, ``C(s, t, m)`` is infinite below its least feasible memory and
non-increasing in ``m`` (more memory only adds options; float addition is monotone, so this holds
for the computed floats too). Above some point it stops changing: once every candidate (record,
checkpoint at ``k``) has passed its own threshold and the points where the sub-chains it reads
stop changing, its value is constant, and so are the minimum and the choice. So a cell stores

* its **value band** ``lo <= m <= hv``: ``m < lo`` is infeasible, ``m > hv`` has the value at
  ``hv`` (float64: float32 would change optima);
* its **choice runs**: the choice (``-1`` infeasible, ``0`` record stage ``s``, ``k`` checkpoint
  ``a_{k-1}``) is constant over runs of ``m`` (about five slots long on CNN-like chains), stored as
  (start relative to ``lo``, choice) pairs, the last run extending to infinity.

The bands are packed one after the other in ``val``; the runs in ``rst`` (uint16 starts, int32
from 65535 slots on) and ``rch`` (int16 choices, int32 from 32767 stages on). A per-cell index
``meta[s, t] = (lo, hv, off, roff, nrun)`` (int32; int64 for huge tables) gives the offset of
``m = lo`` in ``val`` and the offset and count of the runs. A band or a run list never exceeds
``max_slots + 1`` entries, so ``table_cells`` bounds both; real tables hold far less (in the
benchmark, 26-76 % of the bound in values and a sixth to a third as many runs), about 9 bytes
per stored value. The flat arrays are allocated at the bound with ``np.empty`` and filled from
the front, so only the pages in use become resident.

Fill
----
By sub-chain (the candidates of a cell read shorter ones). For one cell: the candidates'
thresholds and the bands of the sub-chains give the band ``[lo, e]`` to compute (``e`` capped at
``max_slots``); the values there are computed with exactly the float operations of the reference
(``rec = C + (tf_s + tb_s)``, ``ck = (C_right + C_left) + (TF[k-1] - TF[s-1])``), the tie rule is
the reference's (record wins ties, then the smallest ``k``), and the constant tail is trimmed.
Two back ends:

* ``numpy``: always available; by sub-chain length, vectorised over the cells of one length,
  the split points and the slots of the band;
* ``numba`` (optional extra ``edgeplan[fast]``, module ``dp_numba``): compiled, a parallel tile
  wavefront with exact lower-bound pruning; 30-100x faster at 100-200 stages. Used
  automatically for large tables when numba imports; if it fails at run time, ``auto`` warns and
  falls back to numpy;
* ``native`` (module ``dp_native``): the same kernel in C (``_dpfill.c``), compiled when
  edgeplan is installed, where a C compiler is; loaded in a millisecond where numba takes about
  half a second to start. ``auto`` prefers it for any table whose types it takes
  (``_native_takes``: under 2^31 cells, 65535 slots and 32000 stages).

``EDGEPLAN_DP_BACKEND=numpy|numba|native|auto`` (default ``auto``) overrides.

``rebuild`` is iterative (no recursion limit on long chains).
"""

from __future__ import annotations

import bisect
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..discretize import SlotChain
from ..errors import InfeasibleError
from ..progress import Progress
from ..schedule import Op, OpKind, Schedule

INF = np.inf
# Bytes of one stored cell, for size estimates: a float64 value (plus its share of the choice
# runs, about 1 byte on real tables; 4 in the worst case).
CELL_BYTES = 10
# Cap on elements of one temporary block (cells x split points x band slots) in the numpy path.
_BLOCK_ELEMS = 2_000_000
# Refuse tables whose worst-case storage (``table_cells``) exceeds this many cells (about 4 GiB
# at CELL_BYTES each; a real table is well under that bound).
MAX_TABLE_CELLS = 400_000_000
# "auto" uses numba (when installed) from this many worst-case cells on; below, the numpy path is
# faster than loading (on the first run: compiling) the numba kernel.
NUMBA_MIN_CELLS = 2_000_000
BACKENDS = ("auto", "numpy", "numba", "native")
# Tile edge (cells) of the compiled back ends' wavefront (numba and native).
NUMBA_TILE = 16

# fields of the per-cell index (same order as dp_numba)
LO, HV, OFF, ROFF, NRUN = 0, 1, 2, 3, 4


def table_cells(length: int, max_slots: int) -> int:
    """Worst-case stored cells of a table: one band of at most ``max_slots + 1`` values per
    sub-chain ``1 <= s <= t <= length``. About ``CELL_BYTES`` bytes each."""
    return length * (length + 1) // 2 * (max_slots + 1)


@dataclass
class DPTable:
    """A filled table (see the module docstring for the layout).

    ``cost_at(s, t, m)`` and ``choice_at(s, t, m)`` read one cell (choice: -1 infeasible,
    0 record, ``k`` checkpoint); ``column()`` is the trade-off curve ``C(1, L, m)``; ``row`` one
    cell densely; ``dense()`` the whole table like the reference kernel's arrays (small tables).
    """

    sc: SlotChain
    max_slots: int
    meta: np.ndarray        # (L+2, L+2, 5) int32/int64: lo, hv, off, roff, nrun
    val: np.ndarray
    rst: np.ndarray
    rch: np.ndarray
    backend: str = "numpy"

    @property
    def lo(self) -> np.ndarray:
        return self.meta[:, :, LO]

    @property
    def hv(self) -> np.ndarray:
        return self.meta[:, :, HV]

    def cost_at(self, s: int, t: int, m: int) -> float:
        m = min(m, self.max_slots)
        lo, hv, off, _, _ = self.meta[s, t].tolist()
        if m < lo or lo > self.max_slots:
            return INF
        return float(self.val[off + min(m, hv) - lo])

    def choice_at(self, s: int, t: int, m: int) -> int:
        m = min(m, self.max_slots)
        lo, _, _, roff, nrun = self.meta[s, t].tolist()
        if m < lo or lo > self.max_slots:
            return -1
        r = bisect.bisect_right(self.rst, m - lo, roff, roff + nrun) - 1
        return int(self.rch[r])

    def answer(self, m: int) -> float:
        return self.cost_at(1, self.sc.length, m)

    def row(self, s: int, t: int) -> tuple[np.ndarray, np.ndarray]:
        """``C(s, t, m)`` and its choice for ``m = 0..max_slots`` (dense copies)."""
        M = self.max_slots
        cost = np.full(M + 1, INF)
        choice = np.full(M + 1, -1, dtype=np.int32 if self.rch.dtype == np.int32 else np.int16)
        lo, hv, off, roff, nrun = self.meta[s, t].tolist()
        if lo <= M:
            cost[lo:hv + 1] = self.val[off:off + hv - lo + 1]
            cost[hv + 1:] = self.val[off + hv - lo]
            starts = self.rst[roff:roff + nrun].astype(np.int64) + lo
            ends = np.append(starts[1:], M + 1)
            for a, e, c in zip(starts, ends, self.rch[roff:roff + nrun]):
                choice[a:e] = c
        return cost, choice

    def column(self) -> np.ndarray:
        """``C(1, L, m)`` for ``m = 0..max_slots`` (the whole trade-off curve, in slots)."""
        return self.row(1, self.sc.length)[0]

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """``(cost, choice)`` as ``(L+2, L+2, max_slots+1)`` arrays, like the reference kernel."""
        L, M = self.sc.length, self.max_slots
        cost = np.full((L + 2, L + 2, M + 1), INF)
        choice = np.full((L + 2, L + 2, M + 1), -1, dtype=np.int16)
        for s in range(1, L + 1):
            for t in range(s, L + 1):
                cost[s, t], choice[s, t] = self.row(s, t)
        return cost, choice

    @property
    def stored_cells(self) -> int:
        """Stored values (the sum of the value bands)."""
        return len(self.val)

    @property
    def stored_runs(self) -> int:
        return len(self.rst)

    @property
    def nbytes(self) -> int:
        """Bytes of the packed bands, the runs and the per-cell index."""
        return self.val.nbytes + self.rst.nbytes + self.rch.nbytes + self.meta.nbytes


# ---------------------------------------------------------------------------------------------
# fill


class _State:
    """Working arrays of one fill, shared by both back ends."""

    def __init__(self, sc: SlotChain, M: int):
        L = sc.length
        self.L, self.M = L, M
        self.x = np.ascontiguousarray(sc.x, dtype=np.int64)
        self.sv = np.ascontiguousarray(sc.s, dtype=np.int64)
        self.d = np.ascontiguousarray(sc.d, dtype=np.int64)
        self.f = np.ascontiguousarray(sc.f, dtype=np.int64)
        self.b = np.ascontiguousarray(sc.b, dtype=np.int64)
        self.tf = np.ascontiguousarray(sc.tf, dtype=np.float64)
        self.tb = np.ascontiguousarray(sc.tb, dtype=np.float64)
        # TF[i] = tf_1 + .. + tf_i, summed exactly as the reference kernel does
        self.TF = np.concatenate(([0.0], np.cumsum(self.tf[1:])))
        cap = table_cells(L, M) + 1
        # per-cell index; lo = hv = M + 1: infeasible everywhere (int32 while offsets fit)
        self.meta = np.zeros((L + 2, L + 2, 5), dtype=np.int32 if cap < 2**31 - 1 else np.int64)
        self.meta[:, :, LO] = M + 1
        self.meta[:, :, HV] = M + 1
        self.lo, self.hv, self.off, self.roff, self.nrun = (self.meta[:, :, i] for i in range(5))
        self.cend = np.full((L + 2, L + 2), INF)   # C(s, t, M)
        # Allocated at the worst case and filled from the front: untouched pages stay virtual.
        self.val = np.empty(cap, dtype=np.float64)
        self.rst = np.empty(cap, dtype=np.uint16 if M < 65535 else np.int32)
        self.rch = np.empty(cap, dtype=np.int32 if L >= 32000 else np.int16)
        self.used = 0
        self.rused = 0

    def put(self, s: int, t: int, a: int, v: np.ndarray, c: np.ndarray) -> None:
        """Store cell ``(s, t)`` from its computed band ``m = a .. a + len(v) - 1``."""
        w = len(v)
        ch_v = np.flatnonzero(v[1:] != v[:-1])
        iv = int(ch_v[-1]) + 1 if len(ch_v) else 0
        starts = np.concatenate(([0], np.flatnonzero(c[1:] != c[:-1]) + 1)) if w else \
            np.zeros(0, dtype=np.intp)
        n0, r0, nr = self.used, self.rused, len(starts)
        self.val[n0:n0 + iv + 1] = v[:iv + 1]
        self.rst[r0:r0 + nr] = starts
        self.rch[r0:r0 + nr] = c[starts]
        self.meta[s, t] = (a, a + iv, n0, r0, nr)
        self.cend[s, t] = v[iv]
        self.used += iv + 1
        self.rused += nr

    def leaves(self) -> None:
        d, sv, f, b, tf, tb, M = self.d, self.sv, self.f, self.b, self.tf, self.tb, self.M
        for i in range(1, self.L + 1):
            thr = int(d[i] + sv[i] + max(f[i], d[i - 1] + b[i]))
            self.off[i, i], self.roff[i, i] = self.used, self.rused
            if thr <= M:
                self.put(i, i, thr, np.array([tf[i] + tb[i]]), np.array([0]))

    def table(self, sc: SlotChain, backend: str) -> DPTable:
        return DPTable(sc=sc, max_slots=self.M, meta=self.meta, val=self.val[:self.used],
                       rst=self.rst[:self.rused], rch=self.rch[:self.rused], backend=backend)


def _candidates_np(st: _State, ell: int) -> tuple[np.ndarray, ...]:
    """Candidate thresholds for every cell of length ``ell``, as ``(P, ell + 1)`` arrays.

    Column 0 is "record stage s", column ``q >= 1`` is "checkpoint a_{k-1}" with ``k = s + q``.
    Returns ``S, T, start, const_point, feasible`` (start: least ``m`` where the candidate is
    finite; const_point: from there on its value is constant).
    """
    L, M = st.L, st.M
    x, sv, d, f, b, lo, hv = st.x, st.sv, st.d, st.f, st.b, st.lo, st.hv
    S = np.arange(1, L - ell + 1)
    T = S + ell
    P = len(S)
    start = np.empty((P, ell + 1), dtype=np.int64)
    cpt = np.empty((P, ell + 1), dtype=np.int64)
    thr = np.maximum(d[T] + sv[S] + f[S], sv[S] + d[S] + d[S - 1] + b[S])
    start[:, 0] = np.maximum(thr, lo[S + 1, T] + sv[S])
    cpt[:, 0] = np.maximum(thr, hv[S + 1, T] + sv[S])
    q = np.arange(1, ell + 1)
    K = S[:, None] + q[None, :]                       # k = s+1..t
    J = K - 1                                         # j = k-1 = s..t-1
    G = x[J - 1] + x[J] + f[J]
    G[:, 0] = x[S] + f[S]
    need = np.maximum.accumulate(G, axis=1) + d[T][:, None]
    xk = x[K - 1]
    Tc = T[:, None]
    Sc = S[:, None]
    start[:, 1:] = np.maximum(need, np.maximum(lo[Sc, K - 1], lo[K, Tc] + xk))
    cpt[:, 1:] = np.maximum(start[:, 1:], np.maximum(hv[Sc, K - 1], hv[K, Tc] + xk))
    feas = start <= M
    return S, T, start, cpt, feas


def _fill_length_np(st: _State, ell: int) -> None:
    """Every cell of length ``ell`` with numpy, in blocks of cells."""
    M = st.M
    x, sv, tf, tb, TF = st.x, st.sv, st.tf, st.tb, st.TF
    lo, hv, off, val = st.lo, st.hv, st.off, st.val
    S, T, start, cpt, feas = _candidates_np(st, ell)
    A = np.where(feas, start, M + 1).min(axis=1)
    E = np.minimum(np.where(feas, cpt, -1).max(axis=1), M)
    W = np.maximum(E - A + 1, 0)
    P = len(S)
    q = np.arange(1, ell + 1)
    p0 = 0
    while p0 < P:
        # a block of cells whose (cells x split points x widest band) stays under _BLOCK_ELEMS
        p1 = p0 + 1
        wmax = int(W[p0])
        while p1 < P and (p1 + 1 - p0) * ell * max(wmax, int(W[p1])) <= _BLOCK_ELEMS:
            wmax = max(wmax, int(W[p1]))
            p1 += 1
        blk = slice(p0, p1)
        Sb, Tb, Ab, Wb = S[blk], T[blk], A[blk], W[blk]
        vals = chs = np.zeros((0, 0))  # every cell of a block with wmax == 0 is empty (w == 0)
        if wmax > 0:
            m = Ab[:, None] + np.arange(wmax)[None, :]            # (P, W)
            # record stage s: C(s+1, t, m - s_s) + (tf_s + tb_s)
            c1 = Sb + 1
            ir = np.clip(m - sv[Sb][:, None] - lo[c1, Tb][:, None], 0,
                         np.maximum(hv[c1, Tb] - lo[c1, Tb], 0)[:, None])
            rec = val[np.minimum(off[c1, Tb][:, None] + ir, st.used - 1)] \
                + (tf[Sb] + tb[Sb])[:, None]
            rec[~(feas[blk, 0:1] & (m >= start[blk, 0:1]))] = INF
            # checkpoint a_{k-1}: (C(k, t, m - x_{k-1}) + C(s, k-1, m)) + (TF[k-1] - TF[s-1])
            K = Sb[:, None] + q[None, :]                           # (P, ell)
            Tc, Sc = Tb[:, None], Sb[:, None]
            loR, loL = lo[K, Tc], lo[Sc, K - 1]
            wR = np.maximum(hv[K, Tc] - loR, 0)
            wL = np.maximum(hv[Sc, K - 1] - loL, 0)
            mm = m[:, None, :]
            iR = mm - (x[K - 1] + loR)[:, :, None]
            np.clip(iR, 0, wR[:, :, None], out=iR)
            iR += off[K, Tc][:, :, None]
            np.minimum(iR, st.used - 1, out=iR)
            iL = mm - loL[:, :, None]
            np.clip(iL, 0, wL[:, :, None], out=iL)
            iL += off[Sc, K - 1][:, :, None]
            np.minimum(iL, st.used - 1, out=iL)
            tot = val[iR]
            del iR
            tot += val[iL]
            del iL
            tot += (TF[K - 1] - TF[Sb - 1][:, None])[:, :, None]
            tot[~(feas[blk, 1:, None] & (mm >= start[blk, 1:, None]))] = INF
            best_q = np.argmin(tot, axis=1)                        # first minimum: smallest k
            best = np.take_along_axis(tot, best_q[:, None, :], axis=1)[:, 0, :]
            del tot
            use_rec = rec <= best
            vals = np.where(use_rec, rec, best)
            chs = np.where(use_rec, 0, Sb[:, None] + 1 + best_q)
            chs[~np.isfinite(vals)] = -1
        for j in range(p1 - p0):
            s, t, w = int(Sb[j]), int(Tb[j]), int(Wb[j])
            st.off[s, t], st.roff[s, t] = st.used, st.rused
            if w:
                st.put(s, t, int(Ab[j]), vals[j, :w], chs[j, :w])
        p0 = p1


_NUMBA_IMPORT_ERROR: str | None = None


def _numba_module() -> Any:
    global _NUMBA_IMPORT_ERROR
    try:
        from . import dp_numba
    except Exception as e:  # noqa: BLE001 - numba missing or broken (built for another numpy)
        _NUMBA_IMPORT_ERROR = f"{type(e).__name__}: {e}"
        return None
    return dp_numba


def numba_available() -> bool:
    return _numba_module() is not None


def _native_module() -> Any:
    from . import dp_native
    return dp_native if dp_native.load() is not None else None


def native_available() -> bool:
    return _native_module() is not None


def _native_takes(length: int, max_slots: int) -> bool:
    """Whether ``_State`` picks the native library's types for this table (``dp_native``)."""
    return table_cells(length, max_slots) + 1 < 2**31 - 1 and max_slots < 65535 and length < 32000


def _pick_backend(backend: str | None, length: int, max_slots: int) -> str:
    """The back end that fills a table of ``length`` stages and ``max_slots + 1`` slots."""
    backend = (backend or os.environ.get("EDGEPLAN_DP_BACKEND") or "auto").lower()
    if backend not in BACKENDS:
        raise ValueError(f"unknown DP backend {backend!r} (one of {', '.join(BACKENDS)})")
    if backend == "native":
        if not native_available():
            from . import dp_native
            raise ImportError("the native DP backend is not built: "
                              f"{dp_native.unavailable_reason()}")
        if not _native_takes(length, max_slots):
            raise ValueError("the native DP backend takes tables under 2^31 cells, 65535 slots "
                             "and 32000 stages; use numba or numpy")
        return "native"
    if backend == "numba":
        if not numba_available():
            raise ImportError("the numba DP backend needs numba: pip install 'edgeplan[fast]' "
                              f"({_NUMBA_IMPORT_ERROR})")
        return "numba"
    if backend == "auto" and _native_takes(length, max_slots) and native_available():
        return "native"
    if backend == "auto" and table_cells(length, max_slots) >= NUMBA_MIN_CELLS \
            and numba_available():
        return "numba"
    return "numpy"


class _CallerError(Exception):
    """Carries an exception raised by the caller's progress callback out of the compiled paths."""


def _threads() -> int:
    """CPUs this process may run on (the native fill's threads)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _fill_compiled(st: _State, progress: Progress | None, native: bool = False) -> None:
    """Tile wavefront of the compiled back ends (see ``dp_numba.fill_step``; ``native``: the
    same in C, ``dp_native.fill_step``)."""
    if native:
        nb_mod = _native_module()
        nthreads = _threads()
    else:
        import numba

        nb_mod = _numba_module()
        nthreads = numba.get_num_threads()
    L, M, B = st.L, st.M, NUMBA_TILE
    nb = (L + B - 1) // B
    # transposed copies, so that reading a column is contiguous too
    metaT = np.ascontiguousarray(st.meta.transpose(1, 0, 2))
    cendT = np.ascontiguousarray(st.cend.T)
    done_w, total_w = np.zeros(nb), 1.0
    if progress is not None:
        # work of a step ~ sum over its cells of (length + 1)^2
        s, t = np.triu_indices(L)
        w = np.bincount(t // B - s // B, weights=(t - s + 1.0) ** 2, minlength=nb)
        done_w, total_w = np.cumsum(w), float(w.sum())
    for dg in range(nb):
        used, rused = nb_mod.fill_step(dg, B, L, M, st.x, st.sv, st.d, st.f, st.b, st.tf, st.tb,
                                       st.TF, st.meta, metaT, st.cend, cendT, st.val, st.rst,
                                       st.rch, st.used, st.rused, nthreads)
        st.used, st.rused = int(used), int(rused)
        if progress is not None:
            try:
                progress(int(round(1000 * done_w[dg] / total_w)), 1000)
            except BaseException as e:  # noqa: BLE001 - the caller's (a time limit): re-raised
                raise _CallerError(e) from None


def fill_table(sc: SlotChain, max_slots: int, progress: Progress | None = None, *,
               backend: str | None = None) -> DPTable:
    """Fill ``C(s, t, m)`` for ``1 <= s <= t <= L`` and ``0 <= m <= max_slots``.

    ``progress(done, total)`` is called as the fill advances if given (numpy: after each
    sub-chain length; numba: after each tile diagonal, in thousandths of the work). ``backend``:
    ``"numpy"``, ``"numba"`` or ``"auto"`` (default: ``$EDGEPLAN_DP_BACKEND``, else auto).
    Both back ends give identical tables.
    """
    L, M = sc.length, int(max_slots)
    if M < 0:
        raise ValueError("max_slots must be >= 0")
    requested = (backend or os.environ.get("EDGEPLAN_DP_BACKEND") or "auto").lower()
    used_backend = _pick_backend(backend, L, M)
    st = _State(sc, M)
    if used_backend in ("numba", "native"):
        try:
            _fill_compiled(st, progress, native=used_backend == "native")
        except _CallerError as e:
            raise e.args[0] from None
        except MemoryError:
            raise
        except Exception as e:
            if requested in ("numba", "native"):
                raise
            # "auto": a failure of the compiled path (e.g. compilation) falls back to numpy
            warnings.warn(f"{used_backend} DP back end failed ({type(e).__name__}: {e}); using "
                          "numpy", RuntimeWarning, stacklevel=2)
            used_backend = "numpy"
            st = _State(sc, M)
    if used_backend == "numpy":
        st.leaves()
        for ell in range(1, L):
            _fill_length_np(st, ell)
            if progress is not None:
                progress(ell, L - 1)
    return st.table(sc, used_backend)


# ---------------------------------------------------------------------------------------------
# rebuild


def rebuild(table: DPTable, m: int) -> Schedule:
    """The schedule of ``C(1, L, m)``, rebuilt iteratively from the choice table."""
    sc = table.sc
    L = sc.length
    m = min(m, table.max_slots)
    if m < 0 or table.choice_at(1, L, m) < 0:
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
        c = table.choice_at(s, t, mm)
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
