"""Rendering of device profiles (``edgeplan devices``, ``devices show``): tables and JSON."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..device import DeviceProfile
from ..units import format_bandwidth, format_flop_rate, format_size, format_time
from ..work import LARGE_RESULT_BYTES, FamilyCost
from ._json import envelope


def devices_table(devices: list[DeviceProfile]) -> Table:
    t = Table(box=box.SIMPLE_HEAD, caption="`edgeplan devices show NAME` for the full profile "
              "and the source of every number", caption_justify="left")
    for name, justify in (("name", "left"), ("memory", "right"), ("usable", "right"),
                          ("sustained", "right"), ("peak", "right"), ("power", "right")):
        t.add_column(name, justify=justify, no_wrap=True)
    t.add_column("storage", overflow="fold")
    for d in devices:
        p = d.precision
        t.add_row(d.name, format_size(d.total_bytes), format_size(d.usable_bytes),
                  format_flop_rate(d.sustained_flops[p]) + ("" if p == "fp32" else f" {p}"),
                  format_flop_rate(d.peak_flops[p]) if p in d.peak_flops else "-",
                  f"{d.training_power_w:g} W", ", ".join(s.name for s in d.storage) or "-")
    return t


def device_detail(d: DeviceProfile) -> Group:
    t = Table(title=f"{d.name}: {d.title}", box=box.SIMPLE_HEAD, title_justify="left")
    t.add_column("key")
    t.add_column("value", justify="right")
    t.add_column("source", overflow="fold")
    src = d.sources

    def row(key: str, value: str) -> None:
        t.add_row(key, value, src.get(key, "-"))

    row("memory.total", format_size(d.total_bytes))
    row("memory.reserved", format_size(d.reserved_bytes))
    if d.bandwidth_bytes_per_s:
        row("memory.bandwidth", format_bandwidth(d.bandwidth_bytes_per_s))
    for p, r in d.peak_flops.items():
        row(f"compute.peak.{p}", format_flop_rate(r))
    for p, r in d.sustained_flops.items():
        row(f"compute.sustained.{p}",
            format_flop_rate(r) + (" (default)" if p == d.precision else ""))
    for p, costs in d.families.items():
        first = True
        for f, c in costs.items():
            key = f"compute.families.{p}"
            t.add_row(f"{key}.{f}", family_cost_text(c), src.get(key, "-") if first else "")
            first = False
    row("power.training", f"{d.training_power_w:g} W")
    if d.idle_power_w is not None:
        row("power.idle", f"{d.idle_power_w:g} W")
    for n, s in enumerate(d.storage):
        pre = f"storage[{n}]"
        row(f"{pre}.read", f"{s.name}: {format_bandwidth(s.read_bytes_per_s)}")
        row(f"{pre}.write", f"{s.name}: {format_bandwidth(s.write_bytes_per_s)}")
        if s.read_latency_s:
            row(f"{pre}.read_latency", format_time(s.read_latency_s))
        if s.write_latency_s:
            row(f"{pre}.write_latency", format_time(s.write_latency_s))
        if s.capacity_bytes:
            row(f"{pre}.capacity", format_size(s.capacity_bytes))
    parts: list = [t, Text(f"usable for training: {format_size(d.usable_bytes)} "
                           f"(total - reserved); file: {d.path}")]
    if d.notes:
        parts.append(Text(d.notes.strip()))
    return Group(*parts)


def family_cost_text(c: FamilyCost) -> str:
    """``5 us + FLOPs / 134 GFLOP/s + bytes / 4.39 GB/s`` (the terms the family has)."""
    parts = [format_time(c.overhead_s)]
    if c.flop_rate:
        parts.append(f"FLOPs / {format_flop_rate(c.flop_rate)}")
    if c.bandwidth_bytes_per_s:
        parts.append(f"bytes / {format_bandwidth(c.bandwidth_bytes_per_s)}")
    text = " + ".join(parts)
    if c.large_bandwidth_bytes_per_s:
        text += (f" (results >= {format_size(LARGE_RESULT_BYTES, precision=0)}: "
                 f"{format_bandwidth(c.large_bandwidth_bytes_per_s)})")
    if c.backward is not None:
        text += f"; backward {family_cost_text(c.backward)}"
    return text


def device_dict(d: DeviceProfile) -> dict:
    return {"name": d.name, "title": d.title, "kind": d.kind, "total_bytes": d.total_bytes,
            "reserved_bytes": d.reserved_bytes, "usable_bytes": d.usable_bytes,
            "bandwidth_bytes_per_s": d.bandwidth_bytes_per_s, "precision": d.precision,
            "peak_flops": d.peak_flops, "sustained_flops": d.sustained_flops,
            "training_power_w": d.training_power_w, "idle_power_w": d.idle_power_w,
            "storage": [{"name": s.name, "read_bytes_per_s": s.read_bytes_per_s,
                         "write_bytes_per_s": s.write_bytes_per_s,
                         "read_latency_s": s.read_latency_s, "write_latency_s": s.write_latency_s,
                         "capacity_bytes": s.capacity_bytes} for s in d.storage],
            "families": {p: {f: _cost_doc(c) for f, c in costs.items()}
                         for p, costs in d.families.items()},
            "sources": d.sources, "path": d.path}


def _cost_doc(c: FamilyCost) -> dict:
    return {"overhead_s": c.overhead_s, "flop_rate": c.flop_rate,
            "bandwidth_bytes_per_s": c.bandwidth_bytes_per_s,
            "large_bandwidth_bytes_per_s": c.large_bandwidth_bytes_per_s,
            "backward": None if c.backward is None else _cost_doc(c.backward)}


def devices_doc(devices: list[DeviceProfile]) -> dict:
    return envelope("devices", status="ok", exit_code=0,
                    data={"devices": [device_dict(d) for d in devices]})


def device_doc(d: DeviceProfile) -> dict:
    return envelope("devices show", status="ok", exit_code=0, data={"device": device_dict(d)})
