"""ONNX node helpers every other part uses: dtypes, labels, attributes, op families.
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import InputError

_BITS = {"FLOAT": 32, "DOUBLE": 64, "BOOL": 8, "BFLOAT16": 16, "COMPLEX64": 64,
         "COMPLEX128": 128}


FILE_DTYPES = {"FLOAT": "float32", "FLOAT16": "float16", "BFLOAT16": "bfloat16",
                "DOUBLE": "float64", "INT8": "int8", "UINT8": "uint8", "INT16": "int16",
                "INT32": "int32", "INT64": "int64"}


PRECISION = {"FLOAT": "fp32", "FLOAT16": "fp16", "BFLOAT16": "bf16"}


def onnx_module():
    try:
        import onnx
        import onnx.shape_inference
    except ImportError:  # pragma: no cover - depends on the environment
        raise InputError("the onnx package is not installed; the ONNX importer needs it",
                         hint="pip install 'edgeplan[onnx]'") from None
    return onnx


def type_name(elem: int) -> str:
    from onnx import TensorProto
    try:
        return TensorProto.DataType.Name(elem)
    except ValueError:
        return f"TYPE{elem}"


def bits(elem: int) -> int | None:
    name = type_name(elem)
    if name in _BITS:
        return _BITS[name]
    m = re.match(r"^(?:U?INT|FLOAT)(\d+)", name)
    return int(m.group(1)) if m else None


def is_float(elem: int) -> bool:
    name = type_name(elem)
    return name.startswith("FLOAT") or name in ("DOUBLE", "BFLOAT16", "COMPLEX64", "COMPLEX128")


def label(node: Any) -> str:
    op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
    return f"{op} {node.name!r}" if node.name else op


def op_name(node: Any) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


VIEW_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose", "Expand",
            "Slice", "Split"}


META_OPS = {"Shape", "Size"}


def attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default
