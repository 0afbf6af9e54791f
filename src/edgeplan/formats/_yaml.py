"""Reading YAML safely and validating mappings with precise key paths.

Every error names the file and the key path (``stages[3].out``) and says what was expected.
YAML is parsed with PyYAML's safe loader (libyaml's when available); a first fast pass over the
events refuses aliases (``*ref``): hand-written model files never need them, and alias
expansion is the classic way to make a small file blow up in memory. Files must be UTF-8 and at
most ``_files.MAX_FILE_BYTES``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, overload

import yaml

from ..errors import InputError, UnitError, UnknownNameError
from ._files import read_bytes

# libyaml when available (much faster), the pure-Python safe loader otherwise.
_SAFE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _DuplicateKey(Exception):
    def __init__(self, key: object, mark: Any, first: Any):
        self.key, self.mark, self.first = key, mark, first


class _Loader(_SAFE):  # type: ignore[valid-type, misc]
    """The safe loader, but a key repeated in one mapping is an error: YAML 1.2 requires keys
    to be unique, and PyYAML otherwise keeps the last value silently (``out: 1 MiB, out:
    900 MiB`` would plan with 900 MiB)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the constructor reports it
                    continue
                if first is not None:
                    raise _DuplicateKey(key, key_node.start_mark, first)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_LOADER = _Loader
# A model has at most 10,000 stages (model_file.MAX_STAGES); refuse far larger files before
# building Python objects, which is the slow part of loading YAML.
MAX_MAPPINGS = 25_000


