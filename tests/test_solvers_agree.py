"""Every strategy against the simulator and against each other, and the strategy registry.

* every schedule any strategy returns is valid under ``simulate()`` and within the budget, and its
  trace is the simulator's;
* ``optimal`` is never worse than a baseline (all baselines here are persistent schedules, and
  the chains are small enough that the DP's slots are single bytes, so it is exact);
* ``exact`` is never worse than ``optimal``; both are non-increasing in the budget;
* ``offload`` (given a storage tier) is never worse than ``optimal``;
* an infeasible answer's ``min_budget_bytes`` is feasible and the budget below it is not.
"""

from __future__ import annotations

import random

import pytest

from edgeplan.chain import make_chain
from edgeplan.device import StorageTier
from edgeplan.errors import InputError, LimitError, UnknownNameError
from edgeplan.simulator import simulate
from edgeplan.solvers.base import store_all_peak_bytes
from edgeplan.solvers.registry import STRATEGIES, get_strategy, solve

BASELINES = ("store-all", "segments", "sqrt", "sqrt-greedy", "revolve")
EPS = 1e-9
TIER = StorageTier(name="disk", read_bytes_per_s=3.0, write_bytes_per_s=1.0, write_latency_s=0.5)


def _opts(name):
    """What each strategy needs from the caller: a storage tier for ``offload``."""
    return {"tier": TIER} if STRATEGIES[name].needs_tier else {}


def _random_chain(rng: random.Random, L: int):
    out = [rng.randint(1, 6) for _ in range(L)]
    return make_chain(f"r{L}", fwd=[rng.randint(1, 5) for _ in range(L)],
                      bwd=[rng.randint(1, 8) for _ in range(L)], out=out,
                      saved=[o + rng.randint(0, 6) for o in out], input_bytes=rng.randint(1, 6),
                      fwd_tmp=[rng.randint(0, 3) for _ in range(L)],
                      bwd_tmp=[rng.randint(0, 3) for _ in range(L)])


def _check(chain, res, budget):
    if res.feasible:
        tier = TIER if res.solver == "offload" else None
        tr = simulate(chain, res.schedule, budget, tier=tier)  # raises if broken or over budget
        assert res.trace == tr
        assert tr.peak_bytes <= budget
        return tr.cost_s
    assert res.schedule is None and res.trace is None
    return None


def _all_results(chain, budget, with_exact):
    names = list(STRATEGIES) if with_exact else [n for n in STRATEGIES if n != "exact"]
    return {name: solve(name, chain, budget, **_opts(name)) for name in names}


def _agree(chain, budgets, with_exact):
    prev_opt = prev_exact = float("inf")
    for budget in budgets:
        results = _all_results(chain, budget, with_exact)
        costs = {name: _check(chain, res, budget) for name, res in results.items()}
        if costs["offload"] is not None:  # compare like with like: synchronous makespans
            assert costs["offload"] == results["offload"].io.sync_cost_s
        opt = costs["optimal"]
        if opt is not None:
            assert costs["offload"] is not None and costs["offload"] <= opt + EPS
        for name, c in costs.items():
            if name in ("optimal", "exact", "offload") or c is None:
                continue
            # a feasible persistent baseline means optimal is feasible and no worse
            assert opt is not None, (chain, budget, name)
            assert opt <= c + EPS, (chain, budget, name, opt, c)
        if with_exact:
            ex = costs["exact"]
            if opt is not None:
                assert ex is not None and ex <= opt + EPS, (chain, budget, ex, opt)
            ex_v = float("inf") if ex is None else ex
            assert ex_v <= prev_exact + EPS
            prev_exact = ex_v
        opt_v = float("inf") if opt is None else opt
        assert opt_v <= prev_opt + EPS
        prev_opt = opt_v
        for name, res in results.items():
            if not res.feasible and res.min_budget_bytes is not None:
                assert res.min_budget_bytes > budget, (name, budget)


def test_small_chains_all_budgets_with_exact():
    rng = random.Random(2024)
    for _ in range(20):
        chain = _random_chain(rng, rng.randint(1, 5))
        top = store_all_peak_bytes(chain)
        _agree(chain, range(chain.input_bytes, top + 2), with_exact=True)


