"""The command-line application: exit codes, the group that maps exceptions, and ``Output``.

``EdgeplanGroup.main`` maps exceptions to exit codes (docs/exit-codes.md):

=====  ========================================================================
code   meaning
=====  ========================================================================
0      ok
1      the answer is no: no schedule fits, a gate failed
2      bad input or usage: unreadable/invalid file, unknown device, bad option
3      internal error (a bug): unexpected exception, a schedule the simulator rejects
130    interrupted (Ctrl-C)
=====  ========================================================================

Results go to stdout (a table, or exactly one JSON document with ``--json``, also on errors once
the command has started); notes, progress and errors go to stderr. Every command receives the
one ``Output`` of the invocation through ``ctx.obj`` (``@click.pass_obj``).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
from rich.console import Console

from ..errors import EdgeplanError, InfeasibleError, InputError, LimitError, ScheduleError
from ..report import _json

EXIT_OK, EXIT_NO, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EXIT_CODES: dict[type[EdgeplanError], int] = {
    InputError: EXIT_INPUT,
    LimitError: EXIT_INPUT,
    InfeasibleError: EXIT_NO,
    ScheduleError: EXIT_INTERNAL,
    EdgeplanError: EXIT_INTERNAL,
}

CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


def exit_code_for(err: BaseException) -> int:
    for cls in type(err).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]  # type: ignore[index]
    return EXIT_INTERNAL


def _color_system() -> str | None:
    """NO_COLOR (no-color.org) turns off every escape sequence, not only colours."""
    return None if os.environ.get("NO_COLOR") else "auto"


def stderr_console() -> Console:
    return Console(stderr=True, markup=False, highlight=False, soft_wrap=True,
                   color_system=_color_system())  # type: ignore[arg-type]


def stdout_console() -> Console:
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "120") or 120)
    return Console(markup=False, highlight=False, width=width, soft_wrap=False,
                   color_system=_color_system())  # type: ignore[arg-type]


@dataclass
class Output:
    """Where a command writes: results on stdout, notes and progress on stderr, and the promise
    of exactly one JSON document on stdout (kept by the group on errors too)."""

    json_command: str | None = None
    _stdout: Console | None = field(default=None, repr=False)
    _stderr: Console | None = field(default=None, repr=False)

    @property
    def stdout(self) -> Console:
        if self._stdout is None:
            self._stdout = stdout_console()
        return self._stdout

    @property
    def stderr(self) -> Console:
        if self._stderr is None:
            self._stderr = stderr_console()
        return self._stderr

    def promise_json(self, command: str) -> None:
        """From here on, stdout carries one JSON document for ``command``, even on an error."""
        self.json_command = command

    def json(self, doc: dict) -> None:
        click.echo(_json.dumps(doc))

    def note(self, text: str) -> None:
        self.stderr.print(text)

    def notes(self, notes: tuple[str, ...] | list[str]) -> None:
        for n in notes:
            self.stderr.print(f"note: {n}")

    def progress(self, label: str) -> Callable[[int, int], None] | None:
        """A ``(done, total)`` callback drawing a rich progress bar on stderr, on a TTY only."""
        if not sys.stderr.isatty():
            return None
        from rich.progress import Progress

        state: dict[str, Any] = {}

        def cb(done: int, total: int) -> None:
            if "p" not in state:
                state["p"] = Progress(console=self.stderr, transient=True)
                state["p"].start()
                state["t"] = state["p"].add_task(label, total=total)
            state["p"].update(state["t"], completed=done, total=total)
            if done >= total:
                state.pop("p").stop()
        return cb


def flag_for(command: click.Command, param: str) -> str | None:
    """The command-line spelling of the library parameter ``param`` in ``command``: the option
    whose name is ``param`` or that has the flag ``--param`` (None when it has neither)."""
    flag = "--" + param.replace("_", "-")
    for p in command.params:
        if isinstance(p, click.Option) and (p.name == param or flag in p.opts):
            return max(p.opts, key=len)
    return None


class EdgeplanCommand(click.Command):
    """A command whose library errors name its own flags: an ``InputError`` that names a
    parameter (``param="segments"``) and no file gets the flag that gave it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as e:
            if e.param and not e.source:
                flag = flag_for(self, e.param)
                if flag is not None:
                    raise e.for_flag(flag) from e.__cause__
            raise


class CommandGroup(click.Group):
    """A group of edgeplan commands (``import``, ``devices``)."""

    command_class = EdgeplanCommand


def command(name: str) -> Callable[[Callable[..., Any]], click.Command]:
    """``@click.command`` for edgeplan: an ``EdgeplanCommand`` with ``-h``/``--help``."""
    return click.command(name, cls=EdgeplanCommand, context_settings=CONTEXT)


class EdgeplanGroup(click.Group):
    """Maps exceptions to exit codes, for the console script and for CliRunner alike."""

    command_class = EdgeplanCommand
    group_class = CommandGroup

    def main(self, args: Any = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        out = Output()
        debug = "--debug" in (args if args is not None else sys.argv[1:])
        try:
            rv = super().main(args, prog_name or "edgeplan", complete_var,
                              standalone_mode=False, obj=out, **extra)
        except (KeyboardInterrupt, click.exceptions.Abort):
            out.stderr.print("edgeplan: interrupted")
            sys.exit(EXIT_INTERRUPTED)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code if e.exit_code else EXIT_INPUT)
        except EdgeplanError as e:
            code = exit_code_for(e)
            if debug:
                traceback.print_exc()
            self._report(out, e, code, getattr(e, "code", "error"))
            sys.exit(code)
        except Exception as e:  # noqa: BLE001 - the last line of defence
            if debug:
                traceback.print_exc()
            self._report(out, e, EXIT_INTERNAL, "internal_error",
                         prefix="internal error: ", suffix=" (a bug; rerun with --debug and "
                                                           "report it)")
            sys.exit(EXIT_INTERNAL)
        sys.exit(rv if isinstance(rv, int) else 0)

    @staticmethod
    def _report(out: Output, e: BaseException, code: int, err_code: str, prefix: str = "",
                suffix: str = "") -> None:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if isinstance(e, ScheduleError):
            prefix = "internal error: the simulator rejected a schedule: "
            suffix = " (a bug; rerun with --debug and report it)"
        out.stderr.print(f"edgeplan: error: {prefix}{msg}{suffix}")
        if out.json_command:
            where = getattr(e, "where", None)
            out.json(_json.error_doc(out.json_command, code, err_code, prefix + msg, where))
