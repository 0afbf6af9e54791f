"""Figures for ``--plot out.png|out.svg|out.pdf`` (the optional ``plot`` extra: matplotlib).

matplotlib is imported lazily, only when a figure is drawn; without it the functions raise an
``InputError`` that says ``pip install 'edgeplan[plot]'`` (exit 2 on the command line). Figures
are drawn on a bare ``matplotlib.figure.Figure`` (no pyplot, no global state, no display needed)
and written atomically: saved to a temporary file in the target's folder, then renamed over the
target, so an interrupted run never leaves half a picture. The format comes from the suffix.

* ``plot_plan(plan, path)``: the trade-off curve (activation memory vs recompute overhead, with
  time per iteration on the right axis), the budget as a vertical line, the store-all, minimum
  and chosen points (and each strategy's point when given a ``Pairing``), and the recommended
  schedule's memory per op as a second panel.
* ``plot_compare(pairs, path)``: one panel per (model, device) pairing of ``edgeplan compare``:
  the optimal trade-off curve, every strategy's point, the device's budget line.
* ``plot_timeline(chain, schedule, trace, path)``: which activations are live after each op
  (stages x ops) above the memory per op.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from ..formats._files import atomic_path
from ..units import format_size, format_time

FORMATS = ("png", "svg", "pdf")
DEFAULT_DPI = 100
PLAN_SIZE_IN = (10.0, 7.5)


def require_matplotlib():
    """The ``matplotlib.figure.Figure`` class, or an InputError naming the extra to install."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError("plotting needs matplotlib, which is not installed", param="plot",
                         hint="install edgeplan[plot]: pip install 'edgeplan[plot]'") from None
    return Figure


