"""YAML files -> validated ``ModelSpec`` and ``DeviceProfile``.

Formats are documented in docs/model-format.md and docs/device-format.md. Every error is an
``InputError`` that names the file and the key path and says what was expected; unknown keys are
rejected with a did-you-mean.
"""

from __future__ import annotations

import difflib
import hashlib
import math
from pathlib import Path
from typing import Any

from . import units
from .device import DEVICE_KINDS, OPTIMIZER_STATE_FACTOR, PRECISIONS, DeviceProfile, StorageTier
from .errors import InputError, ModelError, UnknownNameError
from .model import ModelSpec, StageSpec
from .yamlio import Node, check_format, parse_yaml_text, read_yaml

FORMAT_VERSION = 1
MAX_STAGES = 10_000
MAX_REPEAT_DEPTH = 8

DTYPE_BYTES = {"float32": 4, "fp32": 4, "float16": 2, "fp16": 2, "bfloat16": 2, "bf16": 2,
               "float64": 8, "fp64": 8, "int8": 1, "uint8": 1, "int16": 2, "int32": 4, "int64": 8}

MODEL_KEYS = ("format", "name", "description", "derivation", "batch", "input", "parameters",
              "optimizer", "precision", "stages")
STAGE_KEYS = ("name", "fwd_time", "fwd_flops", "bwd_time", "bwd_flops", "out", "saved",
              "fwd_tmp", "bwd_tmp", "params")
REPEAT_KEYS = ("repeat", "name", "stages")


# --- models ---------------------------------------------------------------------------------

def load_model(path: str | Path) -> ModelSpec:
    """Read and validate a model file (format 1)."""
    src = str(path)
    data = read_yaml(path)
    raw = Path(path).read_bytes()
    return model_from_data(data, src, sha256=hashlib.sha256(raw).hexdigest())


def model_from_text(text: str, source: str = "model.yaml") -> ModelSpec:
    return model_from_data(parse_yaml_text(text, source), source,
                           sha256=hashlib.sha256(text.encode()).hexdigest())


def model_from_data(data: Any, src: str, sha256: str = "") -> ModelSpec:
    if data is None:
        raise InputError("the file is empty; expected a model (format: 1, name, stages)", source=src)
    top = Node(data, src, "", MODEL_KEYS)
    check_format(top, FORMAT_VERSION)
    name = top.text("name", required=True)
    batch = top.integer("batch", 1, minimum=1, maximum=10**7)
    optimizer = top.choice("optimizer", tuple(OPTIMIZER_STATE_FACTOR), "sgd")
    precision = top.choice("precision", PRECISIONS, None)
    input_bytes = _input_bytes(top, batch)
    stages = _expand_stages(top, src)
    if not stages:
        raise top.error("stages", "the chain has no stages; expected at least one", ModelError)
    seen: dict[str, str] = {}
    for st in stages:
        if st.name in seen:
            raise ModelError(f"duplicate stage name {st.name!r} (also at {seen[st.name]})",
                             source=src, where=st.where)
        seen[st.name] = st.where
    stage_params = sum(s.param_bytes for s in stages)
    if top.has("parameters"):
        if stage_params:
            raise top.error("parameters", "give parameters either at the top level or per stage "
                                          "(params:), not both", ModelError)
        params = top.get("parameters", units.parse_size)
    else:
        params = stage_params
    return ModelSpec(name=name, stages=tuple(stages), input_bytes=input_bytes, param_bytes=params,
                     optimizer=optimizer, batch=batch, precision=precision,
                     description=top.text("description", "") or "",
                     derivation=top.text("derivation", "") or "", source=src, sha256=sha256)


def _input_bytes(top: Node, batch: int) -> int:
    if not top.has("input"):
        raise top.error("input", 'is required: the input batch size, e.g. input: "4.6 MiB" or '
                                 'input: {shape: [3, 224, 224], dtype: float32}')
    v = top.raw("input")
    if isinstance(v, dict):
        node = Node(v, top.source, "input", ("shape", "dtype"))
        shape_raw = node.raw("shape")
        if not isinstance(shape_raw, list) or not shape_raw or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape_raw):
            raise node.error("shape", f"expected a list of positive whole numbers like "
                                      f"[3, 224, 224], got {shape_raw!r}")
        dtype = node.choice("dtype", tuple(DTYPE_BYTES), "float32")
        n = batch * DTYPE_BYTES[dtype]
        for dim in shape_raw:
            n *= dim
        return n
    return top.get("input", units.parse_size)


