"""Storage tier (docs/chain-model.md §6): simulator W/R/free_s, the offload DP, endurance."""

import math
import random
from pathlib import Path

import pytest

from edgeplan.chain import make_chain
from edgeplan.device import StorageTier
from edgeplan.endurance import DEFAULT_ASSUMPTION, endurance_estimate
from edgeplan.errors import LimitError, ScheduleError, UnknownNameError
from edgeplan.formats.device_file import find_device
from edgeplan.formats.model_file import load_model
from edgeplan.schedule import Op, OpKind, Schedule
from edgeplan.simulator import simulate
from edgeplan.solvers.base import store_all_peak_bytes, store_all_schedule
from edgeplan.solvers.exact import exact_cost
from edgeplan.solvers.offload import ASYNC_WRITE_FACTORS, solve_offload, storage_tier
from edgeplan.solvers.optimal import solve_optimal
from edgeplan.solvers.reference.exact_offload import exact_offload_cost

ROOT = Path(__file__).resolve().parent.parent
Fn, Fall, B, fa, fA = OpKind.FN, OpKind.FALL, OpKind.B, OpKind.FREE_A, OpKind.FREE_ALL
W, R, fs = OpKind.W, OpKind.R, OpKind.FREE_S

# write: 0.5 s + 1 s per byte; read: 1/3 s per byte
TIER = StorageTier(name="disk", read_bytes_per_s=3.0, write_bytes_per_s=1.0, write_latency_s=0.5)
# a slower, latency-heavy tier for the solver tests
SLOW = StorageTier(name="slow", read_bytes_per_s=2.0, write_bytes_per_s=1.0, read_latency_s=0.5,
                   write_latency_s=0.5)
# a fast tier: offloading is nearly free
FAST = StorageTier(name="fast", read_bytes_per_s=20.0, write_bytes_per_s=10.0)


def S(*ops):
    return Schedule(tuple(Op(k, i) for k, i in ops))


@pytest.fixture
def chain3():
    # the chain of test_simulate: x0=2; x=(3,5,1) s=(4,7,2); f=(1,0,2) b=(0,3,1)
    return make_chain("c3", fwd=[1, 2, 3], bwd=[10, 20, 30], out=[3, 5, 1], saved=[4, 7, 2],
                      input_bytes=2, fwd_tmp=[1, 0, 2], bwd_tmp=[0, 3, 1])


OFFLOAD_C3 = ((Fn, 1), (W, 1), (Fn, 2), (fa, 1), (Fall, 3), (B, 3), (fa, 2), (R, 1), (Fall, 2),
              (B, 2), (fs, 1), (fa, 1), (Fall, 1), (B, 1))


# --------------------------------------------------------------------------------------------
# simulator


def test_write_read_by_hand(chain3):
    t = simulate(chain3, S(*OFFLOAD_C3), tier=TIER)
    # Fn1 6 ->5 | W1 5 | Fn2 10 ->10 | free a1 7 | Fall3 11 ->9 | B3 9+5+1=15 ->12 | free a2 7
    # R1 7+3=10 ->10 | Fall2 17 | B2 17+3+3=23 ->8 | free_s 8 | free a1 5 | Fall1 10 ->9 | B1 9
    assert t.transient_bytes == (6, 5, 10, 7, 11, 15, 7, 10, 17, 23, 8, 5, 10, 9)
    assert t.peak_bytes == 23
    assert t.memory_after_bytes[-1] == 2
    compute = 1 + 2 + 3 + 30 + 2 + 20 + 1 + 10
    assert t.write_time_s == 3.5 and t.read_time_s == 1.0
    assert t.cost_s == compute + 3.5 + 1.0
    assert (t.write_ops, t.read_ops, t.bytes_written, t.bytes_read) == (1, 1, 3, 3)
    assert t.storage_peak_bytes == 3
    assert t.recompute_time_s == 1 + 2  # Fn 1, Fn 2 run again; I/O is not recomputation
    # asynchronous: W1 runs 1 -> 4.5 behind Fn2 (1 -> 3); free a1 waits until 4.5
    assert t.async_cost_s == compute + 1.5 + 1.0
    assert t.hidden_write_s == 2.0
    assert t.makespan(True) == t.async_cost_s and t.makespan() == t.cost_s
    assert t.tier == "disk"


