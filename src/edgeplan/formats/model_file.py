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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import units
from ..device import PRECISIONS
from ..errors import InputError, ModelError, UnknownNameError
from ..model import ModelSpec, StageSpec
from ..training import BIAS, FROZEN, OPTIMIZER_STATE, ModeSpec, is_mode, parse_train
from ..work import FAMILIES, FamilyWork, Work
from ._yaml import Node, check_format, parse_yaml_text, read_yaml

FORMAT_VERSION = 1
#: ``amp:``: activations under ``torch.autocast`` in this dtype (measured by ``import torch``,
#: computed by ``import onnx``), parameters in fp32
AMP_PRECISIONS = ("bf16", "fp16")
MAX_STAGES = 10_000
MAX_REPEAT_DEPTH = 8

DTYPE_BYTES = {"float32": 4, "fp32": 4, "float16": 2, "fp16": 2, "bfloat16": 2, "bf16": 2,
               "float64": 8, "fp64": 8, "int8": 1, "uint8": 1, "int16": 2, "int32": 4, "int64": 8}

MODEL_KEYS = ("format", "name", "description", "derivation", "batch", "input", "parameters",
              "optimizer", "precision", "amp", "lora", "train", "stages")
STAGE_KEYS = ("name", "fwd_time", "fwd_flops", "bwd_time", "bwd_flops", "out", "saved",
              "fwd_tmp", "bwd_tmp", "params", "largest_param", "work", "modes")
MODE_KEYS = ("trainable", "added", "saved", "fwd_tmp", "bwd_tmp", "fwd_flops", "fwd_time",
             "bwd_flops", "bwd_time", "work")
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
    optimizer = top.choice("optimizer", tuple(OPTIMIZER_STATE), "sgd")
    precision = top.choice("precision", PRECISIONS, None)
    amp = top.choice("amp", AMP_PRECISIONS, None)
    if amp is not None and precision not in (None, amp):
        raise top.error("amp", f"the file was measured under autocast {amp}, but precision is "
                               f"{precision}; they must agree (or leave precision out)")
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
    train = top.text("train", None)
    if train is not None:
        try:
            train = parse_train(train).text
        except InputError as e:
            raise top.error("train", e.message) from None
    lora = _lora(top)
    return ModelSpec(name=name, stages=tuple(stages), input_bytes=input_bytes, param_bytes=params,
                     lora_targets=None if lora is None else lora[0],
                     lora_alpha=None if lora is None else lora[1],
                     optimizer=optimizer, batch=batch, precision=amp or precision, amp=amp,
                     description=top.text("description", "") or "",
                     derivation=top.text("derivation", "") or "", source=src, sha256=sha256,
                     train=train)


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


def _lora(top: Node) -> tuple[tuple[str, ...], float | None] | None:
    """``lora: {targets: [query, value], alpha: 16}``: the layers the file's ``lora-rR`` modes
    wrapped (empty: every ``nn.Linear``) and their alpha, for setting the model up again."""
    node = top.child("lora", ("targets", "alpha"))
    if node is None:
        return None
    raw = node.raw("targets")
    if raw is None:
        raw = []
    if not isinstance(raw, list) or not all(isinstance(t, str) and t.strip() for t in raw):
        raise node.error("targets", f"expected a list of layer names, got {raw!r}"[:200])
    alpha = node.raw("alpha")
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float))
                              or not alpha > 0):
        raise node.error("alpha", f"expected a positive number, got {alpha!r}"[:200])
    return tuple(t.strip() for t in raw), None if alpha is None else float(alpha)


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
    params = node.get("params", units.parse_size, 0)
    largest = node.get("largest_param", units.parse_size)
    if largest is not None and largest > params:
        raise node.error("largest_param", f"is {largest:,} bytes, more than the stage's params "
                                          f"({params:,} bytes)", ModelError)
    fwd_work, bwd_work = _work(node)
    return StageSpec(name=prefix + name, out_bytes=out, saved_bytes=saved, fwd_time_s=fwd_time,
                     fwd_flops=fwd_flops, bwd_time_s=node.get("bwd_time", units.parse_time),
                     bwd_flops=node.get("bwd_flops", units.parse_flops),
                     fwd_tmp_bytes=node.get("fwd_tmp", units.parse_size, 0),
                     bwd_tmp_bytes=node.get("bwd_tmp", units.parse_size, 0),
                     param_bytes=params, largest_param_bytes=largest,
                     fwd_work=fwd_work, bwd_work=bwd_work,
                     modes=_modes(node, params), where=node.where)


