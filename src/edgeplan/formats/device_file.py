"""Device format 1 (docs/device-format.md): YAML -> ``DeviceProfile``, and the built-in profiles.

The format is documented in docs/device-format.md. Every error is an
``InputError`` that names the file and the key path and says what was expected; unknown keys are
rejected with a did-you-mean.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import units
from ..device import DEVICE_KINDS, PRECISIONS, DeviceProfile, StorageTier
from ..errors import InputError, ModelError, UnknownNameError
from ..work import COMPUTE_FAMILIES, FALLBACK_FAMILIES, FAMILIES, LARGE_RESULT_BYTES, FamilyCost
from ._yaml import Node, check_format, read_yaml

FORMAT_VERSION = 1

DEVICE_KEYS = ("format", "name", "title", "kind", "memory", "compute", "power", "storage",
               "sources", "notes")
TIER_KEYS = ("name", "read", "write", "read_latency", "write_latency", "capacity")


def builtin_profile_dir() -> Path:
    """Shipped profiles: inside the installed package, or the repository's top-level profiles/."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "profiles"
    if packaged.is_dir():
        return packaged
    return here.parent.parent / "profiles"


def builtin_devices() -> dict[str, Path]:
    d = builtin_profile_dir()
    return {p.stem: p for p in sorted(d.glob("*.yaml"))} if d.is_dir() else {}


def find_device(name_or_path: str) -> DeviceProfile:
    """A built-in profile by name, or a profile file by path."""
    builtin = builtin_devices()
    if name_or_path in builtin:
        return load_device(builtin[name_or_path])
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or "/" in name_or_path or p.exists():
        return load_device(p)
    raise UnknownNameError.for_name(
        "device", name_or_path, builtin, param="device",
        otherwise="run `edgeplan devices` for the list, or pass a profile file path")


def load_device(path: str | Path) -> DeviceProfile:
    src = str(path)
    data = read_yaml(path)
    if data is None:
        raise InputError("the file is empty; expected a device profile", source=src)
    return device_from_data(data, src)


def device_from_data(data: Any, src: str) -> DeviceProfile:
    top = Node(data, src, "", DEVICE_KEYS)
    check_format(top, FORMAT_VERSION)
    name = top.text("name", required=True)
    mem = top.child("memory", ("total", "reserved", "bandwidth"), required=True)
    total = mem.get("total", units.parse_size, required=True)
    reserved = mem.get("reserved", units.parse_size, 0)
    if total <= 0:
        raise mem.error("total", "must be more than 0 bytes", ModelError)
    if reserved >= total:
        raise mem.error("reserved", f"is {units.format_size(reserved)}, not less than the "
                                    f"device's total memory ({units.format_size(total)})",
                        ModelError)
    comp = top.child("compute", ("precision", "peak", "sustained", "families"), required=True)
    precision = comp.choice("precision", PRECISIONS, "fp32")
    peak = _rates(comp.child("peak", PRECISIONS))
    sustained = _rates(comp.child("sustained", PRECISIONS, required=True))
    if precision not in sustained:
        raise comp.error("sustained", f"needs a figure for the default precision {precision}",
                         ModelError)
    for p, r in sustained.items():
        if r <= 0:
            raise comp.error(f"sustained.{p}", "must be more than 0 FLOP/s", ModelError)
        if p in peak and r > peak[p] * (1 + 1e-9):
            raise comp.error(f"sustained.{p}", f"({units.format_flop_rate(r)}) exceeds the peak "
                                               f"({units.format_flop_rate(peak[p])})", ModelError)
    families = _families(comp.child("families", PRECISIONS))
    power = top.child("power", ("training", "idle"), required=True)
    training_w = power.get("training", units.parse_power, required=True)
    storage = []
    for where, item in top.items("storage"):
        t = Node(item, src, where, TIER_KEYS)
        read = t.get("read", units.parse_bandwidth, required=True)
        write = t.get("write", units.parse_bandwidth, required=True)
        if read <= 0 or write <= 0:
            raise t.error("read" if read <= 0 else "write", "must be more than 0 B/s", ModelError)
        storage.append(StorageTier(name=t.text("name", required=True), read_bytes_per_s=read,
                                   write_bytes_per_s=write,
                                   read_latency_s=t.get("read_latency", units.parse_time, 0.0),
                                   write_latency_s=t.get("write_latency", units.parse_time, 0.0),
                                   capacity_bytes=t.get("capacity", units.parse_size)))
    sources_raw = top.raw("sources") or {}
    if not isinstance(sources_raw, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in sources_raw.items()):
        raise top.error("sources", "expected a mapping of key path -> source text")
    return DeviceProfile(
        name=name, title=top.text("title", name) or name,
        kind=top.choice("kind", DEVICE_KINDS, "cpu"), total_bytes=total, reserved_bytes=reserved,
        precision=precision, peak_flops=peak, sustained_flops=sustained,
        training_power_w=training_w, idle_power_w=power.get("idle", units.parse_power),
        bandwidth_bytes_per_s=mem.get("bandwidth", units.parse_bandwidth),
        storage=tuple(storage), sources=dict(sources_raw),
        notes=(top.text("notes", "") or ""), path=src, families=families)