def test_schedules_without_storage_are_unchanged(chain3):
    sched = store_all_schedule(chain3)
    a, b = simulate(chain3, sched), simulate(chain3, sched, tier=TIER)
    assert a.cost_s == b.cost_s == a.async_cost_s == b.async_cost_s == 66
    assert a.peak_bytes == b.peak_bytes
    assert (a.write_ops, a.bytes_written, a.storage_peak_bytes, a.tier) == (0, 0, 0, None)


def test_async_write_waits_at_the_end_and_on_free(chain3):
    # W 1 before B 1 reads a_1 out of A_1; B 1 frees A_1, so it ends when the write is done
    slow = StorageTier(name="s", read_bytes_per_s=1.0, write_bytes_per_s=0.1, write_latency_s=0.5)
    ops = ((Fall, 1), (Fall, 2), (Fall, 3), (B, 3), (B, 2), (W, 1), (B, 1))
    t = simulate(chain3, S(*ops), tier=slow)
    assert t.cost_s == 66 + 30.5
    assert t.async_cost_s == 56 + 30.5  # B 1 (56 -> 66) waits for the write (56 -> 86.5)
    t2 = simulate(chain3, S(*ops), tier=TIER)
    assert t2.async_cost_s == 66  # the 3.5 s write hides behind B 1 (10 s)


def test_async_single_fifo_channel():
    c = make_chain("u", fwd=[1, 1, 1], bwd=[1, 1, 1], out=[3, 5, 1], saved=[4, 7, 2],
                   input_bytes=2)
    ops = ((Fn, 1), (W, 1), (Fn, 2), (W, 2), (fa, 1), (Fall, 3), (B, 3), (fa, 2), (R, 1),
           (Fall, 2), (B, 2), (fs, 1), (fs, 2), (fa, 1), (Fall, 1), (B, 1))
    t = simulate(c, S(*ops), tier=TIER)
    assert t.cost_s == 8 + 3.5 + 5.5 + 1.0
    # W1 1->4.5, W2 queued 4.5->10; free a1 waits to 4.5; Fall3, B3 -> 6.5; free a2 waits to
    # 10; R1 10->11; then 4 compute ops -> 15
    assert t.async_cost_s == 15
    assert t.storage_peak_bytes == 8


@pytest.mark.parametrize("ops,msg,kw", [
    ([(Fn, 1), (W, 1)], "need a storage tier", {}),
    ([(R, 1)], "not on storage", {"tier": TIER}),
    ([(Fn, 1), (W, 1), (W, 1)], "already on storage", {"tier": TIER}),
    ([(Fn, 1), (W, 1), (R, 1)], "already live", {"tier": TIER}),
    ([(W, 1)], "needs a_1", {"tier": TIER}),
    ([(fs, 1)], "not on storage", {"tier": TIER}),
    ([(Fn, 1), (W, 1)], "capacity", {"tier": TIER, "storage_bytes": 2}),
    ([(Fall, 1), (Fall, 2), (Fall, 3), (B, 3), (B, 2), (W, 2)], "already ran", {"tier": TIER}),
    ([(Fall, 1), (Fall, 2), (Fall, 3), (B, 3), (B, 2), (B, 1), (W, 1)], "already complete",
     {"tier": TIER}),
])
def test_invalid_storage_ops(chain3, ops, msg, kw):
    with pytest.raises(ScheduleError, match=msg):
        simulate(chain3, S(*ops), **kw)


def test_tier_capacity_and_read_budget(chain3):
    capped = StorageTier(name="c", read_bytes_per_s=1.0, write_bytes_per_s=1.0, capacity_bytes=3)
    assert simulate(chain3, S(*OFFLOAD_C3), tier=capped).storage_peak_bytes == 3
    with pytest.raises(ScheduleError, match="capacity of 2"):
        simulate(chain3, S(*OFFLOAD_C3), tier=capped, storage_bytes=2)
    simulate(chain3, S(*OFFLOAD_C3), 23, tier=TIER)
    with pytest.raises(ScheduleError, match="over the budget"):
        simulate(chain3, S(*OFFLOAD_C3), 22, tier=TIER)


