"""``edgeplan why``: should this node train on the edge at all? (the library is ``why.py``).

Registered into the main command line with ``main.add_command(why_cmd)``. Exit 0 with a verdict
(whichever way it goes), 2 on bad input; the group in ``cli.py`` maps exceptions.
"""

from __future__ import annotations

import click

from . import units
from .errors import InputError


def _float(value: str) -> float:
    try:
        v = float(value.replace(",", "").replace("_", ""))
    except ValueError:
        raise InputError(f"expected a number, got {value!r}") from None
    if not v >= 0 or v == float("inf"):
        raise InputError(f"expected a non-negative number, got {value!r}")
    return v


@click.command("why", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-rate", required=True, metavar="RATE",
              help='Raw sensor data the node produces, e.g. "2 GB/day", "30 KB/s", "500 MB/h".')
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
              metavar="MODEL.yaml",
              help="Model file: its parameter bytes are the update size, and with --device its "
                   "training cost comes from a plan.")
@click.option("--model-size", default=None, metavar="SIZE",
              help='Model size instead of --model, e.g. "45 MB" (training energy is then '
                   "unknown).")
@click.option("--update-period", default="1 day", show_default=True, metavar="PERIOD",
              help='How often a model update is shipped, e.g. "1 day", "12 h", "1 week".')
@click.option("--update", type=click.Choice(["full", "delta"]), default="full",
              show_default=True, help="Ship the full model or a compressed delta.")
@click.option("--delta-ratio", default="25%", show_default=True, metavar="PCT",
              help="Size of a delta as a share of the model (25%: 8-bit quantised fp32).")
@click.option("--device", "-d", "device_name", metavar="NAME|PATH", default=None,
              help="Device that would train (see `edgeplan devices`): time x training power "
                   "per iteration, from the recommended checkpointing schedule.")
@click.option("--memory", "-m", default=None, metavar="SIZE",
              help="Memory available to training (replaces the device's total minus reserved).")
@click.option("--batch", type=click.IntRange(1, 10**7), default=None,
              help="Training batch size [default: the model file's].")
@click.option("--samples-per-day", default=None, metavar="N",
              help="Training samples per day [default: data rate / sample size].")
@click.option("--sample-size", default=None, metavar="SIZE",
              help="Bytes of one raw sample [default: the model's input per sample].")
@click.option("--passes", default="1", show_default=True, metavar="N",
              help="Times each sample is trained on (epochs over the day's data).")
@click.option("--radio", default="lte", show_default=True, metavar="NAME",
              help="Radio preset: lte, wifi or lora (energy per byte and uplink, with sources).")
@click.option("--radio-energy", default=None, metavar="ENERGY",
              help='Energy per byte sent instead of the preset\'s, e.g. "5 uJ/B", "0.7 uJ/bit".')
@click.option("--uplink", default=None, metavar="BANDWIDTH",
              help='Uplink limit instead of the preset\'s, e.g. "1 MB/s" or "5 Mbit/s".')
@click.option("--local-only", is_flag=True,
              help="Compare shipping data with training and sending nothing (no updates).")
