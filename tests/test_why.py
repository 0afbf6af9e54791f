"""``edgeplan why``: ship the data or train on the edge (numbers, verdicts, CLI)."""

import json

import pytest
from click.testing import CliRunner

from edgeplan import units, why
from edgeplan.errors import InputError, UnitError
from edgeplan.formats.device_file import load_device
from edgeplan.formats.model_file import load_model
from edgeplan.plan import make_plan

DAY = 86400.0


# --- parsing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("2 GB/day", 2e9 / DAY), ("30 KB/s", 30_000.0), ("30 kB/s", 30_000.0),
    ("1 GiB/week", 2**30 / (7 * DAY)), ("500 MB/h", 500e6 / 3600), ("1 MB/2 h", 1e6 / 7200),
    ("0 B/day", 0.0),
])
def test_parse_data_rate(text, expected):
    assert units.parse_data_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["2 Gb/day", "fast", "3 GB", "3 GB/", "/day", "-1 GB/day",
                                  "1 GB/fortnight", "1 GB/0 s"])
def test_parse_data_rate_rejects(text):
    with pytest.raises(UnitError):
        units.parse_data_rate(text)


def test_parse_period_energy_uplink():
    assert units.parse_period("1 day") == DAY
    assert units.parse_period("day") == DAY
    assert units.parse_period("12 h") == 43200.0
    assert units.parse_period("2 weeks") == 14 * DAY
    assert units.parse_period("30 min") == 1800.0
    assert units.parse_period("1.5 s") == 1.5
    with pytest.raises(UnitError):
        units.parse_period("1 fortnight")
    assert units.parse_energy_per_byte("5 uJ/B") == pytest.approx(5e-6)
    assert units.parse_energy_per_byte("1 uJ/bit") == pytest.approx(8e-6)
    assert units.parse_energy_per_byte("40 nJ/bit") == pytest.approx(3.2e-7)
    assert units.parse_energy_per_byte("2e-6") == pytest.approx(2e-6)
    assert units.parse_energy_per_byte(0.5) == 0.5
    for bad in ("5 W", "5 uJ", "-1 uJ/B", "lots"):
        with pytest.raises(UnitError):
            units.parse_energy_per_byte(bad)
    assert units.parse_uplink("1 MB/s") == 1e6
    assert units.parse_uplink("8 Mbit/s") == 1e6
    assert units.parse_uplink("250 kbps") == 31250.0
    with pytest.raises(UnitError):
        units.parse_uplink("fast")


def test_radio_presets_are_sourced_and_tagged():
    assert set(why.RADIOS) >= {"lte", "wifi", "lora"}
    for r in why.RADIOS.values():
        assert r.energy_j_per_byte > 0 and r.uplink_bytes_per_s > 0
        for src in (r.energy_source, r.uplink_source):
            assert any(tag in src for tag in ("[A]", "[M]", "[C]", "[V]")), src
        assert r.uncertainty
    # the ordering every reference agrees on: Wi-Fi < LTE << LoRa per byte
    e = {k: r.energy_j_per_byte for k, r in why.RADIOS.items()}
    assert e["wifi"] < e["lte"] < e["lora"]
    assert why.find_radio("Wi-Fi") is why.RADIOS["wifi"]
    with pytest.raises(InputError, match="did you mean 'lte'"):
        why.find_radio("lte5")


# --- the numbers --------------------------------------------------------------------------------

def test_bytes_only_without_device():
    r = why.analyze(data_bytes_per_s=1e9 / DAY, model_bytes=10_000_000, radio=why.RADIOS["lte"])
    a, b, c = r.scenarios
    assert a.bytes_per_day == 1_000_000_000 and b.bytes_per_day == 10_000_000
    assert c.bytes_per_day == 0
    e = why.RADIOS["lte"].energy_j_per_byte
    assert a.radio_j_per_day == pytest.approx(1e9 * e)
    assert b.radio_j_per_day == pytest.approx(1e7 * e)
    assert b.training_j_per_day is None and b.total_j_per_day is None
    assert a.total_j_per_day == pytest.approx(1e9 * e)
    assert a.airtime_fraction == pytest.approx(1e9 / why.RADIOS["lte"].uplink_bytes_per_s / DAY)
    v = r.verdict
    assert v.choice == "edge" and v.criterion == "bytes"
    assert v.bytes_saved_fraction == pytest.approx(0.99)
    assert v.line.startswith("train on the edge: sends 99% fewer bytes")


