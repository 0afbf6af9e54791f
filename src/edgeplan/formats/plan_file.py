"""The plan file: the JSON document ``edgeplan solve ... -o plan.json`` writes (report.plan_report
builds it) and ``edgeplan run`` reads back, with the model file it names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..chain import Chain, Stage
from ..errors import InputError
from ..schedule import Schedule
from ..training import resolve
from ._files import read_text
from .model_file import load_model, read_model_input


class _DuplicateKeyError(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` hook: a key repeated in one object is an error (JSON parsers disagree on
    which value wins)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKeyError(k)
        out[k] = v
    return out


def load_plan(path: str) -> dict:
    """Read a plan written by ``edgeplan solve ... -o plan.json`` and return the parts ``run``
    needs: ``schedule``, ``budget_bytes``, ``batch``, ``stages``, ``peak_bytes``, ``cost_s``,
    ``model_path``, ``precision``, ``model`` (name)."""
    text = read_text(path, "a JSON plan")
    try:
        doc = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise InputError(f"not JSON: {e.msg} at line {e.lineno}", source=path) from None
    except _DuplicateKeyError as e:
        line = _line_of_second(text, str(e))
        raise InputError(f"{f'line {line}: ' if line else ''}duplicate key {str(e)!r}; each key "
                         "may appear once in an object", source=path) from None
    if not isinstance(doc, dict) or "edgeplan_json" not in doc:
        raise InputError("not an edgeplan JSON document (write one with `edgeplan solve MODEL "
                         "... -o plan.json`)", source=path)
    if doc.get("command") != "solve":
        raise InputError(f"expected a plan from `edgeplan solve`, got a {doc.get('command')!r} "
                         "document", source=path)
    data: dict = doc["data"] if isinstance(doc.get("data"), dict) else {}
    inputs: dict = doc["inputs"] if isinstance(doc.get("inputs"), dict) else {}
    result = data["result"] if isinstance(data.get("result"), dict) else None
    if result is None:
        raise InputError("the plan has no result", source=path, where="data.result")
    items = result.get("schedule")
    if items is None:
        raise InputError("the plan has no schedule (no schedule fits its budget)", source=path,
                         where="data.result.schedule")
    schedule = Schedule.from_list(items, source=path)
    budget = data.get("budget_bytes")
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)):
        raise InputError(f"expected a whole number of bytes, got {budget!r}", source=path,
                         where="data.budget_bytes")
    model: dict = inputs["model"] if isinstance(inputs.get("model"), dict) else {}
    batch = model.get("batch")
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
        raise InputError(f"expected a batch size, got {batch!r}", source=path,
                         where="inputs.model.batch")
    stages = model.get("stages")
    if stages is None and isinstance(data.get("chain"), dict):
        stages = data["chain"].get("stages")
    training = data["training"] if isinstance(data.get("training"), dict) else {}
    train = training.get("train") if isinstance(training.get("train"), str) else None
    modes = training.get("stage_modes")
    if train not in (None, "all") and not (isinstance(modes, list) and all(
            isinstance(m, str) for m in modes)):
        raise InputError("the plan trains part of the model but lists no stage_modes",
                         source=path, where="data.training.stage_modes")
    return {"schedule": schedule, "budget_bytes": budget, "batch": batch, "stages": stages,
            "train": train, "modes": modes if train not in (None, "all") else None,
            "peak_bytes": result.get("peak_bytes"), "cost_s": result.get("cost_s"),
            "model_path": model.get("path"), "model": model.get("name"),
            "optimizer": model.get("optimizer") if isinstance(model.get("optimizer"), str)
            else None,
            "precision": inputs.get("precision"), "path": path}


def plan_model(plan: dict, plan_path: str) -> tuple[Chain | None, dict | None]:
    """(chain scaled to the plan's batch, raw ``input`` mapping) of the plan's model file, when
    it can be found (as recorded, or next to the plan); (None, None) otherwise."""
    mp = plan.get("model_path")
    if not mp:
        return None, None
    cands = [Path(mp), Path(plan_path).parent / Path(mp).name]
    path = next((c for c in cands if c.is_file()), None)
    if path is None:
        return None, None
    try:
        spec = load_model(path)
    except InputError:  # the model file is optional here
        return None, read_model_input(path)
    if plan.get("train"):  # the stages' numbers in the plan's training modes (§8)
        spec = resolve(spec, plan["train"])[0]
    if plan.get("batch") and plan["batch"] != spec.batch:
        spec = spec.scaled_to_batch(plan["batch"])
    chain = Chain(name=spec.name, input_bytes=spec.input_bytes, frozen_prefix=spec.frozen_prefix,
                  stages=tuple(
        Stage(name=s.name, fwd_time_s=0.0, bwd_time_s=0.0, out_bytes=s.out_bytes,
              saved_bytes=s.saved_bytes, fwd_tmp_bytes=s.fwd_tmp_bytes,
              bwd_tmp_bytes=s.bwd_tmp_bytes, param_bytes=s.param_bytes)
        for s in spec.stages))
    return chain, read_model_input(path)


def _line_of_second(text: str, key: str) -> int | None:
    """The line of the second ``"key":`` in ``text`` (for the error message), if found."""
    import re
    hits = [m.start() for m in re.finditer(re.escape(json.dumps(key)) + r"\s*:", text)]
    return text.count("\n", 0, hits[1]) + 1 if len(hits) > 1 else None
