"""The command line: a thin layer over the library.

Each command parses options, calls ``loaders`` and the library, renders with ``report`` and
returns an exit code. ``EdgeplanGroup.main`` maps exceptions to exit codes (docs/exit-codes.md):

=====  ========================================================================
code   meaning
=====  ========================================================================
0      ok
1      the answer is no: no schedule fits, a gate failed
2      bad input or usage: unreadable/invalid file, unknown device, bad option
3      internal error (a bug): unexpected exception, a schedule the simulator rejects
130    interrupted (Ctrl-C)
=====  ========================================================================

Results go to stdout (a table, or exactly one JSON document with ``--json``, also on errors once
the command has started); notes, progress and errors go to stderr.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from . import __version__, units
from .errors import (EdgeplanError, InfeasibleError, InputError, LimitError, ScheduleError,
                     UnknownNameError)
from .cliutil import unit_callback
from .fileio import write_atomic
from .report import jsondoc

EXIT_OK, EXIT_NO, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EXIT_CODES: dict[type[EdgeplanError], int] = {
    InputError: EXIT_INPUT,
    LimitError: EXIT_INPUT,
    InfeasibleError: EXIT_NO,
    ScheduleError: EXIT_INTERNAL,
    EdgeplanError: EXIT_INTERNAL,
}

# Set by a command that promised one JSON document on stdout, so errors keep that promise.
_json_command: dict[str, str | None] = {"name": None}


def exit_code_for(err: BaseException) -> int:
    for cls in type(err).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]  # type: ignore[index]
    return EXIT_INTERNAL


def _color_system() -> str | None:
    """NO_COLOR (no-color.org) turns off every escape sequence, not only colours."""
    return None if os.environ.get("NO_COLOR") else "auto"


def _stderr() -> Console:
    return Console(stderr=True, markup=False, highlight=False, soft_wrap=True,
                   color_system=_color_system())


def _stdout() -> Console:
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "120") or 120)
    return Console(markup=False, highlight=False, width=width, soft_wrap=False,
                   color_system=_color_system())


class EdgeplanGroup(click.Group):
    """Maps exceptions to exit codes, for the console script and for CliRunner alike."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra: Any):
        _json_command["name"] = None
        debug = "--debug" in (args if args is not None else sys.argv[1:])
        try:
            rv = super().main(args, prog_name or "edgeplan", complete_var,
                              standalone_mode=False, **extra)
        except (KeyboardInterrupt, click.exceptions.Abort):
            _stderr().print("edgeplan: interrupted")
            sys.exit(EXIT_INTERRUPTED)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code if e.exit_code else EXIT_INPUT)
        except EdgeplanError as e:
            code = exit_code_for(e)
            if debug:
                traceback.print_exc()
            self._report(e, code, getattr(e, "code", "error"))
            sys.exit(code)
        except Exception as e:  # noqa: BLE001 - the last line of defence
            if debug:
                traceback.print_exc()
            self._report(e, EXIT_INTERNAL, "internal_error",
                         prefix="internal error: ", suffix=" (a bug; rerun with --debug and "
                                                           "report it)")
            sys.exit(EXIT_INTERNAL)
        sys.exit(rv if isinstance(rv, int) else 0)

    @staticmethod
    def _report(e: BaseException, code: int, err_code: str, prefix: str = "",
                suffix: str = "") -> None:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if isinstance(e, ScheduleError):
            prefix = "internal error: the simulator rejected a schedule: "
            suffix = " (a bug; rerun with --debug and report it)"
        _stderr().print(f"edgeplan: error: {prefix}{msg}{suffix}")
        if _json_command["name"]:
            where = getattr(e, "where", None)
            click.echo(jsondoc.dumps(jsondoc.error_doc(_json_command["name"], code, err_code,
                                                       prefix + msg, where)))


@click.group(cls=EdgeplanGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Exit codes: 0 ok, 1 the answer is no (does not fit / gate failed), 2 bad "
                    "input or usage, 3 internal error, 130 interrupted.")
