"""Grouping articulation segments into stages: balancing, names, the ``--stages`` and
``--dim`` values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ...errors import InputError
from ...partition import balance  # noqa: F401 - the stage balancer, re-exported
from .costs import HEAVY_OPS, ZERO_FLOP

NAME_OK = re.compile(r"[^A-Za-z0-9_.\-]+")


def _path_label(nodes: list[Any]) -> str:
    """The common module path of exporter-style node names (``/layer1/layer1.0/conv1/Conv``):
    ``layer1.0``; empty when the nodes share none."""
    paths = []
    for n in nodes:
        comps = [c for c in n.name.split("/") if c]
        paths.append(comps[:-1] if len(comps) > 1 else [])
    prefix = paths[0] if paths else []
    for p in paths[1:]:
        k = 0
        while k < min(len(prefix), len(p)) and prefix[k] == p[k]:
            k += 1
        prefix = prefix[:k]
    parts: list[str] = []
    for c in prefix:
        if parts and c.startswith(parts[-1] + "."):
            parts[-1] = c
        else:
            parts.append(c)
    return ".".join(parts)


def stage_name(nodes: list[Any], index: int, used: set[str]) -> str:
    """A readable unique stage name: the common module path of the nodes, else of the weighted
    ones, else the first weighted (or costed) node's name or op type."""
    heavy = [n for n in nodes if n.op_type in HEAVY_OPS]
    label = _path_label(nodes) or (_path_label(heavy) if heavy else "")
    if label and NAME_OK.sub("_", label).strip("_.-") in used and heavy:
        label = _path_label(heavy) or label  # e.g. layer3.mlp after layer3 (attention)
    if not label:
        h = (heavy or [n for n in nodes if n.op_type not in ZERO_FLOP] or nodes)[0]
        label = h.name if h.name and "/" not in h.name else h.op_type.lower()
    label = NAME_OK.sub("_", label).strip("_.-")[:60] or f"stage{index}"
    if not re.match(r"[A-Za-z_]", label):
        label = f"s{label}"
    base, k = label, 2
    while label in used:
        label = f"{base}_{k}"
        k += 1
    used.add(label)
    return label


def parse_stages(value: str) -> str | int:
    v = str(value).strip().lower()
    if v in ("auto", "nodes"):
        return v
    try:
        n = int(v)
    except ValueError:
        raise InputError(f"expected auto, nodes or a number of stages, got {value!r}",
                         param="stages") from None
    if n < 1:
        raise InputError(f"expected a number of stages >= 1, got {n}", param="stages")
    return n


def parse_dims(items: Iterable[str]) -> dict[str, int]:
    """``["seq=128"]`` -> ``{"seq": 128}``."""
    out: dict[str, int] = {}
    for it in items:
        name, sep, val = it.partition("=")
        name = name.strip()
        try:
            n = int(val)
        except ValueError:
            n = 0
        if not sep or not name or n < 1:
            raise InputError(f"expected NAME=SIZE with SIZE >= 1, got {it!r}", param="dim")
        out[name] = n
    return out
