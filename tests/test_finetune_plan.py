"""The fine-tuning planner (``edgeplan finetune``, ``check --min-trainable``; docs/finetune.md):
its candidates, the Pareto front, the recommendation, checked against plain ``make_plan``."""

import json
from dataclasses import replace

import pytest

from edgeplan.errors import InputError
from edgeplan.finetune import candidate_selections, parse_min_trainable, plan_finetune
from edgeplan.formats.model_file import model_from_text
from edgeplan.plan import make_plan
from test_finetune import MODEL

MiB = 1 << 20
TEXT = MODEL.replace("optimizer: adam\n", "optimizer: adam\nbatch: 4\n")


@pytest.fixture
def model():
    return model_from_text(TEXT, "ft.yaml")


def test_candidates(model):
    assert candidate_selections(model) == [
        "all", "last:3", "last:2", "last:1", "bias", "last:1,bias", "last:2,bias",
        "lora:8", "last:1,lora:8"]
    no_modes = replace(model, stages=tuple(replace(s, modes={}) for s in model.stages))
    assert candidate_selections(no_modes) == ["all", "last:3", "last:2", "last:1"]


def _usable(model, train, accum=1):
    """Usable memory at which ``train`` just fits with ``accum`` micro-batches."""
    return make_plan(model, None, memory_bytes=1 << 40, train=train,
                     grad_accum=accum).min_memory_bytes


@pytest.mark.parametrize("train", ["all", "last:2", "last:1", "bias"])
def test_recommendation_is_the_most_trained_that_fits(model, train):
    memory = _usable(model, train)
    ft = plan_finetune(model, None, memory_bytes=memory)
    for c in ft.candidates:  # every candidate is the plain plan of its selection
        p = make_plan(model, None, memory_bytes=memory, train=c.train, grad_accum=c.grad_accum)
        assert (c.feasible, c.time_per_sample_s) == (p.feasible,
                                                     p.problem.time_per_sample_s(p.time_s))
    fits = [c for c in ft.candidates if c.feasible]
    rec = ft.recommended
    assert rec is not None and rec.feasible
    assert rec.trainable_bytes == max(c.trainable_bytes for c in fits)
    assert rec.trainable_bytes >= make_plan(model, None, memory_bytes=memory,
                                            train=train).model.trainable_bytes


def test_pareto_front(model):
    ft = plan_finetune(model, None, memory_bytes=_usable(model, "last:2"))
    fits = [c for c in ft.candidates if c.feasible]

    def key(c):
        return (c.peak_bytes, c.time_per_sample_s, -c.trainable_bytes)

    def dominates(a, b):
        return all(x <= y for x, y in zip(key(a), key(b), strict=True)) and key(a) != key(b)
    for c in ft.candidates:
        assert c.pareto == (c.feasible and not any(dominates(o, c) for o in fits))
    assert ft.front and all(c.feasible for c in ft.front)
    assert not any(c.pareto for c in ft.candidates if not c.feasible)


def test_micro_batches_make_it_fit(model):
    one, two = _usable(model, "all", 1), _usable(model, "all", 2)
    assert two < one
    ft = plan_finetune(model, None, memory_bytes=two, selections=["all"])
    assert not ft.candidates[0].feasible and ft.candidates[0].grad_accum == 1
    assert ft.recommended is not None and ft.recommended.grad_accum in (2, 4)
    ft = plan_finetune(model, None, memory_bytes=two, selections=["all"], grad_accum=[1, 2])
    rec = ft.recommended
    assert rec is not None and rec.train == "all" and rec.grad_accum == 2
    assert rec.micro_batch == 2 and rec.time_per_step_s == pytest.approx(
        2 * rec.plan.time_s)
    # ample memory: one micro-batch, and no more are tried once nothing is recomputed
    ft = plan_finetune(model, None, memory_bytes=1 << 40, selections=["all"])
    assert [c.grad_accum for c in ft.candidates] == [1]
    with pytest.raises(InputError, match="equal micro-batches"):
        plan_finetune(model, None, memory_bytes=1 << 40, grad_accum=[3])


