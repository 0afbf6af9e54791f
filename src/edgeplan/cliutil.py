"""Small click helpers shared by the command modules (no command lives here)."""

from __future__ import annotations

from typing import Any, Callable

import click

from .errors import InputError


def unit_callback(parse: Callable[[Any], Any], *, positive: bool = False):
    """A click option callback that parses a quantity with one of ``edgeplan.units``' parsers;
    a bad value is a usage error (exit 2) with the parser's message."""
    def cb(_ctx, _param, value):
        if value is None:
            return None
        try:
            v = parse(value)
        except InputError as e:
            raise click.BadParameter(e.message) from None
        if positive and v <= 0:
            raise click.BadParameter(f"expected a positive value, got {value!r}")
        return v
    return cb
