"""Keep the README true: its commands run, and CI runs its test command."""

import re
import shlex
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT


def readme_commands():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, flags=re.S)
    cmds = [line.strip() for b in blocks for line in b.splitlines()
            if line.strip().startswith("pip install")]
    assert len(cmds) >= 2, "README needs the install+run and the install+test commands"
    return cmds[0], cmds[1]


def test_ci_runs_the_readme_test_command():
    _, test_cmd = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines(), f"{test_cmd!r} not a line of .ci/run"


def test_readme_main_job_runs(run_cli, monkeypatch):
    run_cmd, _ = readme_commands()
    edgeplan_part = run_cmd.split("&&", 1)[1].strip()
    args = shlex.split(edgeplan_part)
    assert args[0] == "edgeplan"
    monkeypatch.chdir(ROOT)
    r = run_cli(*args[1:])
    assert r.exit_code == 0, r
    assert "Recommended schedule" in r.stdout
    # the README shows a real output of this command: its key lines must still be produced
    text = (ROOT / "README.md").read_text()
    shown = re.search(r"```text\n(.*?)```", text, flags=re.S)
    assert shown, "README shows a real output in a ```text block"
    for line in shown.group(1).splitlines():
        if line.startswith("Without checkpointing") or line.startswith("Minimum with"):
            assert line.strip() in r.stdout, line


@pytest.mark.slow
def test_wheel_ships_profiles(tmp_path):
    """Profiles are found after a normal (non-editable) install."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("edgeplan-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "edgeplan/profiles/jetson-nano.yaml" in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    code = ("import edgeplan.formats.device_file as l; from pathlib import Path; "
            "d = l.builtin_profile_dir(); assert 'site' in str(d), d; "
            "print(l.find_device('jetson-nano').name)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(target)})
    assert out.stdout.strip() == "jetson-nano"
    from edgeplan.solvers import _native_build
    if _native_build.compiler() is not None:
        # the build hook compiled the native DP kernel into the wheel, and the installed copy
        # loads it (its embedded source hash matches the shipped _dpfill.c)
        assert "edgeplan/solvers/_dpfill-base.so" in names
        code = ("from edgeplan.solvers import dp_native as n; assert 'site' in str(n._HERE); "
                "print(n.load() is not None, n.unavailable_reason())")
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True,
                             capture_output=True, text=True, env={"PYTHONPATH": str(target)})
        assert out.stdout.strip() == "True None"


def test_readme_finetune_examples_are_real(run_cli, monkeypatch):
    """Every `$ edgeplan finetune ...` of the README runs, and the lines shown after it (the
    table rows and the recommendation) are in its output."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Fine-tuning", 1)[1].split("\n## ", 1)[0]
    pairs = re.findall(r"```console\n\$ (edgeplan finetune[^\n]*)\n```\s*```text\n(.*?)```",
                       section, flags=re.S)
    assert len(pairs) >= 2
    monkeypatch.chdir(ROOT)
    for cmd, shown in pairs:
        r = run_cli(*shlex.split(cmd)[1:])
        assert r.exit_code == 0, r
        out = {line.strip() for line in r.stdout.splitlines()}
        for line in shown.splitlines():
            if line.strip() and line.strip() != "...":
                assert line.strip() in out, line