def test_six_stage_chains_some_budgets_with_exact():
    rng = random.Random(77)
    for _ in range(4):
        chain = _random_chain(rng, 6)
        top = store_all_peak_bytes(chain)
        budgets = sorted({rng.randint(chain.input_bytes, top + 1) for _ in range(6)})
        _agree(chain, budgets, with_exact=True)


def test_longer_chains_without_exact():
    rng = random.Random(99)
    for _ in range(10):
        chain = _random_chain(rng, rng.randint(7, 14))
        top = store_all_peak_bytes(chain)
        budgets = sorted({rng.randint(chain.input_bytes, top + 1) for _ in range(8)} | {top})
        _agree(chain, budgets, with_exact=False)


def test_min_budget_is_tight():
    rng = random.Random(5)
    for _ in range(12):
        chain = _random_chain(rng, rng.randint(1, 6))
        for name in BASELINES + ("optimal", "exact"):
            res = solve(name, chain, chain.input_bytes - 1, **_opts(name))
            assert not res.feasible and res.min_budget_bytes is not None
            m = res.min_budget_bytes
            assert solve(name, chain, m).feasible, (name, m)
            assert not solve(name, chain, m - 1).feasible, (name, m)


def test_homogeneous_revolve_forward_count_through_registry():
    from edgeplan.solvers.revolve import revolve_extra_forwards
    L = 10
    chain = make_chain("h", fwd=[1] * L, bwd=[2] * L, out=[2] * L, saved=[4] * L, input_bytes=2)
    for budget in range(10, 40, 3):
        res = solve("revolve", chain, budget)
        if res.feasible:
            s = res.params["snapshots"]
            assert res.trace.forward_ops - L == revolve_extra_forwards(L, s)
            assert res.params["extra_forwards"] == revolve_extra_forwards(L, s)


# --- the registry ---------------------------------------------------------------------------------

def test_registry_names():
    assert set(STRATEGIES) == {"store-all", "segments", "sqrt", "sqrt-greedy", "revolve",
                               "optimal", "exact", "offload"}
    chain = _random_chain(random.Random(1), 4)
    for name, fn in STRATEGIES.items():
        res = fn(chain, 10**6, **_opts(name))
        assert res.feasible and res.solver == name.replace("sqrt-greedy", "sqrt")
    with pytest.raises(InputError, match="needs a storage tier"):
        solve("offload", chain, 10**6)


def test_unknown_strategy_suggests():
    with pytest.raises(UnknownNameError) as ei:
        solve("optimla", _random_chain(random.Random(1), 3), 100)
    assert "optimal" in ei.value.suggestions
    assert "did you mean" in str(ei.value)
    with pytest.raises(UnknownNameError) as ei:
        get_strategy("revolv")
    assert ei.value.suggestions[0] == "revolve"
    with pytest.raises(UnknownNameError) as ei:
        get_strategy("zzzz")
    assert ei.value.suggestions == ()
    assert get_strategy("Store_All") is STRATEGIES["store-all"]


def test_registry_options():
    chain = _random_chain(random.Random(3), 8)
    top = store_all_peak_bytes(chain)
    res = solve("segments", chain, 10**6, segments=3)
    assert res.params["segments"] == 3
    res = solve("revolve", chain, 10**6, snapshots=2)
    assert res.params["snapshots"] == 2
    res = solve("sqrt", chain, 10**6, variant="greedy")
    assert res.params["variant"] == "greedy"
    res = solve("optimal", chain, top - 1, slots=50)
    assert res.discretization is not None and res.discretization.slots == 50
    assert res.frontier == ()
    # one option set for every strategy: options of other strategies and None are ignored
    opts = {"segments": 2, "snapshots": None, "slots": 100, "variant": "sqrt"}
    for name in STRATEGIES:
        assert solve(name, chain if name != "exact" else _random_chain(random.Random(3), 5),
                     10**6, **opts, **_opts(name)).feasible
    with pytest.raises(InputError):
        solve("optimal", chain, 10**6, slot=100)


def test_exact_limit_and_infeasible():
    rng = random.Random(8)
    with pytest.raises(LimitError):
        solve("exact", _random_chain(rng, 9), 10**6)
    chain = _random_chain(rng, 3)
    res = solve("exact", chain, chain.input_bytes - 1)
    assert not res.feasible and res.min_budget_bytes is not None