def test_update_period_delta_and_overrides():
    r = why.analyze(data_bytes_per_s=1000.0, model_bytes=4_000_000, update="delta",
                    delta_ratio=0.25, update_period_s=12 * 3600, radio=why.RADIOS["wifi"],
                    energy_j_per_byte=1e-6, uplink_bytes_per_s=1e5)
    b = r.scenario("ship-updates")
    assert r.update_bytes == 1_000_000 and b.bytes_per_day == 2_000_000   # twice a day
    assert b.radio_j_per_day == pytest.approx(2.0)
    assert r.scenario("ship-data").airtime_fraction == pytest.approx(1000 * DAY / 1e5 / DAY)
    assert any("(--radio-energy)" in a for a in r.assumptions)
    with pytest.raises(InputError):
        why.analyze(data_bytes_per_s=1.0, model_bytes=1, radio=why.RADIOS["lte"], update="half")
    with pytest.raises(InputError):
        why.analyze(data_bytes_per_s=1.0, model_bytes=1, radio=why.RADIOS["lte"], delta_ratio=0)


def test_training_energy_comes_from_the_plan(tiny_model, test_device):
    m, d = load_model(tiny_model), load_device(test_device)
    plan = make_plan(m, d, memory_bytes=64 * 2**20)
    sample = m.input_bytes // m.batch
    r = why.analyze(data_bytes_per_s=sample * 800 / DAY, model_bytes=m.param_bytes,
                    radio=why.RADIOS["lte"], model=m, device=d, memory_bytes=64 * 2**20)
    tr = r.training
    assert tr.feasible and tr.batch == m.batch
    assert tr.samples_per_day == pytest.approx(800)
    assert tr.iterations_per_day == pytest.approx(800 / m.batch)
    assert tr.time_per_iteration_s == pytest.approx(plan.time_s)
    assert tr.energy_per_day_j == pytest.approx(800 / m.batch * plan.time_s * d.training_power_w)
    b = r.scenario("ship-updates")
    assert b.total_j_per_day == pytest.approx(b.radio_j_per_day + tr.energy_per_day_j)
    assert r.scenario("local-only").total_j_per_day == pytest.approx(tr.energy_per_day_j)
    # passes and batch scale the iterations
    r2 = why.analyze(data_bytes_per_s=sample * 800 / DAY, model_bytes=m.param_bytes,
                     radio=why.RADIOS["lte"], model=m, device=d, memory_bytes=64 * 2**20,
                     passes=3, samples_per_day=800)
    assert r2.training.iterations_per_day == pytest.approx(3 * 800 / m.batch)


def test_verdicts(tiny_model, test_device):
    m, d = load_model(tiny_model), load_device(test_device)
    common = {"model_bytes": m.param_bytes, "model": m, "device": d, "memory_bytes": 64 * 2**20}
    # lots of data, a cheap radio per day of training: energy decides
    lte = why.RADIOS["lte"]
    heavy_radio = why.analyze(data_bytes_per_s=1e5, radio=lte, energy_j_per_byte=1e-3,
                              samples_per_day=10, **common)
    assert heavy_radio.verdict.choice == "edge" and heavy_radio.verdict.criterion == "energy"
    assert "less energy" in heavy_radio.verdict.line
    cheap_radio = why.analyze(data_bytes_per_s=1e5, radio=lte, energy_j_per_byte=1e-12,
                              samples_per_day=10, **common)
    assert cheap_radio.verdict.choice == "ship-data"
    assert "more energy" in cheap_radio.verdict.line and "fewer bytes" in cheap_radio.verdict.line
    by_bytes = why.analyze(data_bytes_per_s=1e5, radio=lte, energy_j_per_byte=1e-12,
                           samples_per_day=10, prefer="bytes", **common)
    assert by_bytes.verdict.choice == "edge"
    assert by_bytes.verdict.line.startswith("train on the edge: sends") and "more energy" in \
        by_bytes.verdict.line
    # the model does not fit: ship the data
    no_fit = why.analyze(data_bytes_per_s=1e5, radio=lte, samples_per_day=10,
                         **dict(common, memory_bytes=1_200_000))
    assert no_fit.verdict.choice == "ship-data" and no_fit.verdict.criterion == "fit"
    # updates larger than the data
    tiny_data = why.analyze(data_bytes_per_s=1.0, radio=lte, samples_per_day=1, **common)
    assert tiny_data.verdict.choice == "ship-data" and tiny_data.verdict.criterion == "updates"
    # too much compute for a day
    busy = why.analyze(data_bytes_per_s=1e5, radio=lte, samples_per_day=1e9, **common)
    assert busy.verdict.criterion == "time" and "cannot keep up" in busy.verdict.line
    # raw data over the uplink, updates within it
    up = why.analyze(data_bytes_per_s=1e6, radio=lte, uplink_bytes_per_s=1e4,
                     samples_per_day=10, **common)
    assert up.verdict.choice == "edge" and up.verdict.criterion == "uplink"
    # local-only compares (c)
    local = why.analyze(data_bytes_per_s=1e5, radio=lte, energy_j_per_byte=1e-3,
                        samples_per_day=10, local_only=True, **common)
    assert "sends nothing" in local.verdict.line


