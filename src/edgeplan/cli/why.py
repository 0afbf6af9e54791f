"""``edgeplan why``: should this node train on the edge at all? (the library is ``why.py``).

Exit 0 with a verdict (whichever way it goes), 2 on bad input.
"""

from __future__ import annotations

import click

from .. import units
from ..errors import InputError
from ._app import EXIT_OK, Output, command
from ._options import batch_option, json_option


def _float(value: str) -> float:
    try:
        v = float(value.replace(",", "").replace("_", ""))
    except ValueError:
        raise InputError(f"expected a number, got {value!r}") from None
    if not v >= 0 or v == float("inf"):
        raise InputError(f"expected a non-negative number, got {value!r}")
    return v


@command("why")
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
@batch_option("Training batch size [default: the model file's].")
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
@json_option
@click.pass_obj
def why_cmd(out: Output, data_rate: str, model_path: str | None, model_size: str | None,
            update_period: str,
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
    from .. import why
    from ..report.why_report import why_doc, why_renderable

    if as_json:
        out.promise_json("why")

    def parse(fn, value, option):
        try:
            return fn(value)
        except InputError as e:
            raise InputError(e.message, source=option, hint=e.hint) from None

    rate = parse(units.parse_data_rate, data_rate, "--data-rate")
    period = parse(units.parse_period, update_period, "--update-period")
    ratio = parse(units.parse_percent, delta_ratio, "--delta-ratio")
    n_passes = parse(_float, passes, "--passes")
    spd = None if samples_per_day is None else parse(_float, samples_per_day,
                                                     "--samples-per-day")
    sbytes = None if sample_size is None else parse(units.parse_size, sample_size, "--sample-size")
    mem = None if memory is None else parse(units.parse_size, memory, "--memory")
    e_byte = None if radio_energy is None else parse(units.parse_energy_per_byte, radio_energy,
                                                     "--radio-energy")
    up = None if uplink is None else parse(units.parse_uplink, uplink, "--uplink")
    preset = why.find_radio(radio)
    if (model_path is None) == (model_size is None):
        raise click.UsageError("give --model MODEL.yaml or --model-size SIZE (one of them)")
    model = device = None
    if model_path is not None:
        from ..formats.model_file import load_model
        model = load_model(model_path)
        model_bytes = model.param_bytes
    else:
        model_bytes = parse(units.parse_size, model_size, "--model-size")
    if device_name is not None:
        from ..formats.device_file import find_device
        device = find_device(device_name)
    result = why.analyze(data_bytes_per_s=rate, model_bytes=model_bytes, update_period_s=period,
                         update=update, delta_ratio=ratio, radio=preset, energy_j_per_byte=e_byte,
                         uplink_bytes_per_s=up, model=model, device=device, batch=batch,
                         samples_per_day=spd, sample_bytes=sbytes, passes=n_passes,
                         local_only=local_only, prefer=prefer, memory_bytes=mem)
    if as_json:
        inputs = {"data_rate": data_rate, "model": model_path, "model_size": model_size,
                  "update_period": update_period, "update": update, "delta_ratio": ratio,
                  "device": None if device is None else device.name, "memory_bytes": mem,
                  "batch": batch, "samples_per_day": spd, "sample_bytes": sbytes,
                  "passes": n_passes, "radio": preset.name, "radio_energy_j_per_byte": e_byte,
                  "uplink_bytes_per_s": up, "local_only": local_only, "prefer": prefer}
        out.json(why_doc(result, inputs))
    else:
        out.stdout.print(why_renderable(result))
    return EXIT_OK
