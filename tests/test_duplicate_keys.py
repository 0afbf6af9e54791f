"""A key repeated in one mapping is an error in every input file (issue: a stage written
``{..., out: 1 MiB, out: 900 MiB}`` used to plan silently with 900 MiB): exit 2, one line naming
the file, the line and the key. Models and devices are also in the invalid-input corpus
(tests/data/invalid/*/duplicate-*.yaml)."""

from __future__ import annotations

import json

import pytest

from conftest import TEST_DEVICE, TINY_MODEL
from edgeplan.formats.config_file import toml_module

DUP_STAGE = TINY_MODEL.replace("out: 256 KiB, saved: 512 KiB",
                               "out: 256 KiB, saved: 512 KiB, out: 900 MiB")


def _one_line_error(r, *needles):
    assert r.exit_code == 2, r
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("edgeplan: error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def test_model_stage_key(run_cli, tmp_path, test_device):
    assert DUP_STAGE != TINY_MODEL
    p = tmp_path / "m.yaml"
    p.write_text(DUP_STAGE)
    r = run_cli("solve", p, "-d", test_device)
    _one_line_error(r, "m.yaml", "line 7", "duplicate key 'out'", "first at line 7")


def test_model_top_level_key(run_cli, tmp_path, test_device):
    p = tmp_path / "m.yaml"
    p.write_text(TINY_MODEL.replace("name: tiny\n", "name: tiny\nname: other\n"))
    r = run_cli("solve", p, "-d", test_device, "--json")
    _one_line_error(r, "m.yaml", "line 3", "duplicate key 'name'")
    doc = json.loads(r.stdout)  # the JSON promise holds on the error too
    assert doc["status"] == "error" and doc["exit_code"] == 2


def test_device_key(run_cli, tmp_path, tiny_model):
    p = tmp_path / "d.yaml"
    p.write_text(TEST_DEVICE.replace("power: {training: 5 W}",
                                     "power: {training: 5 W, training: 50 W}"))
    r = run_cli("solve", tiny_model, "-d", p)
    _one_line_error(r, "d.yaml", "line 7", "duplicate key 'training'")


def test_config_yaml_key(run_cli, tmp_path, monkeypatch):
    (tmp_path / "tiny.yaml").write_text(TINY_MODEL)
    (tmp_path / "testdev.yaml").write_text(TEST_DEVICE)
    (tmp_path / "edgeplan.yaml").write_text(
        "format: 1\nmodel: tiny.yaml\ndevices: [testdev.yaml]\n"
        "gates: {max_overhead: 90%, max_overhead: 1%}\n")
    monkeypatch.chdir(tmp_path)
    r = run_cli("check")
    _one_line_error(r, "edgeplan.yaml", "line 4", "duplicate key 'max_overhead'")


@pytest.mark.skipif(toml_module() is None, reason="Python 3.10 without tomli")
def test_config_toml_key(run_cli, tmp_path, monkeypatch):
    (tmp_path / "tiny.yaml").write_text(TINY_MODEL)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.edgeplan]\nmodel = "tiny.yaml"\nmemory = "2 MiB"\nmemory = "64 MiB"\n')
    monkeypatch.chdir(tmp_path)
    r = run_cli("check")
    _one_line_error(r, "pyproject.toml", "invalid TOML", "line 4")


def test_plan_json_key(tmp_path):
    from edgeplan.errors import InputError
    from edgeplan.formats.plan_file import load_plan

    p = tmp_path / "plan.json"
    p.write_text('{"edgeplan_json": 1, "command": "solve",\n "data": {"budget_bytes": 10,\n'
                 '  "budget_bytes": 99}}\n')
    with pytest.raises(InputError) as e:
        load_plan(str(p))
    msg = str(e.value)
    assert "plan.json" in msg and "line 3" in msg and "duplicate key 'budget_bytes'" in msg


def test_same_key_in_different_mappings_is_fine(run_cli, tmp_path, test_device):
    p = tmp_path / "m.yaml"
    p.write_text(TINY_MODEL)  # every stage has its own `out`, `saved`, ...
    assert run_cli("solve", p, "-d", test_device).exit_code in (0, 1)