@click.version_option(__version__, "--version", prog_name="edgeplan")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def main(debug: bool) -> None:
    """Plan neural-network training on edge devices: memory fit, activation checkpointing
    (recomputation) trade-offs, schedules, time and energy per iteration."""


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--device", "-d", "device_name", metavar="NAME|PATH",
              help="Built-in device profile (see `edgeplan devices`) or a profile file.")
@click.option("--memory", "-m", callback=unit_callback(units.parse_size), metavar="SIZE",
              help='Memory available to training, e.g. "2.5 GiB"; replaces the device\'s '
                   "total minus reserved. Parameters, gradients and optimizer state are "
                   "subtracted from it.")
@click.option("--slots", type=click.IntRange(1, 100_000), default=None,
              help="Memory slots of the DP (resolution of the memory axis) [default: 500].")
@click.option("--batch", type=click.IntRange(1, 10**7), default=None,
              help="Batch size (activations and compute scale linearly from the file's batch).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16", "int8"]), default=None,
              help="Which sustained FLOP/s of the device turns FLOPs into seconds.")
@click.option("--offload", is_flag=True,
              help="Also plan checkpoint offload to the device's storage tier (chain-model.md "
                   "section 6) and show when it beats recomputation.")
@click.option("--tier", default=None, metavar="NAME",
              help="Storage tier for --offload [default: the profile's first].")
@click.option("--async-io", is_flag=True,
              help="With --offload: writes overlap the compute that follows them.")
@click.option("--time-limit", default=None, metavar="DURATION",
              callback=unit_callback(units.parse_time),
              help='Stop the solve cleanly after this long, e.g. "30 s" (exit 2).')
@click.option("--verify", "verify_spec", default=None, metavar="MODULE:CALLABLE",
              help="Run one training step of this PyTorch model following the recommended "
                   "schedule and compare measured with predicted memory and time (extra "
                   "`torch`). Exit 1 if the measured peak exceeds the budget.")
@click.option("--max-batch", type=click.IntRange(1, 10**7), default=None, metavar="N",
              help="Also find the largest batch up to N that fits (and within --max-overhead), "
                   "with throughput per batch size.")
@click.option("--max-overhead", default=None, metavar="PCT",
              callback=unit_callback(units.parse_percent),
              help='Recompute overhead limit for --max-batch, e.g. "30%".')
@click.option("--chart", is_flag=True,
              help="Also draw the memory/recompute trade-off curve in the terminal.")
@click.option("--timeline", "show_timeline", is_flag=True,
              help="Also draw the recommended schedule: live activations and memory per op.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Also draw the trade-off curve and the schedule's memory to "
                                   "FILE (.png, .svg, .pdf; extra `plot`).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Also write the JSON plan to this file (atomically).")
