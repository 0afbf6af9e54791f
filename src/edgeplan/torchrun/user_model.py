"""Finding and building the user's model: ``MODULE:CALLABLE``, builder keyword arguments, input
shapes. Shared by ``edgeplan import torch``, ``edgeplan run`` and ``solve --verify``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import InputError

__all__ = ["build_stages", "instantiate", "parse_inputs", "parse_kwargs", "parse_shape", "resolve",
           "sequential_stages"]


def parse_shape(text: str, *, param: str = "input_shape") -> tuple[int, ...]:
    """``"3x224x224"`` -> ``(3, 224, 224)``; ``"128"`` -> ``(128,)``."""
    parts = re.split(r"\s*[x,×*]\s*", str(text).strip())
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise InputError(f"expected a shape like 3x224x224, got {text!r}",
                         param=param) from None
    if not dims or any(d <= 0 for d in dims):
        raise InputError(f"expected positive dimensions like 3x224x224, got {text!r}",
                         param=param)
    return dims


def resolve(spec: str) -> tuple[Any, str]:
    """``"package.module:attr"`` or ``"path/file.py:attr"`` -> (object, attr name)."""
    if ":" not in spec:
        raise InputError(f"expected MODULE:CALLABLE like edgeplan.importers.zoo:resnet18, got "
                         f"{spec!r}", source="MODULE:CALLABLE")
    mod_name, _, attr = spec.rpartition(":")
    if not mod_name or not attr:
        raise InputError(f"expected MODULE:CALLABLE, got {spec!r}", source="MODULE:CALLABLE")
    try:
        if mod_name.endswith(".py") or "/" in mod_name or os.sep in mod_name:
            path = Path(mod_name)
            if not path.is_file():
                raise InputError("no such file", source=mod_name)
            sp = importlib.util.spec_from_file_location(path.stem, path)
            assert sp is not None and sp.loader is not None
            module = importlib.util.module_from_spec(sp)
            sp.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(mod_name)
    except InputError:
        raise
    except ImportError as e:
        raise InputError(f"cannot import {mod_name!r}: {e}", source="MODULE:CALLABLE") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"{mod_name!r} has no attribute {attr!r}", source="MODULE:CALLABLE")
        obj = getattr(obj, part)
    return obj, attr.split(".")[-1]


def instantiate(obj: Any, kwargs: dict[str, Any] | None = None) -> Any:
    """Call ``obj`` with ``kwargs`` unless it already is a module (or a list of modules)."""
    kwargs = kwargs or {}
    if isinstance(obj, (nn.Module, list, tuple)):
        if kwargs:
            raise InputError("--arg was given but the object is not callable",
                             source="MODULE:CALLABLE")
        return obj
    if callable(obj):
        try:
            return obj(**kwargs)
        except TypeError as e:
            raise InputError(f"calling the model builder failed: {e}",
                             source="MODULE:CALLABLE") from None
    raise InputError(f"expected an nn.Module or a callable returning one, got "
                     f"{type(obj).__name__}", source="MODULE:CALLABLE")


def sequential_stages(model: Any) -> list[tuple[str, Any]] | None:
    """``[(name, module), ...]`` for an ``nn.Sequential`` (its top-level children) or a list of
    modules; None for any other ``nn.Module`` (the graph-capture path)."""
    if isinstance(model, nn.Sequential):
        named = list(model.named_children())
    elif isinstance(model, (list, tuple, nn.ModuleList)):
        named = []
        for k, m in enumerate(model):
            if not isinstance(m, nn.Module):
                raise InputError(f"item {k} of the list is a {type(m).__name__}, not an nn.Module",
                                 source="MODULE:CALLABLE")
            named.append((type(m).__name__.lower(), m))
    elif isinstance(model, nn.Module):
        return None
    else:
        raise InputError(f"the builder returned a {type(model).__name__}; expected an nn.Module "
                         "(or a list of modules)", source="MODULE:CALLABLE")
    if not named:
        raise InputError("the model has no stages", source="MODULE:CALLABLE")
    # unique, YAML-friendly names
    out: list[tuple[str, Any]] = []
    seen: dict[str, int] = {}
    for k, (name, m) in enumerate(named):
        base = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(name)) or f"stage{k + 1}"
        if base.isdigit():
            base = f"{type(m).__name__.lower()}{base}"
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.append((base if n == 0 else f"{base}_{n + 1}", m))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):  # a generated suffix collided with a real name
        out = [(f"{n}_{k + 1}", m) for k, (n, m) in enumerate(out)]
    return out


def build_stages(obj: Any, kwargs: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    """``[(name, module), ...]`` of a Sequential (or list) model built from ``obj``."""
    stages = sequential_stages(instantiate(obj, kwargs))
    if stages is None:
        raise InputError("the builder returned an nn.Module that is not nn.Sequential; "
                         "capture it as a graph instead (edgeplan import torch does so)",
                         source="MODULE:CALLABLE")
    return stages


def parse_inputs(items: list[str] | tuple[str, ...]) -> dict[str, tuple[tuple[int, ...], str]]:
    """``["input_ids=128:int64", "attention_mask=128:int64"]`` -> ``{name: (shape, dtype)}``
    (per-sample shapes; the dtype defaults to float32)."""
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    for it in items:
        name, sep, rest = it.partition("=")
        if not sep or not name.isidentifier():
            raise InputError(f"expected NAME=DIMS[:DTYPE] like input_ids=128:int64, got {it!r}",
                             param="input")
        dims, _, dtype = rest.partition(":")
        out[name] = (parse_shape(dims, param="input"), dtype or "float32")
    return out


def parse_kwargs(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["steps=64", "name=x"]`` -> ``{"steps": 64, "name": "x"}`` (values: YAML scalars)."""
    import yaml
    out: dict[str, Any] = {}
    for it in items:
        if "=" not in it:
            raise InputError(f"expected KEY=VALUE, got {it!r}", param="arg")
        k, _, v = it.partition("=")
        if not k.isidentifier():
            raise InputError(f"{k!r} is not a Python identifier", param="arg")
        try:
            out[k] = yaml.safe_load(v)
        except yaml.YAMLError:
            out[k] = v
    return out
