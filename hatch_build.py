"""Build hook: compile the native DP kernel (src/edgeplan/solvers/_dpfill.c) at install time.

hatchling runs it for wheels and editable installs (``pip install -e .``). The libraries are
built next to the source by ``edgeplan/solvers/_native_build.py`` (standard library only: this
runs in pip's isolated build environment). Without a C compiler the install goes on with a
warning and edgeplan uses its numba or numpy back end. ``EDGEPLAN_NO_NATIVE_BUILD=1`` skips it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class NativeKernelHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("EDGEPLAN_NO_NATIVE_BUILD"):
            return
        pkg = Path(self.root) / "src" / "edgeplan" / "solvers"
        spec = importlib.util.spec_from_file_location("_edgeplan_native_build",
                                                      pkg / "_native_build.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        built = mod.build(pkg, log=self.app.display_warning)
        if not built:
            return
        if version != "editable":   # an editable install imports them from src/ directly
            for lib in built:
                build_data["force_include"][str(lib)] = f"edgeplan/solvers/{lib.name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
