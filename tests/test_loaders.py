"""Every kind of bad model/device input: exit 2 and one clear line naming the file and key."""

import pytest

from conftest import TEST_DEVICE, TINY_MODEL
from edgeplan.errors import InputError, ModelError, UnknownNameError
from edgeplan.formats.device_file import find_device, load_device
from edgeplan.formats.model_file import model_from_text

GOOD_STAGE = "{name: s1, fwd_time: 1 ms, out: 1 MiB}"


def model(stages: str = f"[{GOOD_STAGE}]", extra: str = "") -> str:
    return f"format: 1\nname: m\ninput: 1 MiB\n{extra}stages: {stages}\n"


BAD_MODELS = [
    # (case id, file text, substrings expected in the one-line error)
    ("bad-size", model("[{name: s1, fwd_time: 1 ms, out: big}]"),
     ["stages[0].out", 'expected a size like "12 MiB"', "'big'"]),
    ("bits", model("[{name: s1, fwd_time: 1 ms, out: 12 Mb}]"), ["stages[0].out", "bits"]),
    ("negative", model("[{name: s1, fwd_time: 1 ms, out: -3 MiB}]"), ["stages[0].out",
                                                                      "non-negative"]),
    ("nan", model("[{name: s1, fwd_time: .nan, out: 1 MiB}]"), ["stages[0].fwd_time", "finite"]),
    ("bad-time", model("[{name: s1, fwd_time: fast, out: 1 MiB}]"), ["stages[0].fwd_time",
                                                                     "duration"]),
    ("unknown-key", model("[{name: s1, fwd_time: 1 ms, out: 1 MiB, saevd: 2 MiB}]"),
     ["stages[0].saevd", "unknown key", "did you mean 'saved'"]),
    ("unknown-top-key", model(extra="optimiser: adam\n"), ["optimiser",
                                                           "did you mean 'optimizer'"]),
    ("saved-lt-out", model("[{name: s1, fwd_time: 1 ms, out: 2 MiB, saved: 1 MiB}]"),
     ["stages[0].saved", "less than out"]),
    ("empty-chain", model("[]"), ["stages", "no stages"]),
    ("no-cost", model("[{name: s1, out: 1 MiB}]"), ["stages[0]", "fwd_time or fwd_flops"]),
    ("duplicate-names", model(f"[{GOOD_STAGE}, {GOOD_STAGE}]"), ["stages[1]",
                                                                 "duplicate stage name"]),
    ("wrong-type", model("{name: s1}"), ["stages", "expected a list"]),
    ("stage-not-mapping", model("[12]"), ["stages[0]", "expected a mapping"]),
    ("bad-optimizer", model(extra="optimizer: adamm\n"), ["optimizer", "did you mean 'adam'"]),
    ("no-format", "name: m\ninput: 1 MiB\nstages: []\n", ["format", "is required"]),
    ("wrong-format", model().replace("format: 1", "format: 2"), ["format", "unsupported"]),
    ("missing-out", model("[{name: s1, fwd_time: 1 ms}]"), ["stages[0].out", "is required"]),
    ("bad-shape", model(extra="").replace("input: 1 MiB", "input: {shape: [3, -1]}"),
     ["input.shape", "positive"]),
    ("malformed-yaml", "format: 1\nname: [unclosed\n", ["line", "invalid YAML"]),
    ("alias", "format: 1\nname: &n m\ndescription: *n\ninput: 1 MiB\nstages: []\n", ["aliases"]),
    ("not-mapping", "- just\n- a list\n", ["expected a mapping"]),
    ("empty-file", "", ["empty"]),
    ("repeat-zero", model("[{repeat: 0, stages: [" + GOOD_STAGE + "]}]"), ["stages[0].repeat",
                                                                           ">= 1"]),
    ("both-params", model("[{name: s1, fwd_time: 1 ms, out: 1 MiB, params: 1 KiB}]",
                          extra="parameters: 1 MiB\n"), ["parameters", "not both"]),
]


