"""The banded DP kernel (``dp_kernel``) against the dense reference kernel (``dp_reference``).

Every table cell (cost and choice, for every memory) must be bit-identical to the reference, with
every back end (numpy always; numba when installed; native when built at install), and the
rebuilt schedules must be the reference's and replay in the simulator within the budget.
"""

import numpy as np
import pytest

from edgeplan.chain import make_chain
from edgeplan.discretize import Discretization, choose, slot_chain
from edgeplan.errors import InfeasibleError
from edgeplan.simulator import simulate
from edgeplan.solvers import dp_kernel as K
from edgeplan.solvers.base import store_all_peak_bytes
from edgeplan.solvers.reference import dp as R

HAVE_NUMBA = K.numba_available()
HAVE_NATIVE = K.native_available()
COMPILED = (["numba"] if HAVE_NUMBA else []) + (["native"] if HAVE_NATIVE else [])
BACKENDS = ["numpy"] + COMPILED
needs_native = pytest.mark.skipif(not HAVE_NATIVE, reason="native DP kernel not built")


def exact_slots(chain):
    return slot_chain(chain, Discretization(unit_bytes=1, slots=1))


def random_chain(rng, L, *, zero_sizes=True, zero_times=True, tmp=True):
    """Small integer sizes (many ties and coincidences), optional zeros and temporaries."""
    out = rng.integers(0 if zero_sizes else 1, 9, L)
    saved = out + rng.integers(0, 8, L)
    times = [0.0, 0.5, 1.0, 2.0, 3.0, 0.1, 0.7] if zero_times else [0.5, 1.0, 2.0, 3.0, 0.1, 0.7]
    fwd = rng.choice(times, L)
    bwd = rng.choice(times, L)
    ft = (rng.integers(0, 6, L) * (rng.random(L) < 0.35)) if tmp else np.zeros(L, int)
    bt = (rng.integers(0, 6, L) * (rng.random(L) < 0.35)) if tmp else np.zeros(L, int)
    return make_chain("r", fwd=list(fwd), bwd=list(bwd), out=[int(v) for v in out],
                      saved=[int(v) for v in saved], input_bytes=int(rng.integers(0, 6)),
                      fwd_tmp=[int(v) for v in ft], bwd_tmp=[int(v) for v in bt])


def assert_same_table(tab, ref):
    L = tab.sc.length
    cost, choice = tab.dense()
    for s in range(1, L + 1):
        for t in range(s, L + 1):
            np.testing.assert_array_equal(cost[s, t], ref.cost[s, t], err_msg=f"cost C({s},{t})")
            np.testing.assert_array_equal(choice[s, t], ref.choice[s, t],
                                          err_msg=f"choice C({s},{t})")
    np.testing.assert_array_equal(tab.column(), ref.cost[1, L])


def assert_same_schedules(chain, disc, sc, tab, ref):
    """Rebuilt schedules equal the reference's at every step of the curve and fit the budget."""
    col = ref.cost[1, sc.length]
    x0 = int(sc.x[0])
    for m in range(len(col)):
        if m and col[m] == col[m - 1]:
            continue
        if not np.isfinite(col[m]):
            with pytest.raises(InfeasibleError):
                K.rebuild(tab, m)
            continue
        sched = K.rebuild(tab, m)
        assert sched == R.rebuild(ref, m)
        budget = (m + x0) * disc.unit_bytes
        tr = simulate(chain, sched, budget)        # raises if an op exceeds the budget
        assert tr.peak_bytes <= budget
        assert tr.cost_s == pytest.approx(col[m], rel=1e-12, abs=1e-12)


