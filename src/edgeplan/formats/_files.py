"""Reading and writing files: bounded reads with precise errors, atomic writes.

Every input file is read through ``read_bytes`` / ``read_text``, so a missing, unreadable or
oversized file gives the same one-line ``InputError`` naming it whatever its format. Output goes
to a temporary file in the same folder, then is renamed over the target: an interrupted run
never leaves a half-written file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ..errors import InputError

#: Input files above this size are refused before they are read (no edge model needs more).
MAX_FILE_BYTES = 16 * 2**20


def read_bytes(path: str | Path, kind: str = "a file", *,
               max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``path``; every failure is an ``InputError`` naming the file (``kind``, e.g.
    ``"a YAML file"``, says what was expected)."""
    p = Path(path)
    src = str(path)
    try:
        if p.is_dir():
            raise InputError(f"is a directory, expected {kind}", source=src)
        size = p.stat().st_size
        if size > max_bytes:
            raise InputError(f"file is {size:,} bytes, over the {max_bytes:,}-byte limit",
                             source=src)
        return p.read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", source=src) from None
    except PermissionError:
        raise InputError("permission denied", source=src) from None
    except IsADirectoryError:
        raise InputError(f"is a directory, expected {kind}", source=src) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", source=src) from None


def read_text(path: str | Path, kind: str = "a text file", *,
              max_bytes: int = MAX_FILE_BYTES) -> str:
    """``read_bytes`` decoded as UTF-8 (an ``InputError`` with the offset otherwise)."""
    raw = read_bytes(path, kind, max_bytes=max_bytes)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (invalid byte at offset {e.start})",
                         source=str(path)) from None


@contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on any error
    (Ctrl-C included) it is removed and ``path`` is left as it was."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError("the folder does not exist", source=str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