def test_min_trainable(model):
    memory = _usable(model, "last:1")
    ft = plan_finetune(model, None, memory_bytes=memory, min_trainable="last:1")
    assert ft.recommended is not None
    assert ft.recommended.training.modes[-1] == "train"
    assert all(c.meets == (c.training.modes[-1] == "train") for c in ft.candidates)
    ft = plan_finetune(model, None, memory_bytes=memory, min_trainable="last:3")
    assert ft.recommended is None
    assert ft.least_memory is not None and ft.least_memory.meets
    req = parse_min_trainable("50%, 1 MiB", model)
    assert (req.fraction, req.trainable_bytes, req.first_stage) == (0.5, MiB, None)
    ft = plan_finetune(model, None, memory_bytes=1 << 40, min_trainable=req)
    assert all(c.meets == (c.training.trainable_fraction >= 0.5) for c in ft.candidates)
    for bad in ("last:9", "big", ""):
        with pytest.raises(InputError):
            parse_min_trainable(bad, model)


def test_prefer_time(model):
    ft = plan_finetune(model, None, memory_bytes=1 << 40, prefer="time")
    fastest = min(c.time_per_sample_s for c in ft.candidates if c.feasible)
    assert ft.recommended.time_per_sample_s <= fastest * 1.02
    assert plan_finetune(model, None, memory_bytes=1 << 40).recommended.train == "all"


def test_cli_finetune(run_cli, tmp_path):
    path = tmp_path / "ft.yaml"
    path.write_text(TEXT)
    model = model_from_text(TEXT, str(path))
    memory = _usable(model, "last:2")
    r = run_cli("finetune", path, "--memory", f"{memory}B")
    assert r.exit_code == 0, r.output
    assert "Recommended: --train" in r.stdout and "Pareto" in r.stdout
    assert "edgeplan solve" in r.stdout
    r = run_cli("finetune", path, "--memory", f"{memory}B", "--json")
    doc = json.loads(r.stdout)
    assert doc["command"] == "finetune" and doc["status"] == "ok"
    rec = doc["data"]["candidates"][doc["data"]["recommended"]]
    assert rec["feasible"] and rec["peak_bytes"] <= memory
    r = run_cli("finetune", path, "--memory", "1MiB", "--min-trainable", "last:2")
    assert r.exit_code == 1 and "Nothing to recommend" in r.stdout
    assert "least memory" in r.stdout
    r = run_cli("finetune", path, "--memory", "1GiB", "--min-trainable", "lots")
    assert r.exit_code == 2 and "--min-trainable" in r.stderr


def test_cli_check_min_trainable_and_train(run_cli, tmp_path):
    path = tmp_path / "ft.yaml"
    path.write_text(TEXT)
    model = model_from_text(TEXT, str(path))
    memory = _usable(model, "last:1")
    r = run_cli("check", path, "--memory", f"{memory}B", "--min-trainable", "last:1",
                "--train", "last:1", "--no-config")
    assert r.exit_code == 0, r.output
    assert "min-trainable" in r.stdout
    r = run_cli("check", path, "--memory", f"{memory}B", "--min-trainable", "last:3",
                "--no-config", "--json")
    assert r.exit_code == 1
    gates = json.loads(r.stdout)["data"]["targets"][0]["gates"]
    g = next(g for g in gates if g["gate"] == "min-trainable")
    assert g["passed"] is False and g["measured"] is None and g["threshold"] == "last:3"
    assert "least memory" in g["message"]
    cfg = tmp_path / "edgeplan.yaml"
    cfg.write_text(f"format: 1\nmodel: ft.yaml\nmemory: {memory} B\ntrain: last:1\n"
                   "gates: {min_trainable: last:1}\n")
    r = run_cli("check", "--config", cfg)
    assert r.exit_code == 0, r.output
    cfg.write_text("format: 1\nmodel: ft.yaml\nmemory: 1 GiB\ntrain: lst:1\n")
    r = run_cli("check", "--config", cfg)
    assert r.exit_code == 2 and "train" in r.stderr


