"""The JSON envelope shared by every document (docs/json-output.md). Never imports rich.

Envelope: ``edgeplan_json`` (schema version), ``edgeplan_version``, ``command``, ``status``
(ok / infeasible / error), ``exit_code``, ``inputs``, ``data``, ``errors``. Bytes are integers,
times seconds, no human strings; an unknown or infeasible value is ``null`` beside a boolean.
Within a schema version changes are additive only. Each ``<x>_report.py`` builds its command's
``data`` and wraps it here.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .. import __version__

JSON_SCHEMA_VERSION = 1


def envelope(command: str, *, status: str, exit_code: int, inputs: dict | None = None,
             data: dict | None = None, errors: list[dict] | None = None) -> dict:
    return {"edgeplan_json": JSON_SCHEMA_VERSION, "edgeplan_version": __version__,
            "command": command, "status": status, "exit_code": exit_code,
            "inputs": inputs or {}, "data": data or {}, "errors": errors or []}


def error_doc(command: str, exit_code: int, code: str, message: str,
              where: str | None = None) -> dict:
    return envelope(command, status="error", exit_code=exit_code,
                    errors=[{"code": code, "message": message, "where": where}])


def dumps(doc: dict) -> str:
    return json.dumps(_clean(doc), sort_keys=True, indent=2, allow_nan=False)


def _clean(v: Any) -> Any:
    """numpy scalars -> Python; inf/nan -> None (JSON has no Infinity)."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v
