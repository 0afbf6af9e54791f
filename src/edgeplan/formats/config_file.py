"""The ``edgeplan check`` configuration: ``edgeplan.yaml`` or ``[tool.edgeplan]`` in pyproject.toml.

Both hold the same keys (docs/ci.md)::

    format: 1                 # required in edgeplan.yaml, optional in pyproject.toml
    model: models/net.yaml    # relative to the file's folder
    devices: [jetson-nano, rpi-4-4gb, profiles/board.yaml]
    gates: {max_overhead: 30%, max_step_time: 2 s, min_batch: 8, budget: 3 GiB}
    slots: 500                # optional, as the command-line flags of the same names
    memory: 3 GiB
    batch: 16
    precision: fp16

Discovery (``discover``) looks in one folder only: ``edgeplan.yaml`` (or ``edgeplan.yml``)
first, then ``pyproject.toml`` if it has a ``[tool.edgeplan]`` table. Unknown keys are refused
with a did-you-mean naming the file and the key path. Paths are resolved against the file's
folder, built-in device names are kept as names. TOML is read with ``tomllib`` (Python 3.11+),
else with the ``tomli`` package when installed. This module reads files and never prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import units
from ..device import PRECISIONS, DeviceProfile
from ..errors import InputError, UnknownNameError
from ..gate import Thresholds
from ..optimizers import OPTIMIZER_STATE
from ..training import parse_train
from ._files import read_text
from ._yaml import Node, check_format, read_yaml
from .device_file import builtin_devices, find_device

FORMAT_VERSION = 1
CONFIG_NAMES = ("edgeplan.yaml", "edgeplan.yml")
CONFIG_KEYS = ("format", "model", "devices", "gates", "slots", "memory", "batch", "precision",
               "train", "optimizer")
GATE_KEYS = ("max_overhead", "max_step_time", "min_batch", "budget", "min_trainable")
TOOL_TABLE = "tool.edgeplan"


@dataclass(frozen=True, kw_only=True)
class DeviceRef:
    """A device as written somewhere: a built-in name or a profile path, and where it was read."""

    spec: str
    source: str                 # "--device" or the config file
    where: str | None = None    # key path in the config file, e.g. "devices[1]"


@dataclass(frozen=True, kw_only=True)
class CheckConfig:
    """Settings read from a config file; every value None/empty when the file leaves it out."""

    path: str | None = None
    model: str | None = None
    devices: tuple[DeviceRef, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)
    slots: int | None = None
    memory_bytes: int | None = None
    batch: int | None = None
    precision: str | None = None
    train: str | None = None
    optimizer: str | None = None


def discover(folder: Path) -> Path | None:
    """The config file in ``folder``: ``edgeplan.yaml``/``.yml``, else a pyproject.toml that has
    a ``[tool.edgeplan]`` table; None when there is neither."""
    for name in CONFIG_NAMES:
        p = folder / name
        if p.is_file():
            return p
    py = folder / "pyproject.toml"
    if not py.is_file():
        return None
    if toml_module() is None:  # pragma: no cover - Python 3.10 without tomli
        # Cannot parse TOML here: only a file that mentions the table is worth an error.
        try:
            mentions = "[tool.edgeplan" in py.read_text(encoding="utf-8", errors="replace")
        except OSError:
            mentions = False
        return py if mentions else None
    return py if _tool_table(_read_toml(py), str(py)) is not None else None


def load_config(path: str | Path) -> CheckConfig:
    """Read and validate a config file (``*.toml``: the ``[tool.edgeplan]`` table).

    Raises
    ------
    InputError
        Unreadable file, invalid YAML/TOML, unknown key (with did-you-mean), bad value.
    """
    p = Path(path)
    src = str(path)
    if p.suffix == ".toml":
        table = _tool_table(_read_toml(p), src)
        if table is None:
            raise InputError("has no [tool.edgeplan] table", source=src,
                             hint="add one, or use an edgeplan.yaml (docs/ci.md)")
        node = Node(table, src, TOOL_TABLE, CONFIG_KEYS)
        if node.has("format"):
            check_format(node, FORMAT_VERSION)
    else:
        data = read_yaml(p)
        if data is None:
            raise InputError("the file is empty; expected a check config (format: 1, model, "
                             "devices, gates)", source=src)
        node = Node(data, src, "", CONFIG_KEYS)
        check_format(node, FORMAT_VERSION)
    return _from_node(node, p.parent)


def _from_node(node: Node, base: Path) -> CheckConfig:
    model = node.text("model")
    devices = []
    raw_devices = node.raw("devices")
    items = [(node.path("devices"), raw_devices)] if isinstance(raw_devices, str) else \
        node.items("devices")
    for where, item in items:
        if not isinstance(item, str) or not item.strip():
            raise InputError(f"expected a device name or profile path, got {item!r}"[:200],
                             source=node.source, where=where)
        devices.append(DeviceRef(spec=resolve_device_spec(item.strip(), base),
                                 source=node.source, where=where))
    gates = node.child("gates", GATE_KEYS)
    th = Thresholds()
    if gates is not None:
        th = Thresholds(max_overhead=gates.get("max_overhead", units.parse_percent),
                        max_step_time_s=gates.get("max_step_time", _positive_time),
                        min_batch=gates.integer("min_batch", minimum=1, maximum=10**7),
                        budget_bytes=gates.get("budget", units.parse_size),
                        min_trainable=gates.text("min_trainable", None))
    model_path = None if model is None else str(_resolve(model, base))
    return CheckConfig(path=node.source, model=model_path,
                       devices=tuple(devices), thresholds=th,
                       slots=node.integer("slots", minimum=1, maximum=100_000),
                       memory_bytes=node.get("memory", units.parse_size),
                       batch=node.integer("batch", minimum=1, maximum=10**7),
                       precision=node.choice("precision", PRECISIONS),
                       train=_train(node), optimizer=node.choice("optimizer",
                                                                  tuple(OPTIMIZER_STATE)))


def _train(node: Node) -> str | None:
    """``train:``, checked as a ``--train`` selection (its stages are checked with the model)."""
    return node.get("train", lambda v: parse_train(v if isinstance(v, str) else repr(v)).text)


def _positive_time(value: Any) -> float:
    t = units.parse_time(value)
    if t <= 0:
        raise InputError(f'expected a positive duration like "2 s", got {value!r}')
    return t


def _resolve(path: str, base: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


def resolve_device_spec(spec: str, base: Path) -> str:
    """A built-in device name stays a name; anything else is a path relative to ``base``."""
    if spec in builtin_devices():
        return spec
    p = Path(spec)
    if p.suffix in (".yaml", ".yml") or "/" in spec or (base / p).exists():
        return str(_resolve(spec, base))
    return spec  # an unknown name: find_device reports it with a did-you-mean


def load_device_ref(ref: DeviceRef) -> DeviceProfile:
    """``find_device`` for a ``DeviceRef``; an unknown name is reported where it was written."""
    try:
        return find_device(ref.spec)
    except UnknownNameError as e:
        raise UnknownNameError(e.message, source=ref.source, where=ref.where, hint=e.hint,
                               suggestions=e.suggestions) from None


# --- TOML -------------------------------------------------------------------------------------

def toml_module() -> Any:
    """``tomllib`` (3.11+), else ``tomli`` when installed, else None."""
    try:
        import tomllib  # Python 3.11+
        return tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli
            return tomli
        except ModuleNotFoundError:
            return None


def _read_toml(path: Path) -> dict:
    src = str(path)
    toml = toml_module()
    if toml is None:  # pragma: no cover - Python 3.10 without tomli
        raise InputError("reading pyproject.toml needs Python 3.11+ or the tomli package",
                         source=src, hint="pip install tomli, or use an edgeplan.yaml")
    text = read_text(path, "a TOML file")
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as e:
        raise InputError(f"invalid TOML: {e}", source=src) from None


def _tool_table(doc: dict, src: str) -> Any:
    tool = doc.get("tool")
    if not isinstance(tool, dict) or "edgeplan" not in tool:
        return None
    table = tool["edgeplan"]
    if not isinstance(table, dict):
        raise InputError("expected a table", source=src, where=TOOL_TABLE)
    return table
