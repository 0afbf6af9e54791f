"""Rendering of ``finetune.Finetune`` (``edgeplan finetune``): the table and the JSON document.

Formatting only: every number comes from the library.
"""

from __future__ import annotations

import shlex

from rich import box
from rich.table import Table

from ..finetune import Candidate, Finetune
from ..units import format_energy, format_overhead, format_percent, format_size, format_time
from ._json import envelope


def _stages(c: Candidate) -> str:
    """How many stages train something, of all (their names are in the JSON)."""
    return f"{len(c.training.trained_stages)}/{c.plan.model.length}"


MAX_UNFIT_ROWS = 8


def _pct(fraction: float) -> str:
    """A share for the table: one decimal, ``<0.1%`` below it (the JSON has the fraction)."""
    return "<0.1%" if 0 < fraction < 0.0005 else f"{100 * fraction:.1f}%"


def _rows(ft: Finetune, every: bool) -> list[Candidate]:
    """The front and the recommended candidate; when nothing fits, the candidates (meeting the
    requirement) that need the least memory."""
    if not every and not any(c.feasible for c in ft.candidates):
        pool = [c for c in ft.candidates if c.meets] or list(ft.candidates)
        least = sorted(pool, key=lambda c: (c.plan.min_memory_bytes or 0, -c.trainable_bytes))
        return least[:MAX_UNFIT_ROWS]
    shown = [c for c in ft.candidates if every or c.pareto or c is ft.recommended]
    return sorted(shown, key=lambda c: (-c.trainable_bytes, c.time_per_sample_s or float("inf"),
                                        c.grad_accum))


