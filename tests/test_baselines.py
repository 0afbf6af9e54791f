"""Baselines: store-all, PyTorch checkpoint_sequential segments, Chen sqrt(n) and greedy.

Oracles: reference/algorithms.md section 5.4 (splits, the sqrt(n) memory rule)."""

from __future__ import annotations

import math
import random

import pytest

from edgeplan.chain import make_chain
from edgeplan.errors import InputError
from edgeplan.schedule import OpKind
from edgeplan.simulator import simulate
from edgeplan.solvers.base import store_all_schedule
from edgeplan.solvers.baselines import (
    checkpoint_sequential_split,
    chen_greedy_candidates,
    chen_greedy_split,
    fast_peak_cost,
    segment_ops,
    segment_schedule,
    segments_schedule,
    solve_segments,
    solve_sqrt,
    solve_store_all,
    sqrt_split,
)

# section 5.4: (n, segments) -> split
SPLITS = {(9, 5): [1, 1, 1, 1, 5], (10, 3): [3, 3, 4], (18, 4): [4, 4, 4, 6],
          (50, 7): [7, 7, 7, 7, 7, 7, 8]}


def _unit(L: int):
    return make_chain("u", fwd=[1] * L, bwd=[1] * L, out=[1] * L, saved=[1] * L, input_bytes=1)


def _random_chain(rng: random.Random, L: int):
    out = [rng.randint(1, 9) for _ in range(L)]
    return make_chain("r", fwd=[rng.randint(1, 5) for _ in range(L)],
                      bwd=[rng.randint(1, 8) for _ in range(L)], out=out,
                      saved=[o + rng.randint(0, 9) for o in out], input_bytes=rng.randint(0, 9),
                      fwd_tmp=[rng.randint(0, 4) for _ in range(L)],
                      bwd_tmp=[rng.randint(0, 4) for _ in range(L)])


@pytest.mark.parametrize("ns,split", sorted(SPLITS.items()))
def test_checkpoint_sequential_splits(ns, split):
    n, segs = ns
    assert checkpoint_sequential_split(n, segs) == split


@pytest.mark.parametrize("ns,split", sorted(SPLITS.items()))
def test_segments_schedule_recomputes_checkpointed_stages_once(ns, split):
    n, segs = ns
    chain = make_chain("c", fwd=[float(i) for i in range(1, n + 1)], bwd=[2.0] * n,
                       out=[3] * n, saved=[5] * n, input_bytes=4)
    sched = segments_schedule(chain, segs)
    tr = simulate(chain, sched)
    checkpointed = sum(split[:-1])
    assert tr.fall_ops == n
    assert tr.fn_ops == checkpointed
    # each stage of the first segments-1 chunks runs twice (Fn then Fall), the last chunk once
    assert tr.recompute_time_s == pytest.approx(sum(range(1, checkpointed + 1)))
    fn_stages = [o.stage for o in sched if o.kind is OpKind.FN]
    assert fn_stages == list(range(1, checkpointed + 1))
    assert [o.stage for o in sched if o.kind is OpKind.B] == list(range(n, 0, -1))


def test_segments_schedule_ops_9_in_5():
    chain = _unit(9)
    got = segments_schedule(chain, 5).compact()
    assert got == ["Fn 1-4", "Fall 5-9", "B 9-5", "free_a 4", "Fall 4", "B 4", "free_a 3",
                   "Fall 3", "B 3", "free_a 2", "Fall 2", "B 2", "free_a 1", "Fall 1", "B 1"]


def test_segments_schedule_frees_intermediates():
    chain = _unit(10)
    ops = [str(o) for o in segments_schedule(chain, 3)]
    # first chunk [1..3]: a_1, a_2 are freed after use, a_3 (the boundary) is kept
    assert ops[:5] == ["Fn 1", "Fn 2", "free_a 1", "Fn 3", "free_a 2"]
    assert ops[5:10] == ["Fn 4", "Fn 5", "free_a 4", "Fn 6", "free_a 5"]


def test_one_segment_is_store_all():
    rng = random.Random(2)
    chain = _random_chain(rng, 6)
    assert segments_schedule(chain, 1) == store_all_schedule(chain)


def test_bad_segment_counts():
    for bad in (0, 11, -1):
        with pytest.raises(InputError):
            checkpoint_sequential_split(10, bad)
    with pytest.raises(InputError):
        segment_schedule(_unit(4), [2, 1])
    with pytest.raises(InputError):
        solve_segments(_unit(4), 100, segments=5)


def test_sqrt_split_and_rule():
    assert sqrt_split(16) == [4, 4, 4, 4]
    assert sqrt_split(100) == [10] * 10
    assert sqrt_split(10) == [3, 3, 3, 1]
    assert sqrt_split(1) == [1] and sqrt_split(3) == [1, 1, 1]
    for n in range(1, 200):
        sizes = sqrt_split(n)
        assert sum(sizes) == n and all(1 <= s <= math.isqrt(n) for s in sizes)
    # section 5.4: memory n/k + k with k = floor(sqrt n): 8 for n = 16, 20 for n = 100. On a unit
    # chain that is a_0 + the k-1 stored boundaries + the last segment's k recorded stages; the
    # chain model adds one gradient buffer during a backward (d_{i-1} of B i).
    for n, rule in ((16, 8), (100, 20)):
        res = solve_sqrt(_unit(n), 10**6)
        assert res.peak_bytes == rule + 1
        assert res.params["segment_length"] == math.isqrt(n)
        # one extra forward of every stage outside the last segment
        assert res.trace.recompute_time_s == n - math.isqrt(n)


