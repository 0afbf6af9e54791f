"""Results -> versioned JSON documents (docs/json-output.md). Never imports rich.

Envelope: ``edgeplan_json`` (schema version), ``edgeplan_version``, ``command``, ``status``
(ok / infeasible / error), ``exit_code``, ``inputs``, ``data``, ``errors``. Bytes are integers,
times seconds, no human strings; an unknown or infeasible value is ``null`` beside a boolean.
Within a schema version changes are additive only.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .. import __version__
from ..plan import Plan, overhead_of
from ..schedule import Schedule, OpKind
from ..solvers.base import SolveResult

JSON_SCHEMA_VERSION = 1


def envelope(command: str, *, status: str, exit_code: int, inputs: dict | None = None,
             data: dict | None = None, errors: list[dict] | None = None) -> dict:
    return {"edgeplan_json": JSON_SCHEMA_VERSION, "edgeplan_version": __version__,
            "command": command, "status": status, "exit_code": exit_code,
            "inputs": inputs or {}, "data": data or {}, "errors": errors or []}


def error_doc(command: str, exit_code: int, code: str, message: str, where: str | None = None) -> dict:
    return envelope(command, status="error", exit_code=exit_code,
                    errors=[{"code": code, "message": message, "where": where}])


def dumps(doc: dict) -> str:
    return json.dumps(_clean(doc), sort_keys=True, indent=2, allow_nan=False)


def _clean(v: Any) -> Any:
    """numpy scalars -> Python; inf/nan -> None (JSON has no Infinity)."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v


def schedule_doc(schedule: Schedule | None) -> list[dict] | None:
    return None if schedule is None else schedule.to_list()


def result_doc(res: SolveResult, compute_time_s: float, power_w: float | None) -> dict:
    cost = res.cost_s
    return {
        "solver": res.solver,
        "feasible": res.feasible,
        "budget_bytes": res.budget_bytes,
        "peak_bytes": res.peak_bytes,
        "cost_s": cost,
        "overhead": overhead_of(cost, compute_time_s),
        "energy_j": None if cost is None or power_w is None else cost * power_w,
        "min_budget_bytes": res.min_budget_bytes,
        "op_count": None if res.schedule is None else len(res.schedule),
        "forward_ops": None if res.trace is None else res.trace.forward_ops,
        "recomputed_forwards": None if res.schedule is None else
        res.trace.forward_ops - len([o for o in res.schedule if o.kind is OpKind.B]),
        "params": dict(res.params),
        "notes": list(res.notes),
        "schedule": schedule_doc(res.schedule),
    }


def plan_doc(plan: Plan, exit_code: int) -> dict:
    m, d, res = plan.model, plan.device, plan.result
    power = d.training_power_w if d is not None else None
    ct = plan.compute_time_s
    inputs = {
        "model": {"name": m.name, "path": m.source, "sha256": m.sha256, "batch": m.batch,
                  "stages": m.length, "optimizer": m.optimizer},
        "device": None if d is None else {"name": d.name, "title": d.title, "path": d.path},
        "memory_override_bytes": plan.memory.usable_bytes if plan.memory.reserved_bytes == 0 and
        d is not None and plan.memory.usable_bytes != d.usable_bytes else None,
        "precision": plan.precision,
        "flop_rate": None if plan.precision is None or d is None else d.flop_rate(plan.precision),
        "slots": None if res.discretization is None else res.discretization.slots,
    }
    data = {
        "memory": plan.memory.to_dict(),
        "chain": {"stages": plan.chain.length, "input_bytes": plan.chain.input_bytes,
                  "compute_time_s": ct, "store_all_peak_bytes": plan.store_all_peak_bytes},
        "fits_without_checkpointing": plan.fits_without_checkpointing,
        "feasible": plan.feasible,
        "budget_bytes": plan.memory.activation_bytes,
        "min_activation_bytes": plan.min_activation_bytes,
        "min_memory_bytes": plan.min_memory_bytes,
        "min_device_memory_bytes": plan.min_device_memory_bytes,
        "discretization": None if res.discretization is None else res.discretization.to_dict(),
        "frontier": [dict(p.to_dict(),
                          overhead=overhead_of(p.cost_s, ct),
                          energy_j=None if power is None else p.cost_s * power)
                     for p in res.frontier],
        "result": result_doc(res, ct, power),
    }
    return envelope("solve", status="ok" if plan.feasible else "infeasible",
                     exit_code=exit_code, inputs=inputs, data=data)


def offload_doc(plan: Plan, res: SolveResult, tier, endurance) -> dict:
    """``data.offload`` of ``solve --offload``."""
    power = plan.device.training_power_w if plan.device is not None else None
    doc = result_doc(res, plan.compute_time_s, power)
    doc.update({"tier": tier.name, "io": {k: res.params.get(k) for k in (
        "mode", "makespan_s", "sync_cost_s", "async_cost_s", "bytes_written", "bytes_read",
        "writes", "reads", "storage_peak_bytes", "offload_used", "recompute_cost_s", "gain_s",
        "gain_fraction")},
        "endurance": None if endurance is None else endurance.to_dict()})
    return doc
