"""Rendering of ``edgeplan check`` results: a rich table, the JSON document and JUnit XML.

Formatting only; every number comes from ``gate.CheckResult``. JSON carries raw numbers (bytes,
seconds, fractions) through ``envelope``; the table and the JUnit messages are for people.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..gate import GATES, CheckResult, GateOutcome, TargetCheck
from ..units import format_size, format_time
from ._json import envelope

_WHAT = {
    "fits": "least memory for training",
    "max-overhead": "recompute overhead",
    "max-step-time": "time per iteration",
    "min-batch": "largest batch within the overhead limit",
    "budget": "least memory for training",
    "min-trainable": "a fine-tuning plan that trains",
}


def format_value(value: int | float | None, unit: str) -> str:
    """A gate's measured value or threshold for people.

    Examples
    --------
    >>> format_value(0.4581, "fraction"), format_value(3 * 2**20, "bytes"), format_value(8, "batch")
    ('45.8%', '3.00 MiB', '8')
    """
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if unit == "bytes":
        return format_size(value, precision=2)
    if unit == "fraction":
        return f"{value * 100:.1f}%"
    if unit == "s":
        return format_time(value)
    return f"{int(value)}"


def measured_text(target: TargetCheck, g: GateOutcome) -> str:
    if g.gate == "min-batch":
        if g.measured is None:
            return "none fits"
        if target.batch_search_limit is not None and g.measured >= target.batch_search_limit:
            return f">= {g.measured}"
    if g.measured is None:
        return "none fits" if g.gate == "min-trainable" else "no schedule"
    return format_value(g.measured, g.unit)


def threshold_text(g: GateOutcome) -> str:
    if g.relation == "meets":
        return f"trains {format_value(g.threshold, g.unit)}"
    return f"{g.relation} {format_value(g.threshold, g.unit)}"


def gate_message(target: TargetCheck, g: GateOutcome) -> str:
    """One line saying what was measured against what, e.g. for a JUnit ``<failure>``.

    Examples: ``recompute overhead 45.8% > limit 30.0%``; ``no schedule fits 3.00 MiB``.
    """
    lim = format_value(g.threshold, g.unit)
    if g.gate == "fits":
        need = format_value(g.measured, "bytes")
        if g.passed:
            return f"fits: needs {need} for training, {lim} available"
        return f"does not fit: needs {need} for training, {lim} available"
    if g.gate == "min-trainable":
        return _min_trainable_message(target, g)
    if g.gate in ("max-overhead", "max-step-time") and g.measured is None:
        return f"{_WHAT[g.gate]} unknown: no schedule fits the memory (limit {lim})"
    if g.gate == "min-batch":
        ov = _overhead_limit(target)
        what = "largest batch that fits" + (f" with overhead <= {ov}" if ov else "")
        if g.measured is None:
            return f"{what}: none, not even batch 1 (need >= {lim})"
        op = ">=" if g.passed else "<"
        return f"{what}: {measured_text(target, g).removeprefix('>= ')} {op} {lim}"
    op = ("<=" if g.passed else ">") if g.relation == "<=" else (">=" if g.passed else "<")
    word = "budget" if g.gate == "budget" else "limit"
    return f"{_WHAT[g.gate]} {measured_text(target, g)} {op} {word} {lim}"


def _min_trainable_message(target: TargetCheck, g: GateOutcome) -> str:
    ft = target.finetune
    assert ft is not None
    rec = ft.recommended
    if rec is not None:
        return (f"trains {g.threshold}: --train {rec.train}"
                + (f" --grad-accum {rec.grad_accum}" if rec.grad_accum > 1 else "")
                + f" fits ({format_size(rec.peak_bytes, precision=2)} of "
                f"{format_size(ft.usable_bytes, precision=2)}, "
                f"{format_time(rec.time_per_sample_s)} per sample)")
    least = ft.least_memory
    need = "" if least is None else (
        f"; the least memory is {format_size(least.plan.min_memory_bytes, precision=2)} "
        f"(--train {least.train})")
    return (f"no plan that trains {g.threshold} fits "
            f"{format_size(ft.usable_bytes, precision=2)}{need}")


def _overhead_limit(target: TargetCheck) -> str | None:
    for g in target.gates:
        if g.gate == "max-overhead":
            return format_value(g.threshold, "fraction")
    return None


# --- table (stdout) ---------------------------------------------------------------------------

def check_table(result: CheckResult) -> Group:
    """One row per device and gate: measured value, threshold, PASS/FAIL; then what was measured."""
    m = result.model
    batch = result.targets[0].plan.model.batch if result.targets else m.batch
    t = Table(title=f"edgeplan check: {m.name} (batch {batch})", box=box.SIMPLE_HEAD,
              title_justify="left")
    t.add_column("device", no_wrap=True)
    t.add_column("gate", no_wrap=True)
    t.add_column("measured", justify="right", no_wrap=True)
    t.add_column("threshold", justify="right", no_wrap=True)
    t.add_column("result", no_wrap=True)
    present: set[str] = set()
    for target in result.targets:
        for g in target.gates:
            present.add(g.gate)
            res = Text("PASS", style="green") if g.passed else Text("FAIL", style="bold red")
            t.add_row(target.name, g.gate, measured_text(target, g), threshold_text(g), res)
    legend = [f"{gate}: {_LEGEND[gate]}" for gate in GATES if gate in present]
    return Group(t, *(Text(line, style="dim") for line in legend))


_LEGEND = {
    "fits": "least memory for training (params, grads, optimizer state, activations) vs memory "
            "available",
    "max-overhead": "recompute overhead of the optimal schedule",
    "max-step-time": "time per iteration of the optimal schedule",
    "min-batch": "largest batch that fits (within the overhead limit, if set)",
    "budget": "least memory for training vs the budget",
    "min-trainable": "the recommended fine-tuning plan (`edgeplan finetune`) among those that "
                     "train at least the threshold",
}


def summary_line(result: CheckResult) -> str:
    """The one-line verdict for stderr."""
    n_dev = len(result.targets)
    devs = f"{n_dev} device{'s' if n_dev != 1 else ''}"
    if result.passed:
        return f"edgeplan check: PASS: {result.gate_count} gates on {devs}"
    fails = result.failures
    which = ", ".join(f"{name} {g.gate}" for name, g in fails)
    return (f"edgeplan check: FAIL: {len(fails)} of {result.gate_count} gates failed on {devs}: "
            f"{which}")


# --- JSON -------------------------------------------------------------------------------------

def _device_ref(target: TargetCheck) -> dict | None:
    d = target.device
    return None if d is None else {"name": d.name, "title": d.title, "path": d.path}


def target_doc(target: TargetCheck) -> dict:
    plan = target.plan
    overhead = None if plan.overhead is None else max(0.0, plan.overhead)
    return {
        "name": target.name,
        "device": _device_ref(target),
        "passed": target.passed,
        "gates": [dict(g.to_dict(), message=gate_message(target, g)) for g in target.gates],
        "memory": plan.memory.to_dict(),
        "feasible": plan.feasible,
        "time_s": plan.time_s,
        "overhead": overhead if plan.feasible else None,
        "energy_j": plan.energy_j(plan.time_s),
        "min_memory_bytes": plan.min_memory_bytes,
        "min_device_memory_bytes": plan.min_device_memory_bytes,
        "largest_batch": target.largest_batch,
        "batch_search_limit": target.batch_search_limit,
    }


def check_doc(result: CheckResult, exit_code: int, *, config_path: str | None = None,
              memory_bytes: int | None = None, slots: int | None = None,
              precision: str | None = None) -> dict:
    """The ``check`` JSON document (docs/json-output.md): status ``ok`` or ``infeasible``."""
    m = result.model
    plan_model = result.targets[0].plan.model if result.targets else m
    inputs = {
        "model": {"name": m.name, "path": m.source, "sha256": m.sha256, "batch": plan_model.batch,
                  "stages": m.length, "optimizer": m.optimizer},
        "devices": [_device_ref(t) for t in result.targets],
        "config": config_path,
        "memory_override_bytes": memory_bytes,
        "slots": slots,
        "precision": precision,
        "thresholds": result.thresholds.to_dict(),
    }
    data = {
        "passed": result.passed,
        "gate_count": result.gate_count,
        "failed_count": len(result.failures),
        "targets": [target_doc(t) for t in result.targets],
    }
    return envelope("check", status="ok" if result.passed else "infeasible",
                            exit_code=exit_code, inputs=inputs, data=data)


# --- JUnit XML --------------------------------------------------------------------------------

def junit_xml(result: CheckResult) -> str:
    """JUnit XML: one ``<testsuite>`` per device, one ``<testcase>`` per gate.

    A failed gate carries ``<failure message=... type=GATE>`` with the measured value and the
    threshold; test times are 0 (the gates are computed, not timed).
    """
    m = result.model
    fails = len(result.failures)
    root = ET.Element("testsuites", name="edgeplan check", tests=str(result.gate_count),
                      failures=str(fails), errors="0", time="0")
    for target in result.targets:
        classname = f"edgeplan.check.{target.name}"
        suite = ET.SubElement(root, "testsuite", name=f"{m.name} on {target.name}",
                              tests=str(len(target.gates)), failures=str(len(target.failures)),
                              errors="0", skipped="0", time="0")
        props = ET.SubElement(suite, "properties")
        for k, v in (("model", m.name), ("model_path", m.source), ("model_sha256", m.sha256),
                     ("device", target.name),
                     ("device_path", target.device.path if target.device else "")):
            ET.SubElement(props, "property", name=k, value=str(v or ""))
        for g in target.gates:
            case = ET.SubElement(suite, "testcase", classname=classname, name=g.gate, time="0")
            msg = gate_message(target, g)
            if g.passed:
                ET.SubElement(case, "system-out").text = msg
            else:
                fail = ET.SubElement(case, "failure", message=msg, type=g.gate)
                fail.text = (f"{msg}\nmeasured: {g.measured!r} {g.unit}\n"
                             f"threshold: {g.relation} {g.threshold!r} {g.unit}\n")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
