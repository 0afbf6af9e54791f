"""Rich renderables for people. Formatting only: every number comes from the library."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..device import DeviceProfile
from ..plan import Plan, overhead_of
from ..schedule import OpKind, Schedule
from ..units import format_bandwidth, format_flop_rate, format_size, format_time

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


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.1f}%"


def _energy(j: float | None) -> str:
    if j is None:
        return "-"
    return f"{j:.3g} J" if j < 1000 else f"{j / 1000:.3g} kJ"


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
    t.add_row("gradients", "-" + format_size(mem.grad_bytes))
    t.add_row(f"optimizer state ({mem.optimizer})", "-" + format_size(mem.optimizer_bytes))
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
        t.add_row(format_size(p.peak_bytes, precision=2), _pct(overhead_of(p.cost_s, ct)),
                  format_time(p.cost_s), _energy(plan.energy_j(p.cost_s)), mark)
    caption = []
    if disc is not None:
        caption.append(f"memory in {disc.slots} slots of {format_size(disc.unit_bytes)}, "
                       "peaks replayed in exact bytes")
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
    head.append(f" (batch {m.batch}, {m.length} stages)")
    if d is not None:
        head.append(f" on {d.name}", style="bold")
        head.append(f" ({d.title})")
    lines.append(head)
    if plan.precision is not None and d is not None:
        lines.append(Text(f"compute: {plan.precision} at {format_flop_rate(d.flop_rate(plan.precision))} "
                          f"sustained; {format_time(plan.compute_time_s)} per iteration without "
                          "recomputation"))
    lines.append(Text(""))
    lines.append(memory_table(plan))
    budget = plan.memory.activation_bytes
    need = plan.store_all_peak_bytes
    if plan.fits_without_checkpointing:
        lines.append(Text(f"Without checkpointing: needs {format_size(need)} of activations: fits "
                          f"({format_size(budget - need)} to spare).", style="green"))
    else:
        over = f"over by {format_size(need - budget)}" if budget >= 0 else "no activation memory left"
        lines.append(Text(f"Without checkpointing: needs {format_size(need)} of activations: "
                          f"does not fit ({over}).", style="yellow"))
    if plan.min_activation_bytes is not None:
        lines.append(Text(f"Minimum with checkpointing: {format_size(plan.min_activation_bytes)} of "
                          f"activations, {format_size(plan.min_device_memory_bytes)} of device "
                          "memory in all."))
    lines.append(Text(""))
    if res.frontier:
        lines.append(frontier_table(plan))
    if res.feasible and res.trace is not None and res.schedule is not None:
        tr = res.trace
        lines.append(Text(
            f"Recommended schedule ({res.solver}) for {format_size(budget)}: peak "
            f"{format_size(tr.peak_bytes)}, {format_time(tr.cost_s)}/iter "
            f"({_pct(plan.overhead)} recompute), {_energy(plan.energy_j(tr.cost_s))}/iter; "
            f"{len(res.schedule)} ops, replayed by the simulator.", style="bold"))
        lines.append(Text("  " + " | ".join(human_steps(res.schedule)), overflow="fold"))
    else:
        lines.append(Text(f"No schedule fits {format_size(budget)} of activation memory.",
                          style="bold red"))
    return Group(*lines)


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
        row(f"compute.sustained.{p}", format_flop_rate(r) + (" (default)" if p == d.precision else ""))
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


def offload_section(plan: Plan, res, tier, endurance) -> Group:
    """``solve --offload``: offload versus recomputation, I/O per iteration, flash wear."""
    from ..units import format_bandwidth
    p = res.params
    lines: list = [Text(f"Offload to {tier.name} (read {format_bandwidth(tier.read_bytes_per_s)}, "
                        f"write {format_bandwidth(tier.write_bytes_per_s)}), "
                        f"{p.get('mode', 'sync')} I/O", style="bold")]
    if not res.feasible:
        need = res.min_budget_bytes
        lines.append(Text("No offload schedule fits either" +
                          (f"; it would need {format_size(need)} of activations." if need else ".")))
        return Group(*lines)
    rec = p.get("recompute_cost_s")
    make = p.get("makespan_s", res.cost_s)
    if not p.get("offload_used"):
        lines.append(Text(f"Offloading does not beat recomputation here: the best schedule uses no "
                          f"storage ({format_time(make)}/iter)."))
    else:
        if rec is None:
            lines.append(Text(f"Recomputation alone does not fit; with offload: {format_time(make)}"
                              f"/iter, peak {format_size(res.peak_bytes)}.", style="green"))
        else:
            gain = p.get("gain_fraction") or 0.0
            lines.append(Text(f"{format_time(make)}/iter with offload vs {format_time(rec)}/iter "
                              f"recomputing only: {gain * 100:.1f}% faster.", style="green"))
        lines.append(Text(f"I/O per iteration: {format_size(p.get('bytes_written', 0))} written in "
                          f"{p.get('writes', 0)} writes, {format_size(p.get('bytes_read', 0))} read; "
                          f"synchronous {format_time(p.get('sync_cost_s'))}, asynchronous writes "
                          f"{format_time(p.get('async_cost_s'))}."))
        lines.append(Text("  " + " | ".join(human_steps(res.schedule)), overflow="fold"))
    if endurance is not None:
        years = endurance.years_to_rated
        lines.append(Text(f"Flash wear: {format_size(int(endurance.bytes_per_day))}/day at "
                          f"{endurance.iterations_per_day:,.0f} iterations/day; rated endurance "
                          f"reached in {years:,.1f} years." if years < 1e6 else
                          "Flash wear: negligible."))
        lines.append(Text(f"  assumption: {endurance.assumption}", style="dim"))
    return Group(*lines)