def solve(model: str, device_name: str | None, memory: int | None, slots: int | None,
          batch: int | None, precision: str | None, offload: bool, tier: str | None,
          async_io: bool, time_limit: float | None, verify_spec: str | None, chart: bool,
          show_timeline: bool, plot_path: str | None,
          max_batch: int | None, max_overhead: float | None, as_json: bool,
          output: str | None) -> int:
    """Does MODEL train on the device, and with which checkpointing schedule?

    Prints the memory breakdown, whether the model fits without checkpointing, the least
    memory with checkpointing, the memory/recompute trade-off and the recommended schedule
    (optimal DP, replayed by the simulator). Exit 1 when no schedule fits.

    Example: edgeplan solve examples/resnet18.yaml --device jetson-nano
    """
    from .discretize import DEFAULT_SLOTS
    from .loaders import find_device, load_model
    from .plan import make_plan
    from .report.table import plan_summary

    if as_json:
        _json_command["name"] = "solve"
    if device_name is None and memory is None:
        raise click.UsageError("give --device NAME (see `edgeplan devices`) or --memory SIZE")
    if as_json and (chart or show_timeline):
        raise click.UsageError("--chart/--timeline draw on the table output; drop --json")
    if plot_path:
        from .plot import plot_format
        plot_format(plot_path)  # a bad suffix is an input error before any work
    spec = load_model(model)
    device = find_device(device_name) if device_name else None
    if device is None and spec.uses_flops:
        raise InputError("stages are given in FLOPs; --device is needed to turn them into "
                         "seconds", source=model)
    plan = make_plan(spec, device, memory_bytes=memory, slots=slots or DEFAULT_SLOTS,
                     precision=precision, batch=batch,
                     progress=_progress("solving") if sys.stderr.isatty() else None,
                     time_limit_s=time_limit)
    off = None
    if offload or tier or async_io:
        if not offload:
            raise click.UsageError("--tier and --async-io go with --offload")
        if device is None:
            raise click.UsageError("--offload needs --device (its storage tiers)")
        off = _offload(plan, device, tier, async_io, slots or DEFAULT_SLOTS)
    code = EXIT_OK if plan.feasible or (off is not None and off[0].feasible) else EXIT_NO
    verification = None
    if verify_spec is not None:
        if not plan.feasible:
            raise InfeasibleError("nothing to verify: no schedule fits",
                                  budget_bytes=plan.memory.activation_bytes)
        verification = _verify(verify_spec, model, plan)
        if not verification.ok:
            code = EXIT_NO
    doc = jsondoc.plan_doc(plan, code)
    if verification is not None:
        doc["data"]["verification"] = verification.to_dict()
    if off is not None:
        doc["data"]["offload"] = jsondoc.offload_doc(plan, *off)
    batches = None
    if max_batch is not None:
        from .batch import plan_batches
        from .report.batch_report import batch_dict, batch_table
        batches = plan_batches(spec if batch is None else spec.scaled_to_batch(batch), device,
                               max_batch=max_batch, memory_bytes=memory, max_overhead=max_overhead,
                               slots=slots or DEFAULT_SLOTS, precision=precision)
        doc["data"]["batches"] = batch_dict(batches)
    elif max_overhead is not None:
        raise click.UsageError("--max-overhead goes with --max-batch")
    if output:
        write_atomic(Path(output), jsondoc.dumps(doc) + "\n")
    if as_json:
        click.echo(jsondoc.dumps(doc))
    else:
        out = _stdout()
        out.print(plan_summary(plan))
        if chart and plan.result.frontier:
            from .report.termplot import frontier_plot
            out.out(frontier_plot(plan, width=min(out.width, 100)), highlight=False)
        if show_timeline and plan.result.schedule is not None:
            from .report.timeline import timeline
            r = plan.result
            out.out(timeline(plan.chain, r.schedule, r.trace, width=min(out.width, 120),
                             budget_bytes=plan.memory.activation_bytes), highlight=False)
        if off is not None:
            from .report.table import offload_section
            out.print(offload_section(plan, *off))
        if verification is not None:
            from .cli_run import _table
            out.print(_table(verification, {"peak_bytes": plan.result.peak_bytes},
                             show_ops=False))
        if batches is not None:
            out.print(batch_table(batches))
    sys.stdout.flush()
    err = _stderr()
    if plot_path:
        from .plot import plot_plan
        plot_plan(plan, plot_path)
        err.print(f"wrote {plot_path}")
    for note in plan.result.notes:
        err.print(f"note: {note}")
    if not plan.feasible and off is not None and off[0].feasible:
        err.print("edgeplan: recomputation alone does not fit; the offload schedule does")
    elif not plan.feasible and plan.min_device_memory_bytes is not None:
        err.print(f"edgeplan: no schedule fits; at least {units.format_size(plan.min_memory_bytes)} "
                  f"for training ({units.format_size(plan.min_activation_bytes)} of activations) "
                  "would be needed")
    return code


def _verify(spec: str, model_path: str, plan):
    """Execute the recommended schedule in PyTorch and measure it (``edgeplan.torchrun``)."""
    try:
        from .torchrun import verify_plan
    except ImportError:
        raise InputError("PyTorch is not installed (pip install 'edgeplan[torch]')",
                         source="--verify") from None
    from .cli_run import read_model_input
    inp = read_model_input(model_path)
    if inp is None:
        raise InputError("the model file records no input shape (input: {shape: [...]}); "
                         "use `edgeplan run --input-shape` instead", source=model_path,
                         where="input")
    return verify_plan(spec, plan.result.schedule, plan.chain, input_shape=inp["shape"],
                       batch=plan.model.batch, dtype=inp["dtype_params"] or "float32",
                       input_dtype=inp["dtype"], budget_bytes=plan.memory.activation_bytes)