def _expand_stages(top: Node, src: str) -> list[StageSpec]:
    out: list[StageSpec] = []

    def walk(items: list[tuple[str, Any]], prefix: str, depth: int) -> None:
        for where, item in items:
            if isinstance(item, dict) and "repeat" in item:
                if depth >= MAX_REPEAT_DEPTH:
                    raise ModelError(f"repeat blocks nested deeper than {MAX_REPEAT_DEPTH}",
                                     source=src, where=where)
                node = Node(item, src, where, REPEAT_KEYS)
                n = node.integer("repeat", required=True, minimum=1, maximum=10**9)
                inner = node.items("stages", required=True)
                if not inner:
                    raise node.error("stages", "a repeat block needs at least one stage", ModelError)
                base = node.text("name", None)
                for r in range(1, n + 1):
                    label = f"{base}.{r}" if base else f"r{r}"
                    walk(inner, f"{prefix}{label}.", depth + 1)
                    if len(out) > MAX_STAGES:
                        raise ModelError(f"more than {MAX_STAGES:,} stages after expanding repeats; "
                                         "merge stages (e.g. one stage per block)",
                                         source=src, where=where)
            else:
                out.append(_stage(Node(item, src, where, STAGE_KEYS), prefix, len(out) + 1))
                if len(out) > MAX_STAGES:
                    raise ModelError(f"more than {MAX_STAGES:,} stages; merge stages "
                                     "(e.g. one stage per block)", source=src, where=where)

    walk(top.items("stages", required=True), "", 0)
    return out


def _stage(node: Node, prefix: str, index: int) -> StageSpec:
    name = node.text("name", None) or f"stage{index}"
    fwd_time = node.get("fwd_time", units.parse_time)
    fwd_flops = node.get("fwd_flops", units.parse_flops)
    if fwd_time is None and fwd_flops is None:
        raise node.error(None, "needs fwd_time or fwd_flops (the forward cost of the stage)",
                         ModelError)
    out = node.get("out", units.parse_size, required=True)
    saved = node.get("saved", units.parse_size, out)
    if saved < out:
        raise node.error("saved", f"is {saved:,} bytes, less than out ({out:,} bytes); saved "
                                  "includes the stage's output, so saved >= out", ModelError)
    return StageSpec(name=prefix + name, out_bytes=out, saved_bytes=saved, fwd_time_s=fwd_time,
                     fwd_flops=fwd_flops, bwd_time_s=node.get("bwd_time", units.parse_time),
                     bwd_flops=node.get("bwd_flops", units.parse_flops),
                     fwd_tmp_bytes=node.get("fwd_tmp", units.parse_size, 0),
                     bwd_tmp_bytes=node.get("bwd_tmp", units.parse_size, 0),
                     param_bytes=node.get("params", units.parse_size, 0), where=node.where)


# --- devices --------------------------------------------------------------------------------

DEVICE_KEYS = ("format", "name", "title", "kind", "memory", "compute", "power", "storage",
               "sources", "notes")
TIER_KEYS = ("name", "read", "write", "read_latency", "write_latency", "capacity")


def builtin_profile_dir() -> Path:
    """Shipped profiles: inside the installed package, or the repository's top-level profiles/."""
    here = Path(__file__).resolve().parent
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
    close = difflib.get_close_matches(name_or_path, list(builtin), n=3, cutoff=0.5)
    hint = (f"did you mean {' or '.join(repr(c) for c in close)}?" if close else
            "run `edgeplan devices` for the list, or pass a profile file path")
    raise UnknownNameError(f"unknown device {name_or_path!r}", source="--device", hint=hint,
                           suggestions=tuple(close))


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
    comp = top.child("compute", ("precision", "peak", "sustained"), required=True)
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
        notes=(top.text("notes", "") or ""), path=src)


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