def finetune_table(ft: Finetune, *, every: bool = False) -> Table:
    """One row per candidate on the front (every candidate with ``every``)."""
    first = ft.candidates[0].plan
    where = first.device.name if first.device is not None else "the given memory"
    t = Table(title=(f"Fine-tuning {first.model.name} on {where}: "
                     f"{format_size(ft.usable_bytes, precision=2)} usable, batch "
                     f"{first.problem.batch}, "
                     f"optimizer {first.model.optimizer}"),
              box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    several = ft.several_models
    for name, justify in (("", "left"), ("--train", "left"),
                          *((("dtype", "left"),) if several else ()), ("accum", "right"),
                          ("trains", "right"), ("stages", "right"), ("peak", "right"),
                          ("time", "right"), ("recomp.", "right"),
                          ("energy", "right")):
        t.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for c in _rows(ft, every):
        mark = "->" if c is ft.recommended else ("*" if c.pareto else "")
        if not c.meets:
            mark += " x"
        per_sample = c.time_per_sample_s
        energy = c.plan.energy_j(per_sample)
        t.add_row(mark, c.train, *((c.precision or "-",) if several else ()),
                  f"{c.grad_accum}x{c.micro_batch}",
                  f"{format_size(c.trainable_bytes)} ({_pct(c.training.trainable_fraction)})",
                  _stages(c),
                  format_size(c.peak_bytes, precision=2) if c.feasible else
                  f"needs {format_size(c.plan.min_memory_bytes, precision=2)}",
                  format_time(per_sample) if c.feasible else "-",
                  format_overhead(c.plan.overhead) if c.feasible else "-",
                  format_energy(energy) if c.feasible and energy is not None else "-")
    legend = ("-> recommended, * on the Pareto front (peak memory, time per sample, trainable "
              "bytes); accum: micro-batches x micro-batch; stages: those that train something; "
              "time and energy per sample")
    if ft.requirement is not None:
        legend += f", x misses --min-trainable {ft.requirement.text}"
    shown = len(_rows(ft, every))
    if shown < len(ft.candidates):
        what = "dominated" if any(c.feasible for c in ft.candidates) else "other"
        legend += f"; {len(ft.candidates) - shown} {what} candidates not shown (--all)"
    t.caption = legend
    t.caption_justify = "left"
    return t


def command_for(c: Candidate, device: str | None) -> str:
    """The ``edgeplan solve`` line that prints the candidate's schedule."""
    parts = ["edgeplan", "solve", c.plan.model.source or "MODEL"]
    parts += ["--device", device] if device else []
    parts += ["--train", c.train]
    if c.plan.precision is not None and c.plan.precision != c.precision:
        parts += ["--precision", c.plan.precision]
    if c.grad_accum > 1:
        parts += ["--grad-accum", str(c.grad_accum)]
    return " ".join(shlex.quote(p) for p in parts)


def summary_lines(ft: Finetune) -> list[str]:
    """What to do: the recommended candidate, or why nothing fits."""
    c = ft.recommended
    if c is not None:
        t = c.training
        return [f"Recommended: --train {c.train}"
                + (f" --grad-accum {c.grad_accum}" if c.grad_accum > 1 else "")
                + (f" ({c.precision}, {c.plan.model.source})" if ft.several_models else "")
                + f": {format_size(t.trainable_bytes)} of {format_size(t.param_bytes)} "
                f"parameters train ({format_percent(t.trainable_fraction)}), peak "
                f"{format_size(c.peak_bytes, precision=2)} of "
                f"{format_size(ft.usable_bytes, precision=2)}, "
                f"{format_time(c.time_per_sample_s)} per sample "
                f"({format_overhead(c.plan.overhead)} recompute)"]
    least = ft.least_memory
    why = ("no candidate fits" if ft.requirement is None else
           f"no candidate that trains {ft.requirement.text} fits")
    if least is None:
        return [f"Nothing to recommend: {why}."]
    return [f"Nothing to recommend: {why} in {format_size(ft.usable_bytes, precision=2)}; the "
            f"least memory is {format_size(least.plan.min_memory_bytes, precision=2)} (--train "
            f"{least.train}"
            + (f" --grad-accum {least.grad_accum}" if least.grad_accum > 1 else "") + ")."]


def candidate_doc(c: Candidate, index: int) -> dict:
    t = c.training
    names = [s.name for s in c.plan.model.stages]
    return {
        "index": index, "train": c.train, "grad_accum": c.grad_accum,
        "model_path": c.plan.model.source, "precision": c.precision,
        "micro_batch": c.micro_batch, "trainable_bytes": t.trainable_bytes,
        "param_bytes": t.param_bytes, "trainable_fraction": t.trainable_fraction,
        "trained_stages": [names[i - 1] for i in t.trained_stages],
        "frozen_prefix": t.frozen_prefix, "computed_modes": list(t.computed),
        "feasible": c.feasible, "meets_requirement": c.meets, "pareto": c.pareto,
        "fixed_bytes": c.plan.memory.fixed_bytes,
        "min_memory_bytes": c.plan.min_memory_bytes, "peak_bytes": c.peak_bytes,
        "time_per_step_s": c.time_per_step_s, "time_per_sample_s": c.time_per_sample_s,
        "overhead": c.plan.overhead if c.feasible else None,
        "energy_per_sample_j": c.plan.energy_j(c.time_per_sample_s) if c.feasible else None,
    }


def finetune_doc(ft: Finetune, exit_code: int) -> dict:
    """The ``finetune --json`` document (docs/json-output.md)."""
    first = ft.candidates[0].plan
    m, d = first.model, first.device
    req = ft.requirement
    rec = next((i for i, c in enumerate(ft.candidates) if c is ft.recommended), None)
    inputs = {"model": {"name": m.name, "path": m.source, "sha256": m.sha256,
                        "batch": first.problem.batch, "stages": m.length,
                        "optimizer": m.optimizer},
              "device": None if d is None else {"name": d.name, "title": d.title,
                                                "path": d.path},
              "usable_bytes": ft.usable_bytes, "precision": first.precision,
              "prefer": ft.prefer,
              "min_trainable": None if req is None else {
                  "text": req.text, "first_stage": None if req.first_stage is None else
                  m.stages[req.first_stage].name if req.first_stage < m.length else None,
                  "fraction": req.fraction, "trainable_bytes": req.trainable_bytes}}
    data = {"feasible": ft.feasible, "recommended": rec,
            "candidates": [candidate_doc(c, i) for i, c in enumerate(ft.candidates)],
            "notes": list(ft.notes)}
    return envelope("finetune", status="ok" if ft.feasible else "infeasible",
                    exit_code=exit_code, inputs=inputs, data=data)
