"""Terminal pictures: the trade-off step plot, the schedule timeline, NO_COLOR."""

import re

import pytest
from click.testing import CliRunner

from edgeplan.chain import make_chain
from edgeplan.formats.device_file import load_device
from edgeplan.formats.model_file import load_model
from edgeplan.plan import make_plan
from edgeplan.report.termplot import (
    BUDGET_LINE,
    MARK_CHOSEN,
    MARK_MINIMUM,
    MARK_STORE_ALL,
    frontier_plot,
    group_indices,
    sparkline,
)
from edgeplan.report.timeline import NONE, OUT, REC, live_states, timeline
from edgeplan.schedule import Op, OpKind, Schedule
from edgeplan.simulator import simulate
from edgeplan.solvers.base import FrontierPoint, store_all_schedule


@pytest.fixture
def plan(tiny_model, test_device):
    return make_plan(load_model(tiny_model), load_device(test_device))


def _widths(text: str) -> set[int]:
    return {len(line) for line in text.splitlines()}


def _points(n: int, lo: int = 1000, hi: int = 100_000):
    """A monotone frontier of n points: memory up, cost down to 1.0 s."""
    out = []
    for i in range(n):
        peak = lo + (hi - lo) * i // max(n - 1, 1)
        out.append(FrontierPoint(budget_bytes=peak, peak_bytes=peak, cost_s=1.0 + (n - 1 - i) / n))
    return out


def test_plan_plot_marks_budget_store_all_and_chosen(plan):
    text = frontier_plot(plan, width=70, height=10)
    assert _widths(text) == {70}
    assert BUDGET_LINE in text and MARK_CHOSEN in text and MARK_MINIMUM in text
    assert any(0x2800 <= ord(ch) <= 0x28FF for ch in text)  # braille curve
    assert "+0.0%" in text                                  # the store-all level
    assert "activation memory" in text
    # the y axis shows the largest overhead of the frontier
    ct = plan.compute_time_s
    top = max(p.cost_s for p in plan.result.frontier) / ct - 1
    assert f"{top * 100:+.1f}%" in text


def test_one_point_and_hundreds_keep_the_width():
    one = frontier_plot(_points(1), 5000, compute_time_s=1.0, width=50, height=6)
    assert _widths(one) == {50}
    assert MARK_STORE_ALL in one or MARK_MINIMUM in one
    many = frontier_plot(_points(400), 50_000, compute_time_s=1.0, width=80, height=12)
    assert _widths(many) == {80}
    rows = [line for line in many.splitlines() if "┤" in line or "│" in line]
    assert len(rows) == 12
    assert BUDGET_LINE in many and MARK_STORE_ALL in many


def test_off_scale_budget_is_named_not_drawn():
    text = frontier_plot(_points(20, 1000, 2000), 10**9, compute_time_s=1.0, width=60)
    assert "off scale (right)" in text and BUDGET_LINE not in text.split("\n", 1)[1].split("x:")[0]
    neg = frontier_plot(_points(5), -10, compute_time_s=1.0, width=60)
    assert "no activation budget" in neg and BUDGET_LINE not in neg


def test_block_charset_and_time_axis(plan):
    text = frontier_plot(plan, width=60, height=8, charset="block", y="time")
    assert _widths(text) == {60}
    assert "█" in text and " s" in text and "time/iter" in text


def test_empty_frontier_and_bad_arguments():
    assert "nothing to plot" in frontier_plot([], 100, width=40)
    with pytest.raises(ValueError):
        frontier_plot(_points(3), y="energy")
    with pytest.raises(ValueError):
        frontier_plot(_points(3), charset="ascii-art")


def test_sparkline_and_groups():
    assert sparkline([0, 1, 2, 4, 8]) == " ▁▂▄█"
    assert len(sparkline(list(range(100)), 10)) == 10
    g = group_indices(10, 4)
    assert g[0][0] == 0 and g[-1][1] == 10 and len(g) == 4
    assert all(b - a in (2, 3) for a, b in g)
    assert group_indices(3, 10) == [(0, 1), (1, 2), (2, 3)]


def test_live_states_of_store_all():
    c = make_chain("t", fwd=[1.0] * 3, bwd=[2.0] * 3, out=[4] * 3, saved=[8] * 3, input_bytes=4)
    s = store_all_schedule(c)
    states, grad = live_states(c, s)
    assert states[2] == [OUT, REC, REC, REC]          # after Fall 1..3
    assert states[-1][1:] == [1, 1, 1]                  # every backward done
    assert grad[3] and not grad[-1]                     # d_2 live after B 3; none at the end


def test_timeline_of_a_plan(plan):
    res = plan.result
    text = timeline(plan.chain, res.schedule, res.trace, width=90,
                    budget_bytes=plan.memory.activation_bytes)
    assert _widths(text) == {90}
    lines = text.splitlines()
    assert lines[0].startswith(f"Schedule: {len(res.schedule)} ops")
    assert any(line.startswith("0 input") for line in lines)
    assert any(line.startswith("M ") for line in lines)
    peak = next(line for line in lines if "▲" in line)
    assert "peak" in text and "budget" in text and peak
    # one row per stage for a short chain
    assert sum(1 for line in lines if re.match(r"^\d+ ", line)) == plan.chain.length + 1


