"""Progress callbacks: the one type every long computation accepts, and the time limit on it.

A ``Progress`` is called as ``progress(done, total)`` while a solve advances; it may raise (a
time limit does, with ``LimitError``) to stop the solve cleanly. The library never draws
progress; the command line passes a callback that does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import LimitError

#: ``progress(done, total)``.
Progress = Callable[[int, int], None]


def time_limited(progress: Progress | None, time_limit_s: float | None) -> Progress | None:
    """Wrap a progress callback so that the solve stops with ``LimitError`` past the limit."""
    if time_limit_s is None:
        return progress
    deadline = time.monotonic() + time_limit_s

    def cb(done: int, total: int) -> None:
        if time.monotonic() > deadline:
            raise LimitError(f"stopped after the time limit of {time_limit_s:g} s with the DP "
                             f"{100 * done // max(total, 1)}% done; use fewer slots, merge "
                             "stages or raise the time limit")
        if progress is not None:
            progress(done, total)
    return cb
