"""The time model per op family (``edgeplan.work``, docs/chain-model.md §7): the work a stage
does, how a calibrated device prices it, the file formats that carry both."""

from __future__ import annotations

import math

import pytest

from edgeplan.errors import InputError
from edgeplan.formats._yaml import parse_yaml_text
from edgeplan.formats.device_file import device_from_data, device_yaml
from edgeplan.formats.model_file import (
    ImportedModel,
    ImportedStage,
    model_from_text,
    write_model,
)
from edgeplan.problem import prepare, time_model
from edgeplan.work import (
    COMPUTE_FAMILIES,
    FAMILIES,
    FamilyCost,
    FamilyWork,
    Work,
    work_time_s,
)

COSTS = {f: FamilyCost(overhead_s=10e-6, flop_rate=100e9 if f in COMPUTE_FAMILIES else None,
                       bandwidth_bytes_per_s=10e9) for f in FAMILIES}


def _device_text(families: dict | None = COSTS) -> str:
    return device_yaml(name="cal", title="calibrated", kind="cpu", total_bytes=2**30,
                       reserved_bytes=0, bandwidth_bytes_per_s=20e9, precision="fp32",
                       sustained_flops={"fp32": 50e9}, training_power_w=5.0,
                       families=None if families is None else {"fp32": families})


def _device(families: dict | None = COSTS):  # type: ignore[no-untyped-def]
    return device_from_data(parse_yaml_text(_device_text(families), "cal.yaml"), "cal.yaml")


def test_work_time_is_the_sum_over_operations_of_overhead_flops_and_bytes():
    w = Work.of({"conv": FamilyWork(2, 2e9, 10**9), "elementwise": FamilyWork(3, 0.0, 2 * 10**9)})
    # conv: 2 x 10 us + 2 GFLOP / 100 GFLOP/s + 1 GB / 10 GB/s; elementwise: 3 x 10 us + 0.2 s
    assert work_time_s(w, COSTS) == pytest.approx(2e-5 + 0.02 + 0.1 + 3e-5 + 0.2)
    # linear in the work: the time of the sum is the sum of the times
    v = Work.of({"conv": FamilyWork(1, 1e9, 5 * 10**8), "norm": FamilyWork(1, 0.0, 10**6)})
    assert work_time_s(w + v, COSTS) == pytest.approx(work_time_s(w, COSTS)
                                                      + work_time_s(v, COSTS))
    # a batch r times larger: FLOPs and bytes scale, the number of operations does not
    s = w.scaled(2.0)
    assert s.get("conv") == FamilyWork(2, 4e9, 2 * 10**9)
    with pytest.raises(InputError, match="unknown op family 'convv'"):
        Work.of({"convv": FamilyWork(1, 1.0, 1)})
    with pytest.raises(InputError, match="prices no 'pool'"):
        work_time_s(Work.of({"pool": FamilyWork(1, 0.0, 8)}), {"conv": COSTS["conv"]})


def _model_text(times: bool = False) -> str:
    fwd = Work.of({"matmul": FamilyWork(1, 4e9, 10**8), "elementwise": FamilyWork(2, 0, 10**8)})
    bwd = Work.of({"matmul": FamilyWork(2, 8e9, 3 * 10**8), "elementwise": FamilyWork(1, 0,
                                                                                  10**8)})
    stages = tuple(ImportedStage(name=f"s{i}", fwd_flops=4 * 10**9, bwd_flops=8 * 10**9,
                                 out_bytes=2**20, saved_bytes=2**21, param_bytes=4096,
                                 fwd_work=fwd, bwd_work=bwd,
                                 fwd_time_s=0.5 if times else None,
                                 bwd_time_s=1.0 if times else None) for i in range(3))
    m = ImportedModel(name="w", description="", derivation="by hand", provenance="test",
                      batch=4, input_bytes=2**20, stages=stages)
    return write_model(m)


