"""CLI exit codes, stdout/stderr split and the JSON document."""

import json
import os

import pytest

from edgeplan.cli import EXIT_CODES, exit_code_for
from edgeplan.errors import EdgeplanError, InfeasibleError, InputError, ScheduleError
from edgeplan.formats.device_file import load_device
from edgeplan.formats.model_file import load_model
from edgeplan.schedule import Schedule
from edgeplan.simulator import simulate


def test_solve_table(run_cli, tiny_model, test_device):
    r = run_cli("solve", tiny_model, "--device", test_device)
    assert r.exit_code == 0, r
    for needle in ("Memory", "activation budget", "Without checkpointing", "does not fit",
                   "Minimum with checkpointing", "Trade-off", "Recommended schedule", "Fall"):
        assert needle in r.stdout, needle


def test_solve_json_document(run_cli, tiny_model, test_device):
    r = run_cli("solve", tiny_model, "--device", test_device, "--json")
    assert r.exit_code == 0, r
    doc = json.loads(r.stdout)
    assert doc["edgeplan_json"] == 1 and doc["command"] == "solve" and doc["status"] == "ok"
    data = doc["data"]
    mem = data["memory"]
    assert mem["usable_bytes"] == 3 * 2**20
    assert mem["fixed_bytes"] == mem["param_bytes"] * 4  # params + grads + 2x Adam
    assert data["budget_bytes"] == mem["activation_budget_bytes"]
    res = data["result"]
    assert res["feasible"] and res["peak_bytes"] <= data["budget_bytes"]
    assert data["discretization"]["slots"] == 500
    # the schedule in the document replays to the reported peak and cost
    chain = load_model(tiny_model).to_chain(load_device(test_device))
    tr = simulate(chain, Schedule.from_list(res["schedule"]))
    assert tr.peak_bytes == res["peak_bytes"] and tr.cost_s == pytest.approx(res["cost_s"])
    assert {o["op"] for o in res["schedule"]} <= {"Fn", "Fall", "B", "free_a", "free_A"}
    fr = data["frontier"]
    assert fr and all(a["peak_bytes"] < b["peak_bytes"] and a["cost_s"] > b["cost_s"]
                      for a, b in zip(fr, fr[1:]))
    assert res["energy_j"] == pytest.approx(res["cost_s"] * 5.0)


