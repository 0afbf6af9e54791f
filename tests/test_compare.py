"""edgeplan compare: strategies, devices and models side by side; every schedule replayed."""

import json

import pytest

from edgeplan.compare import DEFAULT_STRATEGIES, compare_one
from edgeplan.formats.device_file import load_device
from edgeplan.formats.model_file import load_model
from edgeplan.schedule import Schedule
from edgeplan.simulator import simulate


def test_compare_one_pair_every_strategy(tiny_model, test_device):
    model, dev = load_model(tiny_model), load_device(test_device)
    pair = compare_one(model, dev)
    assert [c.strategy for c in pair.cells] == list(DEFAULT_STRATEGIES)
    chain = model.to_chain(dev)
    opt = next(c for c in pair.cells if c.strategy == "optimal")
    assert opt.feasible
    for c in pair.cells:
        if c.feasible:
            tr = simulate(chain, c.result.schedule, pair.budget_bytes)
            assert tr.cost_s == pytest.approx(c.result.cost_s), c.strategy
            assert opt.result.cost_s <= c.result.cost_s + 1e-12, c.strategy
    assert pair.best().result.cost_s == pytest.approx(opt.result.cost_s)


def test_compare_cli_table(run_cli, tiny_model, test_device):
    r = run_cli("compare", tiny_model, "--device", test_device)
    assert r.exit_code == 0, r
    for s in ("store-all", "segments", "sqrt", "revolve", "optimal", "exact", "best"):
        assert s in r.stdout


def test_compare_cli_json_devices_and_models(run_cli, tiny_model, test_device, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(tiny_model.read_text().replace("name: tiny", "name: tiny2")
                     .replace("batch: 8", "batch: 16"))
    r = run_cli("compare", tiny_model, other, "--device", test_device, "--devices",
                "rpi-4-4gb,jetson-nano", "--json")
    assert r.exit_code == 0, r
    doc = json.loads(r.stdout)
    pairs = doc["data"]["pairs"]
    assert len(pairs) == 2 * 3
    assert {p["device"] for p in pairs} == {"testdev", "rpi-4-4gb", "jetson-nano"}
    for p in pairs:
        names = [s["strategy"] for s in p["strategies"]]
        assert names == list(DEFAULT_STRATEGIES)
        feas = [s for s in p["strategies"] if s.get("feasible")]
        assert p["trainable"] == bool(feas)
        for s in feas:
            assert s["peak_bytes"] <= p["budget_bytes"]
    r = run_cli("compare", tiny_model, "--devices", "rpi-4-4gb,jetson-nano")
    assert r.exit_code == 0 and "Which devices can train it" in r.stdout


def test_compare_strategy_subset_and_unknown(run_cli, tiny_model, test_device):
    r = run_cli("compare", tiny_model, "--device", test_device, "-s", "optimal,store-all", "--json")
    names = [s["strategy"] for s in json.loads(r.stdout)["data"]["pairs"][0]["strategies"]]
    assert names == ["optimal", "store-all"]
    r = run_cli("compare", tiny_model, "--device", test_device, "-s", "optimall")
    assert r.exit_code == 2 and "did you mean 'optimal'" in r.stderr


def test_compare_needs_a_device(run_cli, tiny_model):
    assert run_cli("compare", tiny_model).exit_code == 2


def test_exact_runs_on_short_chains(run_cli, tmp_path):
    m = tmp_path / "short.yaml"
    m.write_text("format: 1\nname: short\ninput: 1 KiB\nstages:\n" + "".join(
        f"  - {{name: s{i}, fwd_time: {i} ms, out: {i} KiB, saved: {2 * i} KiB}}\n"
        for i in range(1, 6)))
    doc = json.loads(run_cli("compare", m, "--memory", "20 KiB", "--json").stdout)
    cells = {s["strategy"]: s for s in doc["data"]["pairs"][0]["strategies"]}
    assert cells["exact"]["skipped"] is None and cells["exact"]["feasible"]
    assert cells["exact"]["cost_s"] <= cells["optimal"]["cost_s"] + 1e-12
    sched = Schedule.from_list(cells["exact"]["schedule"])
    assert len(sched) > 0
