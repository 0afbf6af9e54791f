"""Revolve: the oracle tables of reference/algorithms.md section 5.1 and the chain-model mapping."""

from __future__ import annotations

import math
import random

import pytest

from edgeplan.chain import make_chain
from edgeplan.schedule import OpKind
from edgeplan.simulator import simulate
from edgeplan.solvers.baselines import fast_peak_cost
from edgeplan.solvers.revolve import (
    Action,
    adjust,
    beta,
    opt0,
    repetition_number,
    revolve_actions,
    revolve_advances,
    revolve_dp_table,
    revolve_extra_forwards,
    revolve_extra_forwards_dp,
    revolve_ops,
    revolve_schedule,
    solve_revolve,
)

# --- section 5.1 oracles, copied verbatim --------------------------------------------------------

BETA_TABLE = """
1 1 1 1 1 1 1
1 2 3 4 5 6 7
1 3 6 10 15 21 28
1 4 10 20 35 56 84
1 5 15 35 70 126 210
1 6 21 56 126 252 462
1 7 28 84 210 462 924
"""

T_TABLE = """
0 1 3 6 10 15 21 28 36 45 55 66 78 91 105 120 136 153 171 190
0 1 2 4 6 8 11 14 17 20 24 28 32 36 40 45 50 55 60 65
0 1 2 3 5 7 9 11 13 15 18 21 24 27 30 33 36 39 42 45
0 1 2 3 4 6 8 10 12 14 16 18 20 22 24 27 30 33 36 39
0 1 2 3 4 5 7 9 11 13 15 17 19 21 23 25 27 29 31 33
"""

# (l, s) -> (r, t, t/l); None where the table has a dash
SPOT = {
    (10, 2): (3, 20, 2.0),
    (10, 3): (2, 15, 1.5),
    (20, 3): (3, 45, None),
    (50, 3): (5, 180, None),
    (100, 5): (4, 316, 3.16),
    (100, 10): (3, 222, None),
    (1000, 10): (4, 3636, None),
    (1000, 20): (3, 2747, None),
    (55, 1): (None, 1485, None),
}

OPT0_TABLE = """
1 3 6 10 15 21 28 36 45 55 66 78 91
1 3 5 8 11 14 18 22 26 30 35 40 45
1 3 5 7 10 13 16 19 22 25 29 33 37
1 3 5 7 9 12 15 18 21 24 27 30 33
"""

ADJUST = {4: 2, 10: 3, 20: 3, 50: 4, 100: 5, 1000: 7, 10000: 8}


def _rows(text: str) -> list[list[int]]:
    return [[int(v) for v in line.split()] for line in text.strip().splitlines()]


T_ROWS = _rows(T_TABLE)


def test_beta_table():
    for s, row in enumerate(_rows(BETA_TABLE)):
        assert [beta(s, t) for t in range(7)] == row


@pytest.mark.parametrize("s,row", list(enumerate(_rows(T_TABLE), start=1)))
def test_t_table_every_value(s, row):
    dp = revolve_dp_table(20, s)
    for l, expected in enumerate(row, start=1):
        assert revolve_extra_forwards(l, s) == expected, (l, s)
        assert dp[s][l] == expected, (l, s)
        assert revolve_advances(revolve_actions(l, s)) == expected, (l, s)


@pytest.mark.parametrize("ls,expected", sorted(SPOT.items()))
def test_spot_values(ls, expected):
    l, s = ls
    r, t, ratio = expected
    assert revolve_extra_forwards(l, s) == t
    if r is not None:
        assert repetition_number(l, s) == r
    if ratio is not None:
        assert t / l == pytest.approx(ratio)
    assert revolve_advances(revolve_actions(l, s)) == t


def test_spot_55_1_is_triangular():
    assert revolve_extra_forwards(55, 1) == 55 * 54 // 2


def test_closed_form_equals_dp_up_to_59_steps_7_snapshots():
    dp = revolve_dp_table(59, 7)
    for s in range(1, 8):
        for l in range(1, 60):
            assert dp[s][l] == revolve_extra_forwards(l, s), (l, s)
    assert revolve_extra_forwards_dp(10, 3) == 15
    assert revolve_extra_forwards_dp(2, 0) == math.inf
    assert revolve_extra_forwards_dp(1, 0) == 0


def test_identities():
    for s in range(1, 9):
        for l in range(1, s + 2):
            assert revolve_extra_forwards(l, s) == l - 1
        for r in range(0, 6):
            b = beta(s, r)
            expected = r * b - beta(s + 1, r - 1) if r >= 1 else 0
            assert revolve_extra_forwards(b, s) == expected
    for l in range(1, 80):
        assert revolve_extra_forwards(l, 1) == l * (l - 1) // 2
        ts = [revolve_extra_forwards(l, s) for s in range(1, 12)]
        assert all(a >= b for a, b in zip(ts, ts[1:])), l


