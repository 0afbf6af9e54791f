"""matplotlib figures (the optional ``plot`` extra): files, sizes, formats, atomic writes."""

import struct
import sys

import pytest

from edgeplan.errors import InputError
from edgeplan.formats.device_file import load_device
from edgeplan.formats.model_file import load_model
from edgeplan.plan import make_plan


@pytest.fixture
def mpl():
    return pytest.importorskip("matplotlib")


@pytest.fixture
def plan(tiny_model, test_device):
    return make_plan(load_model(tiny_model), load_device(test_device))


def png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def not_blank(path) -> bool:
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(str(path))
    return float(np.var(img[..., :3])) > 0


def test_plan_png_has_the_size_and_is_not_blank(mpl, plan, tmp_path):
    from edgeplan.report.figures import PLAN_SIZE_IN, plot_plan

    out = plot_plan(plan, tmp_path / "plan.png", dpi=80)
    assert out.exists()
    assert png_size(out) == (int(PLAN_SIZE_IN[0] * 80), int(PLAN_SIZE_IN[1] * 80))
    assert not_blank(out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file


def test_plan_with_strategies_svg_and_pdf(mpl, plan, tiny_model, test_device, tmp_path):
    from edgeplan.compare import compare_one
    from edgeplan.report.figures import plot_plan

    pairing = compare_one(load_model(tiny_model), load_device(test_device),
                          strategies=("store-all", "sqrt", "revolve", "optimal"))
    svg = plot_plan(plan, tmp_path / "plan.svg", pairing=pairing)
    text = svg.read_text()
    assert "<svg" in text and "revolve" in text and "budget" in text
    pdf = plot_plan(plan, tmp_path / "plan.PDF")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    # same plan, same SVG (no timestamps)
    again = plot_plan(plan, tmp_path / "again.svg", pairing=pairing)
    assert again.read_text() == text


def test_infeasible_plan_still_draws(mpl, tiny_model, test_device, tmp_path):
    from edgeplan.report.figures import plot_plan

    p = make_plan(load_model(tiny_model), load_device(test_device), memory_bytes=1_200_000)
    assert not p.feasible
    out = plot_plan(p, tmp_path / "no.png", dpi=50)
    assert not_blank(out)


def test_compare_one_panel_per_device(mpl, tiny_model, test_device, tmp_path):
    from edgeplan.compare import compare_one
    from edgeplan.report.figures import plot_compare

    dev = load_device(test_device)
    pairs = [compare_one(load_model(tiny_model), dev, strategies=("sqrt", "optimal"),
                         with_frontier=True),
             compare_one(load_model(tiny_model), dev, memory_bytes=8 * 2**20,
                         strategies=("sqrt", "optimal"), with_frontier=True)]
    out = plot_compare(pairs, tmp_path / "cmp.png", dpi=50)
    w, h = png_size(out)
    assert (w, h) == (2 * 5 * 50, int(3.8 * 50))   # two panels side by side
    assert not_blank(out)


def test_timeline_figure(mpl, plan, tmp_path):
    from edgeplan.report.figures import plot_timeline

    r = plan.result
    out = plot_timeline(plan.chain, r.schedule, r.trace, tmp_path / "tl.png",
                        budget_bytes=plan.memory.activation_bytes, dpi=40)
    assert png_size(out) == (400, 280) and not_blank(out)


def test_bad_names_are_input_errors(tmp_path, plan):
    from edgeplan.report.figures import plot_format, plot_plan

    assert plot_format("a/b.SVG") == "svg"
    with pytest.raises(InputError, match=r"must end in \.png, \.svg, \.pdf"):
        plot_plan(plan, tmp_path / "plan.jpg")
    with pytest.raises(InputError):
        plot_format("plan")
    pytest.importorskip("matplotlib")
    with pytest.raises(InputError, match="folder does not exist"):
        plot_plan(plan, tmp_path / "missing" / "plan.png")


def test_missing_matplotlib_names_the_extra(monkeypatch, plan, tmp_path):
    from edgeplan.report import figures as plot

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(InputError) as e:
        plot.plot_plan(plan, tmp_path / "plan.png")
    assert "edgeplan[plot]" in str(e.value)
    assert not (tmp_path / "plan.png").exists()