def _work(node: Node) -> tuple[Work | None, Work | None]:
    """``work: {fwd: {conv: [ops, flops, bytes(, large bytes)], ...}, bwd: {...}}``
    (edgeplan.work; the fourth number, the bytes of operations with large results, is optional)."""
    w = node.child("work", ("fwd", "bwd"))
    if w is None:
        return None, None
    out: list[Work | None] = []
    for key in ("fwd", "bwd"):
        raw = w.raw(key)
        if raw is None:
            out.append(None)
            continue
        passes = w.child(key, FAMILIES)
        assert passes is not None
        fams = {}
        for fam, triple in passes.data.items():
            where = passes.path(fam)
            if not isinstance(triple, list) or len(triple) not in (3, 4):
                raise InputError(f"expected [operations, FLOPs, bytes] or [operations, FLOPs, "
                                 f"bytes, large-result bytes], e.g. [2, 1.5 GFLOP, 3 MiB], got "
                                 f"{triple!r}"[:200], source=node.source, where=where)
            ops, flops, moved, *large_ = triple
            if isinstance(ops, bool) or not isinstance(ops, int) or ops < 0:
                raise InputError(f"expected a count of operations, got {ops!r}",
                                 source=node.source, where=f"{where}[0]")
            parsed = []
            for k, (value, parse) in enumerate(((flops, units.parse_flops),
                                                (moved, units.parse_size),
                                                *((v, units.parse_size) for v in large_)),
                                               start=1):
                try:
                    parsed.append(parse(value))
                except InputError as e:
                    raise InputError(e.message, source=node.source, where=f"{where}[{k}]",
                                     hint=e.hint) from None
            large = int(parsed[2]) if large_ else 0
            if large > parsed[1]:
                raise InputError(f"the large-result bytes ({large}) are part of the bytes "
                                 f"({int(parsed[1])}) and cannot exceed them",
                                 source=node.source, where=f"{where}[3]")
            fams[fam] = FamilyWork(ops, float(parsed[0]), int(parsed[1]), large)
        out.append(Work.of(fams))
    return out[0], out[1]