def _prescan(text: str, src: str) -> None:
    """One fast pass over the YAML events: refuse aliases and oversized documents."""
    mappings = 0
    for ev in yaml.parse(text, Loader=_LOADER):
        if isinstance(ev, yaml.AliasEvent):
            mark = ev.start_mark
            loc = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise InputError(f"{loc}YAML aliases (*name) are not allowed in edgeplan files",
                             source=src)
        if isinstance(ev, yaml.MappingStartEvent):
            mappings += 1
            if mappings > MAX_MAPPINGS:
                raise InputError(f"more than {MAX_MAPPINGS:,} mappings: far more than the "
                                 "10,000 stages edgeplan reads; merge stages (one stage per "
                                 "block)", source=src)


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; every failure is an ``InputError`` naming the file."""
    return parse_yaml_text(read_bytes(path, "a YAML file"), str(path))


def parse_yaml_text(raw: bytes | str, src: str) -> Any:
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"not UTF-8 text (invalid byte at offset {e.start})",
                             source=src) from None
    else:
        text = raw
    try:
        _prescan(text, src)
        return yaml.load(text, Loader=_LOADER)
    except _DuplicateKey as e:
        raise InputError(f"line {e.mark.line + 1}, column {e.mark.column + 1}: duplicate key "
                         f"{e.key!r} (first at line {e.first.line + 1}, column "
                         f"{e.first.column + 1}); each key may appear once in a mapping",
                         source=src) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = e.problem or e.context or "invalid YAML"
        raise InputError(f"{loc}invalid YAML: {what}", source=src) from None
    except yaml.YAMLError as e:
        raise InputError(f"invalid YAML: {e}", source=src) from None
    except RecursionError:
        raise InputError("invalid YAML: nesting too deep", source=src) from None


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


class Node:
    """A mapping being validated: remembers its file and key path and which keys were read."""

    def __init__(self, data: Any, source: str, where: str = "", allowed: tuple[str, ...] = ()):
        if not isinstance(data, dict):
            raise InputError(f"expected a mapping of keys, got {_typename(data)}", source=source,
                             where=where or None)
        for k in data:
            if not isinstance(k, str):
                raise InputError(f"keys must be text, got {k!r}", source=source,
                                 where=where or None)
        self.data = data
        self.source = source
        self.where = where
        self.allowed = allowed
        if allowed:
            self.reject_unknown(allowed)

    def path(self, key: str | int) -> str:
        return _join(self.where, key)

    def error(self, key: str | int | None, message: str,
              cls: type[InputError] = InputError) -> InputError:
        return cls(message, source=self.source, where=self.path(key) if key is not None else
                   (self.where or None))

    def reject_unknown(self, allowed: tuple[str, ...]) -> None:
        for k in self.data:
            if k not in allowed:
                raise UnknownNameError.for_name(
                    "key", k, allowed, cutoff=0.6, source=self.source, where=self.path(k),
                    otherwise=f"allowed keys: {', '.join(allowed)}")

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def get(self, key: str, parse: Callable[[Any], Any], default: Any = None, *,
            required: bool = False) -> Any:
        """Parse ``key`` with ``parse``; unit errors are re-raised with file and key path."""
        if key not in self.data or self.data[key] is None:
            if required:
                raise self.error(key, "is required")
            return default
        try:
            return parse(self.data[key])
        except InputError as e:
            raise e.located(self.source, self.path(key)) from None

    @overload
    def text(self, key: str, default: str, *, required: bool = ...) -> str: ...
    @overload
    def text(self, key: str, default: None = ..., *, required: Literal[True]) -> str: ...
    @overload
    def text(self, key: str, default: None = ..., *, required: bool = ...) -> str | None: ...

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        def parse(v: Any) -> str:
            if not isinstance(v, str) or not v.strip():
                raise InputError(f"expected text, got {_typename(v)} {v!r}"[:200])
            return v.strip()
        return self.get(key, parse, default, required=required)

    @overload
    def integer(self, key: str, default: int, *, required: bool = ..., minimum: int | None = ...,
                maximum: int | None = ...) -> int: ...
    @overload
    def integer(self, key: str, default: None = ..., *, required: Literal[True],
                minimum: int | None = ..., maximum: int | None = ...) -> int: ...
    @overload
    def integer(self, key: str, default: None = ..., *, required: bool = ...,
                minimum: int | None = ..., maximum: int | None = ...) -> int | None: ...

    def integer(self, key: str, default: int | None = None, *, required: bool = False,
                minimum: int | None = None, maximum: int | None = None) -> int | None:
        def parse(v: Any) -> int:
            if isinstance(v, bool) or not isinstance(v, int):
                if isinstance(v, float) and v.is_integer() and not math.isinf(v):
                    v = int(v)
                else:
                    raise UnitError(f"expected a whole number, got {v!r}")
            if minimum is not None and v < minimum:
                raise UnitError(f"expected a whole number >= {minimum}, got {v}")
            if maximum is not None and v > maximum:
                raise UnitError(f"expected a whole number <= {maximum}, got {v}")
            return v
        return self.get(key, parse, default, required=required)

    @overload
    def choice(self, key: str, options: tuple[str, ...], default: str, *,
               required: bool = ...) -> str: ...
    @overload
    def choice(self, key: str, options: tuple[str, ...], default: None = ..., *,
               required: Literal[True]) -> str: ...
    @overload
    def choice(self, key: str, options: tuple[str, ...], default: None = ..., *,
               required: bool = ...) -> str | None: ...

    def choice(self, key: str, options: tuple[str, ...], default: str | None = None, *,
               required: bool = False) -> str | None:
        def parse(v: Any) -> str:
            if not isinstance(v, str) or v not in options:
                err = UnknownNameError.for_name("value", str(v), options, n=1)
                raise UnknownNameError(f"expected one of {', '.join(options)}, got {v!r}",
                                       hint=err.hint if err.suggestions else None,
                                       suggestions=err.suggestions)
            return v
        return self.get(key, parse, default, required=required)

    @overload
    def child(self, key: str, allowed: tuple[str, ...], *, required: Literal[True]) -> Node: ...
    @overload
    def child(self, key: str, allowed: tuple[str, ...], *,
              required: bool = ...) -> Node | None: ...

    def child(self, key: str, allowed: tuple[str, ...], *, required: bool = False) -> Node | None:
        if not self.has(key):
            if required:
                raise self.error(key, "is required")
            return None
        return Node(self.data[key], self.source, self.path(key), allowed)

    def items(self, key: str, *, required: bool = False) -> list[tuple[str, Any]]:
        """A list under ``key`` as ``(path, item)`` pairs."""
        if not self.has(key):
            if required:
                raise self.error(key, "is required")
            return []
        v = self.data[key]
        if not isinstance(v, list):
            raise self.error(key, f"expected a list, got {_typename(v)}")
        return [(_join(self.path(key), n), item) for n, item in enumerate(v)]


def _typename(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", int: "a number", float: "a number",
            bool: "true/false", type(None): "nothing"}.get(type(v), type(v).__name__)


def check_format(node: Node, version: int) -> None:
    """The top-level ``format:`` key every edgeplan file carries."""
    fmt = node.raw("format")
    if fmt is None:
        raise node.error("format", f"is required (write `format: {version}` at the top)")
    if fmt != version:
        raise node.error("format", f"unsupported format {fmt!r}; this edgeplan reads format "
                                   f"{version}")
