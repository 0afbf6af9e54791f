"""``edgeplan finetune``: what to train on the device, and with which schedule."""

from __future__ import annotations

import sys

import click

from ._app import EXIT_NO, EXIT_OK, Output, command
from ._options import (
    batch_option,
    json_option,
    master_weights_option,
    memory_option,
    optimizer_option,
    precision_option,
    slots_option,
)


@command("finetune")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--device", "-d", "device_name", metavar="NAME|PATH",
              help="Built-in device profile (see `edgeplan devices`) or a profile file.")
@memory_option('Memory available to training, e.g. "2.5 GiB"; replaces the device\'s '
               "total minus reserved.")
@slots_option()
@batch_option("Batch size per optimizer step (default: the model file's).")
@precision_option("Which sustained FLOP/s of the device turns FLOPs into seconds.")
@optimizer_option()
@master_weights_option
@click.option("--min-trainable", default=None, metavar="last:K|from:NAME|P%|SIZE",
              help="Only recommend plans that train at least this: the last K stages (or from "
                   "NAME on) fully, P% of the parameter bytes, or SIZE of parameters; comma "
                   "list to combine.")
@click.option("--prefer", type=click.Choice(("trainable", "time")), default="trainable",
              show_default=True,
              help="Among the plans that fit: the one that trains the most, or the fastest per "
                   "sample.")
@click.option("--train", "selections", default=None, metavar="A;B",
              help="Try only these --train selections, separated by ';' (e.g. "
                   "'last:2;lora:8,last:1') [default: every depth, bias, LoRA ranks].")
@click.option("--grad-accum", "accum", default=None, metavar="K,K",
              help="Micro-batch counts to try, e.g. 1,2,4 [default: powers of two dividing the "
                   "batch, until no recomputation is needed].")
@click.option("--all", "every", is_flag=True,
              help="Show every candidate, not only the Pareto front.")
@json_option
@click.pass_obj
def finetune_cmd(out: Output, models: tuple[str, ...], device_name: str | None,
                 memory: int | None,
                 slots: int | None, batch: int | None, precision: str | None,
                 optimizer: str | None, master_weights: bool, min_trainable: str | None,
                 prefer: str,
                 selections: str | None, accum: str | None, every: bool,
                 as_json: bool) -> int:
    """What should train on the device? Plans full, partial (last K stages), bias-only and
    LoRA fine-tuning with 1, 2, 4, ... micro-batches, each with its optimal checkpointing
    schedule, and prints the Pareto front of peak memory, time per sample and trainable
    parameters, with the recommended plan. Exit 1 when nothing (that meets --min-trainable)
    fits. Several MODEL files measuring one model in several precisions (`edgeplan import
    torch --amp bf16`) make precision a choice too.

    Example: edgeplan finetune examples/gpt2-small.yaml --device jetson-orin-nano-8gb
    """
    from ..discretize import DEFAULT_SLOTS
    from ..errors import InputError
    from ..finetune import plan_finetune
    from ..formats.device_file import find_device
    from ..formats.model_file import load_model
    from ..report.finetune_report import (
        command_for,
        finetune_doc,
        finetune_table,
        summary_lines,
    )

    if as_json:
        out.promise_json("finetune")
    if device_name is None and memory is None:
        raise click.UsageError("give --device NAME (see `edgeplan devices`) or --memory SIZE")
    counts = None
    if accum is not None:
        try:
            counts = [int(k) for k in accum.split(",") if k.strip()]
        except ValueError:
            raise InputError(f"expected micro-batch counts like 1,2,4, got {accum!r}",
                             source="--grad-accum") from None
    specs = [load_model(m) for m in models]
    device = find_device(device_name) if device_name else None
    ft = plan_finetune(specs, device, memory_bytes=memory, slots=slots or DEFAULT_SLOTS,
                       precision=precision, batch=batch, optimizer=optimizer,
                       selections=None if selections is None else
                       [s for s in selections.split(";") if s.strip()],
                       grad_accum=counts, min_trainable=min_trainable, prefer=prefer,
                       master_weights=master_weights, progress=out.progress("planning"))
    code = EXIT_OK if ft.feasible else EXIT_NO
    if as_json:
        out.json(finetune_doc(ft, code))
    else:
        out.stdout.print(finetune_table(ft, every=every))
        for line in summary_lines(ft):
            out.stdout.out(line, highlight=False)
        if ft.recommended is not None:
            out.stdout.out("Its schedule: " + command_for(ft.recommended, device_name),
                           highlight=False)
    sys.stdout.flush()
    out.notes(ft.notes)
    return code


__all__ = ["finetune_cmd"]