def _offload(plan, device, tier_name: str | None, asynchronous: bool, slots: int):
    """Offload plan for the same chain and budget, and its flash-endurance estimate."""
    from .endurance import endurance_estimate
    from .solvers.offload import solve_offload, storage_tier

    tier = storage_tier(device, tier_name)
    res = solve_offload(plan.chain, max(plan.memory.activation_bytes, 0), tier,
                        asynchronous=asynchronous, slots=slots)
    if plan.memory.activation_bytes < 0 and res.feasible:
        res = type(res)(**{**res.__dict__, "feasible": False, "schedule": None, "trace": None})
    endurance = None
    written = res.params.get("bytes_written") or 0
    if res.feasible and written and res.params.get("makespan_s"):
        endurance = endurance_estimate(written, iter_per_s=1.0 / res.params["makespan_s"],
                                       capacity_bytes=tier.capacity_bytes)
    return res, tier, endurance


def _progress(label: str):
    """A callback (done, total) that draws a rich progress bar on stderr (TTY only)."""
    from rich.progress import Progress

    state: dict[str, Any] = {}

    def cb(done: int, total: int) -> None:
        if "p" not in state:
            state["p"] = Progress(console=_stderr(), transient=True)
            state["p"].start()
            state["t"] = state["p"].add_task(label, total=total)
        state["p"].update(state["t"], completed=done, total=total)
        if done >= total:
            state.pop("p").stop()
    return cb


@main.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--device", "-d", "device_names", multiple=True, metavar="NAME|PATH",
              help="A device; repeat the option for several.")
@click.option("--devices", "device_list", metavar="A,B,C",
              help="Several devices, comma-separated (`all` for every built-in profile).")
@click.option("--memory", "-m", callback=unit_callback(units.parse_size), metavar="SIZE",
              help="Memory available to training (replaces each device's total minus reserved).")
@click.option("--strategies", "-s", default=None, metavar="A,B",
              help="Strategies to compare [default: store-all, segments, sqrt, sqrt-greedy, "
                   "revolve, optimal, exact].")
@click.option("--slots", type=click.IntRange(1, 100_000), default=None,
              help="Memory slots of the optimal DP [default: 500].")
@click.option("--batch", type=click.IntRange(1, 10**7), default=None,
              help="Batch size (scales every model's activations and compute).")
