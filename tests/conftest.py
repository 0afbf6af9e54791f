from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeplan.cli import main

ROOT = Path(__file__).resolve().parent.parent

TINY_MODEL = """\
format: 1
name: tiny
batch: 8
input: {shape: [3, 32, 32], dtype: float32}
optimizer: adam
stages:
  - {name: conv1, fwd_flops: 20 MFLOP, out: 256 KiB, saved: 512 KiB, params: 8 KiB}
  - repeat: 3
    name: block
    stages:
      - {name: a, fwd_flops: 40 MFLOP, out: 256 KiB, saved: 768 KiB, params: 36 KiB}
      - {name: b, fwd_flops: 40 MFLOP, out: 256 KiB, saved: 768 KiB, params: 36 KiB}
  - {name: head, fwd_time: 1 ms, out: 0, saved: 40 KiB, params: 20 KiB}
"""

TEST_DEVICE = """\
format: 1
name: testdev
title: Test device
kind: cpu
memory: {total: 4 MiB, reserved: 1 MiB}
compute: {precision: fp32, peak: {fp32: 10 GFLOP/s}, sustained: {fp32: 2 GFLOP/s}}
power: {training: 5 W}
"""


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY_MODEL)
    return p


@pytest.fixture
def test_device(tmp_path: Path) -> Path:
    p = tmp_path / "testdev.yaml"
    p.write_text(TEST_DEVICE)
    return p


class Result:
    def __init__(self, r):
        self.exit_code = r.exit_code
        self.stdout = r.stdout
        self.stderr = r.stderr
        self.exception = r.exception

    def __repr__(self):
        return f"<exit {self.exit_code}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}>"


@pytest.fixture
def run_cli():
    def run(*args: str) -> Result:
        runner = CliRunner(env={"NO_COLOR": "1", "COLUMNS": "100"})
        return Result(runner.invoke(main, [str(a) for a in args], catch_exceptions=False))
    return run
