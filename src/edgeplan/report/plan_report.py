"""Rendering of ``plan.Plan`` (``edgeplan solve``): rich tables for people and the JSON document.

Formatting only: every number comes from the library.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..batch import BatchPlan
from ..plan import Plan
from ..problem import overhead_of, time_model
from ..schedule import OpKind, Schedule
from ..solvers.base import SolveResult
from ..training import everything
from ..units import (
    format_bandwidth,
    format_energy,
    format_flop_rate,
    format_overhead,
    format_percent,
    format_size,
    format_time,
)
from ._json import envelope

MAX_FRONTIER_ROWS = 14


def human_steps(schedule: Schedule) -> list[str]:
    """Group a schedule into readable steps.

    A no-grad sweep ``Fn j, Fn j+1, free a_j, ...`` becomes ``Fn 3-7 -> keep a7``; runs of
    ``Fall`` and ``B`` on consecutive stages become ``Fall 8-10`` and ``B 10-8``.
    """
    ops = schedule.ops
    out: list[str] = []
    i = 0
    while i < len(ops):
        op = ops[i]
        if op.kind is OpKind.FN:
            start = last = op.stage
            freed: set[int] = set()
            j = i + 1
            while j < len(ops):
                nxt = ops[j]
                if nxt.kind is OpKind.FN and nxt.stage == last + 1:
                    last = nxt.stage
                    j += 1
                elif nxt.kind is OpKind.FREE_A and start <= nxt.stage < last and \
                        nxt.stage not in freed:
                    freed.add(nxt.stage)
                    j += 1
                else:
                    break
            kept = [f"a{k}" for k in range(start, last + 1) if k not in freed]
            out.append(f"Fn {start}-{last} keep {','.join(kept)}" if last > start
                       else f"Fn {start}")
            i = j
        elif op.kind in (OpKind.FALL, OpKind.B):
            step = 1 if op.kind is OpKind.FALL else -1
            j = i
            while j + 1 < len(ops) and ops[j + 1].kind is op.kind and \
                    ops[j + 1].stage == ops[j].stage + step:
                j += 1
            out.append(f"{op.kind.value} {op.stage}-{ops[j].stage}" if j > i
                       else f"{op.kind.value} {op.stage}")
            i = j + 1
        elif op.kind in (OpKind.W, OpKind.R):
            out.append(f"{'write' if op.kind is OpKind.W else 'read'} a{op.stage}")
            i += 1
        elif op.kind is OpKind.FREE_S:
            out.append(f"drop stored a{op.stage}")
            i += 1
        else:
            out.append(f"free {'a' if op.kind is OpKind.FREE_A else 'A'}{op.stage}")
            i += 1
    return out


def training_line(plan: Plan) -> str | None:
    """What trains, when not every parameter does (``--train``)."""
    t = plan.problem.training
    if t is None:
        return None
    names = [st.name for st in plan.model.stages]
    trained = t.trained_stages
    where = (f"stage {names[trained[0] - 1]}" if len(trained) == 1 else
             f"{len(trained)} of {len(names)} stages ({names[trained[0] - 1]} .. "
             f"{names[trained[-1] - 1]})")
    text = (f"training: {t.spec.text}: {format_size(t.trainable_bytes)} of "
            f"{format_size(t.param_bytes)} parameters train "
            f"({format_percent(t.trainable_fraction)}), in {where}")
    if t.frozen_prefix:
        text += (f"; stages 1-{t.frozen_prefix} are frozen and run forward only "
                 f"({names[0]} .. {names[t.frozen_prefix - 1]})")
    if t.computed:
        text += (f"; frozen numbers of {len(t.computed)} stage(s) computed, not measured "
                 "(docs/finetune.md)")
    return text


def memory_table(plan: Plan) -> Table:
    mem = plan.memory
    t = Table(title="Memory", box=box.SIMPLE_HEAD, title_justify="left", show_header=False,
              pad_edge=False)
    t.add_column("item", min_width=34)
    t.add_column("bytes", justify="right", min_width=12)
    d = plan.device
    if d is not None and mem.reserved_bytes:
        t.add_row("device memory", format_size(d.total_bytes))
        t.add_row("reserved (OS, runtime)", "-" + format_size(mem.reserved_bytes))
    else:
        t.add_row("memory for training (--memory)", format_size(mem.usable_bytes))
    t.add_row("parameters", "-" + format_size(mem.param_bytes))
    t.add_row("gradients" if plan.problem.training is None else "gradients (what trains)",
              "-" + format_size(mem.grad_bytes))
    t.add_row(f"optimizer state ({mem.optimizer})", "-" + format_size(mem.optimizer_bytes))
    if mem.master_bytes:
        t.add_row("fp32 master weights", "-" + format_size(mem.master_bytes))
    t.add_row(Text("activation budget", style="bold"),
              Text(format_size(mem.activation_bytes), style="bold"))
    return t


def frontier_table(plan: Plan) -> Table:
    res = plan.result
    disc = res.discretization
    ct = plan.compute_time_s
    t = Table(title="Trade-off: activation memory vs recomputation (optimal DP)",
              box=box.SIMPLE_HEAD, title_justify="left")
    t.add_column("activation memory", justify="right", min_width=17)
    t.add_column("overhead", justify="right", min_width=9)
    t.add_column("time/iter", justify="right", min_width=10)
    t.add_column("energy/iter", justify="right", min_width=11)
    t.add_column("", min_width=10)
    points = list(res.frontier)
    rows = _sample(points, MAX_FRONTIER_ROWS)
    chosen = None
    if res.feasible and res.trace is not None:
        fitting = [p for p in points if p.peak_bytes <= res.budget_bytes]
        chosen = fitting[-1] if fitting else None
        if chosen is not None and chosen not in rows:
            rows = sorted(rows + [chosen], key=lambda p: p.peak_bytes)
    for p in rows:
        mark = ""
        if p is points[0]:
            mark = "minimum"
        if p is chosen:
            mark = "<- budget"
        if p is points[-1] and p.cost_s <= ct * (1 + 1e-9):
            mark = (mark + " " if mark else "") + "no recompute"
        t.add_row(format_size(p.peak_bytes, precision=2), format_overhead(overhead_of(p.cost_s,
                                                                                      ct)),
                  format_time(p.cost_s), format_energy(plan.energy_j(p.cost_s)), mark)
    caption = []
    if disc is not None:
        table = plan.result.params.get("dp_table_bytes")
        caption.append(f"memory in {disc.slots} slots of {format_size(disc.unit_bytes)}, "
                       "peaks replayed in exact bytes"
                       + (f" (DP table {format_size(int(table))})"
                          if isinstance(table, int) else ""))
    if len(points) > len(rows):
        caption.append(f"{len(rows)} of {len(points)} steps shown; --json lists all")
    t.caption = "; ".join(caption)
    t.caption_justify = "left"
    return t


def _sample(points: list, n: int) -> list:
    if len(points) <= n:
        return list(points)
    idx = sorted({round(i * (len(points) - 1) / (n - 1)) for i in range(n)})
    return [points[i] for i in idx]


def plan_summary(plan: Plan) -> Group:
    m, d, res = plan.model, plan.device, plan.result
    lines: list = []
    head = Text()
    head.append(f"{m.name}", style="bold")
    k = plan.problem.grad_accum
    head.append(f" (batch {m.batch}, {m.length} stages)" if k == 1 else
                f" (batch {m.batch * k} as {k} micro-batches of {m.batch}, {m.length} stages)")
    if d is not None:
        head.append(f" on {d.name}", style="bold")
        head.append(f" ({d.title})")
    lines.append(head)
    if plan.precision is not None and d is not None:
        lines.append(Text(f"compute: {plan.precision} at "
                          f"{format_flop_rate(d.flop_rate(plan.precision))} "
                          f"sustained; {format_time(plan.compute_time_s)} per iteration without "
                          "recomputation"))
    if k > 1 and res.feasible:
        step = plan.problem.time_per_step_s(res.cost_s)
        per = plan.problem.time_per_sample_s(res.cost_s)
        lines.append(Text(f"gradient accumulation: {k} x {format_time(res.cost_s)} = "
                          f"{format_time(step)} per optimizer step, {format_time(per)} per "
                          "sample (activations at the micro-batch; each stage's backward also "
                          "holds a temporary of its parameters' size)"))
    tr_line = training_line(plan)
    if tr_line is not None:
        lines.append(Text(tr_line))
    lines.append(Text(""))
    lines.append(memory_table(plan))
    budget = plan.memory.activation_bytes
    need = plan.store_all_peak_bytes
    if plan.fits_without_checkpointing:
        lines.append(Text(f"Without checkpointing: needs {format_size(need)} of activations: fits "
                          f"({format_size(budget - need)} to spare).", style="green"))
    else:
        over = f"over by {format_size(need - budget)}" if budget >= 0 else \
            "no activation memory left"
        lines.append(Text(f"Without checkpointing: needs {format_size(need)} of activations: "
                          f"does not fit ({over}).", style="yellow"))
    if plan.min_activation_bytes is not None:
        step = res.step_peak_bytes
        by_step = (f" (set by the {plan.model.optimizer} step after the backward: the input "
                   f"and the step's temporaries; --optimizer {plan.model.optimizer}-fused has "
                   "none)") if step and plan.min_activation_bytes == step else ""
        lines.append(Text(f"Minimum with checkpointing: {format_size(plan.min_activation_bytes)} "
                          f"of activations{by_step}, "
                          f"{format_size(plan.min_device_memory_bytes)} of device "
                          "memory in all."))
    lines.append(Text(""))
    if res.frontier:
        lines.append(frontier_table(plan))
    if res.feasible and res.trace is not None and res.schedule is not None:
        tr = res.trace
        lines.append(Text(
            f"Recommended schedule ({res.solver}) for {format_size(budget)}: peak "
            f"{format_size(tr.peak_bytes)}, {format_time(tr.cost_s)}/iter "
            f"({format_overhead(plan.overhead)} recompute), "
            f"{format_energy(plan.energy_j(tr.cost_s))}/iter; "
            f"{len(res.schedule)} ops, replayed by the simulator.", style="bold"))
        lines.append(Text("  " + " | ".join(human_steps(res.schedule)), overflow="fold"))
    else:
        lines.append(Text(f"No schedule fits {format_size(budget)} of activation memory.",
                          style="bold red"))
    return Group(*lines)


def offload_section(plan: Plan) -> Group:
    """``solve --offload``: offload versus recomputation, I/O per iteration, flash wear."""
    assert plan.offload is not None
    res, tier, endurance = plan.offload.result, plan.offload.tier, plan.offload.endurance
    io = res.io
    mode = io.mode if io is not None else res.params.get("mode", "sync")
    lines: list = [Text(f"Offload to {tier.name} (read {format_bandwidth(tier.read_bytes_per_s)}, "
                        f"write {format_bandwidth(tier.write_bytes_per_s)}), "
                        f"{mode} I/O", style="bold")]
    if not res.feasible or io is None:
        need = res.min_budget_bytes
        lines.append(Text("No offload schedule fits either" +
                          (f"; it would need {format_size(need)} of activations." if need
                           else ".")))
        return Group(*lines)
    rec = io.recompute_cost_s
    make = io.makespan_s
    if not io.offload_used:
        lines.append(Text(f"Offloading does not beat recomputation here: the best schedule uses no "
                          f"storage ({format_time(make)}/iter)."))
    else:
        if rec is None:
            lines.append(Text(f"Recomputation alone does not fit; with offload: {format_time(make)}"
                              f"/iter, peak {format_size(res.peak_bytes)}.", style="green"))
        else:
            gain = io.gain_fraction or 0.0
            lines.append(Text(f"{format_time(make)}/iter with offload vs {format_time(rec)}/iter "
                              f"recomputing only: {gain * 100:.1f}% faster.", style="green"))
        lines.append(Text(f"I/O per iteration: {format_size(io.bytes_written)} written in "
                          f"{io.writes} writes, {format_size(io.bytes_read)} read; "
                          f"synchronous {format_time(io.sync_cost_s)}, asynchronous writes "
                          f"{format_time(io.async_cost_s)}."))
        assert res.schedule is not None
        lines.append(Text("  " + " | ".join(human_steps(res.schedule)), overflow="fold"))
    if endurance is not None:
        years = endurance.years_to_rated
        lines.append(Text(f"Flash wear: {format_size(int(endurance.bytes_per_day))}/day at "
                          f"{endurance.iterations_per_day:,.0f} iterations/day; rated endurance "
                          f"reached in {years:,.1f} years." if years < 1e6 else
                          "Flash wear: negligible."))
        lines.append(Text(f"  assumption: {endurance.assumption}", style="dim"))
    return Group(*lines)


def exit_code(plan: Plan, verification: Any = None) -> int:
    """THE "is the answer no?" rule of ``solve``: 0 when a schedule fits (in memory, or with
    offload), 1 otherwise or when a verification run failed."""
    fits = plan.feasible or (plan.offload is not None and plan.offload.result.feasible)
    if not fits or (verification is not None and not verification.ok):
        return 1
    return 0


def solve_renderables(plan: Plan, *, width: int, chart: bool = False, timeline: bool = False,
                      verification: Any = None, batches: BatchPlan | None = None) -> list:
    """What ``solve`` prints, in order: the summary, then each section asked for (a ``str`` is
    a pre-drawn terminal chart, to be written as it is)."""
    parts: list = [plan_summary(plan)]
    r = plan.result
    if chart and r.frontier:
        from .termplot import frontier_plot
        parts.append(frontier_plot(plan, width=min(width, 100)))
    if timeline and r.schedule is not None:
        from .timeline import timeline as draw_timeline
        parts.append(draw_timeline(plan.chain, r.schedule, r.trace, width=min(width, 120),
                                   budget_bytes=plan.memory.activation_bytes))
    if plan.offload is not None:
        parts.append(offload_section(plan))
    if verification is not None:
        from .run_report import run_renderable
        parts.append(run_renderable(verification, {"peak_bytes": r.peak_bytes}, show_ops=False))
    if batches is not None:
        from .batch_report import batch_table
        parts.append(batch_table(batches))
    return parts


def closing_lines(plan: Plan) -> list[str]:
    """The last word of ``solve`` on stderr when the answer is no (or only offload fits)."""
    if plan.feasible:
        return []
    if plan.offload is not None and plan.offload.result.feasible:
        return ["edgeplan: recomputation alone does not fit; the offload schedule does"]
    if plan.min_device_memory_bytes is not None:
        return [f"edgeplan: no schedule fits; at least {format_size(plan.min_memory_bytes)} "
                f"for training ({format_size(plan.min_activation_bytes)} of activations) "
                "would be needed"]
    return []


def schedule_doc(schedule: Schedule | None) -> list[dict] | None:
    return None if schedule is None else schedule.to_list()


def result_doc(res: SolveResult, compute_time_s: float, power_w: float | None) -> dict:
    cost = res.cost_s
    return {
        "solver": res.solver,
        "feasible": res.feasible,
        "budget_bytes": res.budget_bytes,
        "peak_bytes": res.peak_bytes,
        "step_peak_bytes": res.step_peak_bytes,
        "cost_s": cost,
        "overhead": overhead_of(cost, compute_time_s),
        "energy_j": None if cost is None or power_w is None else cost * power_w,
        "min_budget_bytes": res.min_budget_bytes,
        "op_count": None if res.schedule is None else len(res.schedule),
        "forward_ops": None if res.trace is None else res.trace.forward_ops,
        "recomputed_forwards": None if res.schedule is None else
        res.trace.forward_ops - len([o for o in res.schedule if o.kind is OpKind.B]),
        "params": {**res.params, **(res.io.to_dict() if res.io is not None else {})},
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
        "time_model": time_model(m, d, plan.precision),
        "slots": None if res.discretization is None else res.discretization.slots,
    }
    data = {
        "memory": plan.memory.to_dict(),
        "chain": {"stages": plan.chain.length, "input_bytes": plan.chain.input_bytes,
                  "compute_time_s": ct, "store_all_peak_bytes": plan.store_all_peak_bytes,
                  "time_by_family_s": dict(plan.problem.family_time_s) or None},
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
        "training": training_doc(plan),
        "notes": list(plan.problem.notes),
        "grad_accum": {"micro_batches": plan.problem.grad_accum, "micro_batch": m.batch,
                       "batch": plan.problem.batch,
                       "time_per_step_s": plan.problem.time_per_step_s(res.cost_s),
                       "time_per_sample_s": plan.problem.time_per_sample_s(res.cost_s)},
    }
    return envelope("solve", status="ok" if plan.feasible else "infeasible",
                     exit_code=exit_code, inputs=inputs, data=data)


def training_doc(plan: Plan) -> dict:
    """``data.training``: what trains (every parameter when ``--train`` was not given)."""
    names = tuple(st.name for st in plan.model.stages)
    return (plan.problem.training or everything(plan.model)).to_dict(names)


def offload_doc(plan: Plan) -> dict:
    """``data.offload`` of ``solve --offload``."""
    assert plan.offload is not None
    res, tier, endurance = plan.offload.result, plan.offload.tier, plan.offload.endurance
    power = plan.device.training_power_w if plan.device is not None else None
    doc = result_doc(res, plan.compute_time_s, power)
    params = doc["params"]
    doc.update({"tier": tier.name, "io": {k: params.get(k) for k in (
        "mode", "makespan_s", "sync_cost_s", "async_cost_s", "bytes_written", "bytes_read",
        "writes", "reads", "storage_peak_bytes", "offload_used", "recompute_cost_s", "gain_s",
        "gain_fraction")},
        "endurance": None if endurance is None else endurance.to_dict()})
    return doc


def solve_doc(plan: Plan, exit_code: int, *, verification: Any = None,
              batches: BatchPlan | None = None) -> dict:
    """The ``solve --json`` document (also written by ``-o plan.json``)."""
    doc = plan_doc(plan, exit_code)
    if verification is not None:
        doc["data"]["verification"] = verification.to_dict()
    if plan.offload is not None:
        doc["data"]["offload"] = offload_doc(plan)
    if batches is not None:
        doc["data"]["batches"] = batches.to_dict()
    return doc