def test_infeasible_exit_1_with_minimum(run_cli, tiny_model, test_device):
    r = run_cli("solve", tiny_model, "--device", test_device, "--memory", "1.5 MiB")
    assert r.exit_code == 1, r
    assert "No schedule fits" in r.stdout
    assert "would be needed" in r.stderr
    r = run_cli("solve", tiny_model, "--device", test_device, "--memory", "1.5 MiB", "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["status"] == "infeasible" and doc["exit_code"] == 1
    assert doc["data"]["result"]["schedule"] is None
    assert doc["data"]["min_activation_bytes"] > doc["data"]["budget_bytes"]


def test_minimum_memory_is_sufficient(run_cli, tiny_model, test_device):
    doc = json.loads(run_cli("solve", tiny_model, "--device", test_device, "--memory", "1.5 MiB",
                             "--json").stdout)
    need = doc["data"]["min_memory_bytes"]
    r = run_cli("solve", tiny_model, "--device", test_device, "--memory", str(need), "--json")
    assert r.exit_code == 0, r
    r = run_cli("solve", tiny_model, "--device", test_device, "--memory", str(need - 1), "--json")
    assert r.exit_code in (0, 1)


def test_params_alone_do_not_fit(run_cli, tiny_model, test_device):
    r = run_cli("solve", tiny_model, "--device", test_device, "--memory", "100 KiB", "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["data"]["budget_bytes"] < 0


def test_usage_errors_exit_2(run_cli, tiny_model, test_device):
    assert run_cli("solve", tiny_model).exit_code == 2           # neither --device nor --memory
    assert run_cli("solve", tiny_model, "--device", test_device, "--slots", "0").exit_code == 2
    r = run_cli("solve", tiny_model, "--device", test_device, "--memory", "lots")
    assert r.exit_code == 2 and "size" in r.stderr
    assert run_cli("nosuchcommand").exit_code == 2


def test_unknown_device(run_cli, tiny_model):
    r = run_cli("solve", tiny_model, "--device", "jetson-nan")
    assert r.exit_code == 2
    assert "did you mean 'jetson-nano'" in r.stderr
    assert r.stderr.count("\n") == 1


def test_error_json_document(run_cli, tiny_model):
    r = run_cli("solve", tiny_model, "--device", "jetson-nan", "--json")
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["status"] == "error" and doc["errors"][0]["code"] == "unknown_name"


def test_flops_need_a_device(run_cli, tiny_model):
    r = run_cli("solve", tiny_model, "--memory", "4 MiB")
    assert r.exit_code == 2 and "FLOPs" in r.stderr


def test_output_file_written(run_cli, tiny_model, test_device, tmp_path):
    out = tmp_path / "plan.json"
    r = run_cli("solve", tiny_model, "--device", test_device, "-o", out)
    assert r.exit_code == 0
    doc = json.loads(out.read_text())
    assert doc["command"] == "solve"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_batch_scaling(run_cli, tiny_model, test_device):
    d8 = json.loads(run_cli("solve", tiny_model, "--device", test_device, "--json").stdout)
    d4 = json.loads(run_cli("solve", tiny_model, "--device", test_device, "--json", "--batch",
                            "4").stdout)
    assert d4["data"]["chain"]["store_all_peak_bytes"] < d8["data"]["chain"]["store_all_peak_bytes"]
    assert d4["data"]["chain"]["input_bytes"] * 2 == d8["data"]["chain"]["input_bytes"]


def test_slots_option_reported(run_cli, tiny_model, test_device):
    doc = json.loads(run_cli("solve", tiny_model, "--device", test_device, "--slots", "50",
                             "--json").stdout)
    assert doc["data"]["discretization"]["slots"] == 50


def test_devices_list_and_show(run_cli):
    r = run_cli("devices")
    assert r.exit_code == 0
    for name in ("rpi-3b-plus", "rpi-4-4gb", "rpi-4-8gb", "rpi-5-8gb", "jetson-nano", "jetson-tx2",
                 "jetson-orin-nano-8gb", "jetson-agx-orin-64gb"):
        assert name in r.stdout
    r = run_cli("devices", "show", "jetson-nano")
    assert r.exit_code == 0 and "memory.total" in r.stdout and "[" in r.stdout
    doc = json.loads(run_cli("devices", "--json").stdout)
    assert len(doc["data"]["devices"]) >= 8
    r = run_cli("devices", "show", "jetson-nan")
    assert r.exit_code == 2 and "did you mean" in r.stderr


def test_version_and_help(run_cli):
    r = run_cli("--version")
    assert r.exit_code == 0 and "edgeplan" in r.stdout
    r = run_cli("solve", "--help")
    assert r.exit_code == 0 and "Example:" in r.stdout


def test_exit_code_table():
    assert exit_code_for(InputError("x")) == 2
    assert exit_code_for(InfeasibleError("x")) == 1
    assert exit_code_for(ScheduleError("x")) == 3
    assert exit_code_for(RuntimeError("x")) == 3
    # every error class maps to a code
    def subclasses(c):
        for s in c.__subclasses__():
            yield s
            yield from subclasses(s)
    for cls in subclasses(EdgeplanError):
        assert exit_code_for(cls.__new__(cls)) in (1, 2, 3)
    assert set(EXIT_CODES.values()) <= {1, 2, 3}


def test_internal_error_exit_3(run_cli, tiny_model, test_device, monkeypatch):
    import edgeplan.plan as plan_mod

    def boom(*a, **k):
        raise RuntimeError("kaboom")
    monkeypatch.setattr(plan_mod, "solve_problem", boom)
    r = run_cli("solve", tiny_model, "--device", test_device)
    assert r.exit_code == 3
    assert "internal error" in r.stderr and "Traceback" not in r.stderr


def test_solve_offload_beats_recompute(run_cli):
    from conftest import ROOT
    # adam-fused: torch's default for-loop Adam step would need 34 MiB beside the input, more
    # than this budget's 25.7 MiB (docs/chain-model.md §2)
    r = run_cli("solve", ROOT / "examples" / "lstm-unrolled.yaml", "--device", "rpi-4-4gb",
                "--memory", "106 MiB", "--offload", "--optimizer", "adam-fused", "--json")
    assert r.exit_code == 0, r
    doc = json.loads(r.stdout)
    off = doc["data"]["offload"]
    assert off["tier"] == "microsd" and off["feasible"]
    assert off["io"]["offload_used"] and off["io"]["bytes_written"] > 0
    assert off["cost_s"] < doc["data"]["result"]["cost_s"]
    assert off["io"]["gain_fraction"] > 0.1
    assert off["endurance"]["days_to_rated"] > 0 and "ASSUMED" in off["endurance"]["assumption"]
    ops = {o["op"] for o in off["schedule"]}
    assert {"W", "R"} <= ops
    r = run_cli("solve", ROOT / "examples" / "lstm-unrolled.yaml", "--device", "rpi-4-4gb",
                "--memory", "106 MiB", "--offload", "--optimizer", "adam-fused")
    assert "faster" in r.stdout and "Flash wear" in r.stdout


def test_offload_flags_need_offload(run_cli, tiny_model, test_device):
    assert run_cli("solve", tiny_model, "--device", test_device, "--async-io").exit_code == 2
    r = run_cli("solve", tiny_model, "--device", test_device, "--offload")
    assert r.exit_code == 2 and "storage tier" in r.stderr


def test_grad_accum_splits_the_batch(run_cli, tiny_model, test_device):
    import json as _json

    full = _json.loads(run_cli("solve", tiny_model, "-d", test_device, "--memory", "64 MiB",
                               "--json").stdout)
    r = run_cli("solve", tiny_model, "-d", test_device, "--memory", "64 MiB", "--json",
                "--grad-accum", "4")
    assert r.exit_code == 0, r
    acc = _json.loads(r.stdout)
    g = acc["data"]["grad_accum"]
    assert (g["micro_batches"], g["micro_batch"], g["batch"]) == (4, 2, 8)
    # activations at the micro-batch (+ each stage's parameter-sized gradient temporary)
    params = acc["data"]["memory"]["param_bytes"]
    a_full = full["data"]["chain"]["store_all_peak_bytes"]
    a_acc = acc["data"]["chain"]["store_all_peak_bytes"]
    assert a_acc < a_full and a_acc <= a_full / 4 + params + 4096
    # the fixed part does not shrink; one optimizer step takes the same compute
    assert acc["data"]["memory"]["fixed_bytes"] == full["data"]["memory"]["fixed_bytes"]
    assert g["time_per_step_s"] == pytest.approx(full["data"]["result"]["cost_s"])
    assert g["time_per_sample_s"] == pytest.approx(g["time_per_step_s"] / 8)
    r = run_cli("solve", tiny_model, "-d", test_device, "--grad-accum", "3")
    assert r.exit_code == 2 and "3 equal micro-batches" in r.stderr
    r = run_cli("solve", tiny_model, "-d", test_device, "--grad-accum", "2", "--max-batch", "8")
    assert r.exit_code == 2