def _families(node: Node | None) -> dict[str, dict[str, FamilyCost]]:
    """``compute.families.<precision>.<family>: {overhead, rate, bandwidth, large_bandwidth}``
    (edgeplan.work): every family of ``FAMILIES`` for each precision listed (those of
    ``FALLBACK_FAMILIES`` may be left out: priced as their parent family); ``rate`` for the
    compute families only; a missing ``rate`` or ``bandwidth`` costs nothing (calibrate found no
    such term); without ``large_bandwidth`` the bytes of operations with large results are
    priced at ``bandwidth``."""
    if node is None:
        return {}
    out: dict[str, dict[str, FamilyCost]] = {}
    for p in node.data:
        per = node.child(p, FAMILIES, required=True)
        missing = [f for f in FAMILIES if f not in per.data and f not in FALLBACK_FAMILIES]
        if missing:
            raise per.error(None, f"needs every op family (missing: {', '.join(missing)}); "
                                  "`edgeplan calibrate` writes them all")
        costs = {}
        for f in FAMILIES:
            if f not in per.data:  # a FALLBACK_FAMILIES one: priced as its parent family
                continue
            keys = ("overhead", "rate", "bandwidth", "large_bandwidth") \
                if f in COMPUTE_FAMILIES else ("overhead", "bandwidth", "large_bandwidth")
            c = per.child(f, (*keys, "backward"), required=True)
            bwd = c.child("backward", keys)
            costs[f] = replace(_family_cost(c), backward=None if bwd is None
                               else _family_cost(bwd))
        for f, parent in FALLBACK_FAMILIES.items():
            costs.setdefault(f, costs[parent])
        out[p] = {f: costs[f] for f in FAMILIES}
    return out


def _family_cost(c: Node) -> FamilyCost:
    overhead = c.get("overhead", units.parse_time, 0.0)
    rate = c.get("rate", units.parse_flop_rate)
    bw = c.get("bandwidth", units.parse_bandwidth)
    large_bw = c.get("large_bandwidth", units.parse_bandwidth)
    for key, v in (("overhead", overhead), ("rate", rate), ("bandwidth", bw),
                   ("large_bandwidth", large_bw)):
        if (v is not None and not (0 <= v < math.inf)) or (key != "overhead" and v == 0):
            raise c.error(key, "must be a finite number more than 0" if key != "overhead"
                          else "must be finite and not negative", ModelError)
    return FamilyCost(overhead_s=overhead, flop_rate=rate, bandwidth_bytes_per_s=bw,
                      large_bandwidth_bytes_per_s=large_bw)


def _family_cost_yaml(c: FamilyCost) -> str:
    parts = [f"overhead: {c.overhead_s * 1e6:.4g} us"]
    if c.flop_rate:
        parts.append(f"rate: {c.flop_rate / 1e9:.4g} GFLOP/s")
    if c.bandwidth_bytes_per_s:
        parts.append(f"bandwidth: {c.bandwidth_bytes_per_s / 1e9:.4g} GB/s")
    if c.large_bandwidth_bytes_per_s:
        parts.append(f"large_bandwidth: {c.large_bandwidth_bytes_per_s / 1e9:.4g} GB/s")
    if c.backward is not None:
        parts.append(f"backward: {_family_cost_yaml(c.backward)}")
    return f"{{{', '.join(parts)}}}"


def _rates(node: Node | None) -> dict[str, float]:
    if node is None:
        return {}
    out = {}
    for p in node.data:
        v = node.get(p, units.parse_flop_rate)
        if v is not None:
            if math.isinf(v):
                raise node.error(p, "must be finite")
            out[p] = v
    return out


def device_yaml(*, name: str, title: str, kind: str, total_bytes: int, reserved_bytes: int,
                bandwidth_bytes_per_s: float | None, precision: str,
                sustained_flops: dict[str, float], training_power_w: float,
                storage: list[dict] | None = None, sources: dict[str, str] | None = None,
                notes: str = "", header: str = "",
                families: dict[str, dict[str, FamilyCost]] | None = None) -> str:
    """Device format 1 text (``find_device`` reads it back): sizes in exact bytes, rates with
    four significant digits, every ``sources`` entry quoted."""
    from .model_file import quoted

    out = [f"# {ln}".rstrip() for ln in header.splitlines()]
    out += ["format: 1", f"name: {quoted(name)}", f"title: {quoted(title)}", f"kind: {kind}",
            "memory:", f"  total: {int(total_bytes)}", f"  reserved: {int(reserved_bytes)}"]
    if bandwidth_bytes_per_s:
        out.append(f"  bandwidth: {bandwidth_bytes_per_s / 1e9:.4g} GB/s")
    out += ["compute:", f"  precision: {precision}", "  sustained:"]
    out += [f"    {p}: {r / 1e9:.4g} GFLOP/s" for p, r in sustained_flops.items()]
    if families:
        out.append("  families:  # per op: overhead + flops / rate + bytes / bandwidth "
                   f"(results >= {units.format_size(LARGE_RESULT_BYTES, precision=0)}: "
                   "large_bandwidth)")
        for p, costs in families.items():
            out.append(f"    {p}:")
            for f, c in costs.items():
                out.append(f"      {f}: {_family_cost_yaml(c)}")
    out += ["power:", f"  training: {training_power_w:g} W"]
    if storage:
        out.append("storage:")
        for t in storage:
            out.append(f"  - name: {quoted(t['name'])}")
            out.append(f"    read: {t['read'] / 1e6:.4g} MB/s")
            out.append(f"    write: {t['write'] / 1e6:.4g} MB/s")
            for key in ("read_latency", "write_latency"):
                if t.get(key) is not None:
                    out.append(f"    {key}: {t[key] * 1e6:.4g} us")
    if sources:
        out.append("sources:")
        out += [f"  {k}: {quoted(v)}" for k, v in sources.items()]
    if notes.strip():
        out.append("notes: |")
        out += [f"  {ln}".rstrip() for ln in notes.strip().splitlines()]
    return "\n".join(out) + "\n"
