"""Property-based tests (hypothesis) over random valid chains and budgets."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeplan.chain import make_chain
from edgeplan.device import StorageTier
from edgeplan.schedule import Schedule
from edgeplan.simulator import simulate
from edgeplan.solvers.base import store_all_peak_bytes
from edgeplan.solvers.exact import exact_cost
from edgeplan.solvers.registry import solve, strategy_names

TIER = StorageTier(name="disk", read_bytes_per_s=3.0, write_bytes_per_s=1.0)
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def chains(draw, max_len=6):
    L = draw(st.integers(1, max_len))
    out = draw(st.lists(st.integers(0, 20), min_size=L, max_size=L))
    extra = draw(st.lists(st.integers(0, 20), min_size=L, max_size=L))
    times = st.lists(st.integers(0, 9).map(float), min_size=L, max_size=L)
    tmp = st.lists(st.integers(0, 5), min_size=L, max_size=L)
    return make_chain("h", fwd=draw(times), bwd=draw(times), out=out,
                      saved=[o + e for o, e in zip(out, extra)], input_bytes=draw(st.integers(0,
                                                                                              20)),
                      fwd_tmp=draw(tmp), bwd_tmp=draw(tmp))


@SETTINGS
@given(chains(), st.floats(0.2, 1.2))
def test_every_strategy_valid_within_budget(chain, frac):
    budget = int(store_all_peak_bytes(chain) * frac)
    for name in strategy_names():
        res = solve(name, chain, budget, **({"tier": TIER} if name == "offload" else {}))
        if res.feasible:
            tr = simulate(chain, res.schedule, budget,  # raises if invalid or over budget
                          tier=TIER if name == "offload" else None)
            assert tr.peak_bytes == res.peak_bytes, name
            assert abs(tr.cost_s - res.cost_s) < 1e-9, name


@SETTINGS
@given(chains(), st.integers(0, 150), st.integers(0, 150))
def test_costs_monotone_in_budget(chain, b1, b2):
    lo, hi = sorted((b1, b2))
    for name in ("optimal", "exact", "store-all", "segments", "revolve"):
        r_lo, r_hi = solve(name, chain, lo), solve(name, chain, hi)
        if r_lo.feasible:
            assert r_hi.feasible, name
            if name in ("optimal", "exact"):
                assert r_hi.cost_s <= r_lo.cost_s + 1e-9, name


@SETTINGS
@given(chains(max_len=5), st.floats(0.3, 1.0))
def test_optimal_never_beats_exhaustive(chain, frac):
    budget = int(store_all_peak_bytes(chain) * frac)
    opt = solve("optimal", chain, budget)
    ex = exact_cost(chain, budget)
    if opt.feasible:
        assert ex is not None and ex[0] <= opt.cost_s + 1e-9


def _model_text(chain) -> str:
    lines = ["format: 1", "name: prop", f"input: {chain.input_bytes}", "stages:"]
    for s in chain.stages:
        lines.append(f"  - {{name: {s.name}, fwd_time: {s.fwd_time_s} s, "
                     f"bwd_time: {s.bwd_time_s} s, "
                     f"out: {s.out_bytes}, saved: {s.saved_bytes}, fwd_tmp: {s.fwd_tmp_bytes}, "
                     f"bwd_tmp: {s.bwd_tmp_bytes}}}")
    return "\n".join(lines) + "\n"


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(chains(), st.integers(0, 200))
def test_json_always_parses_and_round_trips(run_cli, tmp_path, chain, budget):
    p = tmp_path / "m.yaml"
    p.write_text(_model_text(chain))
    r = run_cli("solve", p, "--memory", str(budget), "--json")
    assert r.exit_code in (0, 1), r
    doc = json.loads(r.stdout)
    assert json.loads(json.dumps(doc, sort_keys=True)) == doc
    res = doc["data"]["result"]
    if res["feasible"]:
        sched = Schedule.from_list(res["schedule"])
        assert sched.to_list() == res["schedule"]
        tr = simulate(chain, sched, doc["data"]["budget_bytes"])
        assert tr.peak_bytes == res["peak_bytes"]
    else:
        assert res["schedule"] is None and doc["exit_code"] == 1
