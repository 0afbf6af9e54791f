"""Writing model files (format 1) by hand-rolled YAML: exact integers with readable comments.

Shared by the importers so that every generated file looks the same.
"""

from __future__ import annotations

import json
import re

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def scalar(s: str) -> str:
    """A YAML scalar for ``s``: bare when unambiguous, else a JSON (YAML-compatible) string."""
    if _PLAIN.match(s) and s.lower() not in _YAML_WORDS:
        return s
    return json.dumps(s, ensure_ascii=False)


def iec(n: float) -> str:
    """``'12.25 MiB'`` for a comment beside an exact byte count."""
    for unit, f in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= f:
            return f"{n / f:.2f} {unit}"
    return f"{int(n)} B"


def flops_txt(n: float) -> str:
    """``'1.888 GFLOP'`` for a comment beside an exact FLOP count."""
    for unit, f in (("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if n >= f:
            return f"{n / f:.3f} {unit}"
    return f"{int(n)} FLOP"


def model_head(name: str, description: str, derivation: str, batch: int) -> list[str]:
    """The first keys of every generated model file (after its comment header)."""
    out = ["format: 1", f"name: {scalar(name)}",
           f"description: {json.dumps(description, ensure_ascii=False)}", "derivation: |"]
    out.extend(("  " + ln).rstrip() for ln in derivation.splitlines())
    out.append(f"batch: {batch}")
    return out


def shape_input(shape, dtype: str, nbytes: int) -> str:
    """``input: {shape: [...], dtype: ...}`` with the batch's bytes in a comment."""
    dims = ", ".join(str(d) for d in shape)
    return (f"input: {{shape: [{dims}], dtype: {dtype}}}   "
            f"# {nbytes:,} bytes ({iec(nbytes)}) for the batch")