def plot_format(path: str | os.PathLike) -> str:
    """``png``, ``svg`` or ``pdf`` from the file name's suffix; InputError otherwise."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise InputError(f"cannot tell the picture format from {str(path)!r}; the name must end "
                         f"in {', '.join('.' + f for f in FORMATS)}", param="plot")
    return suffix


def save_figure(fig, path: str | os.PathLike, *, dpi: int = DEFAULT_DPI) -> Path:
    """Write ``fig`` atomically (temporary file in the same folder, then ``os.replace``)."""
    path = Path(path)
    fmt = plot_format(path)
    # No timestamps in SVG/PDF: the same plan gives the same file.
    meta = {"Date": None} if fmt == "svg" else ({"CreationDate": None} if fmt == "pdf" else None)
    import matplotlib

    # a stable svg.hashsalt gives stable SVG ids
    with atomic_path(path, suffix=f".{fmt}") as tmp, \
            matplotlib.rc_context({"svg.hashsalt": "edgeplan"}):
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta)
    return path


# --- helpers --------------------------------------------------------------------------------

def _unit(max_bytes: float) -> tuple[float, str]:
    for label, f in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if max_bytes >= 2 * f:
            return float(f), label
    return 1.0, "B"


def _overhead(cost_s: float, compute_s: float) -> float:
    if compute_s <= 0:
        return 0.0
    r = (cost_s / compute_s - 1.0) * 100.0
    return 0.0 if abs(r) < 1e-7 else r


def _frontier_axes(ax, frontier, compute_s: float, budget: int | None, *, store_all: int | None,
                   chosen=None, strategies: Sequence[tuple[str, int, float, bool]] = (),
                   title: str = "") -> None:
    """Step curve of (peak bytes, overhead %), budget line, marked points, strategy points.

    A budget far right of every point (more than 1.5x) is not drawn to scale, which would squash
    the curve: an arrow at the right edge names it instead."""
    pts = sorted((int(p.peak_bytes), float(p.cost_s)) for p in frontier)
    xs_data = [x for x, _ in pts] + [s[1] for s in strategies]
    data_max = max(xs_data) if xs_data else max(budget or 1, 1)
    budget_drawn = budget is not None and 0 < budget <= 1.5 * data_max
    div, uname = _unit(max(data_max, budget if budget_drawn else 0))
    right = max(data_max, budget if budget_drawn else 0) * 1.05
    if pts:
        xs = [x / div for x, _ in pts]
        ys = [_overhead(c, compute_s) for _, c in pts]
        ax.step(xs + [max(right / div, xs[-1])], ys + [ys[-1]], where="post", color="tab:blue",
                lw=1.8, label="optimal trade-off")
        ax.plot([xs[0]], [ys[0]], "o", mfc="white", mec="tab:blue", ms=7,
                label=f"minimum {format_size(pts[0][0])}")
        sa = next(((x, c) for x, c in pts if x == store_all), None)
        if sa is not None:
            ax.plot([sa[0] / div], [_overhead(sa[1], compute_s)], "o", color="black", ms=6,
                    label=f"store-all {format_size(sa[0])} (no recompute)")
    if chosen is not None:
        ax.plot([chosen[0] / div], [_overhead(chosen[1], compute_s)], "D", color="tab:green",
                ms=8, label=f"chosen: {format_size(chosen[0])}, "
                            f"{_overhead(chosen[1], compute_s):+.1f}%")
    markers = "s^v<>Ph*X"
    for n, (name, peak, cost, fits) in enumerate(strategies):
        ax.plot([peak / div], [_overhead(cost, compute_s)], markers[n % len(markers)],
                ms=7, mfc=None if fits else "white", label=name + ("" if fits else " (over)"))
    if budget_drawn:
        ax.axvline(budget / div, color="tab:red", ls="--", lw=1.2,
                   label=f"budget {format_size(budget)}")
    elif budget is not None and budget > 0:
        ax.annotate(f"budget {format_size(budget)} \u2192", xy=(0.99, 0.5),
                    xycoords="axes fraction", ha="right", va="center", color="tab:red",
                    fontsize=8)
    elif budget is not None:
        ax.text(0.02, 0.04, "does not fit: parameters, gradients and optimizer\nstate alone "
                "exceed the memory", transform=ax.transAxes, va="bottom", color="tab:red",
                fontsize=8)
    ax.set_xlabel(f"activation memory ({uname})")
    ax.set_ylabel("recompute overhead (%)")
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    ax.grid(True, alpha=0.3)
    if compute_s > 0:
        sec = ax.secondary_yaxis("right", functions=(lambda o: compute_s * (1 + o / 100.0),
                                                     lambda t: (t / compute_s - 1) * 100.0))
        sec.set_ylabel("time per iteration (s)")
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=7, loc="upper right", framealpha=0.85)


def _memory_axes(ax, trace, schedule, budget: int | None) -> None:
    tr = list(trace.transient_bytes)
    after = list(trace.memory_after_bytes)
    # a budget far above the peak would flatten the curve: name it instead of drawing it
    budget_drawn = budget is not None and 0 < budget <= 1.5 * max(tr)
    div, uname = _unit(max(tr + ([budget] if budget_drawn else [])))
    n = list(range(1, len(tr) + 1))
    ax.fill_between(n, [v / div for v in after], step="mid", alpha=0.25, color="tab:blue",
                    label="live after the op")
    ax.step(n, [v / div for v in tr], where="mid", color="tab:blue", lw=1.2,
            label="during the op (transient)")
    pk = trace.peak_index if trace.peak_index >= 0 else max(range(len(tr)), key=tr.__getitem__)
    ax.plot([pk + 1], [trace.peak_bytes / div], "v", color="tab:orange", ms=8,
            label=f"peak {format_size(trace.peak_bytes)} at op {pk + 1} ({schedule.ops[pk]})")
    if budget_drawn:
        ax.axhline(budget / div, color="tab:red", ls="--", lw=1.2,
                   label=f"budget {format_size(budget)}")
    elif budget is not None and budget > 0:
        ax.annotate(f"budget {format_size(budget)} (off scale)", xy=(0.99, 0.80),
                    xycoords="axes fraction", ha="right", va="top", color="tab:red",
                    fontsize=8)
    ax.set_xlabel("op")
    ax.set_ylabel(f"activation memory ({uname})")
    ax.set_xlim(0.5, len(tr) + 0.5)
    top = max(tr + ([budget] if budget_drawn else [])) / div
    ax.set_ylim(0, top * 1.35 if top > 0 else 1)  # room for the legend above the data
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=4, framealpha=0.85)


def _pairing_strategies(pairing) -> list[tuple[str, int, float, bool]]:
    out = []
    for c in pairing.cells:
        r = c.result
        if r is None or r.trace is None:
            continue
        out.append((c.strategy, r.trace.peak_bytes, r.trace.cost_s, bool(r.feasible)))
    return out


def _dev_name(device) -> str:
    return "--memory" if device is None else device.name


# --- figures --------------------------------------------------------------------------------

def figure_plan(plan, pairing=None):
    """The figure of ``plot_plan`` (a ``matplotlib.figure.Figure``), not saved."""
    Figure = require_matplotlib()
    fig = Figure(figsize=PLAN_SIZE_IN, layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 2])
    res = plan.result
    chosen = (res.trace.peak_bytes, res.trace.cost_s) if res.feasible and res.trace else None
    m = plan.model
    title = f"{m.name} (batch {m.batch}, {m.length} stages) on {_dev_name(plan.device)}: " \
            f"{format_time(plan.compute_time_s)}/iter without recomputation"
    _frontier_axes(top, res.frontier, plan.compute_time_s, plan.memory.activation_bytes,
                   store_all=plan.store_all_peak_bytes, chosen=chosen,
                   strategies=_pairing_strategies(pairing) if pairing is not None else (),
                   title=title)
    if res.feasible and res.trace is not None and res.schedule is not None:
        _memory_axes(bottom, res.trace, res.schedule, plan.memory.activation_bytes)
        bottom.set_title(f"Recommended schedule ({res.solver}): {len(res.schedule)} ops, "
                         f"{format_time(res.trace.cost_s)}/iter", fontsize=10, loc="left")
    else:
        bottom.axis("off")
        bottom.text(0.5, 0.5, f"No schedule fits {format_size(plan.memory.activation_bytes)} of "
                    "activation memory", ha="center", va="center", color="tab:red")
    return fig


def plot_plan(plan, path: str | os.PathLike, *, pairing=None, dpi: int = DEFAULT_DPI) -> Path:
    """Draw a ``Plan`` (and optionally the strategies of a ``Pairing`` for the same model and
    device) to ``path`` (.png, .svg or .pdf). Returns the path."""
    plot_format(path)  # a bad name fails before any work
    return save_figure(figure_plan(plan, pairing), path, dpi=dpi)


def figure_compare(pairs):
    """The figure of ``plot_compare``, not saved (each pairing's curve is ``Pairing.frontier``:
    compare with ``with_frontier=True``)."""
    Figure = require_matplotlib()
    pairs = list(pairs)
    if not pairs:
        raise InputError("nothing to plot", param="plot")
    n = len(pairs)
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(5.0 * ncols, 3.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, p in enumerate(pairs):
        ax = axes[k // ncols][k % ncols]
        _frontier_axes(ax, p.frontier, p.compute_time_s, p.budget_bytes,
                       store_all=p.store_all_peak_bytes, strategies=_pairing_strategies(p),
                       title=f"{p.model.name} on {_dev_name(p.device)}")
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    return fig


def plot_compare(pairs, path: str | os.PathLike, *, dpi: int = DEFAULT_DPI) -> Path:
    """Draw the ``Pairing`` list of ``edgeplan compare``: one panel per (model, device), each
    with the optimal trade-off curve, every strategy's point and the device's budget line."""
    plot_format(path)
    return save_figure(figure_compare(pairs), path, dpi=dpi)


def figure_timeline(chain, schedule, trace=None, *, budget_bytes: int | None = None):
    """The figure of ``plot_timeline``, not saved."""
    Figure = require_matplotlib()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    from ..simulator import simulate
    from .timeline import live_states

    if trace is None:
        trace = simulate(chain, schedule)
    states, _grad = live_states(chain, schedule)
    fig = Figure(figsize=(10.0, 7.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1.4], sharex=True)
    # rows: stage 0 at the top; columns: ops 1..n
    grid = [[states[n][s] for n in range(len(states))] for s in range(chain.length + 1)]
    cmap = ListedColormap(["white", "#eeeeee", "#c6dbef", "#fdae6b", "#3182bd"])
    top.imshow(grid, aspect="auto", interpolation="nearest", cmap=cmap, vmin=-0.5, vmax=4.5,
               extent=(0.5, len(states) + 0.5, chain.length + 0.5, -0.5))
    top.set_ylabel("stage (0 = input)")
    top.set_title(f"{chain.name}: {len(schedule)} ops; live activations after each op",
                  fontsize=10, loc="left")
    top.legend(handles=[Patch(color="#3182bd", label="A_i recorded (Fall)"),
                        Patch(color="#fdae6b", label="a_i kept (checkpoint)"),
                        Patch(color="#c6dbef", label="a_i on storage"),
                        Patch(color="#eeeeee", label="backward done")],
               fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    top.yaxis.set_major_locator(MaxNLocator(integer=True))
    _memory_axes(bottom, trace, schedule, budget_bytes)
    return fig


def plot_timeline(chain, schedule, trace, path: str | os.PathLike, *,
                  budget_bytes: int | None = None, dpi: int = DEFAULT_DPI) -> Path:
    """Draw which activations are live per op (stages x ops) above the memory per op."""
    plot_format(path)
    return save_figure(figure_timeline(chain, schedule, trace, budget_bytes=budget_bytes), path,
                       dpi=dpi)