def test_free_s_is_allowed_after_the_backward(chain3):
    ops = list(OFFLOAD_C3)
    ops.remove((fs, 1))
    t = simulate(chain3, S(*ops, (fs, 1)), tier=TIER)
    assert t.storage_peak_bytes == 3


def test_roundtrip_storage_ops():
    s = S(*OFFLOAD_C3)
    assert Schedule.from_list(s.to_list()) == s
    assert s.uses_storage() and not S((Fall, 1), (B, 1)).uses_storage()
    assert {d["op"] for d in s.to_list()} >= {"W", "R", "free_s"}


def _random_offload_schedule(rng, chain, tier):
    """A random valid schedule with storage ops (a random walk over valid moves)."""
    L = chain.length
    for _ in range(100):
        ops = []
        try:
            live_a, live_A, stored, k = {0}, set(), set(), L
            while k > 0 and len(ops) < 60:
                moves = []
                av = live_a | live_A
                for i in range(1, k + 1):
                    if i - 1 in av and i not in av:
                        moves.append((Fn, i))
                    if i - 1 in av and i not in live_A:
                        moves.append((Fall, i))
                    if i in av and i not in stored:
                        moves.append((W, i))
                    if i in stored and i not in av:
                        moves.append((R, i))
                if k in live_A and k - 1 in av:
                    moves += [(B, k)] * 3
                for i in list(live_a - {0}):
                    if not (i + 1 in live_A and i not in live_A):
                        moves.append((fa, i))
                for i in list(stored):
                    moves.append((fs, i))
                op = rng.choice(moves)
                ops.append(op)
                kind, i = op
                if kind is Fn or kind is R:
                    live_a.add(i)
                elif kind is Fall:
                    live_A.add(i)
                elif kind is W:
                    stored.add(i)
                elif kind is fs:
                    stored.discard(i)
                elif kind is fa:
                    live_a.discard(i)
                elif kind is B:
                    live_A.discard(i)
                    k -= 1
            if k == 0:
                return simulate(chain, S(*ops), tier=tier)
        except ScheduleError:  # pragma: no cover - the walk only takes valid moves
            raise
    return None


def test_async_never_slower_than_sync():
    rng = random.Random(7)
    n = 0
    for _ in range(60):
        L = rng.randint(2, 5)
        out = [rng.randint(1, 5) for _ in range(L)]
        c = make_chain("r", fwd=[rng.randint(0, 4) for _ in range(L)],
                       bwd=[rng.randint(0, 6) for _ in range(L)], out=out,
                       saved=[o + rng.randint(0, 3) for o in out], input_bytes=rng.randint(1, 3))
        t = _random_offload_schedule(rng, c, SLOW)
        if t is None:
            continue
        n += 1
        assert t.async_cost_s <= t.cost_s + 1e-9
        # the compute ops alone are a lower bound in both modes
        assert t.async_cost_s >= t.cost_s - t.write_time_s - 1e-9
    assert n > 30


# --------------------------------------------------------------------------------------------
# the offload DP


def _random_chain(rng, L):
    out = [rng.randint(1, 4) for _ in range(L)]
    return make_chain("r", fwd=[rng.randint(1, 5) for _ in range(L)],
                      bwd=[rng.randint(1, 8) for _ in range(L)], out=out,
                      saved=[o + rng.randint(0, 3) for o in out], input_bytes=rng.randint(1, 3),
                      fwd_tmp=[rng.randint(0, 2) for _ in range(L)],
                      bwd_tmp=[rng.randint(0, 2) for _ in range(L)])