def test_timeline_compresses_long_schedules_and_chains():
    L = 150
    c = make_chain("long", fwd=[1.0] * L, bwd=[2.0] * L, out=[10] * L, saved=[30] * L,
                   input_bytes=10)
    s = store_all_schedule(c)
    text = timeline(c, s, width=60, max_rows=20)
    assert _widths(text) == {60}
    assert "1 column = " in text and "ops" in text.splitlines()[0] + text.splitlines()[1]
    stage_rows = [line for line in text.splitlines() if re.match(r"^\d+(-\d+)? ", line)]
    assert len(stage_rows) <= 20
    # memory peaks at the end of the forward: the ▲ sits near the middle of the columns
    marker = next(line for line in text.splitlines() if "▲" in line)
    assert 0.3 < marker.index("▲") / 60 < 0.8


def test_timeline_with_storage_ops():
    from edgeplan.device import StorageTier

    c = make_chain("t", fwd=[1.0] * 2, bwd=[2.0] * 2, out=[4] * 2, saved=[8] * 2, input_bytes=4)
    tier = StorageTier(name="sd", read_bytes_per_s=1e6, write_bytes_per_s=1e6)
    s = Schedule((Op(OpKind.FN, 1), Op(OpKind.W, 1), Op(OpKind.FREE_A, 1), Op(OpKind.R, 1),
                  Op(OpKind.FALL, 2), Op(OpKind.B, 2), Op(OpKind.FREE_S, 1), Op(OpKind.FREE_A, 1),
                  Op(OpKind.FALL, 1), Op(OpKind.B, 1)))
    tr = simulate(c, s, tier=tier)
    text = timeline(c, s, tr, width=50)
    assert "┄" in text.splitlines()[4] or "┄" in text   # a_1 on storage only after free_a 1
    states, _ = live_states(c, s)
    assert states[2][1] not in (NONE, OUT, REC)         # stored only


# --- NO_COLOR -----------------------------------------------------------------------------------

_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def _colour_codes(text: str) -> list[str]:
    """SGR parameters that set a colour (30-49, 90-107), not bold/italic/reset."""
    out = []
    for m in _SGR.finditer(text):
        for p in m.group(1).split(";"):
            if p.isdigit() and (30 <= int(p) <= 49 or 90 <= int(p) <= 107):
                out.append(p)
    return out


def test_no_color_is_respected_even_when_forced(tmp_path):
    """FORCE_COLOR makes rich treat stdout as a terminal; NO_COLOR must still remove colour."""
    from edgeplan.cli import main

    model = str(tmp_path / "m.yaml")
    from conftest import TEST_DEVICE, TINY_MODEL
    (tmp_path / "m.yaml").write_text(TINY_MODEL)
    (tmp_path / "d.yaml").write_text(TEST_DEVICE)
    args = ["solve", model, "--device", str(tmp_path / "d.yaml"), "--memory", "64 MiB"]
    forced = CliRunner(env={"FORCE_COLOR": "1", "NO_COLOR": None, "COLUMNS": "100"})
    r = forced.invoke(main, args)
    assert r.exit_code == 0, r.output
    assert _colour_codes(r.stdout), "the check is void: FORCE_COLOR gave no colour at all"
    plain = CliRunner(env={"FORCE_COLOR": "1", "NO_COLOR": "1", "COLUMNS": "100"})
    r = plain.invoke(main, args)
    assert r.exit_code == 0
    assert _colour_codes(r.stdout) == [], "colour escapes despite NO_COLOR"
    # column layout is the same with and without escapes
    strip = _SGR.sub("", r.stdout)
    assert max(len(line) for line in strip.splitlines()) <= 100


# --- shell completion -----------------------------------------------------------------------------

@pytest.mark.parametrize("shell,needle", [("bash", "_EDGEPLAN_COMPLETE=bash_complete"),
                                          ("zsh", "#compdef edgeplan"),
                                          ("fish", "_EDGEPLAN_COMPLETE=fish_complete")])
def test_completion_scripts(shell, needle):
    from edgeplan.cli import EdgeplanGroup, main
    from edgeplan.cli.completion import completion_cmd

    group = main if "completion" in main.commands else \
        EdgeplanGroup("edgeplan", commands={"completion": completion_cmd})
    r = CliRunner(env={"SHELL": "/bin/" + shell}).invoke(group, ["completion", shell])
    assert r.exit_code == 0, r.output
    assert needle in r.stdout
    guessed = CliRunner(env={"SHELL": "/usr/bin/" + shell}).invoke(group, ["completion"])
    assert guessed.exit_code == 0 and guessed.stdout == r.stdout
    bad = CliRunner(env={"SHELL": "/bin/tcsh"}).invoke(group, ["completion"])
    assert bad.exit_code == 2


def test_completion_round_trip():
    """What the bash script asks, click answers: commands complete from a prefix."""
    from edgeplan.cli import main

    r = CliRunner(env={"_EDGEPLAN_COMPLETE": "bash_complete", "COMP_WORDS": "edgeplan so",
                       "COMP_CWORD": "1"}).invoke(main, [], prog_name="edgeplan")
    assert "plain,solve" in r.stdout.splitlines()
