"""Rendering of a ``batch.BatchPlan`` (``solve --max-batch``): a rich table and the JSON part.

Formatting only; every number comes from the ``BatchPlan``. The JSON part is
``BatchPlan.to_dict()`` (``batch_dict`` here, for symmetry with the other renderers).
"""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..batch import BatchPlan
from ..units import format_energy, format_size, format_time

_LIMITED_BY = {
    "memory": "the next batch does not fit the memory",
    "overhead": "the next batch fits only with more recomputation than the limit",
    "max_batch": "the search range ends there",
}


def batch_table(bp: BatchPlan) -> Group:
    """Representative batch sizes, the largest one within the limits marked, and a verdict line."""
    t = Table(title="Batch size: memory, recomputation and throughput", box=box.SIMPLE_HEAD,
              title_justify="left")
    for name in ("batch", "fits", "min memory", "time/iter", "overhead", "samples/s",
                 "energy/sample"):
        t.add_column(name, justify="left" if name == "fits" else "right", no_wrap=True)
    t.add_column("", no_wrap=True)
    for r in bp.rows:
        if r.batch == bp.best_batch:
            mark = "<- largest"
        elif r.feasible and not r.within_limit:
            mark = "over limit"
        else:
            mark = ""
        t.add_row(str(r.batch), "yes" if r.feasible else "no",
                  format_size(r.min_memory_bytes, precision=2),
                  format_time(r.time_s), "-" if r.overhead is None else f"{r.overhead * 100:+.1f}%",
                  "-" if r.throughput is None else f"{r.throughput:.3g}",
                  format_energy(r.energy_per_sample_j), mark,
                  style="bold" if r.batch == bp.best_batch else None)
    budget = bp.rows[0].activation_budget_bytes if bp.rows else None
    limit = "" if bp.max_overhead is None else f", overhead <= {bp.max_overhead * 100:.1f}%"
    t.caption = (f"activation budget {format_size(budget, precision=2)} at every batch "
                 "(parameters, gradients and optimizer state do not grow with it); "
                 f"batches 1..{bp.max_batch}{limit}")
    t.caption_justify = "left"
    if bp.best_batch is None:
        verdict = Text(f"No batch fits{limit.replace(', ', ' with ')}: not even batch 1.",
                       style="bold red")
    else:
        verdict = Text(f"Largest batch: {bp.best_batch} ({_LIMITED_BY[bp.limited_by]}).",
                       style="bold")
    return Group(t, verdict)


def batch_dict(bp: BatchPlan) -> dict:
    """The JSON part, to go under ``data.batches`` of the solve document."""
    return bp.to_dict()