def _modes(node: Node, params: int) -> dict[str, ModeSpec]:
    """``modes: {frozen: {...}, bias: {...}, lora-r8: {...}}`` of one stage (docs/finetune.md)."""
    raw = node.raw("modes")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise node.error("modes", f"expected a mapping like {{frozen: {{saved: 1 MiB}}}}, got "
                                  f"{raw!r}")
    out: dict[str, ModeSpec] = {}
    for name, body in raw.items():
        where = f"{node.where}.modes.{name}" if node.where else f"modes.{name}"
        if not isinstance(name, str) or not is_mode(name):
            raise UnknownNameError.for_name(
                "mode", str(name), (FROZEN, BIAS, "lora-r8"), cutoff=0.6, source=node.source,
                where=where, otherwise="modes are frozen, bias and lora-rR (R a rank)")
        if not isinstance(body, dict):
            raise InputError(f"expected a mapping of the mode's numbers, got {body!r}",
                             source=node.source, where=where)
        m = Node(body, node.source, where, MODE_KEYS)
        if name == FROZEN:
            if m.has("trainable") or m.has("added"):
                raise m.error("trainable" if m.has("trainable") else "added",
                              "a frozen stage trains nothing and adds nothing")
            trainable = 0
        else:
            trainable = m.get("trainable", units.parse_size, required=True)
        added = m.get("added", units.parse_size, 0)
        if name == BIAS and trainable > params:
            raise m.error("trainable", f"is {trainable:,} bytes, more than the stage's params "
                                       f"({params:,} bytes)")
        work = _work(m)
        out[name] = ModeSpec(trainable_bytes=trainable, added_bytes=added,
                             saved_bytes=m.get("saved", units.parse_size),
                             fwd_tmp_bytes=m.get("fwd_tmp", units.parse_size),
                             bwd_tmp_bytes=m.get("bwd_tmp", units.parse_size),
                             fwd_flops=m.get("fwd_flops", units.parse_flops),
                             fwd_time_s=m.get("fwd_time", units.parse_time),
                             bwd_flops=m.get("bwd_flops", units.parse_flops),
                             bwd_time_s=m.get("bwd_time", units.parse_time),
                             fwd_work=work[0], bwd_work=work[1])
    return out



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
            "dtype_params": "float32" if raw.get("amp") else
            _PRECISION_DTYPE.get(raw.get("precision")),
            "amp": raw.get("amp") if raw.get("amp") in AMP_PRECISIONS else None,
            "lora": _lora_of(raw.get("lora"))}


def _lora_of(raw: Any) -> tuple[tuple[str, ...], float | None] | None:
    """(targets, alpha) of a ``lora:`` mapping, None when absent or not well formed (the
    loader validates it)."""
    if not isinstance(raw, dict):
        return None
    targets = raw.get("targets")
    alpha = raw.get("alpha")
    return (tuple(str(t) for t in targets) if isinstance(targets, list) else (),
            float(alpha) if isinstance(alpha, (int, float)) and not isinstance(alpha, bool)
            else None)

# --- the writer's pieces: hand-rolled YAML, exact integers with readable comments ---------------
# (shared by the importers so that every generated file looks the same)

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


# characters YAML does not allow in a stream, even quoted (YAML 1.1 §5.1): escaped as \uXXXX
_NOT_PRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff"
                            "\ufffe\uffff]")


def quoted(s: str) -> str:
    """A double-quoted YAML string for any text (a JSON string, with the characters YAML
    refuses escaped)."""
    text = json.dumps(s, ensure_ascii=False)
    return _NOT_PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def scalar(s: str) -> str:
    """A YAML scalar for ``s``: bare when unambiguous, else a double-quoted string."""
    if _PLAIN.match(s) and s.lower() not in _YAML_WORDS:
        return s
    return quoted(s)


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


def shape_input(shape: Iterable[int], dtype: str, nbytes: int) -> str:
    """``input: {shape: [...], dtype: ...}`` with the batch's bytes in a comment."""
    dims = ", ".join(str(d) for d in shape)
    return (f"input: {{shape: [{dims}], dtype: {dtype}}}   "
            f"# {nbytes:,} bytes ({iec(nbytes)}) for the batch")


def model_head(name: str, description: str, derivation: str, batch: int) -> list[str]:
    """The first keys of every generated model file (after its comment header)."""
    out = ["format: 1", f"name: {scalar(name)}"]
    if description.strip():
        out.append(f"description: {quoted(description)}")
    if derivation.strip():
        lines = derivation.splitlines()
        first = next(ln for ln in lines if ln.strip())
        # a literal block; an explicit indentation when the text itself starts indented
        out.append("derivation: |2" if first[:1].isspace() else "derivation: |")
        out.extend(("  " + ln).rstrip() for ln in lines)
    out.append(f"batch: {batch}")
    return out


#: Optimizers a generated file may name (their state bytes: ``device.OPTIMIZER_STATE_FACTOR``).
WRITABLE_OPTIMIZERS = ("sgd", "momentum", "adam")


