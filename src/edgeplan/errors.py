"""The exception tree of edgeplan.

The library raises these and never prints or exits; ``edgeplan.cli`` maps each class to an exit
code (0 ok, 1 the answer is no, 2 bad input, 3 internal error). This module knows nothing of exit
codes or of printing.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class EdgeplanError(Exception):
    """Root of every error edgeplan raises on purpose."""

    code = "error"


class InputError(EdgeplanError, ValueError):
    """Bad input: a file, a key in it, a command-line value.

    ``source`` names the file, ``where`` the key path inside it (``stages[3].out``). A value
    that came from a function argument names the **parameter** (``param="segments"``), never a
    command-line flag: the command line maps the parameter to its own flag
    (``cli._app``), so a message cannot name a flag that does not exist. ``str()`` gives the
    one-line message users see.
    """

    code = "bad_input"

    def __init__(self, message: str, *, source: str | None = None, where: str | None = None,
                 hint: str | None = None, param: str | None = None):
        self.message = message
        self.source = source
        self.where = where
        self.hint = hint
        self.param = param
        super().__init__(self.render())

    def render(self) -> str:
        parts = [p for p in (self.source or self.param, self.where) if p]
        head = ": ".join(parts + [self.message])
        if self.hint:
            head += f" ({self.hint})"
        return head

    def located(self, source: str | None = None, where_prefix: str | None = None) -> InputError:
        """A copy of this error with the file name and an outer key path filled in."""
        where = self.where
        if where_prefix:
            sep = "" if not where or where.startswith("[") else "."
            where = where_prefix + (sep + where if where else "")
        err = type(self)(self.message, source=self.source or source, where=where, hint=self.hint,
                         param=self.param)
        err.__cause__ = self.__cause__
        if isinstance(self, UnknownNameError):
            err.suggestions = self.suggestions  # type: ignore[attr-defined]
        return err

    def for_flag(self, flag: str) -> InputError:
        """A copy whose source is the command-line flag that gave the parameter."""
        err = self.located()
        err.source = flag
        err.args = (err.render(),)
        return err


class UnitError(InputError):
    """A quantity that does not parse (``"big"``, ``"12 Mb"``, ``-3 MiB``)."""

    code = "bad_unit"


class ModelError(InputError):
    """A model or profile file that parses but is inconsistent (``saved < out``, empty chain)."""

    code = "bad_model"


class UnknownNameError(InputError):
    """An unknown key, device or strategy; carries did-you-mean suggestions."""

    code = "unknown_name"

    def __init__(self, message: str, *, suggestions: tuple[str, ...] = (), **kw: Any):
        self.suggestions = tuple(suggestions)
        super().__init__(message, **kw)

    @classmethod
    def for_name(cls, kind: str, name: str, choices: Iterable[str], *, n: int = 3,
                 cutoff: float = 0.5, key: str | None = None, otherwise: str | None = None,
                 **kw: Any) -> UnknownNameError:
        """THE did-you-mean: ``unknown <kind> 'name' (did you mean 'a' or 'b'?)``.

        ``key`` is the spelling matched against ``choices`` (default ``name``); without a close
        match the hint is ``otherwise`` (default: the list of choices)."""
        options = list(choices)
        close = tuple(difflib.get_close_matches(name if key is None else key, options, n=n,
                                                cutoff=cutoff))
        hint = (f"did you mean {' or '.join(repr(c) for c in close)}?" if close else
                otherwise or f"choose from {', '.join(options)}")
        return cls(f"unknown {kind} {name!r}", suggestions=close, hint=hint, **kw)


class InfeasibleError(EdgeplanError):
    """No schedule fits the budget. ``min_budget_bytes`` is the least budget that would, if
    known."""

    code = "infeasible"

    def __init__(self, message: str, *, budget_bytes: int | None = None,
                 min_budget_bytes: int | None = None):
        self.budget_bytes = budget_bytes
        self.min_budget_bytes = min_budget_bytes
        super().__init__(message)


class ScheduleError(EdgeplanError):
    """The simulator rejected a schedule: the op, its position and the broken rule."""

    code = "invalid_schedule"

    def __init__(self, message: str, *, index: int | None = None):
        self.index = index
        super().__init__(message if index is None else f"op #{index}: {message}")


class LimitError(EdgeplanError):
    """A solve refused up front because it would exceed a size or resource limit."""

    code = "limit"
