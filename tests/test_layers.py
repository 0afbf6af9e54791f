"""The layering of ARCHITECTURE.md, checked on the source.

* ``edgeplan.cli`` is imported by nothing in the package (``__main__`` excepted): it is the top;
* the library (everything outside ``cli/`` and ``report/``) never imports ``cli``, ``report``,
  click or rich; ``report/`` never imports ``cli`` or click;
* a command module never imports another command module;
* the import graph between the package's parts (a top-level module, or a sub-package as one
  node) has no circle, counting imports inside functions too;
* every library module imports with click and rich made unimportable.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "edgeplan"
PARTS = ("cli", "report", "formats", "solvers", "importers", "torchrun")
NEEDS_TORCH = ("edgeplan.importers.torch", "edgeplan.importers.zoo", "edgeplan.importers.nets",
               "edgeplan.torchrun", "edgeplan.torch")
NEEDS_ONNX = ("edgeplan.importers.onnx",)


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(SRC.rglob("*.py")):
        parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports (absolute names; ``from x import y`` also counts ``x.y``)."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(n, ast.Import):
            found.update(a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (n.level - 1)]
                mod = ".".join(base + ([n.module] if n.module else []))
            else:
                mod = n.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in n.names)
    return found


MODULES = _modules()
IMPORTS = {m: _imports(m, p) for m, p in MODULES.items()}


def _part(mod: str) -> str:
    parts = mod.split(".")
    return ".".join(parts[:2])


def _is(mod: str, *prefixes: str) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


def test_nothing_imports_the_cli():
    bad = [(m, i) for m, imps in IMPORTS.items() if not _is(m, "edgeplan.cli")
           and m != "edgeplan.__main__" for i in imps if _is(i, "edgeplan.cli")]
    assert not bad, bad


def test_library_never_imports_cli_report_click_or_rich():
    bad = [(m, i) for m, imps in IMPORTS.items()
           if not _is(m, "edgeplan.cli", "edgeplan.report", "edgeplan.__main__")
           for i in imps if _is(i, "edgeplan.report", "click", "rich")]
    assert not bad, bad
    bad = [(m, i) for m, imps in IMPORTS.items() if _is(m, "edgeplan.report")
           for i in imps if _is(i, "click", "edgeplan.cli")]
    assert not bad, bad


def test_command_modules_are_leaves():
    commands = {m for m in MODULES if _is(m, "edgeplan.cli") and m != "edgeplan.cli"
                and not m.rpartition(".")[2].startswith("_")}
    bad = [(m, i) for m in commands for i in IMPORTS[m] if i in commands and i != m]
    assert not bad, bad


def test_no_circle_between_the_parts():
    edges: dict[str, set[str]] = {}
    for m, imps in IMPORTS.items():
        if m == "edgeplan.__main__":
            continue
        for i in imps:
            a, b = _part(m), _part(i)
            if i in MODULES and i != "edgeplan" and a != b:
                edges.setdefault(a, set()).add(b)
    circles = []
    state: dict[str, int] = {}
    path: list[str] = []

    def walk(u: str) -> None:
        state[u] = 1
        path.append(u)
        for v in sorted(edges.get(u, ())):
            if state.get(v) == 1:
                circles.append(path[path.index(v):] + [v])
            elif v not in state:
                walk(v)
        path.pop()
        state[u] = 2

    for u in sorted(edges):
        if u not in state:
            walk(u)
    assert not circles, [" -> ".join(c) for c in circles]
    assert "edgeplan.cli" not in {b for bs in edges.values() for b in bs}


def test_library_imports_without_click_and_rich():
    have_torch = importlib.util.find_spec("torch") is not None
    have_onnx = importlib.util.find_spec("onnx") is not None
    names = [m for m in MODULES if not _is(m, "edgeplan.cli", "edgeplan.report")
             and m != "edgeplan.__main__"
             and (have_torch or not _is(m, *NEEDS_TORCH))
             and (have_onnx or not _is(m, *NEEDS_ONNX))]
    code = ("import sys; sys.modules['click'] = None; sys.modules['rich'] = None\n"
            "import importlib\n"
            f"for m in {names!r}:\n"
            "    importlib.import_module(m)\n"
            "print('ok', len(sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr[-2000:]


@pytest.mark.parametrize("name", ["edgeplan.solvers.registry"])
def test_one_strategy_table(name):
    """Only the registry names strategies: no other module keeps a table of them."""
    offenders = [m for m, p in MODULES.items() if m != name and "STRATEGIES: dict" in
                 p.read_text(encoding="utf-8")]
    assert not offenders, offenders


def test_the_lazy_front_doors_are_the_public_names():
    """``edgeplan/__init__.py`` names its front doors three times (the lazy table, the
    type-checking imports, ``__all__``): they must agree, and every one must load."""
    import edgeplan

    assert set(edgeplan.__all__) == {"__version__", "compare", *edgeplan._EXPORTS}
    for name in edgeplan.__all__:
        assert getattr(edgeplan, name) is not None, name
    assert callable(edgeplan.compare) and edgeplan.solve.__name__ == "solve_problem"
