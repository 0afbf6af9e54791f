"""A text picture of a schedule: which activations are live after each op, and memory per op.

Rows are the stages (``a_0`` the input, then stage 1..L), columns are ops in order; a long
schedule is compressed by grouping consecutive ops into one column (each column then shows the
strongest state any of its ops left, and the highest memory). Glyphs:

* ``█`` ``A_i`` live: stage i ran a recording forward (``Fall``); its saved tensors wait for ``B i``
* ``━`` ``a_i`` live: only the stage's output is kept (a checkpoint, from ``Fn`` or ``R``)
* ``┄`` ``a_i`` is on the storage tier only (written by ``W``, not in memory)
* ``·`` the backward of the stage has run

The top row gives the op kind of each column (``F`` Fall, ``f`` Fn, ``B`` backward, ``W``/``R``
storage write/read, ``-`` a free); the ``d`` row shows when a gradient ``d_k`` (k = 1..L-1) is
live; the ``M`` row is a sparkline of the memory each op needs (its transient peak, as the
simulator accounts it), with the peak marked underneath.

Every line is exactly ``width`` characters wide.
"""

from __future__ import annotations

from ..chain import Chain
from ..schedule import OpKind, Schedule
from ..simulator import Trace, simulate
from ..units import format_size
from .termplot import _BLOCKS, _fit, _wrap_legend, group_indices

NONE, DONE, STORED, OUT, REC = 0, 1, 2, 3, 4
GLYPH = {NONE: " ", DONE: "·", STORED: "┄", OUT: "━", REC: "█"}
_KIND_CHAR = {OpKind.B: "B", OpKind.FALL: "F", OpKind.FN: "f", OpKind.R: "R", OpKind.W: "W",
              OpKind.FREE_A: "-", OpKind.FREE_ALL: "-", OpKind.FREE_S: "-"}
_KIND_RANK = {"B": 6, "F": 5, "f": 4, "R": 3, "W": 2, "-": 1}


def live_states(chain: Chain, schedule: Schedule) -> tuple[list[list[int]], list[bool]]:
    """Replay the liveness of ``schedule`` (assumed valid: the simulator judged it).

    Returns ``(states, grad)``: ``states[n][i]`` is the state of stage ``i`` (0..L) after op
    ``n`` (``NONE``, ``DONE``, ``STORED``, ``OUT``, ``REC``); ``grad[n]`` whether a gradient of
    non-zero size (``d_k``, 1 <= k <= L-1) is live after op ``n``.
    """
    L = chain.length
    live_a, live_A, stored = {0}, set(), set()
    k = L
    states: list[list[int]] = []
    grad: list[bool] = []
    for op in schedule.ops:
        i, kind = op.stage, op.kind
        if kind is OpKind.FN or kind is OpKind.R:
            live_a.add(i)
        elif kind is OpKind.FALL:
            live_A.add(i)
        elif kind is OpKind.B:
            live_A.discard(i)
            k = i - 1
        elif kind is OpKind.FREE_A:
            live_a.discard(i)
        elif kind is OpKind.FREE_ALL:
            live_A.discard(i)
        elif kind is OpKind.W:
            stored.add(i)
        elif kind is OpKind.FREE_S:
            stored.discard(i)
        row = []
        for s in range(L + 1):
            if s in live_A:
                row.append(REC)
            elif s in live_a:
                row.append(OUT)
            elif s in stored:
                row.append(STORED)
            elif s > k:
                row.append(DONE)
            else:
                row.append(NONE)
        states.append(row)
        grad.append(1 <= k <= L - 1)
    return states, grad