def test_model_file_work_round_trips_and_prices_the_stage_times():
    text = _model_text()
    assert "work:  # per op family" in text and "matmul: [1, 4000000000, 100000000]" in text
    model = model_from_text(text)
    st = model.stages[0]
    assert st.fwd_work is not None and st.fwd_work.get("matmul") == FamilyWork(1, 4e9, 10**8)
    assert st.bwd_work is not None and st.bwd_work.get("elementwise") == FamilyWork(1, 0.0,
                                                                                    10**8)
    assert model.has_work
    # calibrated device: forward = 1 x 10 us + 4 GFLOP / 100 G + 0.1 GB / 10 G + 2 x 10 us
    #                              + 0.1 GB / 10 G
    cal = _device()
    p = prepare(model, cal)
    assert p.chain.stages[0].fwd_time_s == pytest.approx(3e-5 + 0.04 + 0.01 + 0.01)
    assert p.chain.stages[0].bwd_time_s == pytest.approx(3e-5 + 0.08 + 0.03 + 0.01)
    assert time_model(model, cal, "fp32") == "op-families"
    assert any("op family" in n for n in p.notes)
    # the breakdown per family adds up to the step without recomputation
    fam = dict(p.family_time_s)
    assert set(fam) == {"matmul", "elementwise"}
    assert sum(fam.values()) == pytest.approx(p.chain.compute_time_s)
    assert fam["matmul"] == pytest.approx(3 * (1e-5 + 0.04 + 0.01 + 2e-5 + 0.08 + 0.03))
    assert any(n.startswith("compute by op family") and "matmul 8" in n for n in p.notes)
    # a device without families: FLOPs at the sustained 50 GFLOP/s, as before
    plain = _device(None)
    q = prepare(model, plain)
    assert q.chain.stages[0].fwd_time_s == pytest.approx(4e9 / 50e9)
    assert time_model(model, plain, "fp32") == "sustained" and not q.notes
    assert q.family_time_s == ()
    # measured times in the file still win
    timed = model_from_text(_model_text(times=True))
    assert prepare(timed, cal).chain.stages[0].fwd_time_s == 0.5
    assert time_model(timed, cal, None) == "measured"
    # the batch scales the work: twice the batch, twice the FLOPs and bytes
    big = prepare(model, cal, batch=8).chain.stages[0]
    assert big.fwd_time_s == pytest.approx(3e-5 + 2 * (0.04 + 0.01 + 0.01))


@pytest.mark.parametrize("work, message, where", [
    ("{fwd: {convv: [1, 1, 1]}}", "did you mean 'conv'", "work.fwd.convv"),
    ("{fwd: {conv: [1, 2]}}", "expected \\[operations, FLOPs, bytes\\]", "work.fwd.conv"),
    ("{fwd: {conv: [-1, 2, 3]}}", "expected a count of operations", "work.fwd.conv[0]"),
    ("{fwd: {conv: [1, big, 3]}}", "FLOP", "work.fwd.conv[1]"),
    ("{bwd: {conv: [1, 2, lots]}}", "size", "work.bwd.conv[2]"),
    ("{fwds: {}}", "did you mean 'fwd'", "work.fwds"),
    ("{fwd: {conv: [1, 2, 3, 4]}}", "cannot exceed them", "work.fwd.conv[3]"),
    ("{fwd: {conv: [1, 2, 3, 4, 5]}}", "large-result bytes", "work.fwd.conv"),
])
def test_bad_work_is_one_line_with_its_key_path(work: str, message: str, where: str):
    text = ("format: 1\nname: m\ninput: 1 KiB\nstages:\n"
            f"  - {{name: a, fwd_flops: 1 GFLOP, out: 1 KiB, work: {work}}}\n")
    with pytest.raises(InputError, match=message) as e:
        model_from_text(text, "m.yaml")
    assert f"stages[0].{where}:" in str(e.value) and "\n" not in str(e.value)


def test_device_families_round_trip_and_are_checked():
    d = _device()
    assert d.family_costs("fp32") == COSTS or all(
        math.isclose(d.family_costs("fp32")[f].overhead_s, COSTS[f].overhead_s) for f in FAMILIES)
    assert d.family_costs("bf16") is None
    text = _device_text()
    # every family is needed for a precision
    missing = text.replace("      pool: {overhead: 10 us, bandwidth: 10 GB/s}\n", "")
    with pytest.raises(InputError, match="missing: pool"):
        device_from_data(parse_yaml_text(missing, "d.yaml"), "d.yaml")
    # but a profile calibrated before `matvec` was split off prices it as `matmul`
    line = "      matvec: {overhead: 10 us, bandwidth: 10 GB/s}\n"
    assert line in text
    cheaper = text.replace("matmul: {overhead: 10 us,", "matmul: {overhead: 20 us,")
    old = device_from_data(parse_yaml_text(cheaper.replace(line, ""), "d.yaml"), "d.yaml")
    costs = old.family_costs("fp32")
    assert costs is not None and list(costs) == list(FAMILIES)
    assert costs["matvec"] == costs["matmul"] and costs["matvec"].overhead_s == pytest.approx(2e-5)
    # a memory family has no FLOP rate
    rated = text.replace("pool: {overhead: 10 us,", "pool: {overhead: 10 us, rate: 1 GFLOP/s,")
    with pytest.raises(InputError, match=r"compute\.families\.fp32\.pool\.rate"):
        device_from_data(parse_yaml_text(rated, "d.yaml"), "d.yaml")
    zero = text.replace("conv: {overhead: 10 us, rate: 100 GFLOP/s",
                        "conv: {overhead: 10 us, rate: 0 GFLOP/s")
    with pytest.raises(InputError, match=r"conv\.rate: must be a finite number more than 0"):
        device_from_data(parse_yaml_text(zero, "d.yaml"), "d.yaml")


