"""The command line: a thin layer over the library, imported by nothing.

Each command module parses options, makes one library call and hands the result to ``report``;
``_app`` maps exceptions to exit codes (docs/exit-codes.md) and holds the ``Output`` of an
invocation; ``_options`` the option types and shared options.
"""

from __future__ import annotations

import click

from .. import __version__
from ._app import CONTEXT, EXIT_CODES, EdgeplanGroup, exit_code_for
from .calibrate import calibrate_cmd
from .check import check_cmd
from .compare import compare
from .completion import completion_cmd
from .devices import devices
from .finetune import finetune_cmd
from .imports import import_group
from .run import run_cmd
from .solve import solve
from .why import why_cmd


@click.group(cls=EdgeplanGroup, context_settings=CONTEXT,
             epilog="Exit codes: 0 ok, 1 the answer is no (does not fit / gate failed), 2 bad "
                    "input or usage, 3 internal error, 130 interrupted.")
@click.version_option(__version__, "--version", prog_name="edgeplan")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def main(debug: bool) -> None:
    """Plan neural-network training on edge devices: memory fit, activation checkpointing
    (recomputation) trade-offs, schedules, time and energy per iteration."""


for _cmd in (solve, finetune_cmd, compare, devices, check_cmd, import_group, run_cmd, why_cmd,
             calibrate_cmd, completion_cmd):
    main.add_command(_cmd)

__all__ = ["EXIT_CODES", "EdgeplanGroup", "exit_code_for", "main"]
