"""Native (C, ahead-of-time compiled) back end of the DP fill and of the step replay.

``_dpfill.c`` is a port of ``dp_numba.fill_step`` and ``replay_numba.replay_steps`` with the same
results bit for bit; it is compiled when edgeplan is installed (``_native_build``) and loaded
here with ctypes in about a millisecond, where numba needs about half a second to import itself
and load its cached kernels. The library takes the common table types only (int32 cell index,
uint16 run starts, int16 choices: tables under 2^31 cells, 65535 slots and 32000 stages,
``dp_kernel._native_takes``); larger tables go to numba or numpy.

``load()`` returns None (and ``unavailable_reason()`` says why) when no library was built, none
matches the shipped source (an edited ``_dpfill.c``: rebuild with ``python -m
edgeplan.solvers._native_build``), or it cannot be loaded.
"""

from __future__ import annotations

import ctypes
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from . import _native_build as nb

_HERE = Path(__file__).resolve().parent
_LIB: Any = None
_REASON: str | None = None
_TRIED = False

_i64 = ctypes.c_int64


def _arr(dtype: Any) -> Any:
    return np.ctypeslib.ndpointer(dtype=dtype, flags="C_CONTIGUOUS")


def _open(path: Path, digest: str) -> Any:
    lib = ctypes.CDLL(str(path))
    lib.edgeplan_dp_source_hash.restype = ctypes.c_char_p
    got = lib.edgeplan_dp_source_hash().decode()
    if got != digest:
        raise OSError(f"{path.name} was built from another _dpfill.c ({got} != {digest}); "
                      "rebuild: python -m edgeplan.solvers._native_build")
    return lib


def _load_from(where: Path) -> tuple[Any, str | None]:
    """``(library, None)`` from the directory ``where``, or ``(None, why not)``."""
    try:
        base = where / nb.library_name("base")
        if not base.exists():
            return None, (f"not built ({base.name} missing; a C compiler at install time "
                          "builds it, or: python -m edgeplan.solvers._native_build)")
        digest = nb.source_hash(where / nb.SOURCE)
        lib = _open(base, digest)
        level = int(lib.edgeplan_dp_cpu_level())
        for variant, need in (("v4", 4), ("v3", 3)):
            path = where / nb.library_name(variant)
            if level >= need and path.exists():
                try:
                    lib = _open(path, digest)
                    break
                except OSError:
                    continue
        i64p, f64p = _arr(np.int64), _arr(np.float64)
        lib.edgeplan_fill_step.restype = ctypes.c_int
        lib.edgeplan_fill_step.argtypes = [
            _i64, _i64, _i64, _i64, i64p, i64p, i64p, i64p, i64p, f64p, f64p, f64p,
            _arr(np.int32), _arr(np.int32), f64p, f64p, f64p, _arr(np.uint16), _arr(np.int16),
            _i64, _i64, _i64, i64p]
        lib.edgeplan_replay_steps.restype = ctypes.c_int
        lib.edgeplan_replay_steps.argtypes = [
            i64p, _i64, _i64, _i64, _arr(np.int32), _arr(np.uint16), _arr(np.int16), i64p, i64p,
            i64p, i64p, i64p, i64p, i64p, f64p, f64p, i64p, f64p, _arr(np.uint8)]
    except (OSError, AttributeError, ValueError) as e:
        return None, str(e)
    return lib, None


def load() -> Any:
    """The loaded library (the best variant this CPU runs), or None (``unavailable_reason``)."""
    global _LIB, _REASON, _TRIED
    if not _TRIED:
        _TRIED = True
        _LIB, _REASON = _load_from(_HERE)
        if _LIB is None and (_HERE / nb.library_name("base")).exists():
            # built, but not loadable or from another source: say so once (a silent fall back
            # to numba or numpy would hide it)
            warnings.warn(f"native DP kernel not used: {_REASON}", RuntimeWarning, stacklevel=2)
    return _LIB


def unavailable_reason() -> str | None:
    load()
    return _REASON


def fill_step(dg: int, B: int, L: int, M: int, x: np.ndarray, sv: np.ndarray, d: np.ndarray,
              f: np.ndarray, b: np.ndarray, tf: np.ndarray, tb: np.ndarray, TF: np.ndarray,
              meta: np.ndarray, metaT: np.ndarray, cend: np.ndarray, cendT: np.ndarray,
              val: np.ndarray, rst: np.ndarray, rch: np.ndarray, used: int, rused: int,
              nthreads: int) -> tuple[int, int]:
    """``dp_numba.fill_step``, natively (same arguments, same effect, same return)."""
    out = np.zeros(2, dtype=np.int64)
    rc = load().edgeplan_fill_step(dg, B, L, M, x, sv, d, f, b, tf, tb, TF, meta, metaT, cend,
                                   cendT, val, rst, rch, used, rused, nthreads, out)
    if rc != 0:
        raise MemoryError("the native DP fill could not allocate its scratch or threads")
    return int(out[0]), int(out[1])


def replay_steps(ms: np.ndarray, L: int, M: int, meta: np.ndarray, rst: np.ndarray,
                 rch: np.ndarray, slot_s: np.ndarray, slot_x: np.ndarray, x: np.ndarray,
                 sv: np.ndarray, f: np.ndarray, b: np.ndarray, d: np.ndarray, tf: np.ndarray,
                 tb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``replay_numba.replay_steps``, natively: ``(peaks, costs, ok)``."""
    n = len(ms)
    peaks = np.zeros(n, dtype=np.int64)
    costs = np.zeros(n, dtype=np.float64)
    ok = np.zeros(n, dtype=np.uint8)
    c = np.ascontiguousarray
    rc = load().edgeplan_replay_steps(
        c(ms, dtype=np.int64), n, L, M, c(meta), c(rst), c(rch), c(slot_s, dtype=np.int64),
        c(slot_x, dtype=np.int64), c(x, dtype=np.int64), c(sv, dtype=np.int64),
        c(f, dtype=np.int64), c(b, dtype=np.int64), c(d, dtype=np.int64),
        c(tf, dtype=np.float64), c(tb, dtype=np.float64), peaks, costs, ok)
    if rc != 0:
        raise MemoryError("the native step replay could not allocate its memo")
    return peaks, costs, ok.astype(bool)
