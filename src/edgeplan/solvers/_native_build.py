"""Build the native DP kernel (``_dpfill.c``) with the system C compiler, ahead of time.

Run by the install (``hatch_build.py`` at the repository root, for wheels and editable installs)
and by hand after editing the C source: ``python -m edgeplan.solvers._native_build``. Standard
library only: the install runs it in pip's isolated build environment, without numpy.

The library has no Python C API (``dp_native`` loads it with ctypes), so one build serves every
Python version. On x86-64 it is built three times, for the baseline and with
``-march=x86-64-v3`` (AVX2) and ``-march=x86-64-v4`` (AVX-512), and the loader picks the best
the CPU runs (the relaxation loops vectorise over the slots). Each library carries the SHA-256
of the source it was built from; the loader ignores a library built from another source.
No compiler, or a failing build: a warning, and edgeplan runs on its numba or numpy back end.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

SOURCE = "_dpfill.c"
BASE_FLAGS = ["-O3", "-fPIC", "-shared", "-pthread", "-ffp-contract=off", "-fno-fast-math",
              "-std=c11"]


def variants() -> list[tuple[str, list[str]]]:
    """``(name, extra flags)`` of the builds for this machine, the baseline first."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        return [("base", []), ("v3", ["-march=x86-64-v3"]), ("v4", ["-march=x86-64-v4"])]
    return [("base", [])]


def library_name(variant: str) -> str:
    return f"_dpfill-{variant}.so"


def source_hash(source: Path) -> str:
    return hashlib.sha256(source.read_bytes()).hexdigest()[:16]


def compiler() -> str | None:
    cc = os.environ.get("CC")
    if cc:
        return cc
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def build(pkg_dir: Path | None = None, log: Callable[[str], None] | None = None) -> list[Path]:
    """Compile every variant next to the source; returns the libraries built (empty: none).
    ``log(message)`` receives one line per problem (default: stderr)."""
    pkg_dir = pkg_dir or Path(__file__).resolve().parent
    say = log or (lambda msg: print(msg, file=sys.stderr))
    src = pkg_dir / SOURCE
    cc = compiler()
    if cc is None:
        say("edgeplan: no C compiler (cc, gcc, clang or $CC) found: the native DP kernel is not "
            "built; the numba or numpy back end is used")
        return []
    digest = source_hash(src)
    built: list[Path] = []
    for variant, flags in variants():
        out = pkg_dir / library_name(variant)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=pkg_dir)
        os.close(fd)
        cmd = [cc, *BASE_FLAGS, *flags, f'-DEDGEPLAN_DP_SOURCE_HASH="{digest}"', str(src),
               "-o", tmp]
        err = ""
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                lines = (r.stderr or r.stdout or f"exit status {r.returncode}").strip()
                err = lines.splitlines()[-1] if lines else f"exit status {r.returncode}"
        except (OSError, subprocess.TimeoutExpired) as e:
            err = str(e)
        if err:
            os.unlink(tmp)
            say(f"edgeplan: building the native DP kernel ({variant}) failed: {err}")
            if variant == "base":
                return []
            continue
        os.replace(tmp, out)   # atomic: a running process keeps its mapped copy
        built.append(out)
    return built


if __name__ == "__main__":
    libs = build()
    for lib in libs:
        print(lib)
    sys.exit(0 if libs else 1)
