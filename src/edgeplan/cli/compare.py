"""``edgeplan compare``: strategies, devices and models side by side."""

from __future__ import annotations

import click

from ._app import EXIT_OK, Output, command
from ._options import (
    batch_option,
    comma_list,
    json_option,
    memory_option,
    optimizer_option,
    plot_option,
    slots_option,
    train_option,
)


@command("compare")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--device", "-d", "device_names", multiple=True, metavar="NAME|PATH",
              help="A device; repeat the option for several.")
@click.option("--devices", "device_list", metavar="A,B,C",
              help="Several devices, comma-separated (`all` for every built-in profile).")
@memory_option("Memory available to training (replaces each device's total minus reserved).")
@click.option("--strategies", "-s", default=None, metavar="A,B",
              help="Strategies to compare [default: store-all, segments, sqrt, sqrt-greedy, "
                   "revolve, optimal, exact].")
@slots_option("Memory slots of the optimal DP [default: 500].")
@batch_option("Batch size (scales every model's activations and compute).")
@train_option("What trains in every model (as `solve --train`; default: each file's).")
@optimizer_option()
@click.option("--detail", is_flag=True, help="Every strategy for every (model, device) pair.")
@plot_option("Also draw every pair's strategies and budget to FILE (.png, .svg, .pdf; extra "
             "`plot`).")
@json_option
@click.pass_obj
def compare(out: Output, models: tuple[str, ...], device_names: tuple[str, ...],
            device_list: str | None, memory: int | None, strategies: str | None,
            slots: int | None, batch: int | None, train: str | None, optimizer: str | None,
            detail: bool, plot_path: str | None, as_json: bool) -> int:
    """Strategies, devices and models side by side.

    For each model on each device: each strategy's peak memory, recompute overhead, time and
    energy per iteration, and whether it fits the budget; with several devices or models, a
    summary of which devices can train which model. Every schedule is replayed by the
    simulator. Exit 0 even when some pairs do not fit (see `edgeplan check` for a gate).

    Example: edgeplan compare examples/resnet50.yaml --devices rpi-3b-plus,rpi-4-4gb,jetson-nano
    """
    from ..compare import DEFAULT_STRATEGIES, check_strategies
    from ..compare import compare as run_compare
    from ..discretize import DEFAULT_SLOTS
    from ..formats.device_file import builtin_devices, find_device
    from ..formats.model_file import load_model
    from ..report.compare_report import compare_doc, compare_renderable

    if as_json:
        out.promise_json("compare")
    names = list(device_names)
    if device_list:
        names += list(builtin_devices()) if device_list.strip() == "all" else \
            comma_list(device_list)
    if not names and memory is None:
        raise click.UsageError("give --device/--devices (see `edgeplan devices`) or --memory")
    if plot_path:
        from ..report.figures import plot_format
        plot_format(plot_path)
    strat = check_strategies(comma_list(strategies)) if strategies else DEFAULT_STRATEGIES
    specs = [load_model(m) for m in models]
    if batch is not None:
        specs = [s.scaled_to_batch(batch) for s in specs]
    devs = [find_device(n) for n in names] or [None]
    slots = slots or DEFAULT_SLOTS
    pairs = run_compare(specs, devs, memory_bytes=memory, strategies=strat, slots=slots,
                        with_frontier=bool(plot_path), progress=out.progress("comparing"),
                        train=train, optimizer=optimizer)
    if as_json:
        out.json(compare_doc(pairs, EXIT_OK, slots))
    else:
        out.stdout.print(compare_renderable(pairs, detail))
    if plot_path:
        from ..report.figures import plot_compare
        plot_compare(pairs, plot_path)
        out.note(f"wrote {plot_path}")
    return EXIT_OK
