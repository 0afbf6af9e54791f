"""``edgeplan calibrate``: measure this machine and write a device profile (``calibrate.py``)."""

from __future__ import annotations

import platform
import shlex
import sys
import time

import click

from .. import units
from ..calibrate import PASSES
from ..work import LARGE_RESULT_BYTES
from ._app import EXIT_OK, Output, command
from ._options import unit_callback


@command("calibrate")
@click.option("--name", default=None, metavar="NAME",
              help="Profile name (default: this machine's host name).")
@click.option("--title", default=None, help="Profile title (default: generated).")
@click.option("--storage", "storage_path", default=None, metavar="FOLDER",
              help="Also measure the storage under FOLDER (a scratch file, removed), for "
                   "offload: write/read bandwidth and latency.")
@click.option("--power", default=None, metavar="POWER", callback=unit_callback(units.parse_power),
              help='Training power to record, e.g. "7.2 W" (calibrate cannot measure power; '
                   "default: an assumption marked [A]).")
@click.option("--device", "torch_device", default="cpu", show_default=True,
              help="Torch device whose throughput is measured (cpu, cuda).")
@click.option("--seconds", type=click.FloatRange(0.1, 60), default=2.0, show_default=True,
              help="Time spent on each compute measurement.")
@click.option("--passes", type=click.IntRange(1, 20), default=PASSES, show_default=True,
              help="Passes over the timing ladder, each operation counted at its fastest; "
                   "each pass takes about a third of the default's time, so more passes make a "
                   "longer, steadier calibration on a shared or throttling machine.")
@click.option("--quick", is_flag=True,
              help="Small problems and short runs: a smoke test, not a profile to trust.")
@click.option("-o", "--output", default="-", show_default=True, metavar="FILE",
              help="Profile to write ('-' = stdout).")
@click.pass_obj
def calibrate_cmd(out: Output, name: str | None, title: str | None, storage_path: str | None,
                  power: float | None, torch_device: str, seconds: float, passes: int,
                  quick: bool, output: str) -> int:
    """Measure this machine (run it on the device) and write a device profile with [M] sources.

    Memory and reserve (/proc/meminfo, the framework's own footprint); per precision the cost
    of each op family (matmul, convolution, depthwise, normalisation, pooling, gather, random,
    softmax, element-wise: overhead, FLOP/s, bytes/s fitted to timed training operations),
    which prices a model file's work per family; memory bandwidth; and with --storage the
    storage tier for offload. A minute or two by default; calibrate with the thread count you
    train with (OMP_NUM_THREADS). The built-in profiles keep their sourced vendor figures; use
    this one with --device FILE.

    Example: edgeplan calibrate --storage /mnt/sd --power "7.2 W" -o my-pi.yaml
    """
    from ..calibrate import calibrate
    from ..formats._files import write_atomic
    from ..formats.device_file import device_yaml

    def progress(label: str) -> None:
        if sys.stderr.isatty():
            out.stderr.print(f"measuring {label} ...")

    cal = calibrate(storage_path=storage_path, seconds=seconds, quick=quick,
                    device=torch_device, progress=progress, passes=passes)
    host = name or (platform.node() or "this-machine").split(".")[0].lower()
    sources = {"memory.total": cal.total_bytes.how, "memory.reserved": cal.reserved_bytes.how,
               "memory.bandwidth": cal.bandwidth_bytes_per_s.how}
    sources.update({f"compute.sustained.{p}": m.how for p, m in cal.sustained_flops.items()})
    sources["power.training"] = (f"[M] given with --power ({time.strftime('%Y-%m-%d')})"
                                 if power is not None else
                                 "[A] not measured (calibrate cannot measure power): 5 W is a "
                                 "placeholder; measure at the wall and pass --power")
    storage = []
    if cal.storage:
        storage.append({"name": "storage", "read": cal.storage["read"].value,
                        "write": cal.storage["write"].value,
                        "read_latency": cal.storage["read_latency"].value,
                        "write_latency": cal.storage["write_latency"].value})
        for k, m in cal.storage.items():
            sources[f"storage[0].{k}"] = m.how
    thr = f"{cal.threads} thread{'s' if cal.threads != 1 else ''}"
    for p, errs in cal.fit_error.items():
        n = cal.passes.get(p, 1)
        sources[f"compute.families.{p}"] = (
            f"[M] fitted to every operation of forward + backward steps of the calibration "
            f"ladder (edgeplan.calibrate: CNN-pyramid and transformer layer shapes), {p}, "
            f"{thr}, each layer timed as inside a network (a dense gradient, "
            f"caches flushed), each operation at its fastest over {n} "
            f"pass{'es' if n > 1 else ''} of repeated steps; median error of the fit "
            f"per family: "
            + ", ".join(f"{f} {e:.0%}" for f, e in errs.items())
            + f" (edgeplan calibrate {time.strftime('%Y-%m-%d')}, torch {cal.torch_version})")
    notes = ("Measured by `edgeplan calibrate` on this machine "
             f"({thr}). compute.families prices a model file's work per op "
             "family (written by `edgeplan import torch`): per operation overhead + FLOPs / "
             "rate + bytes / bandwidth (the bytes of operations with results of "
             f"{units.format_size(LARGE_RESULT_BYTES, precision=0)} or more at "
             "large_bandwidth). memory.bandwidth is a numpy copy "
             f"({cal.bandwidth_bytes_per_s.value / 1e9:.3g} GB/s). Quick mode: "
             f"{'yes (not a profile to trust)' if quick else 'no'}.")
    cmd = " ".join(shlex.quote(a) for a in ["edgeplan", "calibrate", *sys.argv[2:]]) \
        if sys.argv[1:2] == ["calibrate"] else "edgeplan calibrate"
    text = device_yaml(
        name=host, title=title or f"{host} (calibrated {time.strftime('%Y-%m-%d')}, "
                                  f"{cal.machine})",
        kind=cal.kind, total_bytes=int(cal.total_bytes.value),
        reserved_bytes=int(cal.reserved_bytes.value),
        bandwidth_bytes_per_s=cal.bandwidth_bytes_per_s.value, precision="fp32",
        sustained_flops={p: m.value for p, m in cal.sustained_flops.items()},
        training_power_w=power if power is not None else 5.0, storage=storage,
        sources=sources, notes=notes, families=cal.families,
        header=f"produced by: {cmd}\nedgeplan calibrate {time.strftime('%Y-%m-%d')}, torch "
               f"{cal.torch_version}, {cal.machine}")
    if output == "-":
        click.echo(text, nl=False)
    else:
        from pathlib import Path
        write_atomic(Path(output), text)
        out.note(f"wrote {output}: sustained fp32 "
                 f"{cal.sustained_flops['fp32'].value / 1e9:.3g} GFLOP/s, usable "
                 f"{units.format_size(cal.total_bytes.value - cal.reserved_bytes.value)}")
    return EXIT_OK