@click.option("--prefer", type=click.Choice(["energy", "bytes"]), default="energy",
              show_default=True, help="What decides the verdict when the two disagree.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def why_cmd(data_rate: str, model_path: str | None, model_size: str | None, update_period: str,
            update: str, delta_ratio: str, device_name: str | None, memory: str | None,
            batch: int | None, samples_per_day: str | None, sample_size: str | None,
            passes: str, radio: str, radio_energy: str | None, uplink: str | None,
            local_only: bool, prefer: str, as_json: bool) -> int:
    """Should the node train on the edge at all, or ship its data? (the question of Kukreja et
    al., "Training on the Edge: the why and the how", 2019)

    Per day: bytes sent and radio energy to (a) ship the raw data to a server, (b) train on the
    device and ship model updates every period, (c) train and send nothing; against the
    device's training energy (iterations per day x time per iteration of the recommended
    checkpointing schedule x training power). Prints every assumption and a verdict. Exit 0
    with a verdict either way, 2 on bad input.

    \b
    Example:
      edgeplan why --data-rate "2 GB/day" --model examples/mobilenetv2.yaml -d jetson-nano
    """
    from . import why
    from .cli import EXIT_OK, _json_command, _stdout
    from .report import jsondoc

    if as_json:
        _json_command["name"] = "why"

    def parse(fn, value, option):
        try:
            return fn(value)
        except InputError as e:
            raise InputError(e.message, source=option, hint=e.hint) from None

    rate = parse(why.parse_data_rate, data_rate, "--data-rate")
    period = parse(why.parse_period, update_period, "--update-period")
    ratio = parse(units.parse_percent, delta_ratio, "--delta-ratio")
    n_passes = parse(_float, passes, "--passes")
    spd = None if samples_per_day is None else parse(_float, samples_per_day,
                                                     "--samples-per-day")
    sbytes = None if sample_size is None else parse(units.parse_size, sample_size, "--sample-size")
    mem = None if memory is None else parse(units.parse_size, memory, "--memory")
    e_byte = None if radio_energy is None else parse(why.parse_energy_per_byte, radio_energy,
                                                     "--radio-energy")
    up = None if uplink is None else parse(why.parse_uplink, uplink, "--uplink")
    preset = why.find_radio(radio)
    if (model_path is None) == (model_size is None):
        raise click.UsageError("give --model MODEL.yaml or --model-size SIZE (one of them)")
    model = device = None
    if model_path is not None:
        from .loaders import load_model
        model = load_model(model_path)
        model_bytes = model.param_bytes
    else:
        model_bytes = parse(units.parse_size, model_size, "--model-size")
    if device_name is not None:
        from .loaders import find_device
        device = find_device(device_name)
    result = why.analyze(data_bytes_per_s=rate, model_bytes=model_bytes, update_period_s=period,
                         update=update, delta_ratio=ratio, radio=preset, energy_j_per_byte=e_byte,
                         uplink_bytes_per_s=up, model=model, device=device, batch=batch,
                         samples_per_day=spd, sample_bytes=sbytes, passes=n_passes,
                         local_only=local_only, prefer=prefer, memory_bytes=mem)
    if model is not None and device is None:
        result = _with_note(result, "no --device: training energy unknown, verdict by bytes")
    elif model is None and device is not None:
        result = _with_note(result, "--model-size gives no stages: training energy unknown "
                                    "(give --model MODEL.yaml), verdict by bytes")
    if as_json:
        inputs = {"data_rate": data_rate, "model": model_path, "model_size": model_size,
                  "update_period": update_period, "update": update, "delta_ratio": ratio,
                  "device": None if device is None else device.name, "memory_bytes": mem,
                  "batch": batch, "samples_per_day": spd, "sample_bytes": sbytes,
                  "passes": n_passes, "radio": preset.name, "radio_energy_j_per_byte": e_byte,
                  "uplink_bytes_per_s": up, "local_only": local_only, "prefer": prefer}
        click.echo(jsondoc.dumps(why.why_doc(result, inputs)))
    else:
        _stdout().print(why_renderable(result))
    return EXIT_OK


def _with_note(result, note: str):
    from dataclasses import replace
    return replace(result, assumptions=result.assumptions + (note,))


def why_renderable(result):
    """Rich rendering of a ``WhyResult``: the table, training, verdict, assumptions."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from .why import fmt_energy

    r = result
    from .why import pct_of

    t = Table(title="Per day: ship the data, or train on the edge?", box=box.SIMPLE_HEAD,
              title_justify="left")
    for col, just in (("scenario", "left"), ("sent", "right"), ("uplink", "right"),
                      ("radio", "right"), ("training", "right"), ("total energy", "right")):
        t.add_column(col, justify=just, no_wrap=True)
    for s in r.scenarios:
        train = "0 J" if s.training_j_per_day == 0 else fmt_energy(s.training_j_per_day)
        t.add_row(s.label, units.format_size(s.bytes_per_day), pct_of(s.airtime_fraction),
                  fmt_energy(s.radio_j_per_day), train, fmt_energy(s.total_j_per_day, wh=True))
    parts: list = [t]
    tr = r.training
    if tr is not None and tr.feasible:
        parts.append(Text(
            f"Training {tr.model} on {tr.device}: {tr.iterations_per_day:,.1f} iterations/day "
            f"(batch {tr.batch}) x {units.format_time(tr.time_per_iteration_s)} = "
            f"{tr.time_per_day_s / 3600:.2f} h/day of compute, "
            f"{fmt_energy(tr.energy_per_iteration_j)}/iteration."))
    elif tr is not None:
        parts.append(Text(f"Training {tr.model} on {tr.device}: does not fit (at least "
                          f"{units.format_size(tr.min_device_memory_bytes)} of device memory)."))
    parts.append(Text(""))
    parts.append(Text(f"Verdict: {r.verdict.line}.", style="bold"))
    parts.append(Text(""))
    parts.append(Text("Assumptions:"))
    notes = Table.grid(padding=(0, 1), pad_edge=True)
    notes.add_column(no_wrap=True)
    notes.add_column(overflow="fold")
    for a in r.assumptions:
        notes.add_row(" -", a)
    parts.append(notes)
    return Group(*parts)