def timeline(chain: Chain, schedule: Schedule, trace: Trace | None = None, *, width: int = 100,
             max_rows: int = 40, budget_bytes: int | None = None, memory_rows: int = 1,
             legend: bool = True) -> str:
    """The schedule as text (see the module doc). ``trace`` defaults to ``simulate(chain,
    schedule)`` (give it for schedules with storage ops). With more than ``max_rows`` stages,
    consecutive stages share a row (showing the strongest state among them). ``memory_rows``
    is the height of the memory chart (1: a sparkline), scaled to the peak; ``budget_bytes`` is
    named beside the peak."""
    if trace is None:
        trace = simulate(chain, schedule)
    width = max(int(width), 30)
    L = chain.length
    n_ops = len(schedule.ops)
    names = ["input"] + [s.name for s in chain.stages]
    row_groups = group_indices(L + 1, max(2, max_rows))
    labels = []
    for a, b in row_groups:
        if b - a == 1:
            lab = f"{a} {names[a]}" if a else "0 input"
        else:
            lab = f"{a}-{b - 1}"
        labels.append(lab)
    gutter = min(max(len(x) for x in labels + ["M", "op"]), 16) + 1
    cols_avail = width - gutter
    if n_ops == 0:
        return _fit("(empty schedule)", width)
    groups = group_indices(n_ops, cols_avail)
    per = n_ops / len(groups)
    states, grad = live_states(chain, schedule)
    lines: list[str] = []
    span = "1 column = 1 op" if len(groups) == n_ops else f"1 column = {per:.3g} ops"
    head = f"Schedule: {n_ops} ops on {L} stages; {span}"
    lines.extend([head] if len(head) <= width else head.split("; "))
    # ruler
    ruler = [" "] * len(groups)
    c = 0
    while c < len(groups):
        text = str(groups[c][0] + 1)
        if c + len(text) <= len(groups):
            ruler[c:c + len(text)] = list(text)
        c += 10
    lines.append("op".ljust(gutter) + "".join(ruler))
    kinds = []
    for a, b in groups:
        chars = {_KIND_CHAR[o.kind] for o in schedule.ops[a:b]}
        kinds.append(max(chars, key=_KIND_RANK.__getitem__))
    lines.append("".ljust(gutter) + "".join(kinds))
    for (ra, rb), lab in zip(row_groups, labels):
        cells = []
        for a, b in groups:
            st = max(states[n][s] for n in range(a, b) for s in range(ra, rb))
            cells.append(GLYPH[st])
        lines.append(_fit(lab, gutter - 1) + " " + "".join(cells))
    lines.append("d".ljust(gutter) + "".join("░" if any(grad[a:b]) else " " for a, b in groups))
    # memory chart: per column the largest transient of its ops
    tr = list(trace.transient_bytes)
    col_mem = [max(tr[a:b]) for a, b in groups]
    top = max(trace.peak_bytes, max(col_mem))
    h = max(1, int(memory_rows))
    for r in range(h):
        base = (h - 1 - r) * 8
        row = []
        for v in col_mem:
            level = 0 if top <= 0 else max(1 if v > 0 else 0, int(-(-v * 8 * h // top)))
            fill = min(8, max(0, level - base))
            row.append(_BLOCKS[fill])
        lab = "M" if r == h - 1 else ""
        lines.append(lab.ljust(gutter) + "".join(row))
    pk = trace.peak_index if trace.peak_index >= 0 else (tr.index(max(tr)) if tr else 0)
    pc = next((c for c, (a, b) in enumerate(groups) if a <= pk < b), 0)
    note = f"peak {format_size(trace.peak_bytes)} at op {pk + 1}"
    if 0 <= pk < n_ops:
        note += f" ({schedule.ops[pk]})"
    if budget_bytes is not None:
        note += f"; budget {format_size(budget_bytes)}"
    marker = [" "] * cols_avail
    marker[pc] = "▲"
    if pc + 2 + len(note) <= cols_avail:
        marker[pc + 2:pc + 2 + len(note)] = list(note)
        lines.append("".ljust(gutter) + "".join(marker))
    else:
        lines.append("".ljust(gutter) + "".join(marker))
        lines.extend(_wrap_legend(note.split("; "), width))
    if legend:
        lines.extend(_wrap_legend(["█ A_i recorded", "━ a_i kept", "┄ a_i on storage",
                                   "· backward done", "░ gradient live", "M memory per op"],
                                  width))
    return "\n".join(_fit(line, width) for line in lines)