@pytest.mark.parametrize("case,text,needles", BAD_MODELS, ids=[c[0] for c in BAD_MODELS])
def test_bad_model_exit_2_one_line(run_cli, tmp_path, case, text, needles):
    p = tmp_path / f"{case}.yaml"
    p.write_text(text)
    r = run_cli("solve", p, "--memory", "1 GiB")
    assert r.exit_code == 2, r
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r
    assert "Traceback" not in r.stderr
    assert str(p) in lines[0], r
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_non_utf8(run_cli, tmp_path):
    p = tmp_path / "latin1.yaml"
    p.write_bytes(b"format: 1\nname: caf\xe9\n")
    r = run_cli("solve", p, "--memory", "1 GiB")
    assert r.exit_code == 2 and "UTF-8" in r.stderr and str(p) in r.stderr


def test_missing_file(run_cli, tmp_path):
    r = run_cli("solve", tmp_path / "nope.yaml", "--memory", "1 GiB")
    assert r.exit_code == 2 and "no such file" in r.stderr


def test_repeat_expansion_and_names():
    m = model_from_text(TINY_MODEL)
    assert [s.name for s in m.stages][:3] == ["conv1", "block.1.a", "block.1.b"]
    assert m.length == 8
    assert m.input_bytes == 8 * 3 * 32 * 32 * 4
    assert m.param_bytes == (8 + 6 * 36 + 20) * 1024


def test_stage_limit():
    text = model("[{repeat: 20000, stages: [" + GOOD_STAGE.replace("s1", "x") + "]}]")
    with pytest.raises(ModelError, match="more than 10,000 stages"):
        model_from_text(text)


def test_backward_defaults_to_twice_forward(test_device, tmp_path):
    m = model_from_text(TINY_MODEL)
    chain = m.to_chain(load_device(test_device))
    assert chain.stages[0].fwd_time_s == pytest.approx(20e6 / 2e9)
    assert chain.stages[0].bwd_time_s == pytest.approx(2 * 20e6 / 2e9)
    assert chain.stages[-1].fwd_time_s == pytest.approx(1e-3)  # measured time wins


BAD_DEVICES = [
    ("reserve-too-big", TEST_DEVICE.replace("reserved: 1 MiB", "reserved: 8 MiB"),
     ["memory.reserved", "not less than"]),
    ("no-sustained", TEST_DEVICE.replace("sustained: {fp32: 2 GFLOP/s}",
                                         "sustained: {fp16: 2 GFLOP/s}"),
     ["compute.sustained", "fp32"]),
    ("sustained-above-peak", TEST_DEVICE.replace("2 GFLOP/s", "20 GFLOP/s"),
     ["compute.sustained.fp32", "exceeds the peak"]),
    ("unknown-key", TEST_DEVICE.replace("power:", "pwer:"), ["pwer", "did you mean 'power'"]),
    ("bad-bandwidth", TEST_DEVICE.replace("memory: {", "memory: {bandwidth: 10 Gbps, "),
     ["memory.bandwidth", "bits"]),
]


@pytest.mark.parametrize("case,text,needles", BAD_DEVICES, ids=[c[0] for c in BAD_DEVICES])
def test_bad_device(run_cli, tmp_path, tiny_model, case, text, needles):
    p = tmp_path / f"{case}.yaml"
    p.write_text(text)
    r = run_cli("solve", tiny_model, "--device", p)
    assert r.exit_code == 2, r
    line = r.stderr.strip()
    assert "\n" not in line and str(p) in line
    for n in needles:
        assert n in line, (n, line)


def test_unknown_device_did_you_mean():
    with pytest.raises(UnknownNameError) as e:
        find_device("jetson-nan")
    assert "jetson-nano" in e.value.suggestions
    assert "did you mean" in str(e.value)


def test_input_error_is_value_error():
    assert issubclass(InputError, ValueError)
