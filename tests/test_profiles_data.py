"""Data checks for the shipped device profiles in profiles/*.yaml.

Self-contained on purpose (only yaml + pathlib): these tests check the *data* files, not the
loader. Every number in a profile must carry a source whose text starts with a provenance tag
([V] vendor, [V*] vendor via a secondary source, [M] measured, [C] computed, [A] assumption), and
every source must point at a key that exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles"
PROFILES = sorted(PROFILE_DIR.glob("*.yaml"))

REQUIRED = ("rpi-3b-plus", "rpi-4-4gb", "rpi-4-8gb", "rpi-5-8gb", "jetson-nano", "jetson-tx2",
            "jetson-orin-nano-8gb", "jetson-agx-orin-64gb")

TOP_KEYS = {"format", "name", "title", "kind", "memory", "compute", "power", "storage",
            "sources", "notes"}
MEMORY_KEYS = {"total", "reserved", "bandwidth"}
COMPUTE_KEYS = {"precision", "peak", "sustained"}
PRECISIONS = {"fp32", "fp16", "bf16", "int8"}
POWER_KEYS = {"training", "idle"}
TIER_KEYS = {"name", "read", "write", "read_latency", "write_latency", "capacity"}
TAG = re.compile(r"^\[(V|V\*|M|C|A)\] ")


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: top level must be a mapping"
    return data


def _numeric_paths(data: dict) -> list[str]:
    """Dotted paths of every number-bearing leaf that needs a source."""
    paths: list[str] = []
    for key in (data.get("memory") or {}):
        paths.append(f"memory.{key}")
    compute = data.get("compute") or {}
    for group in ("peak", "sustained"):
        for key in (compute.get(group) or {}):
            paths.append(f"compute.{group}.{key}")
    for key in (data.get("power") or {}):
        paths.append(f"power.{key}")
    for i, tier in enumerate(data.get("storage") or []):
        for key in tier:
            if key != "name":
                paths.append(f"storage[{i}].{key}")
    return paths


def _exists(data: dict, path: str) -> bool:
    node: object = data
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            idx = int(part[1:-1])
            if not isinstance(node, list) or idx >= len(node):
                return False
            node = node[idx]
        else:
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
    return True


def test_profiles_present():
    names = {p.stem for p in PROFILES}
    missing = [n for n in REQUIRED if n not in names]
    assert not missing, f"missing required profiles: {missing}"


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_header(path: Path):
    data = _load(path)
    assert data.get("format") == 1
    assert data.get("name") == path.stem, "name must equal the file name"
    assert data.get("kind") in ("gpu", "cpu", "mcu")
    assert isinstance(data.get("title"), str) and data["title"].strip()


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_only_schema_keys(path: Path):
    data = _load(path)
    assert set(data) <= TOP_KEYS, f"unknown top-level keys: {set(data) - TOP_KEYS}"
    assert set(data["memory"]) <= MEMORY_KEYS
    assert {"total", "reserved"} <= set(data["memory"])
    assert set(data["compute"]) <= COMPUTE_KEYS
    assert set(data["compute"].get("peak") or {}) <= PRECISIONS
    assert set(data["compute"]["sustained"]) <= PRECISIONS
    assert set(data["power"]) <= POWER_KEYS and "training" in data["power"]
    for tier in data.get("storage") or []:
        assert set(tier) <= TIER_KEYS
        assert {"name", "read", "write"} <= set(tier)


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_default_precision_has_sustained(path: Path):
    compute = _load(path)["compute"]
    precision = compute.get("precision", "fp32")
    assert precision in PRECISIONS
    assert precision in compute["sustained"]


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_every_number_has_a_tagged_source(path: Path):
    data = _load(path)
    sources = data.get("sources") or {}
    assert isinstance(sources, dict)
    for key in _numeric_paths(data):
        assert key in sources, f"{key} has no sources entry"
        text = sources[key]
        assert isinstance(text, str) and TAG.match(text), \
            f"sources[{key!r}] must start with [V] [V*] [M] [C] or [A]: {text!r}"
        assert len(text) > len("[A] ") + 10, f"sources[{key!r}] cites nothing"


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_no_dangling_sources(path: Path):
    data = _load(path)
    for key in (data.get("sources") or {}):
        assert _exists(data, key), f"sources entry {key!r} refers to a key that does not exist"


def test_exists_helper():
    data = {"memory": {"total": "1 GiB"}, "storage": [{"name": "sd", "read": "1 MB/s"}]}
    assert _exists(data, "memory.total")
    assert _exists(data, "storage[0].read")
    assert not _exists(data, "storage[1].read")
    assert not _exists(data, "memory.bandwidth")
    assert _numeric_paths(data) == ["memory.total", "storage[0].read"]
