"""tests/data/invalid: one defect per file, named after it. Each gives exit 2 and one clear
line naming the file and the key (the expected text is the file's `# expect:` comment)."""

from pathlib import Path

import pytest

HERE = Path(__file__).parent / "data" / "invalid"
MODELS = sorted((HERE / "models").glob("*.yaml"))
DEVICES = sorted((HERE / "devices").glob("*.yaml"))


def expected(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("ascii")
    assert first.startswith("# expect: "), path
    return first[len("# expect: "):]


def check(r, path):
    assert r.exit_code == 2, r
    assert "Traceback" not in r.stderr and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r
    assert lines[0].startswith(f"edgeplan: error: {path}"), lines[0]
    assert expected(path) in lines[0], (expected(path), lines[0])


def test_corpus_is_there():
    assert len(MODELS) >= 25 and len(DEVICES) >= 5


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_invalid_model(run_cli, path):
    check(run_cli("solve", path, "--memory", "1 GiB"), path)


@pytest.mark.parametrize("path", DEVICES, ids=[p.stem for p in DEVICES])
def test_invalid_device(run_cli, path, tiny_model):
    check(run_cli("solve", tiny_model, "--device", path), path)


def test_explicit_100k_stage_file_is_refused_fast(run_cli, tmp_path):
    import time
    p = tmp_path / "huge.yaml"
    p.write_text("format: 1\nname: huge\ninput: 1 MiB\nstages:\n" + "".join(
        f"  - {{name: s{i}, fwd_time: 1 ms, out: 1 MiB}}\n" for i in range(100_000)))
    t0 = time.perf_counter()
    r = run_cli("solve", p, "--memory", "1 GiB")
    assert r.exit_code == 2 and "merge stages" in r.stderr, r
    assert time.perf_counter() - t0 < 20