@dataclass(frozen=True, kw_only=True)
class ImportedMode:
    """A stage's numbers in one training mode (``modes:``); None: the same as the stage's."""

    trainable_bytes: int = 0
    added_bytes: int = 0
    saved_bytes: int | None = None
    fwd_tmp_bytes: int | None = None
    bwd_tmp_bytes: int | None = None
    fwd_flops: int | None = None
    bwd_flops: int | None = None
    fwd_time_s: float | None = None
    bwd_time_s: float | None = None
    fwd_work: Work | None = None
    bwd_work: Work | None = None


@dataclass(frozen=True, kw_only=True)
class ImportedStage:
    """One measured or estimated stage, as a model file records it (exact integers)."""

    name: str
    fwd_flops: int
    bwd_flops: int
    out_bytes: int
    saved_bytes: int
    fwd_tmp_bytes: int = 0
    bwd_tmp_bytes: int = 0
    param_bytes: int = 0
    param_count: int = 0
    largest_param_bytes: int = 0         # the largest parameter tensor (0: not recorded)
    fwd_time_s: float | None = None      # measured host times, when the importer timed them
    bwd_time_s: float | None = None
    tmp_estimated: bool = True           # False: fwd_tmp/bwd_tmp were not estimated (0)
    fwd_work: Work | None = None         # per op family (torch importer)
    bwd_work: Work | None = None
    comment: str | None = None           # a line above the numbers (e.g. uncosted ops)
    modes: tuple[tuple[str, ImportedMode], ...] = ()   # (file mode name, numbers), in order


@dataclass(frozen=True, kw_only=True)
class ImportedModel:
    """What an importer found, ready to be written as model format 1 (``write_model``)."""

    name: str
    description: str
    derivation: str                      # how every number was obtained (the file's text)
    provenance: str                      # the header comment: tool versions, date, totals
    batch: int
    input_bytes: int
    stages: tuple[ImportedStage, ...]
    input_shape: tuple[int, ...] | None = None   # per sample
    input_dtype: str | None = None
    input_comment: str | None = None     # when there is no single input shape
    precision: str | None = None
    amp: str | None = None               # under torch.autocast (fp32 parameters)
    lora: tuple[tuple[str, ...], float | None] | None = None  # (targets, alpha) of lora modes
    train: str | None = None             # the file's default --train selection