def test_large_result_bytes_round_trip_in_model_and_device_files():
    fwd = Work.of({"elementwise": FamilyWork(3, 0.0, 3 * 10**8, 2 * 10**8)})
    st = ImportedStage(name="logits", fwd_flops=0, bwd_flops=0, out_bytes=2**26,
                       saved_bytes=2**26, param_bytes=0, fwd_work=fwd, bwd_work=fwd)
    m = ImportedModel(name="w", description="", derivation="by hand", provenance="test",
                      batch=1, input_bytes=2**20, stages=(st,))
    text = write_model(m)
    assert "elementwise: [3, 0, 300000000, 200000000]" in text
    back = model_from_text(text).stages[0]
    assert back.fwd_work is not None and back.fwd_work.get("elementwise") == FamilyWork(
        3, 0.0, 3 * 10**8, 2 * 10**8)
    costs = dict(COSTS, elementwise=FamilyCost(overhead_s=0.0, bandwidth_bytes_per_s=30e9,
                                               large_bandwidth_bytes_per_s=5e9))
    d = _device(costs)
    got = d.family_costs("fp32")
    assert got is not None and got["elementwise"].large_bandwidth_bytes_per_s == 5e9
    assert "large_bandwidth: 5 GB/s" in _device_text(costs)
    # 0.1 GB at 30 GB/s + 0.2 GB of large results at 5 GB/s
    p = prepare(model_from_text(text), d)
    assert p.chain.stages[0].fwd_time_s == pytest.approx(0.1 / 30 + 0.2 / 5)


def test_fit_family_recovers_the_constants_it_was_given():
    from edgeplan.calibrate import fit_family
    rows = [(f, b, 20e-6 + f / 150e9 + b / 8e9, 0)
            for f, b in ((1e6, 10**4), (5e7, 2 * 10**6), (2e9, 10**7), (3e8, 5 * 10**7),
                         (1e5, 10**3), (8e9, 4 * 10**8))]
    cost, err = fit_family(rows, compute=True)
    assert cost.overhead_s == pytest.approx(20e-6, rel=1e-3)
    assert cost.flop_rate == pytest.approx(150e9, rel=1e-3)
    assert cost.bandwidth_bytes_per_s == pytest.approx(8e9, rel=1e-3)
    assert err < 1e-6
    assert cost.large_bandwidth_bytes_per_s is None  # no large results: no such term
    mem = [(0.0, b, 3e-6 + b / 12e9, 0) for b in (10**3, 10**5, 10**7, 10**8)]
    cost, _ = fit_family(mem, compute=False)
    assert cost.flop_rate is None and cost.bandwidth_bytes_per_s == pytest.approx(12e9, rel=1e-3)
    assert cost.overhead_s == pytest.approx(3e-6, rel=1e-3)


def test_fit_family_separates_the_bandwidth_of_large_results():
    from edgeplan.calibrate import fit_family
    small = [(0.0, b, 4e-6 + b / 30e9, 0) for b in (10**4, 10**6, 4 * 10**6, 2 * 10**7)]
    large = [(0.0, b, 4e-6 + b / 7e9, b) for b in (10**8, 3 * 10**8)]
    cost, err = fit_family(small + large, compute=False)
    assert cost.bandwidth_bytes_per_s == pytest.approx(30e9, rel=1e-3)
    assert cost.large_bandwidth_bytes_per_s == pytest.approx(7e9, rel=1e-3)
    assert err < 1e-6
    # one bandwidth for both cannot fit them: the error the split removes
    one, err1 = fit_family([(f, b, t, 0) for f, b, t, _ in small + large], compute=False)
    assert one.large_bandwidth_bytes_per_s is None and err1 > 0.05


