"""Interrupts, atomic output, resource limits."""

import os

import pytest

from edgeplan.errors import LimitError
from edgeplan.formats._files import write_atomic
from edgeplan.solvers.dp_kernel import MAX_TABLE_CELLS, table_cells


def test_ctrl_c_exits_130_without_traceback(run_cli, tiny_model, test_device, monkeypatch):
    import edgeplan.plan as plan_mod

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(plan_mod, "solve_problem", interrupted)
    r = run_cli("solve", tiny_model, "--device", test_device)
    assert r.exit_code == 130
    assert "interrupted" in r.stderr and "Traceback" not in r.stderr


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "plan.json"
    target.write_text("old")

    def boom(fd):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new" * 1000)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["plan.json"]


def test_interrupted_solve_leaves_no_plan(run_cli, tiny_model, test_device, tmp_path, monkeypatch):
    import edgeplan.plan as plan_mod

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(plan_mod, "solve_problem", interrupted)
    out = tmp_path / "plan.json"
    r = run_cli("solve", tiny_model, "--device", test_device, "-o", out)
    assert r.exit_code == 130 and not out.exists()


def test_time_limit_stops_cleanly(run_cli, tmp_path):
    p = tmp_path / "long.yaml"
    p.write_text("format: 1\nname: long\ninput: 1 MiB\nstages:\n" + "".join(
        f"  - {{name: s{i}, fwd_time: {1 + i % 7} ms, out: {1 + i % 5} MiB, "
        f"saved: {3 + i % 5} MiB}}\n"
        for i in range(300)))
    r = run_cli("solve", p, "--memory", "200 MiB", "--time-limit", "0.01 s")
    assert r.exit_code == 2, r
    assert "time limit" in r.stderr and r.stderr.count("\n") == 1


def test_huge_table_refused_up_front(run_cli, tmp_path):
    L = 2000
    assert table_cells(L, 100_000) > MAX_TABLE_CELLS
    p = tmp_path / "big.yaml"
    p.write_text("format: 1\nname: big\ninput: 1 MiB\nstages:\n  - repeat: 2000\n    stages: "
                 "[{name: s, fwd_time: 1 ms, out: 1 MiB, saved: 2 MiB}]\n")
    r = run_cli("solve", p, "--memory", "3 GiB", "--slots", "100000")
    assert r.exit_code == 2, r
    assert "fewer --slots" in r.stderr


def test_limit_error_maps_to_exit_2():
    from edgeplan.cli import exit_code_for
    assert exit_code_for(LimitError("x")) == 2