def _case(seed):
    rng = np.random.default_rng(seed)
    L = int(rng.integers(1, 13))
    chain = random_chain(rng, L, zero_sizes=bool(rng.random() < 0.7),
                         zero_times=bool(rng.random() < 0.7), tmp=bool(rng.random() < 0.8))
    peak = max(1, store_all_peak_bytes(chain))
    if rng.random() < 0.3:                     # exact sizes (1-byte slots)
        disc = Discretization(unit_bytes=1, slots=1)
        max_slots = int(rng.integers(0, min(60, peak + 5) + 1))
    else:                                      # rounded sizes, as solve_optimal does
        disc = choose(peak, int(rng.integers(3, 61)))
        max_slots = int(rng.integers(0, 61))
    return chain, disc, slot_chain(chain, disc), max_slots


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(60))
def test_random_small_chains_match_reference(seed, backend, monkeypatch):
    chain, disc, sc, M = _case(seed)
    if backend in ("numba", "native"):
        # small tiles so that these short chains run the wavefront over several tiles
        monkeypatch.setattr(K, "NUMBA_TILE", 1 + seed % 4)
    tab = K.fill_table(sc, M, backend=backend)
    assert tab.backend == backend
    ref = R.fill_table(sc, M)
    assert_same_table(tab, ref)
    assert_same_schedules(chain, disc, sc, tab, ref)


@pytest.mark.parametrize("backend", BACKENDS)
def test_longer_chains_match_reference(backend):
    """Several tiles of the default size, block-wise numpy fill, wide and narrow bands."""
    rng = np.random.default_rng(7)
    for L, slots in ((37, 120), (25, 400)):
        chain = random_chain(rng, L)
        disc = choose(store_all_peak_bytes(chain), slots)
        sc = slot_chain(chain, disc)
        M = disc.down(store_all_peak_bytes(chain)) - int(sc.x[0])
        tab = K.fill_table(sc, M, backend=backend)
        ref = R.fill_table(sc, M)
        assert_same_table(tab, ref)
        for m in np.flatnonzero(np.isfinite(ref.cost[1, L]))[::7]:
            assert K.rebuild(tab, int(m)) == R.rebuild(ref, int(m))


