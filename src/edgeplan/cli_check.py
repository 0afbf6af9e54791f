"""``edgeplan check``: capacity gates for CI.

Registered into the main command line with ``main.add_command(check_cmd)``. Exit 0 when every
gate passes on every device, 1 when one fails (the answer is no), 2 on bad input (an unknown
config key, an unknown device, a bad unit), 3 on a bug; the group in ``cli.py`` maps exceptions.
Settings come from ``edgeplan.yaml`` or ``[tool.edgeplan]`` in ./pyproject.toml (``config.py``);
flags override them. The gates themselves are ``gate.py``; rendering is ``report/gate_report.py``.
"""

from __future__ import annotations

from pathlib import Path

import click

from . import units
from .cliutil import unit_callback
from .errors import InputError




@click.command("check", context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--memory", "-m", callback=unit_callback(units.parse_size), metavar="SIZE",
              help="Memory available to training; replaces each device's total minus reserved.")
@click.option("--slots", type=click.IntRange(1, 100_000), default=None,
              help="Memory slots of the DP [default: 500].")
@click.option("--batch", type=click.IntRange(1, 10**7), default=None,
              help="Batch size to check (default: the model file's).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16", "int8"]), default=None,
              help="Which sustained FLOP/s turns FLOPs into seconds.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option("--junit", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also write JUnit XML (one testsuite per device, one testcase per gate).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Config file (edgeplan.yaml, or a pyproject.toml with "
                                   "[tool.edgeplan]) [default: found in the current folder].")
@click.option("--no-config", is_flag=True, help="Ignore edgeplan.yaml / pyproject.toml.")
def check_cmd(model: str | None, device_names: tuple[str, ...], max_overhead: float | None,
              max_step_time: float | None, min_batch: int | None, budget: int | None,
              memory: int | None, slots: int | None, batch: int | None, precision: str | None,
              as_json: bool, junit: str | None, config_file: str | None, no_config: bool) -> int:
    """Gate a model's training capacity in CI: exit 0 when every gate passes on every device.

    Gates: fits (always: a schedule exists within the memory), --max-overhead, --max-step-time,
    --min-batch, --budget. Settings are read from ./edgeplan.yaml or [tool.edgeplan] in
    ./pyproject.toml (see docs/ci.md); flags override them. Exit 1 when a gate fails, 2 on bad
    input.

    Example: edgeplan check model.yaml -d jetson-nano --max-overhead 30% --junit gates.xml
    """
    from .cli import EXIT_NO, EXIT_OK, _json_command, _stderr, _stdout
    from .config import CheckConfig, DeviceRef, discover, load_config, load_device_ref
    from .discretize import DEFAULT_SLOTS
    from .fileio import write_atomic
    from .gate import Thresholds, check
    from .loaders import load_model
    from .report import jsondoc
    from .report.gate_report import check_doc, check_table, junit_xml, summary_line

    if as_json:
        _json_command["name"] = "check"
    if config_file and no_config:
        raise InputError("--config and --no-config exclude each other", source="--no-config")
    err = _stderr()
    cfg = CheckConfig()
    if config_file:
        cfg = load_config(config_file)
    elif not no_config:
        found = discover(Path("."))  # relative, so messages name "edgeplan.yaml"
        if found is not None:
            cfg = load_config(found)
    if cfg.path:
        err.print(f"edgeplan: config: {cfg.path}")

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
        budget_bytes=budget))
    slots = slots or cfg.slots or DEFAULT_SLOTS
    batch = batch or cfg.batch
    precision = precision or cfg.precision

    spec = load_model(model_path)
    devices = [load_device_ref(r) for r in refs] or [None]
    if devices == [None] and spec.uses_flops:
        raise InputError("stages are given in FLOPs; --device is needed to turn them into "
                         "seconds", source=model_path)
    result = check(spec, devices, thresholds, memory_bytes=memory, slots=slots,
                   precision=precision, batch=batch)
    code = EXIT_OK if result.passed else EXIT_NO
    if junit:
        write_atomic(Path(junit), junit_xml(result))
    if as_json:
        click.echo(jsondoc.dumps(check_doc(result, code, config_path=cfg.path, memory_bytes=memory,
                                           slots=slots, precision=precision)))
    else:
        _stdout().print(check_table(result))
    for note in result.notes:
        err.print(f"note: {note}")
    err.print(summary_line(result))
    return code


__all__ = ["check_cmd"]