def test_chen_greedy_split():
    chain = make_chain("g", fwd=[1] * 6, bwd=[1] * 6, out=[1, 2, 1, 2, 1, 2],
                       saved=[3, 3, 3, 3, 3, 3], input_bytes=1)
    assert chen_greedy_split(chain, 0) == ([1] * 6, 1 + 2 + 1 + 2 + 1, 3)
    assert chen_greedy_split(chain, 5) == ([2, 2, 2], 2 + 2, 6)
    assert chen_greedy_split(chain, 10**6) == ([6], 0, 18)
    # b = 0 gives x = 7, y = 3, so b0 = floor(sqrt 21) = 4 and the grid is b = 2..6 in steps of
    # max(1, 4 // 6) = 1; distinct plans only
    assert chen_greedy_candidates(chain) == [(2, [1] * 6, 7, 3), (3, [2, 2, 2], 4, 6),
                                             (6, [3, 3], 1, 9)]


def test_solve_sqrt_greedy_picks_cheapest_fitting_plan():
    rng = random.Random(4)
    for _ in range(20):
        chain = _random_chain(rng, rng.randint(1, 20))
        plans = chen_greedy_candidates(chain)
        trs = [simulate(chain, segment_schedule(chain, p[1])) for p in plans]
        for budget in sorted({t.peak_bytes for t in trs}):
            res = solve_sqrt(chain, budget, variant="greedy")
            assert res.feasible and res.peak_bytes <= budget
            assert res.cost_s == pytest.approx(min(t.cost_s for t in trs if t.peak_bytes <= budget))
            assert res.params["variant"] == "greedy" and sum(res.params["segment_sizes"]) == \
                chain.length
        low = min(t.peak_bytes for t in trs) - 1
        res = solve_sqrt(chain, low, variant="greedy")
        assert not res.feasible and res.min_budget_bytes == low + 1


def test_solve_sqrt_unknown_variant():
    with pytest.raises(InputError):
        solve_sqrt(_unit(4), 100, variant="chen")


def test_store_all():
    chain = _random_chain(random.Random(9), 5)
    peak = simulate(chain, store_all_schedule(chain)).peak_bytes
    res = solve_store_all(chain, peak)
    assert res.feasible and res.peak_bytes == peak and res.trace.fn_ops == 0
    res = solve_store_all(chain, peak - 1)
    assert not res.feasible and res.schedule is None and res.min_budget_bytes == peak


def test_solve_segments_auto_is_cheapest_fitting_count():
    rng = random.Random(6)
    for _ in range(20):
        chain = _random_chain(rng, rng.randint(1, 16))
        L = chain.length
        trs = {n: simulate(chain, segments_schedule(chain, n)) for n in range(1, L + 1)}
        for budget in sorted({t.peak_bytes for t in trs.values()}):
            res = solve_segments(chain, budget)
            fitting = {n: t for n, t in trs.items() if t.peak_bytes <= budget}
            best = min(t.cost_s for t in fitting.values())
            assert res.feasible and res.cost_s == pytest.approx(best)
            # ties go to fewer segments
            n = res.params["segments"]
            assert n == min(k for k, t in fitting.items() if t.cost_s == pytest.approx(best))
            assert res.params["segment_sizes"] == checkpoint_sequential_split(L, n)
            assert res.trace == simulate(chain, res.schedule, budget)
        low = min(t.peak_bytes for t in trs.values()) - 1
        res = solve_segments(chain, low)
        assert not res.feasible and res.min_budget_bytes == low + 1
    # ample memory: one segment (store-all)
    res = solve_segments(_unit(8), 10**6)
    assert res.params["segments"] == 1 and res.trace.fn_ops == 0


def test_solve_segments_fixed_count():
    chain = _unit(10)
    res = solve_segments(chain, 10**6, segments=3)
    assert res.params == {"segments": 3, "segment_sizes": [3, 3, 4]}
    peak = res.peak_bytes
    res = solve_segments(chain, peak - 1, segments=3)
    assert not res.feasible and res.min_budget_bytes == peak


def test_fast_replay_matches_simulator_on_segment_schedules():
    rng = random.Random(8)
    for _ in range(30):
        chain = _random_chain(rng, rng.randint(1, 15))
        arrays = chain.arrays()
        L = chain.length
        splits = [checkpoint_sequential_split(L, n) for n in range(1, L + 1)] + [sqrt_split(L)]
        for sizes in splits:
            tr = simulate(chain, segment_schedule(chain, sizes))
            peak, cost = fast_peak_cost(arrays, *segment_ops(L, sizes))
            assert peak == tr.peak_bytes and cost == pytest.approx(tr.cost_s)
