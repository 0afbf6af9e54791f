"""``edgeplan check``: capacity gates for CI.

Exit 0 when every gate passes on every device, 1 when one fails (the answer is no), 2 on bad
input (an unknown config key, an unknown device, a bad unit), 3 on a bug. Settings come from
``edgeplan.yaml`` or ``[tool.edgeplan]`` in ./pyproject.toml (``formats.config_file``); flags
override them. The gates themselves are ``gate.py``; rendering is ``report/gate_report.py``.
"""

from __future__ import annotations

from pathlib import Path

import click

from .. import units
from ..errors import InputError
from ._app import EXIT_NO, EXIT_OK, Output, command
from ._options import (
    batch_option,
    json_option,
    memory_option,
    optimizer_option,
    precision_option,
    slots_option,
    train_option,
    unit_callback,
)


@command("check")
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--device", "-d", "device_names", multiple=True, metavar="NAME|PATH",
              help="Device profile (built-in name or file); repeat for several devices.")
@click.option("--max-overhead", callback=unit_callback(units.parse_percent), metavar="PERCENT",
              help='Gate: recompute overhead of the optimal schedule at most this, e.g. "30%".')
@click.option("--max-step-time", callback=unit_callback(units.parse_time, positive=True),
              metavar="TIME", help='Gate: time per iteration at most this, e.g. "2 s".')
@click.option("--min-batch", type=click.IntRange(1, 10**7), default=None, metavar="N",
              help="Gate: the largest batch that fits (within --max-overhead, if set) is at "
                   "least N.")
@click.option("--budget", callback=unit_callback(units.parse_size), metavar="SIZE",
              help='Gate: the least memory the model needs for training is at most SIZE, e.g. '
                   '"3 GiB" (a memory-size regression gate).')
@click.option("--min-trainable", default=None, metavar="last:K|from:NAME|P%|SIZE",
              help="Gate: some fine-tuning plan that trains at least this fits (as `edgeplan "
                   "finetune --min-trainable`), e.g. last:4 for the last 4 stages.")
@train_option("What trains in the plan every other gate checks (as `solve --train`).")
@optimizer_option()
@memory_option("Memory available to training; replaces each device's total minus reserved.")
@slots_option("Memory slots of the DP [default: 500].")
@batch_option("Batch size to check (default: the model file's).")
@precision_option("Which sustained FLOP/s turns FLOPs into seconds.")
@json_option
@click.option("--junit", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also write JUnit XML (one testsuite per device, one testcase per gate).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Config file (edgeplan.yaml, or a pyproject.toml with "
                                   "[tool.edgeplan]) [default: found in the current folder].")
@click.option("--no-config", is_flag=True, help="Ignore edgeplan.yaml / pyproject.toml.")
@click.pass_obj
def check_cmd(out: Output, model: str | None, device_names: tuple[str, ...],
              max_overhead: float | None,
              max_step_time: float | None, min_batch: int | None, budget: int | None,
              min_trainable: str | None, train: str | None, optimizer: str | None,
              memory: int | None, slots: int | None, batch: int | None, precision: str | None,
              as_json: bool, junit: str | None, config_file: str | None, no_config: bool) -> int:
    """Gate a model's training capacity in CI: exit 0 when every gate passes on every device.

    Gates: fits (always: a schedule exists within the memory), --max-overhead, --max-step-time,
    --min-batch, --budget, --min-trainable. Settings are read from ./edgeplan.yaml or
    [tool.edgeplan] in ./pyproject.toml (see docs/ci.md); flags override them. Exit 1 when a
    gate fails, 2 on bad input.

    Example: edgeplan check model.yaml -d jetson-nano --max-overhead 30% --junit gates.xml
    """
    from ..discretize import DEFAULT_SLOTS
    from ..formats._files import write_atomic
    from ..formats.config_file import CheckConfig, DeviceRef, discover, load_config, load_device_ref
    from ..formats.model_file import load_model
    from ..gate import Thresholds, check
    from ..report.gate_report import check_doc, check_table, junit_xml, summary_line

    if as_json:
        out.promise_json("check")
    if config_file and no_config:
        raise InputError("--config and --no-config exclude each other", source="--no-config")
    cfg = CheckConfig()
    if config_file:
        cfg = load_config(config_file)
    elif not no_config:
        found = discover(Path("."))  # relative, so messages name "edgeplan.yaml"
        if found is not None:
            cfg = load_config(found)
    if cfg.path:
        out.note(f"edgeplan: config: {cfg.path}")

    model_path = model or cfg.model
    if model_path is None:
        raise InputError("no model: give MODEL, or `model:` in edgeplan.yaml", source="check")
    refs = tuple(DeviceRef(spec=n, source="--device") for n in device_names) or cfg.devices
    memory = memory if memory is not None else cfg.memory_bytes
    if not refs and memory is None:
        raise InputError("no device: give --device NAME (repeatable; see `edgeplan devices`), "
                         "`devices:` in edgeplan.yaml, or --memory SIZE", source="check")
    thresholds = cfg.thresholds.overridden_by(Thresholds(
        max_overhead=max_overhead, max_step_time_s=max_step_time, min_batch=min_batch,
        budget_bytes=budget, min_trainable=min_trainable))
    slots = slots or cfg.slots or DEFAULT_SLOTS
    batch = batch or cfg.batch
    precision = precision or cfg.precision

    spec = load_model(model_path)
    devices = [load_device_ref(r) for r in refs] or [None]
    result = check(spec, devices, thresholds, memory_bytes=memory, slots=slots,
                   precision=precision, batch=batch, train=train or cfg.train,
                   optimizer=optimizer or cfg.optimizer)
    code = EXIT_OK if result.passed else EXIT_NO
    if junit:
        write_atomic(Path(junit), junit_xml(result))
    if as_json:
        out.json(check_doc(result, code, config_path=cfg.path, memory_bytes=memory, slots=slots,
                           precision=precision))
    else:
        out.stdout.print(check_table(result))
    out.notes(result.notes)
    out.note(summary_line(result))
    return code


__all__ = ["check_cmd"]