def test_large_results_are_priced_at_their_own_bandwidth():
    c = FamilyCost(overhead_s=0.0, bandwidth_bytes_per_s=30e9, large_bandwidth_bytes_per_s=6e9)
    w = FamilyWork(2, 0.0, 3 * 10**9, 10**9)   # 2 GB of ordinary ops, 1 GB of large results
    assert c.time_s(w) == pytest.approx(2 / 30 + 1 / 6)
    # without the term (an older profile) every byte is priced at the bandwidth
    assert FamilyCost(bandwidth_bytes_per_s=30e9).time_s(w) == pytest.approx(3 / 30)
    assert (w + w).large_bytes == 2 * 10**9
    assert Work.of({"norm": w}).scaled(2).get("norm").large_bytes == 2 * 10**9


@pytest.mark.parametrize("name", ["dev-host-2core", "dev-host-epyc"])
def test_the_benchmark_profiles_behind_the_docs_tables_load(name):
    from conftest import ROOT
    from edgeplan.formats.device_file import load_device
    d = load_device(ROOT / "benchmarks" / f"{name}.yaml")
    costs = d.family_costs("fp32")
    assert costs is not None and set(costs) == set(FAMILIES)
    assert d.sources["compute.families.fp32"].startswith("[M]")


def test_solve_json_says_how_stage_times_were_obtained(run_cli, tmp_path):
    import json
    model = tmp_path / "m.yaml"
    model.write_text(_model_text())
    cal = tmp_path / "cal.yaml"
    cal.write_text(_device_text())
    doc = json.loads(run_cli("solve", model, "-d", cal, "--json").stdout)
    assert doc["inputs"]["time_model"] == "op-families"
    fam = doc["data"]["chain"]["time_by_family_s"]
    assert set(fam) == {"matmul", "elementwise"} and fam["matmul"] > fam["elementwise"]
    assert sum(fam.values()) == pytest.approx(doc["data"]["chain"]["compute_time_s"])
    doc = json.loads(run_cli("solve", model, "-d", "rpi-4-4gb", "--json").stdout)
    assert doc["inputs"]["time_model"] == "sustained"
    assert doc["data"]["chain"]["time_by_family_s"] is None


def test_devices_show_lists_the_family_costs(run_cli, tmp_path):
    import json
    cal = tmp_path / "cal.yaml"
    cal.write_text(_device_text())
    r = run_cli("devices", "show", cal)
    assert r.exit_code == 0 and "compute.families.fp32.conv" in r.stdout
    assert "FLOPs / 100 GFLOP/s" in r.stdout
    doc = json.loads(run_cli("devices", "show", cal, "--json").stdout)
    assert doc["data"]["device"]["families"]["fp32"]["pool"] == pytest.approx({
        "overhead_s": 1e-5, "flop_rate": None, "bandwidth_bytes_per_s": 1e10,
        "large_bandwidth_bytes_per_s": None, "backward": None})


def test_a_family_priced_apart_in_the_backward_pass():
    """A profile's ``backward`` constants price the work of backward passes only: forward
    passes (and with them every recomputation) keep the family's own price."""
    import json
    slow_bwd = FamilyCost(overhead_s=0.0, flop_rate=50e9, bandwidth_bytes_per_s=5e9)
    costs = {**COSTS, "matmul": FamilyCost(overhead_s=10e-6, flop_rate=100e9,
                                           bandwidth_bytes_per_s=10e9, backward=slow_bwd)}
    text = _device_text(costs)
    assert "matmul: {overhead: 10 us, rate: 100 GFLOP/s, bandwidth: 10 GB/s, backward: " \
           "{overhead: 0 us, rate: 50 GFLOP/s, bandwidth: 5 GB/s}}" in text
    d = _device(costs)
    got = d.family_costs("fp32")
    assert got is not None and got["matmul"].backward == slow_bwd and got["norm"].backward is None
    p = prepare(model_from_text(_model_text()), d)
    # forward as in the test above; backward matmul: 8 GFLOP / 50 G + 0.3 GB / 5 G, no overhead
    assert p.chain.stages[0].fwd_time_s == pytest.approx(3e-5 + 0.04 + 0.01 + 0.01)
    assert p.chain.stages[0].bwd_time_s == pytest.approx(0.16 + 0.06 + 1e-5 + 0.01)
    fam = dict(p.family_time_s)
    assert fam["matmul"] == pytest.approx(3 * (1e-5 + 0.04 + 0.01 + 0.16 + 0.06))
    assert sum(fam.values()) == pytest.approx(p.chain.compute_time_s)
    # a backward set of constants is checked like the family's own
    bad = text.replace("rate: 50 GFLOP/s", "rate: 0 GFLOP/s")
    with pytest.raises(InputError, match=r"families\.fp32\.matmul\.backward\.rate"):
        device_from_data(parse_yaml_text(bad, "cal.yaml"), "cal.yaml")
    r = json.loads(_devices_json(d))
    assert r["matmul"]["backward"]["flop_rate"] == 50e9