def write_model(m: ImportedModel, *, command: str | None = None,
                optimizer: str = "momentum") -> str:
    """Model format 1 text for ``m``: exact integer bytes and FLOPs, readable values in
    comments, and ``command`` (the line that reproduces the file) in the header. ``load_model``
    / ``model_from_text`` read it back to the same numbers (a property test checks it)."""
    if optimizer not in WRITABLE_OPTIMIZERS:
        raise InputError(f"expected one of {', '.join(WRITABLE_OPTIMIZERS)}, got "
                         f"{optimizer!r}", param="optimizer")
    out: list[str] = []
    if command:
        out.append(f"# produced by: {command}")
    out.append(f"# {m.provenance}")
    out += model_head(m.name, m.description, m.derivation, m.batch)
    if m.input_shape is not None:
        out.append(shape_input(m.input_shape, m.input_dtype or "float32", m.input_bytes))
    else:
        out.append(f"input: {m.input_bytes:<18d} # {iec(m.input_bytes)}"
                   + (f": {m.input_comment}" if m.input_comment else ""))
    if m.precision:
        out.append(f"precision: {m.precision}")
    if m.amp:
        out.append(f"amp: {m.amp}  # trained under torch.autocast; parameters in fp32")
    if m.lora is not None:
        targets, alpha = m.lora
        out.append("lora: {targets: [" + ", ".join(scalar(t) for t in targets) + "]"
                   + ("" if alpha is None else f", alpha: {alpha:g}")
                   + "}  # the layers the lora-rR modes wrap (none listed: every nn.Linear)")
    out.append(f"optimizer: {optimizer}")
    if m.train:
        out.append(f"train: {scalar(parse_train(m.train).text)}")
    out.append("stages:")
    for s in m.stages:
        out.append(f"  - name: {scalar(s.name)}")
        if s.comment:
            out.append(f"    # {s.comment}")
        out.append(f"    fwd_flops: {s.fwd_flops:<14d} # {flops_txt(s.fwd_flops)}")
        out.append(f"    bwd_flops: {s.bwd_flops:<14d} # {flops_txt(s.bwd_flops)}")
        if s.fwd_time_s is not None and s.bwd_time_s is not None:
            out.append(f"    fwd_time: {s.fwd_time_s * 1e3:.6g} ms")
            out.append(f"    bwd_time: {s.bwd_time_s * 1e3:.6g} ms")
        out.append(f"    out: {s.out_bytes:<20d} # {iec(s.out_bytes)}")
        out.append(f"    saved: {s.saved_bytes:<18d} # {iec(s.saved_bytes)}")
        for key, v in (("fwd_tmp", s.fwd_tmp_bytes), ("bwd_tmp", s.bwd_tmp_bytes)):
            note = iec(v) if s.tmp_estimated else "not estimated"
            out.append(f"    {key}: {v:<{16}d} # {note}")
        out.append(f"    params: {s.param_bytes:<17d} # {s.param_count:,} parameters")
        if s.largest_param_bytes:
            out.append(f"    largest_param: {s.largest_param_bytes:<10d} # the largest tensor, "
                       f"{iec(s.largest_param_bytes)}")
        out += _work_lines(s.fwd_work, s.bwd_work, "    ")
        if s.modes:
            out.append("    modes:")
            for mode, ms in s.modes:
                out += _mode_lines(mode, ms)
    return "\n".join(out) + "\n"


def _work_lines(fwd: Work | None, bwd: Work | None, indent: str) -> list[str]:
    """``work:`` with one line per pass: ``family: [operations, FLOPs, bytes]``, and the bytes
    of operations with large results as a fourth number where there are any."""
    if fwd is None and bwd is None:
        return []
    out = [f"{indent}work:  # per op family: [operations, FLOPs, bytes read + written"
           f"[, large-result bytes]]"]
    for key, w in (("fwd", fwd), ("bwd", bwd)):
        if w is not None:
            items = ", ".join(f"{f}: [{x.ops}, {int(x.flops)}, {x.moved_bytes}"
                              f"{f', {x.large_bytes}' if x.large_bytes else ''}]"
                              for f, x in w.families)
            out.append(f"{indent}  {key}: {{{items}}}")
    return out


def _mode_lines(mode: str, ms: ImportedMode) -> list[str]:
    """One ``modes:`` entry: what trains and what is added, then the numbers given (``{}``
    when a frozen stage has none: the same as its trained numbers)."""
    items: list[tuple[str, int, str]] = []
    if mode != FROZEN:
        items.append(("trainable", ms.trainable_bytes, iec(ms.trainable_bytes)))
    if ms.added_bytes:
        items.append(("added", ms.added_bytes, iec(ms.added_bytes)))
    for key, v in (("saved", ms.saved_bytes), ("fwd_tmp", ms.fwd_tmp_bytes),
                   ("bwd_tmp", ms.bwd_tmp_bytes)):
        if v is not None:
            items.append((key, v, iec(v)))
    for key, v in (("fwd_flops", ms.fwd_flops), ("bwd_flops", ms.bwd_flops)):
        if v is not None:
            items.append((key, v, flops_txt(v)))
    body = [f"        {key}: {v:<{max(1, 23 - len(key))}d} # {note}" for key, v, note in items]
    for key, t in (("fwd_time", ms.fwd_time_s), ("bwd_time", ms.bwd_time_s)):
        if t is not None:
            body.append(f"        {key}: {t * 1e3:.6g} ms")
    body += _work_lines(ms.fwd_work, ms.bwd_work, "        ")
    return [f"      {mode}:" + ("" if body else " {}")] + body
