"""Rendering of ``why.WhyResult`` (``edgeplan why``): the rich table and the JSON document."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..units import format_energy, format_percent, format_size, format_time
from ..why import WhyResult
from ._json import envelope


def why_renderable(result: WhyResult) -> Group:
    """Rich rendering of a ``WhyResult``: the table, training, verdict, assumptions."""
    r = result

    t = Table(title="Per day: ship the data, or train on the edge?", box=box.SIMPLE_HEAD,
              title_justify="left")
    for col, just in (("scenario", "left"), ("sent", "right"), ("uplink", "right"),
                      ("radio", "right"), ("training", "right"), ("total energy", "right")):
        t.add_column(col, justify=just, no_wrap=True)
    for s in r.scenarios:
        train = "0 J" if s.training_j_per_day == 0 else format_energy(s.training_j_per_day)
        t.add_row(s.label, format_size(s.bytes_per_day), format_percent(s.airtime_fraction),
                  format_energy(s.radio_j_per_day), train, format_energy(s.total_j_per_day,
                                                                         wh=True))
    parts: list = [t]
    tr = r.training
    if tr is not None and tr.feasible:
        parts.append(Text(
            f"Training {tr.model} on {tr.device}: {tr.iterations_per_day:,.1f} iterations/day "
            f"(batch {tr.batch}) x {format_time(tr.time_per_iteration_s)} = "
            f"{tr.time_per_day_s / 3600:.2f} h/day of compute, "
            f"{format_energy(tr.energy_per_iteration_j)}/iteration."))
    elif tr is not None:
        parts.append(Text(f"Training {tr.model} on {tr.device}: does not fit (at least "
                          f"{format_size(tr.min_device_memory_bytes)} of device memory)."))
    parts.append(Text(""))
    parts.append(Text(f"Verdict: {r.verdict.line}.", style="bold"))
    parts.append(Text(""))
    parts.append(Text("Assumptions:"))
    notes = Table.grid(padding=(0, 1), pad_edge=True)
    notes.add_column(no_wrap=True)
    notes.add_column(overflow="fold")
    for a in r.assumptions:
        notes.add_row(" -", a)
    parts.append(notes)
    return Group(*parts)


def why_doc(result: WhyResult, inputs: dict | None = None) -> dict:
    """The ``--json`` document of ``edgeplan why``."""
    r = result
    data = {
        "data_bytes_per_s": r.data_bytes_per_s,
        "raw_bytes_per_day": r.scenarios[0].bytes_per_day,
        "model_bytes": r.model_bytes,
        "update": r.update,
        "update_bytes": r.update_bytes,
        "update_period_s": r.update_period_s,
        "radio": {"name": r.radio.name, "title": r.radio.title,
                  "energy_j_per_byte": r.energy_j_per_byte,
                  "uplink_bytes_per_s": r.uplink_bytes_per_s,
                  "energy_source": r.radio.energy_source, "uplink_source": r.radio.uplink_source,
                  "uncertainty": r.radio.uncertainty},
        "scenarios": [s.to_dict() for s in r.scenarios],
        "training": None if r.training is None else r.training.to_dict(),
        "verdict": r.verdict.to_dict(),
        "assumptions": list(r.assumptions),
    }
    return envelope("why", status="ok", exit_code=0, inputs=inputs or {}, data=data)