@click.option("--detail", is_flag=True, help="Every strategy for every (model, device) pair.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Also draw every pair's strategies and budget to FILE (.png, "
                                   ".svg, .pdf; extra `plot`).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def compare(models: tuple[str, ...], device_names: tuple[str, ...], device_list: str | None,
            memory: int | None, strategies: str | None, slots: int | None, batch: int | None,
            detail: bool, plot_path: str | None, as_json: bool) -> int:
    """Strategies, devices and models side by side.

    For each model on each device: each strategy's peak memory, recompute overhead, time and
    energy per iteration, and whether it fits the budget; with several devices or models, a
    summary of which devices can train which model. Every schedule is replayed by the
    simulator. Exit 0 even when some pairs do not fit (see `edgeplan check` for a gate).

    Example: edgeplan compare examples/resnet50.yaml --devices rpi-3b-plus,rpi-4-4gb,jetson-nano
    """
    from .compare import DEFAULT_STRATEGIES, check_strategies
    from .compare import compare as run_compare
    from .discretize import DEFAULT_SLOTS
    from .loaders import builtin_devices, find_device, load_model
    from .report.compare_report import compare_doc, compare_renderable

    if as_json:
        _json_command["name"] = "compare"
    names = list(device_names)
    if device_list:
        names += list(builtin_devices()) if device_list.strip() == "all" else \
            [n.strip() for n in device_list.split(",") if n.strip()]
    if not names and memory is None:
        raise click.UsageError("give --device/--devices (see `edgeplan devices`) or --memory")
    if plot_path:
        from .plot import plot_format
        plot_format(plot_path)
    strat = check_strategies([s.strip() for s in strategies.split(",") if s.strip()]) \
        if strategies else DEFAULT_STRATEGIES
    specs = [load_model(m) for m in models]
    if batch is not None:
        specs = [s.scaled_to_batch(batch) for s in specs]
    devs = [find_device(n) for n in names] or [None]
    for s in specs:
        if devs == [None] and s.uses_flops:
            raise InputError("stages are given in FLOPs; --device is needed", source=s.source)
    pairs = run_compare(specs, devs, memory_bytes=memory, strategies=strat,
                        slots=slots or DEFAULT_SLOTS,
                        progress=_progress("comparing") if sys.stderr.isatty() else None)
    if as_json:
        click.echo(jsondoc.dumps(compare_doc(pairs, EXIT_OK, slots or DEFAULT_SLOTS)))
    else:
        _stdout().print(compare_renderable(pairs, detail))
    if plot_path:
        from .plot import plot_compare
        plot_compare(pairs, plot_path, slots=slots or DEFAULT_SLOTS)
        _stderr().print(f"wrote {plot_path}")
    return EXIT_OK


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_context
def devices(ctx: click.Context, as_json: bool) -> int | None:
    """List the built-in device profiles (`edgeplan devices show NAME` for one).

    Example: edgeplan devices
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"json": as_json}
        return None
    from .loaders import builtin_devices, load_device
    from .report.table import devices_table

    if as_json:
        _json_command["name"] = "devices"
    profiles = [load_device(p) for p in builtin_devices().values()]
    if as_json:
        click.echo(jsondoc.dumps(jsondoc.envelope(
            "devices", status="ok", exit_code=0,
            data={"devices": [_device_dict(d) for d in profiles]})))
    else:
        _stdout().print(devices_table(profiles))
    return EXIT_OK


@devices.command("show")
@click.argument("name", metavar="NAME|PATH")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_context
def devices_show(ctx: click.Context, name: str, as_json: bool) -> int:
    """Show one device profile with the source of every number.

    Example: edgeplan devices show jetson-nano
    """
    from .loaders import find_device
    from .report.table import device_detail

    as_json = as_json or bool((ctx.obj or {}).get("json"))
    if as_json:
        _json_command["name"] = "devices show"
    d = find_device(name)
    if as_json:
        click.echo(jsondoc.dumps(jsondoc.envelope("devices show", status="ok", exit_code=0,
                                                  data={"device": _device_dict(d)})))
    else:
        _stdout().print(device_detail(d))
    return EXIT_OK


def _device_dict(d) -> dict:
    return {"name": d.name, "title": d.title, "kind": d.kind, "total_bytes": d.total_bytes,
            "reserved_bytes": d.reserved_bytes, "usable_bytes": d.usable_bytes,
            "bandwidth_bytes_per_s": d.bandwidth_bytes_per_s, "precision": d.precision,
            "peak_flops": d.peak_flops, "sustained_flops": d.sustained_flops,
            "training_power_w": d.training_power_w, "idle_power_w": d.idle_power_w,
            "storage": [{"name": s.name, "read_bytes_per_s": s.read_bytes_per_s,
                         "write_bytes_per_s": s.write_bytes_per_s,
                         "read_latency_s": s.read_latency_s, "write_latency_s": s.write_latency_s,
                         "capacity_bytes": s.capacity_bytes} for s in d.storage],
            "sources": d.sources, "path": d.path}


from .cli_check import check_cmd  # noqa: E402
from .cli_import import import_group  # noqa: E402
from .cli_completion import completion_cmd  # noqa: E402
from .cli_run import run_cmd  # noqa: E402
from .cli_why import why_cmd  # noqa: E402

main.add_command(check_cmd)
main.add_command(import_group)
main.add_command(run_cmd)
main.add_command(why_cmd)
main.add_command(completion_cmd)

__all__ = ["main", "EXIT_CODES", "exit_code_for", "UnknownNameError"]