def test_json_doc_is_an_envelope():
    r = why.analyze(data_bytes_per_s=1e4, model_bytes=10**6, radio=why.RADIOS["wifi"])
    from edgeplan.report.why_report import why_doc
    doc = why_doc(r, {"radio": "wifi"})
    assert doc["command"] == "why" and doc["status"] == "ok" and doc["exit_code"] == 0
    data = doc["data"]
    assert [s["scenario"] for s in data["scenarios"]] == ["ship-data", "ship-updates",
                                                          "local-only"]
    assert isinstance(data["scenarios"][0]["bytes_per_day"], int)
    assert data["verdict"]["line"] and data["assumptions"]
    json.dumps(doc)


# --- the command ----------------------------------------------------------------------------------

@pytest.fixture
def run_why():
    from edgeplan.cli import EdgeplanGroup, main
    from edgeplan.cli.why import why_cmd

    group = main if "why" in main.commands else EdgeplanGroup("edgeplan",
                                                              commands={"why": why_cmd})

    def run(*args):
        runner = CliRunner(env={"NO_COLOR": "1", "COLUMNS": "100"})
        return runner.invoke(group, ["why", *map(str, args)], catch_exceptions=False)
    return run


def test_cli_table_and_verdict(run_why, tiny_model, test_device):
    r = run_why("--data-rate", "2 GB/day", "--model", tiny_model, "-d", test_device,
                "--memory", "64 MiB")
    assert r.exit_code == 0, r.output
    for needle in ("(a) ship the raw data", "(b) train, ship the model", "(c) train, send nothing",
                   "Verdict:", "Assumptions:", "Training tiny on testdev"):
        assert needle in r.stdout, needle
    assert r.stderr == ""


def test_cli_json(run_why):
    r = run_why("--data-rate", "30 KB/s", "--model-size", "45 MB", "--radio", "lora", "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["command"] == "why" and doc["data"]["radio"]["name"] == "lora"
    assert doc["data"]["verdict"]["criterion"] == "uplink"
    assert doc["inputs"]["model_size"] == "45 MB"


@pytest.mark.parametrize("args", [
    ["--data-rate", "2 Gb/day", "--model-size", "4 MB"],
    ["--data-rate", "2 GB/day", "--model-size", "4 MB", "--radio", "carrier-pigeon"],
    ["--data-rate", "2 GB/day"],
    ["--data-rate", "2 GB/day", "--model-size", "4 MB", "--model", "m.yaml"],
    ["--data-rate", "2 GB/day", "--model-size", "4 MB", "--update-period", "soon"],
    ["--data-rate", "2 GB/day", "--model-size", "4 MB", "--radio-energy", "5 W"],
    ["--data-rate", "2 GB/day", "--model-size", "4 MB", "--passes", "0"],
    ["--data-rate", "2 GB/day", "--model", "does-not-exist.yaml"],
])
def test_cli_bad_input_exit_2(run_why, args):
    r = run_why(*args)
    assert r.exit_code == 2, r.output
    assert r.stdout == "" or "Usage" in r.output


def test_cli_bad_input_with_json_gives_an_error_document(run_why):
    r = run_why("--data-rate", "lots", "--model-size", "4 MB", "--json")
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["status"] == "error" and doc["command"] == "why"
