"""``edgeplan devices`` and ``edgeplan devices show NAME``: the built-in device profiles."""

from __future__ import annotations

import click

from ._app import CONTEXT, EXIT_OK, CommandGroup, Output
from ._options import json_option


@click.group("devices", invoke_without_command=True, context_settings=CONTEXT,
             cls=CommandGroup)
@json_option
@click.pass_context
def devices(ctx: click.Context, as_json: bool) -> int | None:
    """List the built-in device profiles (`edgeplan devices show NAME` for one).

    Example: edgeplan devices
    """
    out: Output = ctx.obj
    if ctx.invoked_subcommand is not None:
        ctx.meta["devices.json"] = as_json
        return None
    from ..formats.device_file import builtin_devices, load_device
    from ..report.devices_report import devices_doc, devices_table

    if as_json:
        out.promise_json("devices")
    profiles = [load_device(p) for p in builtin_devices().values()]
    if as_json:
        out.json(devices_doc(profiles))
    else:
        out.stdout.print(devices_table(profiles))
    return EXIT_OK


@devices.command("show")
@click.argument("name", metavar="NAME|PATH")
@json_option
@click.pass_context
def devices_show(ctx: click.Context, name: str, as_json: bool) -> int:
    """Show one device profile with the source of every number.

    Example: edgeplan devices show jetson-nano
    """
    from ..formats.device_file import find_device
    from ..report.devices_report import device_detail, device_doc

    out: Output = ctx.obj
    as_json = as_json or bool(ctx.meta.get("devices.json"))
    if as_json:
        out.promise_json("devices show")
    d = find_device(name)
    if as_json:
        out.json(device_doc(d))
    else:
        out.stdout.print(device_detail(d))
    return EXIT_OK


__all__ = ["devices"]