def test_cli_compare_train(run_cli, tmp_path):
    path = tmp_path / "ft.yaml"
    path.write_text(TEXT)
    full = json.loads(run_cli("compare", path, "--memory", "64MiB", "--json").stdout)
    head = json.loads(run_cli("compare", path, "--memory", "64MiB", "--train", "last:1",
                              "--json").stdout)

    def budget(doc):
        return doc["data"]["pairs"][0]["budget_bytes"]
    assert budget(head) > budget(full)  # fewer gradients and optimizer state


def test_several_precisions(run_cli, tmp_path):
    a = tmp_path / "fp32.yaml"
    a.write_text(TEXT.replace("batch: 4\n", "batch: 4\nprecision: fp32\n"))
    # the same model measured under autocast: 16-bit activations (hand-made here)
    b = tmp_path / "bf16.yaml"
    b.write_text(TEXT.replace("batch: 4\n", "batch: 4\nprecision: bf16\n")
                 .replace("saved: 4 MiB", "saved: 2 MiB").replace("out: 2 MiB", "out: 1 MiB"))
    fp32, bf16 = model_from_text(a.read_text(), str(a)), model_from_text(b.read_text(), str(b))
    memory = _usable(bf16, "all")
    assert memory < _usable(fp32, "all")
    ft = plan_finetune([fp32, bf16], None, memory_bytes=memory, grad_accum=[1])
    assert {c.precision for c in ft.candidates} == {"fp32", "bf16"}
    rec = ft.recommended
    assert rec is not None and rec.precision == "bf16"  # only the bf16 measurement fits all
    assert rec.train == "all" and rec.plan.model.source == str(b)
    r = run_cli("finetune", a, b, "--memory", f"{memory}B", "--json")
    doc = json.loads(r.stdout)
    assert {c["precision"] for c in doc["data"]["candidates"]} == {"fp32", "bf16"}
    other = tmp_path / "other.yaml"
    other.write_text(TEXT.replace("name: head", "name: classifier"))
    r = run_cli("finetune", a, other, "--memory", "1GiB")
    assert r.exit_code == 2 and "not the same model" in r.stderr


def test_master_weights_and_amp_files(run_cli, tmp_path):
    """A 16-bit file with --master-weights keeps an fp32 copy of what trains and the optimizer
    state on it (Micikevicius et al. 2018); an autocast file (amp:) has fp32 parameters."""
    from edgeplan.formats.model_file import read_model_input
    from edgeplan.problem import prepare
    b16 = model_from_text(TEXT.replace("batch: 4\n", "batch: 4\nprecision: bf16\n"), "b.yaml")
    assert b16.param_element_bytes == 2
    for train, trainable in (("all", 4 * MiB), ("last:1", MiB)):
        mem = prepare(b16, None, memory_bytes=1 << 30, train=train, master_weights=True).memory
        assert mem.master_bytes == 2 * trainable            # 4 bytes per 2-byte parameter
        assert mem.optimizer_bytes == 2 * mem.master_bytes  # adam: two fp32 states
        assert mem.grad_bytes == trainable and mem.param_bytes == 4 * MiB
        plain = prepare(b16, None, memory_bytes=1 << 30, train=train).memory
        assert plain.master_bytes == 0 and plain.optimizer_bytes == 2 * trainable
    amp_text = TEXT.replace("batch: 4\n", "batch: 4\namp: bf16\n")
    amp = model_from_text(amp_text, "a.yaml")
    assert (amp.precision, amp.amp, amp.param_element_bytes) == ("bf16", "bf16", 4)
    with pytest.raises(InputError, match="master weights"):
        prepare(amp, None, memory_bytes=1 << 30, master_weights=True)
    with pytest.raises(InputError, match="must agree"):
        model_from_text(amp_text.replace("amp: bf16", "amp: bf16\nprecision: fp16"), "c.yaml")
    path = tmp_path / "a.yaml"
    path.write_text(amp_text.replace("input: 1 MiB", "input: {shape: [8], dtype: float32}"))
    assert read_model_input(path)["dtype_params"] == "float32"
    r = run_cli("solve", path, "--memory", "1GiB", "--master-weights")
    assert r.exit_code == 2 and "master weights" in r.stderr
