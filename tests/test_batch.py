"""Batch-size planning: the galloping/bisection search equals a brute-force scan."""

from __future__ import annotations

import json
import random

import pytest
from rich.console import Console

from edgeplan.batch import (
    BatchPlan,
    largest_batch,
    plan_batches,
    probe,
    representative_batches,
    search_largest,
    within_overhead,
)
from edgeplan.errors import InputError
from edgeplan.formats.device_file import load_device
from edgeplan.formats.model_file import load_model
from edgeplan.plan import make_plan
from edgeplan.report import _json as jsondoc
from edgeplan.report.batch_report import batch_dict, batch_table

MEMORY = 8 * 2**20  # tiny fits up to batch ~35 in 8 MiB: the scan 1..64 crosses the edge
LIMITS = (None, 0.0, 0.10, 0.30, 0.60, 5.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from conftest import TEST_DEVICE, TINY_MODEL

    d = tmp_path_factory.mktemp("batch")
    (d / "tiny.yaml").write_text(TINY_MODEL)
    (d / "testdev.yaml").write_text(TEST_DEVICE)
    return load_model(d / "tiny.yaml"), load_device(d / "testdev.yaml")


@pytest.fixture(scope="module")
def scan(tiny):
    """Full plans for batches 1..64 with 8 MiB: the brute-force reference."""
    model, dev = tiny
    return {b: make_plan(model, dev, memory_bytes=MEMORY, batch=b) for b in range(1, 65)}


def test_search_largest_matches_predicate():
    rng = random.Random(7)
    for _ in range(300):
        max_batch = rng.randint(1, 300)
        edge = rng.randint(0, max_batch + 5)
        calls: list[int] = []

        def passes(b: int) -> bool:
            calls.append(b)
            return b <= edge

        want = min(edge, max_batch) if edge >= 1 else None
        assert search_largest(passes, max_batch) == want, (max_batch, edge)
        assert len(calls) == len(set(calls)), f"probed twice: {calls}"
        assert len(calls) <= 2 * max_batch.bit_length() + 2, (max_batch, edge, calls)
        assert all(1 <= b <= max_batch for b in calls)
    with pytest.raises(ValueError):
        search_largest(lambda b: True, 0)


@pytest.mark.parametrize("limit", LIMITS)
def test_largest_batch_equals_brute_force(tiny, scan, limit):
    model, dev = tiny
    fits = [b for b, p in scan.items()
            if p.feasible and within_overhead(max(0.0, p.overhead), limit)]
    want = max(fits) if fits else None
    # monotone, as the search assumes
    assert fits == list(range(1, len(fits) + 1)), fits
    got = largest_batch(model, dev, max_batch=64, max_overhead=limit, memory_bytes=MEMORY)
    assert got == want, (limit, got, want)
    bp = plan_batches(model, dev, max_batch=64, max_overhead=limit, memory_bytes=MEMORY)
    assert bp.best_batch == want
    assert bp.probes <= 2 * 7 + 2
    if want is None:
        assert bp.best is None
    else:
        assert bp.best is not None and bp.best.within_limit
        if want < 64:
            nxt = scan[want + 1]
            assert bp.limited_by == ("overhead" if nxt.feasible else "memory")
        else:
            assert bp.limited_by == "max_batch"


def test_edge_is_crossed_by_the_scan(scan):
    feasible = [b for b, p in scan.items() if p.feasible]
    assert 1 < max(feasible) < 64, "the scan must include infeasible batches"


def test_probe_agrees_with_make_plan(tiny, scan):
    model, dev = tiny
    for b in (1, 3, 8, 20, 40, 64):
        p, full = probe(model, dev, b, memory_bytes=MEMORY), scan[b]
        assert p.feasible == full.feasible, b
        if full.feasible:
            assert p.time_s == pytest.approx(full.time_s), b
            assert p.overhead == pytest.approx(max(0.0, full.overhead), abs=1e-12), b


def test_rows_throughput_and_energy(tiny, scan):
    model, dev = tiny
    bp = plan_batches(model, dev, max_batch=64, max_overhead=0.3, memory_bytes=MEMORY)
    batches = [r.batch for r in bp.rows]
    assert batches == representative_batches(64, bp.best_batch)
    assert {1, 2, 4, 8, 16, 32, 64, bp.best_batch, bp.best_batch + 1} == set(batches)
    for r in bp.rows:
        full = scan[r.batch]
        assert r.feasible == full.feasible
        assert r.min_memory_bytes == full.min_memory_bytes
        assert r.activation_budget_bytes == MEMORY - full.memory.fixed_bytes
        if r.feasible:
            assert r.time_s == pytest.approx(full.time_s)
            assert r.throughput == pytest.approx(r.batch / r.time_s), r
            assert r.energy_per_sample_j == pytest.approx(r.time_s * 5.0 / r.batch), r
        else:
            assert r.throughput is None and r.energy_per_sample_j is None and r.time_s is None
    # min memory grows with the batch; the activation budget does not
    mins = [r.min_memory_bytes for r in bp.rows]
    assert mins == sorted(mins)
    assert len({r.activation_budget_bytes for r in bp.rows}) == 1


def test_json_and_table(tiny):
    model, dev = tiny
    bp = plan_batches(model, dev, max_batch=40, max_overhead=0.3)
    doc = json.loads(jsondoc.dumps(batch_dict(bp)))
    assert doc["best_batch"] == 6 and doc["limited_by"] == "overhead"
    assert doc["max_overhead"] == 0.3 and doc["max_batch"] == 40
    assert [r["batch"] for r in doc["rows"]] == [1, 2, 4, 6, 7, 8, 16, 32, 40]
    assert [r["batch"] for r in doc["rows"] if r["is_best"]] == [6]
    best = doc["best"]
    assert best["throughput_samples_per_s"] == pytest.approx(6 / best["time_s"])
    assert set(best) >= {"batch", "feasible", "within_limit", "activation_budget_bytes",
                         "min_memory_bytes", "time_s", "overhead", "throughput_samples_per_s",
                         "energy_per_sample_j"}
    con = Console(width=120, record=True, no_color=True)
    con.print(batch_table(bp))
    text = con.export_text()
    assert "<- largest" in text and "Largest batch: 6" in text and "overhead" in text
    row6 = next(line for line in text.splitlines() if line.split()[:1] == ["6"])
    assert "yes" in row6 and "+22.9%" in row6


def test_nothing_fits(tiny):
    model, dev = tiny
    bp = plan_batches(model, dev, max_batch=8, memory_bytes=2**20)
    assert isinstance(bp, BatchPlan)
    assert bp.best_batch is None and bp.limited_by == "memory" and bp.best is None
    assert not any(r.feasible for r in bp.rows)
    con = Console(width=120, record=True, no_color=True)
    con.print(batch_table(bp))
    assert "No batch fits" in con.export_text()


def test_bad_arguments(tiny):
    model, dev = tiny
    with pytest.raises(InputError, match="maximum batch"):
        plan_batches(model, dev, max_batch=0)
    with pytest.raises(InputError, match="overhead"):
        plan_batches(model, dev, max_batch=4, max_overhead=-0.1)