def _devices_json(d):  # type: ignore[no-untyped-def]
    import json

    from edgeplan.report.devices_report import device_dict
    return json.dumps(device_dict(d)["families"]["fp32"])


def test_calibration_passes_keep_each_operation_at_its_fastest():
    from edgeplan.calibrate import _fastest_ops
    one = [("conv", 1e9, 10**6, 0.010, 0, False), ("norm", 0.0, 10**6, 0.002, 0, True)]
    two = [("conv", 1e9, 10**6, 0.012, 0, False), ("norm", 0.0, 10**6, 0.001, 0, True)]
    assert _fastest_ops(None, one) == one
    # a slow moment in either pass costs neither operation anything
    assert _fastest_ops(one, two) == [one[0], two[1]]
    assert _fastest_ops(two, one) == [one[0], two[1]]
    # an operation with large results keeps its slower timing: first touch is what a step pays
    big = [("gather", 0.0, 10**8, 0.040, 10**8, True)]
    mapped = [("gather", 0.0, 10**8, 0.005, 10**8, True)]
    assert _fastest_ops(big, mapped) == big and _fastest_ops(mapped, big) == big
    # a network skipped in one pass (no rows) or timed differently: the faster whole step
    assert _fastest_ops([], two) == two and _fastest_ops(two, []) == two
    other = [("conv", 2e9, 10**6, 0.001, 0, False)]
    assert _fastest_ops(one, other) == other and _fastest_ops(other, one) == other
    # the same operation in the other pass is another operation
    moved = [one[0], ("norm", 0.0, 10**6, 0.0005, 0, False)]
    assert _fastest_ops(one, moved) == moved and _fastest_ops(moved, two) == moved


def test_calibration_fits_each_pass_apart_where_it_has_the_operations():
    from edgeplan.calibrate import MIN_PASS_ROWS, fit_families

    def rows(overhead: float, bw: float, n: int) -> list[tuple[float, int, float, int]]:
        return [(0.0, b, overhead + b / bw, 0) for b in (10**4 * 7**k for k in range(n))]
    data: dict = {(f, False): rows(5e-6, 20e9, 8) for f in FAMILIES}
    data["norm", True] = rows(5e-6, 10e9, 8)             # a backward twice as slow per byte
    data["pool", True] = rows(5e-6, 10e9, MIN_PASS_ROWS - 1)   # too few to fit apart
    for f in COMPUTE_FAMILIES:
        data[f, False] = [(fl, b, 1e-5 + fl / 100e9 + b / 8e9, 0)
                          for fl, b in ((1e6, 10**4), (5e7, 2 * 10**6), (2e9, 10**7),
                                        (3e8, 5 * 10**7), (1e5, 10**3), (8e9, 4 * 10**8))]
    costs, errs = fit_families(data)
    norm = costs["norm"]
    assert norm.bandwidth_bytes_per_s == pytest.approx(20e9, rel=1e-3)
    assert norm.backward is not None
    assert norm.backward.bandwidth_bytes_per_s == pytest.approx(10e9, rel=1e-3)
    assert "norm backward" in errs and errs["norm"] < 1e-6
    # too few backward rows: one fit of both passes, no backward constants
    assert costs["pool"].backward is None and "pool backward" not in errs
    assert costs["conv"].backward is None and costs["conv"].flop_rate == pytest.approx(100e9,
                                                                                      rel=1e-3)
    with pytest.raises(InputError, match="measured no random"):
        fit_families({k: v for k, v in data.items() if k[0] != "random"})
    # large results only in the backward's ladder operations: the forward's are priced alike
    small = rows(5e-6, 20e9, 8)
    data["matmul", False] = [(0.0, b, 5e-6 + b / 20e9, 0) for _, b, _, _ in small]
    data["matmul", True] = small + [(0.0, b, 5e-6 + b / 4e9, b) for b in (10**8, 3 * 10**8)]
    mm = fit_families(data)[0]["matmul"]
    assert mm.backward is not None
    assert mm.backward.large_bandwidth_bytes_per_s == pytest.approx(4e9, rel=1e-3)
    assert mm.large_bandwidth_bytes_per_s == mm.backward.large_bandwidth_bytes_per_s
