"""``edgeplan solve``: does MODEL train on the device, and with which checkpointing schedule?"""

from __future__ import annotations

import sys
from typing import Any

import click

from .. import units
from ..errors import InfeasibleError, InputError
from ..plan import OffloadRequest, Plan, make_plan
from ._app import Output, command
from ._options import (
    batch_option,
    json_option,
    master_weights_option,
    memory_option,
    optimizer_option,
    plot_option,
    precision_option,
    slots_option,
    train_option,
    unit_callback,
)


@command("solve")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--device", "-d", "device_name", metavar="NAME|PATH",
              help="Built-in device profile (see `edgeplan devices`) or a profile file.")
@memory_option('Memory available to training, e.g. "2.5 GiB"; replaces the device\'s '
               "total minus reserved. Parameters, gradients and optimizer state are "
               "subtracted from it.")
@slots_option()
@batch_option("Batch size (activations and compute scale linearly from the file's batch).")
@precision_option("Which sustained FLOP/s of the device turns FLOPs into seconds.")
@train_option()
@optimizer_option()
@master_weights_option
@click.option("--grad-accum", type=click.IntRange(1, 10**6), default=1, metavar="K",
              help="Split the batch into K micro-batches whose gradients accumulate: "
                   "activations at batch/K, time and energy per optimizer step and per sample.")
@click.option("--offload", is_flag=True,
              help="Also plan checkpoint offload to the device's storage tier (docs/chain-model.md "
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
@plot_option("Also draw the trade-off curve and the schedule's memory to FILE (.png, .svg, "
             ".pdf; extra `plot`).")
@json_option
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Also write the JSON plan to this file (atomically).")
@click.pass_obj
def solve(out: Output, model: str, device_name: str | None, memory: int | None,
          **opts: Any) -> int:
    """Does MODEL train on the device, and with which checkpointing schedule?

    Prints the memory breakdown, whether the model fits without checkpointing, the least
    memory with checkpointing, the memory/recompute trade-off and the recommended schedule
    (optimal DP, replayed by the simulator). Exit 1 when no schedule fits.

    Example: edgeplan solve examples/resnet18.yaml --device jetson-nano
    """
    from ..discretize import DEFAULT_SLOTS
    from ..formats._files import write_atomic
    from ..formats.device_file import find_device
    from ..formats.model_file import load_model
    from ..report import plan_report
    from ..report._json import dumps

    if opts["as_json"]:
        out.promise_json("solve")
    _check_flags(device_name, memory, opts)
    spec = load_model(model)
    device = find_device(device_name) if device_name else None
    offload = None
    if opts["offload"]:
        offload = OffloadRequest(tier=opts["tier"], asynchronous=opts["async_io"])
    slots = opts["slots"] or DEFAULT_SLOTS
    plan = make_plan(spec, device, memory_bytes=memory, slots=slots,
                     precision=opts["precision"], batch=opts["batch"], offload=offload,
                     progress=out.progress("solving"), time_limit_s=opts["time_limit"],
                     grad_accum=opts["grad_accum"], train=opts["train"],
                     optimizer=opts["optimizer"], master_weights=opts["master_weights"])
    verification = None
    if opts["verify_spec"] is not None:
        verification = _verify(opts["verify_spec"], model, plan)
    batches = None
    if opts["max_batch"] is not None:
        from ..batch import plan_batches
        batches = plan_batches(plan.model, device, max_batch=opts["max_batch"],
                               memory_bytes=memory, max_overhead=opts["max_overhead"],
                               slots=slots, precision=opts["precision"])
    code = plan_report.exit_code(plan, verification)
    doc = plan_report.solve_doc(plan, code, verification=verification, batches=batches)
    if opts["output"]:
        from pathlib import Path
        write_atomic(Path(opts["output"]), dumps(doc) + "\n")
    if opts["as_json"]:
        out.json(doc)
    else:
        for part in plan_report.solve_renderables(
                plan, width=out.stdout.width, chart=opts["chart"],
                timeline=opts["show_timeline"], verification=verification, batches=batches):
            if isinstance(part, str):
                out.stdout.out(part, highlight=False)
            else:
                out.stdout.print(part)
    sys.stdout.flush()
    if opts["plot_path"]:
        from ..report.figures import plot_plan
        plot_plan(plan, opts["plot_path"])
        out.note(f"wrote {opts['plot_path']}")
    out.notes(plan.problem.notes + plan.result.notes)
    for line in plan_report.closing_lines(plan):
        out.note(line)
    return code


def _check_flags(device_name: str | None, memory: int | None, opts: dict[str, Any]) -> None:
    """The usage rules between solve's flags (click.UsageError, exit 2), before any work."""
    if device_name is None and memory is None:
        raise click.UsageError("give --device NAME (see `edgeplan devices`) or --memory SIZE")
    if opts["as_json"] and (opts["chart"] or opts["show_timeline"]):
        raise click.UsageError("--chart/--timeline draw on the table output; drop --json")
    if (opts["tier"] or opts["async_io"]) and not opts["offload"]:
        raise click.UsageError("--tier and --async-io go with --offload")
    if opts["offload"] and device_name is None:
        raise click.UsageError("--offload needs --device (its storage tiers)")
    if opts["max_overhead"] is not None and opts["max_batch"] is None:
        raise click.UsageError("--max-overhead goes with --max-batch")
    if opts["grad_accum"] > 1 and (opts["max_batch"] is not None or opts["verify_spec"]):
        raise click.UsageError("--grad-accum does not go with --max-batch or --verify yet")
    if opts["plot_path"]:
        from ..report.figures import plot_format
        plot_format(opts["plot_path"])  # a bad suffix is an input error before any work


def _verify(spec: str, model_path: str, plan: Plan) -> Any:
    """Execute the recommended schedule in PyTorch and measure it (``edgeplan.torchrun``)."""
    if not plan.feasible:
        raise InfeasibleError("nothing to verify: no schedule fits",
                              budget_bytes=plan.memory.activation_bytes)
    try:
        from ..torchrun import verify_plan
    except ImportError:
        raise InputError("PyTorch is not installed (pip install 'edgeplan[torch]')",
                         source="--verify") from None
    from ..formats.model_file import read_model_input
    inp = read_model_input(model_path)
    if inp is None:
        raise InputError("the model file records no input shape (input: {shape: [...]}); "
                         "use `edgeplan run --input-shape` instead", source=model_path,
                         where="input")
    training = plan.problem.training
    return verify_plan(spec, plan.result.schedule, plan.chain, input_shape=inp["shape"],
                       batch=plan.model.batch, dtype=inp["dtype_params"] or "float32",
                       input_dtype=inp["dtype"], budget_bytes=plan.memory.activation_bytes,
                       modes=None if training is None else training.modes,
                       lora=inp.get("lora"), amp=inp.get("amp"), optimizer=plan.model.optimizer)
