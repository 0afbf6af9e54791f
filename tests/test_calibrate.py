"""``edgeplan calibrate``: a profile measured on this machine, readable by every command."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from edgeplan.formats.device_file import load_device


def test_calibrate_writes_a_profile_of_measurements(run_cli, tmp_path, tiny_model):
    out = tmp_path / "me.yaml"
    r = run_cli("calibrate", "--quick", "--storage", tmp_path, "--name", "me", "-o", out)
    assert r.exit_code == 0, r
    d = load_device(out)
    assert d.name == "me" and d.total_bytes > d.reserved_bytes > 0
    assert d.sustained_flops["fp32"] > 1e6 and d.bandwidth_bytes_per_s > 1e6
    assert d.storage and d.storage[0].write_bytes_per_s > 0 and d.storage[0].read_latency_s > 0
    for key in ("memory.total", "memory.reserved", "memory.bandwidth",
                "compute.sustained.fp32", "storage[0].read", "storage[0].write_latency"):
        assert d.sources[key].startswith("[M]"), key
    # every op family is priced, fitted to operations timed here
    from edgeplan.work import FAMILIES
    costs = d.family_costs("fp32")
    assert costs is not None and set(costs) == set(FAMILIES)
    assert costs["matmul"].flop_rate and costs["elementwise"].flop_rate is None
    assert d.sources["compute.families.fp32"].startswith("[M]")
    # power is not measured, and says so
    assert d.sources["power.training"].startswith("[A]")
    assert "edgeplan calibrate" in out.read_text().splitlines()[0]
    assert not list(tmp_path.glob(".edgeplan-calibrate-*"))  # the scratch file is gone
    # the profile plans like any other
    r = run_cli("solve", tiny_model, "-d", out)
    assert r.exit_code in (0, 1), r


def test_calibrate_power_and_bad_storage(run_cli, tmp_path):
    r = run_cli("calibrate", "--quick", "--power", "7.2 W", "-o", tmp_path / "p.yaml")
    assert r.exit_code == 0, r
    d = load_device(tmp_path / "p.yaml")
    assert d.training_power_w == 7.2 and d.sources["power.training"].startswith("[M]")
    r = run_cli("calibrate", "--quick", "--storage", tmp_path / "missing")
    assert r.exit_code == 2 and "not a folder" in r.stderr
    r = run_cli("calibrate", "--passes", "0")
    assert r.exit_code == 2 and "--passes" in r.stderr


@pytest.mark.parametrize(("budget_s", "asked", "passes"),
                         [(1e-9, 3, 1), (1e9, 3, 3), (1e9, 5, 5), (1e-9, 5, 1)])
def test_calibrate_makes_the_passes_its_time_budget_allows(monkeypatch, budget_s, asked, passes):
    import edgeplan.calibrate as cal
    from edgeplan.work import FAMILIES

    calls = []

    def fake_rows(torch, make, seconds, dtype, dev, sync, max_bytes=None):
        calls.append(seconds)
        return [(f, 1e6 * k, 10**5 * k, 1e-4 * k, 0, b) for f in FAMILIES for b in (False, True)
                for k in (1, 2, 3)]
    monkeypatch.setattr(cal, "_op_rows", fake_rows)
    monkeypatch.setattr(cal, "LADDER_BUDGET_S", budget_s)
    out = cal.calibrate(seconds=0.1, passes=asked)
    assert set(out.passes.values()) == {passes}
    # every pass is as long as one of the default's, however many are asked for
    assert max(calls) <= 0.1 / cal.PASSES
    import torch
    nets = sum(len(v) for v in cal._ladders(torch, False).values())
    assert len(calls) == nets * passes * len(out.passes)


def test_every_pass_of_the_pool_ladder_is_fitted_apart():
    """A max pool's forward (argmax tracking) and backward (a scatter) run 10x apart in speed:
    the full ladder must time enough pool operations in each pass for a fit of each."""
    import torch

    from edgeplan import calibrate as cal
    from edgeplan.torchrun.opwork import WorkCounter

    per_pass = [0, 0]
    for _label, make in cal._ladders(torch, False)["pool"]:
        mod, x = make()
        x.requires_grad_(True)
        with WorkCounter(timed=True) as wc:
            y = mod(x)
            n_fwd = len(wc.rows)
            y.sum().backward()
        for i, row in enumerate(wc.rows):
            if row[1] == "pool":
                per_pass[i >= n_fwd] += 1
    assert min(per_pass) >= cal.MIN_PASS_ROWS, per_pass