@pytest.mark.parametrize("backend", COMPILED)
def test_compiled_equals_numpy_on_a_cnn_like_chain(backend):
    rng = np.random.default_rng(3)
    L = 60
    out = [int(4000 / 2 ** (i * 4 // L) * rng.uniform(0.8, 1.2)) for i in range(L)]
    chain = make_chain("cnn", fwd=list(rng.lognormal(0, 0.5, L)),
                       bwd=list(rng.lognormal(0.7, 0.5, L)), out=out,
                       saved=[int(o * rng.uniform(1.5, 3)) for o in out], input_bytes=1000,
                       fwd_tmp=[o // 4 if i % 3 == 0 else 0 for i, o in enumerate(out)],
                       bwd_tmp=[o // 2 if i % 4 == 1 else 0 for i, o in enumerate(out)])
    peak = store_all_peak_bytes(chain)
    for range_bytes in (peak, int(0.4 * peak)):
        disc = choose(range_bytes, 300)
        sc = slot_chain(chain, disc)
        M = disc.down(range_bytes) - int(sc.x[0])
        a = K.fill_table(sc, M, backend="numpy")
        b = K.fill_table(sc, M, backend=backend)
        assert (a.stored_cells, a.stored_runs) == (b.stored_cells, b.stored_runs)
        np.testing.assert_array_equal(np.sort(a.val), np.sort(b.val))   # packed in other orders
        for arr in ("lo", "hv"):
            np.testing.assert_array_equal(getattr(a, arr)[1:L + 1, 1:L + 1][np.triu_indices(L)],
                                          getattr(b, arr)[1:L + 1, 1:L + 1][np.triu_indices(L)])
        np.testing.assert_array_equal(a.column(), b.column())
        for s, t in ((1, L), (1, L // 2), (L // 3, L), (5, 40)):
            for x, y in zip(a.row(s, t), b.row(s, t)):
                np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("backend", BACKENDS)
def test_edge_cases(backend):
    one = make_chain("one", fwd=[1.0], bwd=[2.0], out=[3], saved=[5], input_bytes=2,
                     fwd_tmp=[1], bwd_tmp=[0])
    sc = slot_chain(one, Discretization(unit_bytes=1, slots=1))
    tab = K.fill_table(sc, 10, backend=backend)
    assert tab.answer(5) == np.inf and tab.answer(6) == 3.0 and tab.answer(10**6) == 3.0
    assert tab.answer(-1) == np.inf
    assert [str(o) for o in K.rebuild(tab, 6)] == ["Fall 1", "B 1"]
    with pytest.raises(InfeasibleError):
        K.rebuild(tab, 5)
    # nothing fits anywhere: every cell empty
    tab0 = K.fill_table(sc, 0, backend=backend)
    assert tab0.stored_cells == 0 and np.all(np.isinf(tab0.column()))
    with pytest.raises(InfeasibleError):
        K.rebuild(tab0, 0)
    # all-zero chain: everything feasible at m = 0 and free
    zero = make_chain("z", fwd=[0.0] * 5, bwd=[0.0] * 5, out=[0] * 5, saved=[0] * 5,
                      input_bytes=0)
    scz = slot_chain(zero, Discretization(unit_bytes=1, slots=1))
    tabz = K.fill_table(scz, 3, backend=backend)
    assert_same_table(tabz, R.fill_table(scz, 3))
    assert K.rebuild(tabz, 0) == R.rebuild(R.fill_table(scz, 3), 0)


def test_table_cells_and_storage_bound():
    assert K.table_cells(1, 0) == 1
    assert K.table_cells(1000, 499) == 500500 * 500
    assert K.table_cells(1000, 499) <= K.MAX_TABLE_CELLS
    rng = np.random.default_rng(11)
    chain = random_chain(rng, 20)
    sc = slot_chain(chain, choose(store_all_peak_bytes(chain), 50))
    tab = K.fill_table(sc, 50)
    assert 0 < tab.stored_cells <= K.table_cells(20, 50)
    assert tab.nbytes >= tab.stored_cells * K.CELL_BYTES


def test_backend_selection(monkeypatch):
    sc = exact_slots(random_chain(np.random.default_rng(1), 4))
    with pytest.raises(ValueError):
        K.fill_table(sc, 10, backend="fortran")
    monkeypatch.setenv("EDGEPLAN_DP_BACKEND", "numpy")
    assert K.fill_table(sc, 10).backend == "numpy"
    monkeypatch.setenv("EDGEPLAN_DP_BACKEND", "auto")
    # auto: native for every table it takes, when built
    assert K.fill_table(sc, 10).backend == ("native" if HAVE_NATIVE else "numpy")
    if HAVE_NATIVE:
        # 65535 slots and more: not the native library's types
        assert K.fill_table(sc, 70_000).backend != "native"
        with pytest.raises(ValueError, match="65535 slots"):
            K.fill_table(sc, 70_000, backend="native")
    monkeypatch.setattr(K, "_native_module", lambda: None)   # not built: numba or numpy
    with pytest.raises(ImportError, match="not built"):
        K.fill_table(sc, 10, backend="native")
    assert K.fill_table(sc, 10).backend == "numpy"     # small table: numpy even with numba
    monkeypatch.setattr(K, "_numba_module", lambda: None)   # numba missing: clean fallback
    monkeypatch.setattr(K, "NUMBA_MIN_CELLS", 0)
    assert K.fill_table(sc, 10).backend == "numpy"
    with pytest.raises(ImportError):
        K.fill_table(sc, 10, backend="numba")


def test_progress_is_reported():
    sc = exact_slots(random_chain(np.random.default_rng(2), 9))
    for backend in BACKENDS:
        seen = []
        K.fill_table(sc, 30, lambda d, t: seen.append((d, t)), backend=backend)
        assert seen and seen[-1][0] == seen[-1][1]
        assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_auto_falls_back_to_numpy_when_the_compiled_path_fails(monkeypatch):
    sc = exact_slots(random_chain(np.random.default_rng(5), 6))
    ref = R.fill_table(sc, 25)

    def broken(st, progress, native=False):
        raise RuntimeError("no compiler here")
    monkeypatch.setattr(K, "_native_module", lambda: None)
    monkeypatch.setattr(K, "_numba_module", lambda: object())
    monkeypatch.setattr(K, "_fill_compiled", broken)
    monkeypatch.setattr(K, "NUMBA_MIN_CELLS", 0)
    with pytest.warns(RuntimeWarning, match="using numpy"):
        tab = K.fill_table(sc, 25, backend="auto")
    assert tab.backend == "numpy"
    assert_same_table(tab, ref)
    with pytest.raises(RuntimeError):
        K.fill_table(sc, 25, backend="numba")
    monkeypatch.setattr(K, "_native_module", lambda: object())   # the same for native
    with pytest.warns(RuntimeWarning, match="native DP back end failed"):
        assert K.fill_table(sc, 25, backend="auto").backend == "numpy"
    with pytest.raises(RuntimeError):
        K.fill_table(sc, 25, backend="native")


def test_progress_exceptions_propagate_from_every_backend(monkeypatch):
    """A progress callback may stop the fill (the CLI's time limit): no numpy fallback then."""
    sc = exact_slots(random_chain(np.random.default_rng(8), 10))
    monkeypatch.setattr(K, "NUMBA_MIN_CELLS", 0)    # "auto" takes numba when installed

    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop
    for backend in BACKENDS + ["auto"]:
        with pytest.raises(Stop):
            K.fill_table(sc, 40, stop, backend=backend)


@needs_native
def test_native_library_built_from_another_source_is_refused(tmp_path, monkeypatch):
    """A library whose embedded source hash is not the shipped ``_dpfill.c``'s (the C source was
    edited after the install) is not loaded: the fill falls back, and the reason says rebuild."""
    import shutil

    from edgeplan.solvers import _native_build as NB
    from edgeplan.solvers import dp_native

    here = dp_native._HERE
    shutil.copy(here / NB.SOURCE, tmp_path / NB.SOURCE)
    shutil.copy(here / NB.library_name("base"), tmp_path / NB.library_name("base"))
    assert dp_native._load_from(tmp_path)[0] is not None
    with open(tmp_path / NB.SOURCE, "a") as fh:
        fh.write("/* edited */\n")
    lib, reason = dp_native._load_from(tmp_path)
    assert lib is None and "rebuild" in reason
    # load() says so once (a silent fall back would hide a stale build)
    for name, value in (("_HERE", tmp_path), ("_TRIED", False), ("_LIB", None), ("_REASON", None)):
        monkeypatch.setattr(dp_native, name, value)
    with pytest.warns(RuntimeWarning, match="native DP kernel not used.*rebuild"):
        assert dp_native.load() is None
    assert dp_native._load_from(tmp_path / "nowhere")[1].startswith("not built")


def test_native_build_without_a_compiler_warns_and_builds_nothing(tmp_path, monkeypatch):
    """The install's build of the C kernel never fails the install: no compiler, or one that
    fails, gives one line and no library (the numba or numpy back end is then used)."""
    import shutil

    from edgeplan.solvers import _native_build as NB
    from edgeplan.solvers import dp_native

    shutil.copy(dp_native._HERE / NB.SOURCE, tmp_path / NB.SOURCE)
    said = []
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    assert NB.build(tmp_path, log=said.append) == []
    assert len(said) == 1 and "failed" in said[0]
    assert not list(tmp_path.glob("*.so"))
    monkeypatch.delenv("CC")
    monkeypatch.setattr(NB.shutil, "which", lambda name: None)
    said.clear()
    assert NB.build(tmp_path, log=said.append) == [] and "no C compiler" in said[0]
