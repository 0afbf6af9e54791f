"""Unicode plots for the terminal: the memory/recompute trade-off curve as a step plot.

Plain text, no colour, no terminal queries: every line of ``frontier_plot(...)`` is exactly
``width`` characters wide (trailing spaces included), so the picture is the same in a pipe, a
file, a test and a terminal. Braille characters (2x4 dots per cell) give the curve; block
characters (``charset="block"``) give a filled area chart for fonts without braille.

>>> from edgeplan.solvers.base import FrontierPoint as P
>>> pts = [P(budget_bytes=100, peak_bytes=100, cost_s=1.3), P(budget_bytes=300, peak_bytes=300,
...        cost_s=1.0)]
>>> lines = frontier_plot(pts, 200, compute_time_s=1.0, width=40, height=4).splitlines()
>>> {len(line) for line in lines}
{40}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..units import format_size, format_time

# Braille: bit of the dot at (column 0..1, row 0..3) inside one character cell.
_BRAILLE_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
_BLOCKS = " ▁▂▃▄▅▆▇█"

MARK_STORE_ALL = "●"
MARK_CHOSEN = "◆"
MARK_MINIMUM = "○"
BUDGET_LINE = "┆"


@dataclass(frozen=True)
class _Pt:
    x: int            # peak bytes
    cost_s: float


def _points(source) -> tuple[list[_Pt], dict]:
    """``(points, facts)`` from a Plan, a SolveResult or a sequence of frontier points."""
    facts: dict = {}
    frontier = source
    if hasattr(source, "result") and hasattr(source, "chain"):  # a Plan
        frontier = source.result.frontier
        facts["compute_time_s"] = source.compute_time_s
        facts["budget_bytes"] = source.memory.activation_bytes
        facts["store_all_peak_bytes"] = source.store_all_peak_bytes
        res = source.result
        if res.feasible and res.trace is not None:
            facts["chosen"] = _Pt(res.trace.peak_bytes, res.trace.cost_s)
    elif hasattr(source, "frontier"):  # a SolveResult
        frontier = source.frontier
    pts = sorted((_Pt(int(p.peak_bytes), float(p.cost_s)) for p in frontier), key=lambda p: p.x)
    return pts, facts


def frontier_plot(source, budget_bytes: int | None = None, *, width: int = 60, height: int = 12,
                  compute_time_s: float | None = None, y: str = "overhead",
                  charset: str = "braille", store_all_peak_bytes: int | None = None,
                  title: str | None = "Trade-off: activation memory vs recomputation") -> str:
    """The trade-off curve as text: x = activation memory, y = recompute overhead (or time).

    ``source`` is a ``Plan`` (budget, compute time, store-all peak and the chosen schedule are
    taken from it) or a sequence of points with ``peak_bytes`` and ``cost_s`` (a frontier).
    ``budget_bytes`` (default: the plan's activation budget) is drawn as a vertical ``┆``;
    ``●`` marks the store-all point (no recomputation), ``◆`` the schedule chosen for the
    budget (the cheapest point that fits), ``○`` the minimum-memory point. ``y`` is
    ``"overhead"`` (% over ``compute_time_s``, default: the cheapest point's time) or
    ``"time"`` (time per iteration). The curve is a step function: at memory m the cost is that
    of the last point whose peak is <= m; left of the minimum nothing fits (blank).

    Returns ``height`` plot rows plus axis, labels and a legend, every line exactly ``width``
    characters (at least 30).
    """
    if y not in ("overhead", "time"):
        raise ValueError("y must be 'overhead' or 'time'")
    if charset not in ("braille", "block"):
        raise ValueError("charset must be 'braille' or 'block'")
    width = max(int(width), 30)
    height = max(int(height), 2)
    pts, facts = _points(source)
    if budget_bytes is None:
        budget_bytes = facts.get("budget_bytes")
    if compute_time_s is None:
        compute_time_s = facts.get("compute_time_s")
    if store_all_peak_bytes is None:
        store_all_peak_bytes = facts.get("store_all_peak_bytes")
    chosen: _Pt | None = facts.get("chosen")
    lines: list[str] = []
    if title:
        lines.append(title)
    if not pts:
        lines.append("(no trade-off points: nothing to plot)")
        return "\n".join(_fit(line, width) for line in lines)
    if chosen is None and budget_bytes is not None:
        fitting = [p for p in pts if p.x <= budget_bytes]
        chosen = fitting[-1] if fitting else None
    if compute_time_s is None or compute_time_s <= 0:
        compute_time_s = min(p.cost_s for p in pts)

    def yval(cost: float) -> float:
        if y == "time":
            return cost
        r = cost / compute_time_s - 1.0
        return 0.0 if abs(r) < 1e-9 else r

    def ylabel(v: float) -> str:
        return format_time(v) if y == "time" else f"{v * 100:+.1f}%"

    # ---- ranges -------------------------------------------------------------------------
    xs = [p.x for p in pts]
    x0, x1 = min(xs), max(xs)
    span = x1 - x0
    budget_on_scale = False
    if budget_bytes is not None:
        # Widen the axis to the budget when it is near the data; otherwise say it is off scale.
        slack = max(span, x1 * 0.25)
        if budget_bytes >= 0 and x0 - slack <= budget_bytes <= x1 + slack:
            x0, x1 = min(x0, budget_bytes), max(x1, budget_bytes)
            budget_on_scale = True
    if x1 <= x0:  # one point (and the budget on it): centre it
        pad = max(abs(x0) * 0.1, 1)
        x0, x1 = x0 - pad, x1 + pad
    else:
        pad = (x1 - x0) * 0.03
        x0, x1 = x0 - pad, x1 + pad
    ys = [yval(p.cost_s) for p in pts]
    y_lo = 0.0 if y == "overhead" else min(ys)
    y_lo = min(y_lo, min(ys))
    y_hi = max(ys)
    if y_hi - y_lo <= 1e-12:
        y_hi = y_lo + (0.01 if y == "overhead" else max(abs(y_lo) * 0.1, 1e-6))

    top_label, bot_label = ylabel(y_hi), ylabel(y_lo)
    mid_label = ylabel((y_hi + y_lo) / 2) if height >= 6 else ""
    gutter = max(len(top_label), len(bot_label), len(mid_label)) + 1
    cols = width - gutter - 1  # the axis character
    cols = max(cols, 10)
    dots_x, dots_y = (cols * 2, height * 4) if charset == "braille" else (cols, height * 8)

    def dx(v: float) -> int:
        return min(dots_x - 1, max(0, int(round((v - x0) / (x1 - x0) * (dots_x - 1)))))

    def dy(v: float) -> int:  # 0 = bottom
        return min(dots_y - 1, max(0, int(round((v - y_lo) / (y_hi - y_lo) * (dots_y - 1)))))

    def cell_of_x(v: float) -> int:
        return min(cols - 1, dx(v) // (2 if charset == "braille" else 1))

    def cell_of_y(v: float) -> int:  # row index from the top
        return height - 1 - min(height - 1, dy(v) // (4 if charset == "braille" else 8))

    # ---- the curve ----------------------------------------------------------------------
    grid: list[list[str]] = [[" "] * cols for _ in range(height)]
    if charset == "braille":
        bits = [[0] * cols for _ in range(height)]

        def dot(px: int, py: int) -> None:
            row = height - 1 - py // 4
            bits[row][px // 2] |= _BRAILLE_BITS[px % 2][3 - py % 4]

        for i, p in enumerate(pts):
            xa = dx(p.x)
            xb = dx(pts[i + 1].x) if i + 1 < len(pts) else dots_x - 1
            ya = dy(ys[i])
            for px in range(xa, max(xa, xb) + 1):
                dot(px, ya)
            if i + 1 < len(pts):
                yb = dy(ys[i + 1])
                for py in range(min(ya, yb), max(ya, yb) + 1):
                    dot(xb, py)
        for r in range(height):
            for c in range(cols):
                if bits[r][c]:
                    grid[r][c] = chr(0x2800 + bits[r][c])
    else:
        for c in range(cols):
            xv = x0 + (c + 0.5) / cols * (x1 - x0)
            ok = [i for i, p in enumerate(pts) if p.x <= xv]
            if not ok:
                continue
            level = dy(ys[ok[-1]]) + 1  # 1..dots_y eighths
            for r in range(height):
                base = (height - 1 - r) * 8
                fill = min(8, max(0, level - base))
                if fill:
                    grid[r][c] = _BLOCKS[fill]

    # ---- budget line and markers ---------------------------------------------------------
    if budget_on_scale and budget_bytes is not None:
        bc = cell_of_x(budget_bytes)
        for r in range(height):
            if grid[r][bc] == " ":
                grid[r][bc] = BUDGET_LINE
    marks: list[tuple[_Pt, str]] = [(pts[0], MARK_MINIMUM)]
    store_all = None
    if store_all_peak_bytes is not None:
        store_all = next((p for p in pts if p.x == store_all_peak_bytes), None)
    if store_all is None and abs(yval(pts[-1].cost_s)) < 1e-9 and y == "overhead":
        store_all = pts[-1]
    if store_all is not None:
        marks.append((store_all, MARK_STORE_ALL))
    if chosen is not None:
        marks.append((chosen, MARK_CHOSEN))
    chosen_is_store_all = chosen is not None and store_all is not None and \
        chosen.x == store_all.x and abs(chosen.cost_s - store_all.cost_s) < 1e-12
    for p, ch in marks:  # later marks win (chosen over store-all over minimum)
        grid[cell_of_y(yval(p.cost_s))][cell_of_x(p.x)] = ch

    # ---- assemble -----------------------------------------------------------------------
    for r in range(height):
        label = top_label if r == 0 else bot_label if r == height - 1 else \
            mid_label if mid_label and r == (height - 1) // 2 else ""
        axis = "┤" if label else "│"
        lines.append(label.rjust(gutter - 1) + " " + axis + "".join(grid[r]))
    axis_row = [" "] * gutter + ["└"] + ["─"] * cols
    ticks: list[tuple[int, str]] = []
    lo_x, hi_x = min(xs), max(xs)
    ticks.append((cell_of_x(lo_x), format_size(lo_x)))
    if budget_on_scale and budget_bytes is not None:
        ticks.append((cell_of_x(budget_bytes), format_size(budget_bytes)))
    if hi_x != lo_x:
        ticks.append((cell_of_x(hi_x), format_size(hi_x)))
    label_row = [" "] * width
    used_until = -1
    for c, text in sorted(ticks):
        pos = gutter + 1 + c
        axis_row[pos] = "┴" if axis_row[pos] == "─" else axis_row[pos]
        start = max(pos - len(text) // 2, used_until + 2, 0)
        start = min(start, width - len(text))
        if start <= used_until:
            continue  # would overlap its neighbour
        label_row[start:start + len(text)] = list(text)
        used_until = start + len(text) - 1
    lines.append("".join(axis_row))
    lines.append("".join(label_row))
    what = "recompute overhead" if y == "overhead" else "time/iter"
    legend = [f"x: activation memory, y: {what}"]
    if budget_bytes is not None:
        if budget_on_scale:
            legend.append(f"{BUDGET_LINE} budget")
        elif budget_bytes < 0:
            legend.append("no activation budget (the fixed part exceeds the memory)")
        else:
            side = "right" if budget_bytes > max(xs) else "left"
            legend.append(f"budget {format_size(budget_bytes)} off scale ({side})")
    if chosen_is_store_all:
        legend.append(f"{MARK_CHOSEN} chosen = store-all")
    else:
        if chosen is not None:
            legend.append(f"{MARK_CHOSEN} chosen")
        if store_all is not None:
            legend.append(f"{MARK_STORE_ALL} store-all")
    legend.append(f"{MARK_MINIMUM} minimum")
    lines.extend(_wrap_legend(legend, width))
    return "\n".join(_fit(line, width) for line in lines)


def _wrap_legend(items: list[str], width: int) -> list[str]:
    out, cur = [], ""
    for it in items:
        nxt = it if not cur else cur + "  " + it
        if len(nxt) > width and cur:
            out.append(cur)
            cur = it
        else:
            cur = nxt
    if cur:
        out.append(cur)
    return out


def _fit(line: str, width: int) -> str:
    return line[:width].ljust(width)


def sparkline(values: Sequence[float], width: int | None = None, *, top: float | None = None,
              reduce=max) -> str:
    """One row of block characters ``▁..█`` for ``values`` (0 = blank), ``top`` = full height.

    With ``width`` smaller than ``len(values)``, consecutive values are grouped into
    ``width`` columns and each column shows ``reduce`` (default max) of its group.
    """
    vals = list(values)
    if not vals:
        return ""
    groups = group_indices(len(vals), width or len(vals))
    col = [reduce(vals[a:b]) for a, b in groups]
    hi = top if top is not None else max(col)
    out = []
    for v in col:
        if hi <= 0 or v <= 0:
            out.append(" " if v <= 0 else _BLOCKS[1])
        else:
            out.append(_BLOCKS[max(1, min(8, int(math.ceil(v / hi * 8 - 1e-9))))])
    return "".join(out)


def group_indices(n: int, columns: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into ``min(n, columns)`` consecutive ``(start, stop)`` groups of
    near-equal size (sizes differ by at most one)."""
    c = max(1, min(n, columns))
    return [(i * n // c, (i + 1) * n // c) for i in range(c)]
