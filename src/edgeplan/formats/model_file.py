"""Model format 1 (docs/model-format.md): the reader (YAML -> ``ModelSpec``) and the writer's
helpers (the importers' generated files).

The format is documented in docs/model-format.md. Every error is an
``InputError`` that names the file and the key path and says what was expected; unknown keys are
rejected with a did-you-mean.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import units
from ..device import OPTIMIZER_STATE_FACTOR, PRECISIONS
from ..errors import InputError, ModelError
from ..model import ModelSpec, StageSpec
from ._yaml import Node, check_format, parse_yaml_text, read_yaml

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
        raise InputError("the file is empty; expected a model (format: 1, name, stages)",
                         source=src)
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
                    raise node.error("stages", "a repeat block needs at least one stage",
                                     ModelError)
                base = node.text("name", None)
                for r in range(1, n + 1):
                    label = f"{base}.{r}" if base else f"r{r}"
                    walk(inner, f"{prefix}{label}.", depth + 1)
                    if len(out) > MAX_STAGES:
                        raise ModelError(f"more than {MAX_STAGES:,} stages after expanding "
                                         "repeats; "
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



_PRECISION_DTYPE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
_INPUT_DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "bool")


def read_model_input(path: str | Path) -> dict | None:
    """``{"shape": (3, 32, 32), "dtype": "float32" | None, "dtype_params": "float32" | None}``
    from a model file's ``input: {shape, dtype}`` and ``precision`` (for ``--verify``-style
    callers that know only the model file); None when the file does not record a shape."""
    try:
        raw = read_yaml(path)
    except InputError:  # optional information
        return None
    inp = raw.get("input") if isinstance(raw, dict) else None
    if not isinstance(inp, dict) or not isinstance(inp.get("shape"), list):
        return None
    try:
        shape = tuple(int(d) for d in inp["shape"])
    except (TypeError, ValueError):
        return None
    dt = inp.get("dtype") if inp.get("dtype") in _INPUT_DTYPES else None
    return {"shape": shape, "dtype": dt,
            "dtype_params": _PRECISION_DTYPE.get(raw.get("precision"))}

# --- the writer's pieces: hand-rolled YAML, exact integers with readable comments ---------------
# (shared by the importers so that every generated file looks the same)

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def scalar(s: str) -> str:
    """A YAML scalar for ``s``: bare when unambiguous, else a JSON (YAML-compatible) string."""
    if _PLAIN.match(s) and s.lower() not in _YAML_WORDS:
        return s
    return json.dumps(s, ensure_ascii=False)


def iec(n: float) -> str:
    """``'12.25 MiB'`` for a comment beside an exact byte count."""
    for unit, f in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= f:
            return f"{n / f:.2f} {unit}"
    return f"{int(n)} B"


def flops_txt(n: float) -> str:
    """``'1.888 GFLOP'`` for a comment beside an exact FLOP count."""
    for unit, f in (("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if n >= f:
            return f"{n / f:.3f} {unit}"
    return f"{int(n)} FLOP"


def model_head(name: str, description: str, derivation: str, batch: int) -> list[str]:
    """The first keys of every generated model file (after its comment header)."""
    out = ["format: 1", f"name: {scalar(name)}",
           f"description: {json.dumps(description, ensure_ascii=False)}", "derivation: |"]
    out.extend(("  " + ln).rstrip() for ln in derivation.splitlines())
    out.append(f"batch: {batch}")
    return out


def shape_input(shape: Iterable[int], dtype: str, nbytes: int) -> str:
    """``input: {shape: [...], dtype: ...}`` with the batch's bytes in a comment."""
    dims = ", ".join(str(d) for d in shape)
    return (f"input: {{shape: [{dims}], dtype: {dtype}}}   "
            f"# {nbytes:,} bytes ({iec(nbytes)}) for the batch")
