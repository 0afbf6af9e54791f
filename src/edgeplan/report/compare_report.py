"""Rendering of ``edgeplan compare``: rich tables and the JSON document."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..compare import Pairing
from ..units import format_energy, format_overhead, format_size, format_time
from ._json import envelope
from .plan_report import result_doc


def strategy_table(p: Pairing) -> Table:
    dev = p.device.name if p.device is not None else "--memory"
    t = Table(title=f"{p.model.name} (batch {p.model.batch}) on {dev}: activation budget "
                    f"{format_size(p.budget_bytes)}", box=box.SIMPLE_HEAD, title_justify="left")
    for col, just in (("strategy", "left"), ("fits", "left"), ("peak", "right"),
                      ("overhead", "right"), ("time/iter", "right"), ("energy/iter", "right"),
                      ("needs at least", "right")):
        t.add_column(col, justify=just, no_wrap=True)
    t.add_column("", overflow="fold", min_width=12)
    best = p.best()
    for c in p.cells:
        r = c.result
        if r is None:
            t.add_row(c.strategy, "n/a", "-", "-", "-", "-", "-", c.skipped or "")
            continue
        detail = ", ".join(f"{k}={v}" for k, v in r.params.items() if k in
                           ("segments", "snapshots", "variant", "tier"))
        if r.params.get("offload_used"):
            detail += f", writes {format_size(r.params.get('bytes_written', 0))}/iter"
        elif c.strategy == "offload" and r.feasible:
            detail += ", storage unused"
        t.add_row(c.strategy, "yes" if r.feasible else "NO",
                  format_size(r.peak_bytes) if r.feasible else "-",
                  format_overhead(p.overhead(c)), format_time(r.cost_s),
                  format_energy(p.energy_j(c)),
                  format_size(r.min_budget_bytes) if r.min_budget_bytes is not None else "-",
                  ("best " if c is best else "") + detail)
    return t


def devices_summary(pairs: list[Pairing]) -> Table:
    t = Table(title="Which devices can train it (best strategy at each budget)",
              box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, collapse_padding=True)
    for col, just in (("model", "left"), ("device", "left"), ("act. budget", "right"),
                      ("store-all", "left"), ("best", "left"), ("overhead", "right"),
                      ("time/iter", "right"), ("energy/iter", "right")):
        t.add_column(col, justify=just, no_wrap=True)
    for p in pairs:
        best = p.best()
        dev = p.device.name if p.device is not None else "--memory"
        no_ckpt = "fits" if p.store_all_peak_bytes <= p.budget_bytes else "no"
        if best is None:
            t.add_row(p.model.name, dev, format_size(p.budget_bytes), no_ckpt,
                      "NO", "-", "-", "-")
        else:
            t.add_row(p.model.name, dev, format_size(p.budget_bytes), no_ckpt, best.strategy,
                      format_overhead(p.overhead(best)), format_time(best.result.cost_s),
                      format_energy(p.energy_j(best)))
    return t


def compare_renderable(pairs: list[Pairing], detail: bool) -> Group:
    parts: list = []
    if len(pairs) > 1:
        parts.append(devices_summary(pairs))
    if detail or len(pairs) == 1:
        parts.extend(strategy_table(p) for p in pairs)
    elif len(pairs) > 1:
        parts.append(Text("--detail shows every strategy for every pair", style="dim"))
    return Group(*parts)


def compare_doc(pairs: list[Pairing], exit_code: int, slots: int) -> dict:
    rows = []
    for p in pairs:
        power = p.device.training_power_w if p.device is not None else None
        best = p.best()
        rows.append({
            "model": {"name": p.model.name, "path": p.model.source, "batch": p.model.batch},
            "device": None if p.device is None else p.device.name,
            "memory": p.memory.to_dict(),
            "budget_bytes": p.budget_bytes,
            "compute_time_s": p.compute_time_s,
            "store_all_peak_bytes": p.store_all_peak_bytes,
            "fits_without_checkpointing": p.store_all_peak_bytes <= p.budget_bytes,
            "trainable": best is not None,
            "best": None if best is None else best.strategy,
            "strategies": [
                dict({"strategy": c.strategy, "skipped": c.skipped},
                     **({} if c.result is None else
                        result_doc(c.result, p.compute_time_s, power)))
                for c in p.cells],
        })
    return envelope("compare", status="ok", exit_code=exit_code, inputs={"slots": slots},
                    data={"pairs": rows})