def test_never_worse_than_the_in_memory_optimum():
    rng = random.Random(3)
    for _ in range(25):
        c = _random_chain(rng, rng.randint(2, 9))
        peak = store_all_peak_bytes(c)
        for budget in sorted({c.input_bytes + (peak - c.input_bytes) * q // 8 for q in range(9)}):
            o = solve_optimal(c, budget, slots=64, with_frontier=False)
            r = solve_offload(c, budget, SLOW, slots=64)
            if o.feasible:
                assert r.feasible
                assert r.io.sync_cost_s <= o.cost_s + 1e-9
                assert r.io.recompute_cost_s == o.cost_s
                assert r.io.gain_s >= -1e-9
            if r.feasible:
                # replayed by the simulator with the tier, within the budget
                t = simulate(c, r.schedule, budget, tier=SLOW)
                assert t.cost_s == r.cost_s == r.io.sync_cost_s
                assert t.peak_bytes <= budget


def test_bounded_by_the_exhaustive_search_with_storage():
    """exact (any schedule with W/R) <= offload DP <= in-memory DP; on these short chains the DP
    reaches the exhaustive optimum (L <= 4: no non-persistent gain in this sample)."""
    rng = random.Random(1)
    seen_offload = 0
    for _ in range(25):
        c = _random_chain(rng, rng.randint(2, 4))
        peak = store_all_peak_bytes(c)
        for budget in range(c.input_bytes, peak + 1):
            r = solve_offload(c, budget, SLOW, slots=10**6)
            ex = exact_offload_cost(c, budget, SLOW)
            assert (ex is None) == (not r.feasible)
            if ex is None:
                continue
            assert ex[0] <= r.io.sync_cost_s + 1e-9
            assert r.io.sync_cost_s == pytest.approx(ex[0])
            seen_offload += r.io.offload_used
            # the oracle's own schedule replays to its cost
            assert simulate(c, ex[1], budget, tier=SLOW).cost_s == pytest.approx(ex[0])
    assert seen_offload >= 5


def test_offload_fits_where_recomputation_cannot():
    # Recomputing a_1 while d_2 (4 bytes) is live needs 1 + 4 + 2 + 7 = 14 > 13 bytes;
    # writing a_1 in the first forward (d_3 = 0 then) and reading it back needs 13.
    c = make_chain("f", fwd=[1, 1, 1], bwd=[1, 1, 1], out=[2, 4, 2], saved=[2, 4, 4],
                   input_bytes=1, fwd_tmp=[7, 2, 2])
    assert exact_cost(c, 13) is None
    assert not solve_optimal(c, 13, slots=10**6, with_frontier=False).feasible
    r = solve_offload(c, 13, SLOW, slots=10**6)
    assert r.feasible and r.io.offload_used
    assert r.io.recompute_cost_s is None and r.io.gain_s is None
    assert [str(o) for o in r.schedule.ops][:4] == ["Fn 1", "W 1", "Fn 2", "free_a 1"]
    assert r.peak_bytes == 13
    assert r.io.bytes_written == 2 and r.io.writes == 1
    # and below what any schedule needs, it reports the least budget
    r12 = solve_offload(c, 12, SLOW, slots=10**6)
    assert not r12.feasible and r12.min_budget_bytes == 13


def test_store_all_when_it_fits(chain3):
    r = solve_offload(chain3, 10**6, TIER)
    assert r.feasible and not r.io.offload_used and r.io.gain_s == 0
    assert r.cost_s == chain3.compute_time_s


def test_zero_capacity_is_the_in_memory_optimum():
    rng = random.Random(11)
    for _ in range(10):
        c = _random_chain(rng, 6)
        budget = c.input_bytes + (store_all_peak_bytes(c) - c.input_bytes) // 3
        o = solve_optimal(c, budget, slots=64, with_frontier=False)
        r = solve_offload(c, budget, SLOW, slots=64, storage_bytes=0)
        assert r.feasible == o.feasible
        if o.feasible:
            assert r.io.bytes_written == 0 and r.cost_s == o.cost_s


def test_capacity_is_respected():
    rng = random.Random(5)
    tested = 0
    for _ in range(30):
        c = _random_chain(rng, 8)
        budget = c.input_bytes + (store_all_peak_bytes(c) - c.input_bytes) // 2
        free = solve_offload(c, budget, FAST, slots=10**6)
        if not free.feasible or free.io.storage_peak_bytes < 2:
            continue
        cap = free.io.storage_peak_bytes - 1
        r = solve_offload(c, budget, FAST, slots=10**6, storage_bytes=cap)
        assert r.feasible
        assert r.io.storage_peak_bytes <= cap
        assert simulate(c, r.schedule, budget, tier=FAST, storage_bytes=cap).cost_s == r.cost_s
        assert free.cost_s <= r.cost_s + 1e-9
        tested += 1
    assert tested >= 3


def test_asynchronous_mode():
    rng = random.Random(9)
    for _ in range(10):
        c = _random_chain(rng, 7)
        budget = c.input_bytes + (store_all_peak_bytes(c) - c.input_bytes) // 4
        s = solve_offload(c, budget, SLOW, slots=10**6)
        a = solve_offload(c, budget, SLOW, slots=10**6, asynchronous=True)
        assert s.feasible == a.feasible
        if not a.feasible:
            continue
        assert a.io.mode == "async" and s.io.mode == "sync"
        assert a.io.makespan_s == a.io.async_cost_s == a.trace.async_cost_s
        # never worse than the synchronous plan replayed asynchronously, nor than recomputing
        assert a.io.async_cost_s <= s.io.async_cost_s + 1e-9
        assert a.io.async_cost_s <= s.io.sync_cost_s + 1e-9
        assert a.params["write_factor"] in ASYNC_WRITE_FACTORS + (None,)
        assert "heuristic" in a.params["optimal"] and "optimal among" in s.params["optimal"]


def test_rpi_microsd_lstm_offload_beats_recomputation():
    """The docs/offload.md example: lstm-unrolled on rpi-4-4gb's microSD, tight budget."""
    dev = find_device("rpi-4-4gb")
    tier = storage_tier(dev)
    assert tier.name == "microsd" and storage_tier(dev, "microsd") is tier
    chain = load_model(ROOT / "examples" / "lstm-unrolled.yaml").to_chain(dev)
    budget = 26 * 2**20  # its least budget is 24.0 MiB
    r = solve_offload(chain, budget, tier)
    o = solve_optimal(chain, budget, with_frontier=False)
    assert r.feasible and o.feasible and r.io.offload_used
    assert r.cost_s < 0.95 * o.cost_s
    assert r.io.gain_s == pytest.approx(o.cost_s - r.cost_s)
    assert r.io.bytes_written > 0 and r.trace.peak_bytes <= budget


def test_storage_tier_lookup():
    dev = find_device("rpi-4-4gb")
    with pytest.raises(UnknownNameError):
        storage_tier(dev, "nvme")


def test_exact_offload_limits():
    c = make_chain("l", fwd=[1] * 7, bwd=[1] * 7, out=[1] * 7, saved=[1] * 7, input_bytes=1)
    with pytest.raises(LimitError):
        exact_offload_cost(c, 10, TIER)


# --------------------------------------------------------------------------------------------
# endurance


def test_endurance_default_assumption():
    e = endurance_estimate(100 * 10**6, iterations_per_day=10_000)
    assert e.bytes_per_day == 1e12
    assert e.flash_bytes_per_day == 2e12
    assert e.rated_bytes == 8e12 and e.days_to_rated == pytest.approx(8.0)
    assert "ASSUMED" in e.assumption and "P/E" in e.assumption
    assert "SD cards rarely publish" in DEFAULT_ASSUMPTION
    d = e.to_dict()
    assert d["days_to_rated"] == pytest.approx(8.0) and d["assumption"] == e.assumption


def test_endurance_rate_and_ratings():
    e = endurance_estimate(10**6, iter_per_s=0.5, duty_cycle=0.5, tbw_bytes=40e12)
    assert e.iterations_per_day == 0.5 * 86400 * 0.5
    assert e.days_to_rated == pytest.approx(40e12 / (10**6 * 21600))
    assert "ASSUMED" not in e.assumption and "TBW" in e.assumption
    p = endurance_estimate(10**6, iterations_per_day=1000, pe_cycles=3000,
                           capacity_bytes=64 * 10**9, write_amplification=1.0)
    assert p.days_to_rated == pytest.approx(64e9 * 3000 / 1e9)
    assert math.isinf(endurance_estimate(0, iterations_per_day=5).days_to_rated)
    assert endurance_estimate(0, iterations_per_day=5).to_dict()["days_to_rated"] is None
    with pytest.raises(ValueError):
        endurance_estimate(1, iter_per_s=1, iterations_per_day=1)
    with pytest.raises(ValueError):
        endurance_estimate(1)