def test_repetition_number_bounds():
    for s in range(1, 7):
        for l in range(2, 200):
            r = repetition_number(l, s)
            assert beta(s, r - 1) < l <= beta(s, r)


def test_opt0_table_and_identity():
    for m, row in enumerate(_rows(OPT0_TABLE), start=1):
        assert [opt0(l, m) for l in range(13)] == row, m
    for uf, ub in ((1, 0), (2, 3), (0.5, 1.5)):
        for m in range(1, 7):
            for l in range(0, 31):
                assert opt0(l, m, uf, ub) == pytest.approx(
                    uf * revolve_extra_forwards(l + 1, m) + (l + 1) * ub), (l, m, uf, ub)


def test_adjust():
    for steps, snaps in ADJUST.items():
        assert adjust(steps) == snaps, steps


def test_worked_schedule_3_steps_2_snapshots():
    acts = revolve_actions(3, 2)
    got = [(str(a.action), a.capo) for a in acts]
    assert got == [("takeshot", 0), ("advance", 1), ("takeshot", 1), ("advance", 2),
                   ("firsturn", 2), ("restore", 1), ("youturn", 1), ("restore", 0),
                   ("youturn", 0), ("terminate", 0)]
    assert revolve_advances(acts) == 2


def _replay_actions(l: int, s: int) -> tuple[int, int]:
    """Check an action sequence against the Revolve model; return (advances, max snapshots)."""
    acts = revolve_actions(l, s)
    assert acts[-1].action is Action.TERMINATE
    stored: dict[int, int] = {}  # slot -> state
    cur = 0
    next_reverse = l
    advances = 0
    most = 0
    for a in acts[:-1]:
        if a.action is Action.TAKESHOT:
            stored[a.check] = a.capo
            assert a.capo == cur
            # slots above `check` are stale
            for k in [k for k in stored if k > a.check]:
                del stored[k]
            most = max(most, len(stored))
        elif a.action is Action.ADVANCE:
            assert a.start == cur and a.capo > cur
            advances += a.capo - cur
            cur = a.capo
        elif a.action is Action.RESTORE:
            assert a.capo in stored.values()
            cur = a.capo
        else:  # a turn reverses step cur + 1, which must be the next step to reverse
            assert a.action in (Action.FIRSTURN, Action.YOUTURN)
            assert cur + 1 == next_reverse
            assert (a.action is Action.FIRSTURN) == (next_reverse == l)
            next_reverse -= 1
            for k in [k for k, v in stored.items() if v >= cur and v > 0]:
                del stored[k]
    assert next_reverse == 0
    return advances, most


def test_action_sequences_are_valid_and_optimal():
    for s in range(1, 9):
        for l in range(1, 61):
            adv, most = _replay_actions(l, s)
            assert adv == revolve_extra_forwards(l, s), (l, s)
            assert most <= s, (l, s)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        revolve_extra_forwards(5, 0)
    with pytest.raises(ValueError):
        revolve_extra_forwards(0, 3)
    assert revolve_extra_forwards(1, 0) == 0


# --- the chain-model mapping ----------------------------------------------------------------------

def _homogeneous(L: int, *, out=2, saved=5, x0=3, ftmp=1, btmp=2, tf=1.0, tb=2.0):
    return make_chain("h", fwd=[tf] * L, bwd=[tb] * L, out=[out] * L, saved=[saved] * L,
                      input_bytes=x0, fwd_tmp=[ftmp] * L, bwd_tmp=[btmp] * L)


def _random_chain(rng: random.Random, L: int):
    out = [rng.randint(1, 9) for _ in range(L)]
    return make_chain("r", fwd=[rng.randint(1, 5) for _ in range(L)],
                      bwd=[rng.randint(1, 8) for _ in range(L)], out=out,
                      saved=[o + rng.randint(0, 9) for o in out], input_bytes=rng.randint(0, 9),
                      fwd_tmp=[rng.randint(0, 4) for _ in range(L)],
                      bwd_tmp=[rng.randint(0, 4) for _ in range(L)])


def test_mapped_forward_count_equals_table_on_homogeneous_chains():
    for L in range(1, 21):
        chain = _homogeneous(L)
        for s in range(1, 6):
            sched = revolve_schedule(chain, s)
            tr = simulate(chain, sched)
            assert tr.fall_ops == L
            assert tr.fn_ops == revolve_extra_forwards(L, s), (L, s)
            assert tr.fn_ops + tr.fall_ops - L == T_ROWS[s - 1][L - 1]
            assert tr.cost_s == pytest.approx(3.0 * L + 1.0 * revolve_extra_forwards(L, s))


