"""The docs stay true: the CLI reference is generated, every command documented with an example,
the tutorial's commands and options exist, links resolve."""

import importlib.metadata
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GEN = ROOT / "tools" / "gen_cli_docs.py"
CLI_MD = ROOT / "docs" / "cli.md"
REGEN = "docs/cli.md is out of date: run `python tools/gen_cli_docs.py`"

# Commands and options the tutorial may show before they are registered (none at present).
PENDING_COMMANDS: set[str] = set()
PENDING_OPTIONS: set[tuple[str, str]] = set()


@pytest.fixture(scope="module")
def generated() -> dict:
    """The generator's output in a fresh interpreter (what edgeplan.cli registers, no test's
    additions), with a narrow terminal to show the width is fixed."""
    env = dict(os.environ, COLUMNS="40", NO_COLOR="1")
    r = subprocess.run([sys.executable, str(GEN), "--json"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_cli_reference_is_current(generated):
    """Identical text when generated with the same click; click's help layout changes between
    releases, so with another click the commands and every option must still match."""
    assert CLI_MD.exists(), REGEN
    text = CLI_MD.read_text(encoding="utf-8")
    made_with = re.search(r"click ([0-9][^)\s]*)\)", text)
    if made_with and made_with.group(1) == importlib.metadata.version("click"):
        assert text == generated["markdown"], REGEN
    else:
        def options(md: str) -> dict[str, set[str]]:
            sections = re.split(r"^## ", md, flags=re.M)[1:]
            return {s.splitlines()[0]: set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", s))
                    for s in sections}
        assert options(text) == options(generated["markdown"]), REGEN


def test_every_command_is_documented(generated):
    headings = set(re.findall(r"^## (edgeplan\b.*)$", CLI_MD.read_text(encoding="utf-8"), re.M))
    commands = set(generated["commands"])
    assert {"edgeplan", "edgeplan solve", "edgeplan compare", "edgeplan devices",
            "edgeplan devices show"} <= commands
    missing = sorted(commands - headings)
    assert not missing, f"not in docs/cli.md: {missing}; {REGEN}"


def test_every_command_has_an_example(generated):
    lacking = [path for path, text in generated["commands"].items()
               if path != "edgeplan" and not re.search(r"^\s*Example:", text, re.M)]
    assert not lacking, f"--help without an 'Example:' line: {lacking}"


def test_generator_is_deterministic():
    sys.path.insert(0, str(GEN.parent))
    try:
        import gen_cli_docs
    finally:
        sys.path.pop(0)
    import click

    @click.group()
    def g():
        """A group."""

    @g.command()
    @click.option("--n", default=1, help="A number with a long help text " * 4)
    def sub(n):
        """A subcommand.

        Example: g sub --n 2
        """

    text, cmds = gen_cli_docs.render(g)
    assert list(cmds) == ["edgeplan", "edgeplan sub"]
    assert "## edgeplan sub" in text and "Example: g sub --n 2" in text
    assert max(len(line) for line in cmds["edgeplan sub"].splitlines()) <= gen_cli_docs.WIDTH
    assert gen_cli_docs.render(g)[0] == text


# --- the tutorial ---------------------------------------------------------------------------------

def _console_commands(md: str) -> list[str]:
    """``$ edgeplan ...`` lines of ```console blocks, continuation lines joined."""
    out, cur, in_console = [], None, False
    for line in md.splitlines():
        if line.startswith("```"):
            in_console = line.strip() == "```console"
            continue
        if not in_console:
            continue
        if cur is not None:
            cur += " " + line.strip().rstrip("\\").strip()
            if not line.rstrip().endswith("\\"):
                out.append(cur)
                cur = None
        elif line.startswith("$ edgeplan "):
            text = line[2:].rstrip()
            if text.endswith("\\"):
                cur = text.rstrip("\\").strip()
            else:
                out.append(text)
    return out


@pytest.mark.parametrize("doc", ["tutorial.md", "why.md"])
def test_doc_commands_and_options_exist(generated, doc):
    commands = generated["commands"]
    lines = _console_commands((ROOT / "docs" / doc).read_text(encoding="utf-8"))
    assert lines, f"no `$ edgeplan` lines found in {doc}"
    problems = []
    for line in lines:
        words = shlex.split(line.split(" #")[0])
        path = ["edgeplan"]
        for w in words[1:]:
            if " ".join(path + [w]) in commands:
                path.append(w)
            else:
                break
        if len(path) == 1:
            if words[1] not in PENDING_COMMANDS:
                problems.append(f"unknown command: {line}")
            continue
        name = " ".join(path)
        help_text = commands[name]
        for w in words[len(path):]:
            if not w.startswith("-") or w == "-":
                continue
            opt = w.split("=")[0]
            if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", help_text) and \
                    (name, opt) not in PENDING_OPTIONS:
                problems.append(f"{name} has no option {opt}: {line}")
        for w in words:
            if re.match(r"^(examples|profiles)/", w.split(":")[0]) and \
                    not (ROOT / w.split(":")[0]).exists():
                problems.append(f"missing file {w}: {line}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", ["tutorial.md", "why.md", "cli.md"])
def test_doc_links_resolve(doc):
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    bad = []
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"^[a-z]+://", target):
            continue
        if not (ROOT / "docs" / target).resolve().exists():
            bad.append(target)
    assert not bad, f"broken links in docs/{doc}: {bad}"


def test_tutorial_devices_and_examples_exist():
    text = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
    from edgeplan.formats.device_file import builtin_devices

    names = set(builtin_devices())
    used = set(re.findall(r"(?:-d|--device)\s+([a-z0-9][a-z0-9-]*[a-z0-9])(?![\w.-])", text))
    used |= {n for part in re.findall(r"--devices\s+([a-z0-9,-]+)", text) for n in part.split(",")}
    assert used and used <= names, used - names
    for f in set(re.findall(r"examples/[\w./-]+\.(?:yaml|py)", text)):
        assert (ROOT / f).exists(), f


def test_tests_readme_lists_every_test_file():
    text = (ROOT / "tests" / "README.md").read_text()
    missing = [p.name for p in sorted((ROOT / "tests").glob("test_*.py"))
               if f"`{p.name}`" not in text]
    assert not missing, f"add to tests/README.md: {missing}"