def test_mapping_keeps_at_most_s_snapshots():
    """Live plain activations: at most s snapshots (a_0 included) plus the working state of an
    advance, plus its predecessor between an ``Fn j`` and the ``free a_{j-1}`` after it."""
    for L in (5, 9, 14):
        chain = _homogeneous(L, out=1, saved=1, x0=1, ftmp=0, btmp=0)
        for s in range(1, L):
            sched = revolve_schedule(chain, s)
            live = {0}
            for op in sched:
                if op.kind is OpKind.FN:
                    live.add(op.stage)
                    assert len(live) <= s + 2, (L, s)
                elif op.kind is OpKind.FREE_A:
                    live.discard(op.stage)
                    assert len(live) <= s + 1, (L, s)


def test_forward_count_on_heterogeneous_chains():
    rng = random.Random(7)
    for _ in range(20):
        chain = _random_chain(rng, rng.randint(2, 15))
        L = chain.length
        for s in range(1, L):
            tr = simulate(chain, revolve_schedule(chain, s))
            assert tr.forward_ops - L == revolve_extra_forwards(L, s)


def test_fast_replay_matches_simulator():
    rng = random.Random(11)
    for _ in range(25):
        chain = _random_chain(rng, rng.randint(1, 14))
        arrays = chain.arrays()
        for s in range(1, max(2, chain.length)):
            tr = simulate(chain, revolve_schedule(chain, s))
            peak, cost = fast_peak_cost(arrays, *revolve_ops(chain.length, s))
            assert peak == tr.peak_bytes
            assert cost == pytest.approx(tr.cost_s)


def test_homogeneous_peak_and_cost_monotone_in_snapshots():
    """What solve_revolve's binary search relies on."""
    rng = random.Random(3)
    for _ in range(25):
        L = rng.randint(2, 40)
        chain = _homogeneous(L, out=rng.randint(1, 9), saved=rng.randint(9, 20),
                             x0=rng.randint(0, 20), ftmp=rng.randint(0, 20),
                             btmp=rng.randint(0, 20), tf=rng.randint(1, 4), tb=rng.randint(1, 4))
        arrays = chain.arrays()
        pc = [fast_peak_cost(arrays, *revolve_ops(L, s)) for s in range(1, L)]
        for (p1, c1), (p2, c2) in zip(pc, pc[1:]):
            assert p2 >= p1 and c2 < c1


def test_solve_revolve_homogeneous_picks_largest_fitting_s():
    L = 12
    chain = _homogeneous(L)
    peaks = {s: simulate(chain, revolve_schedule(chain, s)).peak_bytes for s in range(1, L)}
    for budget in range(min(peaks.values()) - 1, max(peaks.values()) + 3):
        res = solve_revolve(chain, budget)
        fitting = [s for s, p in peaks.items() if p <= budget]
        if not fitting:
            assert not res.feasible and res.schedule is None and res.trace is None
            assert res.min_budget_bytes == min(peaks.values())
            continue
        s = max(fitting)
        assert res.feasible and res.params["snapshots"] == s
        assert res.params["extra_forwards"] == revolve_extra_forwards(L, s)
        assert res.params["repetitions"] == repetition_number(L, s)
        assert res.trace == simulate(chain, res.schedule, budget)
        assert res.trace.forward_ops - L == revolve_extra_forwards(L, s)
    notes = " ".join(solve_revolve(chain, 10**6).notes)
    assert "a_0 counts" in notes and "no recorded tape" in notes
    assert "not homogeneous" not in notes


def test_solve_revolve_heterogeneous_least_cost():
    rng = random.Random(5)
    for _ in range(15):
        chain = _random_chain(rng, rng.randint(2, 10))
        L = chain.length
        trs = {s: simulate(chain, revolve_schedule(chain, s)) for s in range(1, max(2, L))}
        for budget in sorted({t.peak_bytes for t in trs.values()}):
            res = solve_revolve(chain, budget)
            best = min(t.cost_s for t in trs.values() if t.peak_bytes <= budget)
            assert res.feasible and res.cost_s == pytest.approx(best)
            assert res.peak_bytes <= budget
            if not chain.is_homogeneous():
                assert any("not homogeneous" in n for n in res.notes)


def test_solve_revolve_forced_snapshots_and_single_stage():
    chain = _homogeneous(6)
    res = solve_revolve(chain, 10**6, snapshots=2)
    assert res.params["snapshots"] == 2 and res.params["extra_forwards"] == 8
    one = _homogeneous(1)
    res = solve_revolve(one, 10**6)
    assert res.feasible and res.params["extra_forwards"] == 0
    assert [str(o) for o in res.schedule] == ["Fall 1", "B 1"]
