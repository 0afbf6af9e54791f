"""Fine-tuning (docs/finetune.md): frozen prefixes in the chain model, training modes, what
trains, optimizers' state bytes, and the CLI's --train / --optimizer."""

import json
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from edgeplan.chain import make_chain
from edgeplan.device import StorageTier
from edgeplan.errors import InputError, ScheduleError, UnknownNameError
from edgeplan.formats.model_file import model_from_text
from edgeplan.problem import prepare, solve_problem
from edgeplan.schedule import Op, OpKind, Schedule
from edgeplan.simulator import simulate
from edgeplan.solvers.base import store_all_peak_bytes, store_all_schedule
from edgeplan.solvers.exact import exact_cost, solve_exact
from edgeplan.solvers.registry import solve, strategy_names
from edgeplan.training import (
    OPTIMIZER_STATE,
    optimizer_state_bytes,
    parse_train,
    resolve,
)
from test_properties import chains

TIER = StorageTier(name="disk", read_bytes_per_s=3.0, write_bytes_per_s=1.0)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MODEL = """\
format: 1
name: ft
input: 1 MiB
optimizer: adam
stages:
  - {name: a, fwd_time: 1 ms, bwd_time: 2 ms, out: 2 MiB, saved: 4 MiB, params: 1 MiB,
     modes: {frozen: {saved: 2 MiB, bwd_time: 1 ms}, bias: {trainable: 4 KiB, saved: 2 MiB}}}
  - {name: relu, fwd_time: 1 ms, out: 2 MiB, saved: 2 MiB}
  - {name: b, fwd_time: 1 ms, bwd_time: 2 ms, out: 2 MiB, saved: 4 MiB, params: 1 MiB,
     modes: {frozen: {saved: 2 MiB, bwd_time: 1 ms}, bias: {trainable: 4 KiB, saved: 2 MiB},
             lora-r8: {trainable: 64 KiB, added: 64 KiB, saved: 3 MiB, bwd_time: 1.2 ms}}}
  - {name: c, fwd_time: 1 ms, bwd_time: 2 ms, out: 2 MiB, saved: 4 MiB, params: 1 MiB,
     modes: {frozen: {saved: 2 MiB, bwd_time: 1 ms}, bias: {trainable: 4 KiB, saved: 2 MiB}}}
  - {name: head, fwd_time: 1 ms, bwd_time: 2 ms, out: 0, saved: 1 MiB, params: 1 MiB,
     modes: {bias: {trainable: 1 KiB}}}
"""
MiB = 1 << 20


@pytest.fixture
def model():
    return model_from_text(MODEL, "ft.yaml")


# --- the chain model: a frozen prefix (docs/chain-model.md §8) ----------------------------------

def _chain(p):
    c = make_chain("c", fwd=[1.0, 1.0, 1.0], bwd=[2.0, 2.0, 2.0], out=[4, 4, 0], saved=[6, 6, 3],
                   input_bytes=2)
    return replace(c, frozen_prefix=p)


def test_simulator_frozen_prefix_rules():
    c = _chain(1)
    ok = Schedule((Op(OpKind.FN, 1), Op(OpKind.FALL, 2), Op(OpKind.FALL, 3), Op(OpKind.B, 3),
                   Op(OpKind.B, 2)))
    t = simulate(c, ok)
    # peak at B 3: x0 + a1 + A2 + A3 + the new d2; B 2 makes no d1 (never computed)
    assert t.peak_bytes == 2 + 4 + 6 + 3 + 4 and t.cost_s == 1 + 1 + 1 + 2 + 2
    assert t.transient_bytes[-1] == 2 + 4 + 6 + 4  # B 2: x0 + a1 + A2 + d2, no d1
    assert c.compute_time_s == 7.0 and t.recompute_time_s == 0.0
    with pytest.raises(ScheduleError, match="frozen"):
        simulate(c, Schedule((Op(OpKind.FALL, 1),) + ok.ops[1:]))
    with pytest.raises(ScheduleError, match="stage 1 is frozen"):
        simulate(c, Schedule((Op(OpKind.FN, 1), Op(OpKind.B, 1))))
    with pytest.raises(ScheduleError, match="already complete"):
        simulate(c, Schedule(ok.ops + (Op(OpKind.B, 1),)))
    with pytest.raises(ScheduleError, match="backward"):
        simulate(c, Schedule(ok.ops[:-1]))
    assert simulate(c, store_all_schedule(c)).cost_s == 7.0


def test_chain_frozen_prefix_validated():
    from edgeplan.errors import ModelError
    with pytest.raises(ModelError, match="frozen_prefix"):
        _chain(3)
    assert _chain(0).trained_part() == _chain(0)
    sub = _chain(2).trained_part()
    assert sub.length == 1 and sub.input_bytes == 4


@st.composite
def frozen_chains(draw, max_len=6):
    c = draw(chains(max_len).filter(lambda c: c.length >= 2))
    return replace(c, frozen_prefix=draw(st.integers(1, c.length - 1)))


@SETTINGS
@given(frozen_chains(), st.floats(0.2, 1.2))
def test_every_strategy_plans_a_frozen_prefix(chain, frac):
    """Every strategy's schedule is valid on the whole chain, within its budget, and never beats
    the exhaustive search of the whole chain (which may also drop and recompute a_p; with the
    storage tier for offload)."""
    budget = int(store_all_peak_bytes(chain) * frac)
    best = exact_cost(chain, budget)
    best_io = exact_cost(chain, budget, tier=TIER)  # offload may also use storage
    for name in strategy_names():
        res = solve(name, chain, budget, **({"tier": TIER} if name == "offload" else {}))
        if not res.feasible:
            continue
        kw = {"tier": TIER} if name == "offload" else {}
        tr = simulate(chain, res.schedule, budget, **kw)
        assert tr.peak_bytes == res.peak_bytes <= budget
        assert res.schedule.ops[0] == Op(OpKind.FN, 1)
        ref = best_io if name == "offload" else best
        assert ref is not None and ref[0] <= tr.cost_s + 1e-9, name


@SETTINGS
@given(frozen_chains())
def test_lift_is_the_trained_part_plus_the_prefix(chain):
    """Lifted optimal == optimal of the trained part within budget - x0, plus the prefix's
    forward, whenever the prefix's own peak fits; and at the store-all peak there is no
    recomputation."""
    p = chain.frozen_prefix
    top = store_all_peak_bytes(chain)
    res = solve("optimal", chain, top, frontier=True)
    assert res.feasible and res.cost_s == pytest.approx(chain.compute_time_s)
    sub = solve("optimal", chain.trained_part(), top - chain.input_bytes)
    t0 = sum(chain.stage(j).fwd_time_s for j in range(1, p + 1))
    assert res.cost_s == pytest.approx(sub.cost_s + t0)
    lo = res.frontier[0].budget_bytes
    assert solve("optimal", chain, lo).feasible
    if lo > 0:
        assert not solve("optimal", chain, lo - 1).feasible
    for pt in res.frontier:  # every lifted point is reached at its budget, at its cost
        at = solve("optimal", chain, pt.budget_bytes)
        assert at.peak_bytes <= pt.budget_bytes and at.cost_s == pytest.approx(pt.cost_s)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(frozen_chains(max_len=8))
def test_recomputing_the_prefix_never_loses(chain):
    """The strategies also plan the prefix as a checkpointable stage (``merged_prefix``): the
    answer is never worse than keeping ``a_p`` all along (least budget, cost at a budget), and
    training less never needs more memory than training everything."""
    from edgeplan.solvers.frozen import lift
    top = store_all_peak_bytes(replace(chain, frozen_prefix=0)) + 1
    res = solve("optimal", chain, top, frontier=True)
    kept = lift(chain, top, solve("optimal", chain.trained_part(), top, frontier=True))
    assert res.min_budget_bytes <= kept.min_budget_bytes
    full = solve("optimal", replace(chain, frozen_prefix=0), top, frontier=True)
    assert res.min_budget_bytes <= full.min_budget_bytes
    for pt in kept.frontier:
        at = solve("optimal", chain, pt.budget_bytes)
        assert at.feasible and at.cost_s <= pt.cost_s + 1e-9
    at = solve("optimal", chain, res.min_budget_bytes)
    assert at.feasible and at.peak_bytes <= res.min_budget_bytes


def test_a_frozen_stem_does_not_need_more_memory():
    """MobileNetV2's stem (stage 1) outputs 12 MiB at batch 8: keeping it all along made
    `--train last:19` need more memory than training everything."""
    from edgeplan.formats.device_file import find_device
    from edgeplan.formats.model_file import load_model
    from edgeplan.plan import make_plan
    m, pi = load_model(ROOT / "examples" / "mobilenetv2.yaml"), find_device("rpi-zero-2w")
    full = make_plan(m, pi, train="all")
    for k in (19, 18):
        part = make_plan(m, pi, train=f"last:{k}")
        assert part.min_memory_bytes <= full.min_memory_bytes, k


def test_exact_is_native_on_a_frozen_prefix():
    c = _chain(1)
    res = solve_exact(c, store_all_peak_bytes(c))
    assert res.feasible and res.cost_s == 7.0
    assert not solve_exact(c, 5).feasible and solve_exact(c, 5).min_budget_bytes is not None


# --- training modes and selections --------------------------------------------------------------

def test_parse_train():
    assert parse_train(None).is_all and parse_train("all").is_all
    t = parse_train("lora:8, last:1")
    assert (t.lora_rank, t.last, t.full, t.text) == (8, 1, False, "last:1,lora:8")
    assert parse_train("bias").text == "bias" and not parse_train("bias").full
    assert parse_train("from:layer4").start == "layer4"
    for bad in ("", "last:0", "last:x", "from:", "lora:0", "lora:r", "everything",
                "last:2,from:a"):
        with pytest.raises(InputError):
            parse_train(bad)


def test_all_is_today(model):
    """No selection and ``all`` give the same problem as before fine-tuning existed."""
    a = prepare(model, None, memory_bytes=64 * MiB)
    b = prepare(model, None, memory_bytes=64 * MiB, train="all")
    assert a.chain == b.chain and a.memory == b.memory and a.training is None
    assert a.memory.grad_bytes == 4 * MiB and a.memory.optimizer_bytes == 8 * MiB


def test_last_k_counts_stages_with_parameters(model):
    m, t = resolve(model, "last:2")
    assert t.modes == ("frozen", "frozen", "frozen", "train", "train")
    assert t.frozen_prefix == 3 and m.frozen_prefix == 3
    assert t.trainable_bytes == 2 * MiB and t.param_bytes == 4 * MiB
    _, t = resolve(model, "last:4")
    assert t.frozen_prefix == 0  # a trains: its backward is needed for its own weights
    _, t = resolve(model, "from:relu")
    # relu trains nothing either: the prefix runs up to b, the first stage with weights
    assert t.modes[1:] == ("train",) * 4 and t.frozen_prefix == 2


def test_frozen_inside_uses_the_frozen_numbers(model):
    m, t = resolve(model, "bias")
    assert t.modes == ("bias", "frozen", "bias", "bias", "bias")
    assert t.frozen_prefix == 0 and t.trainable_bytes == 3 * 4096 + 1024
    assert [s.saved_bytes for s in m.stages][:4] == [2 * MiB] * 4
    pr = prepare(model, None, memory_bytes=64 * MiB, train="bias")
    assert pr.memory.grad_bytes == t.trainable_bytes
    assert pr.memory.optimizer_bytes == 2 * t.trainable_bytes
    assert pr.memory.param_bytes == 4 * MiB


def test_lora_adds_and_trains_its_adapters(model):
    _, t = resolve(model, "lora:8,last:1")
    assert t.modes == ("frozen", "frozen", "lora-r8", "frozen", "train")
    assert t.frozen_prefix == 2
    assert t.param_bytes == 4 * MiB + 64 * 1024
    assert t.trainable_bytes == 64 * 1024 + MiB
    assert t.computed == ()  # c's frozen numbers are in the file
    with pytest.raises(InputError, match="lora-r16"):
        resolve(model, "lora:16")


def test_missing_numbers_are_named(model):
    text = MODEL.replace(", bias: {trainable: 4 KiB, saved: 2 MiB}}}\n  - {name: relu",
                         "}}\n  - {name: relu", 1)
    m2 = model_from_text(text, "ft.yaml")
    with pytest.raises(InputError, match="stage 'a' has no bias-only numbers"):
        resolve(m2, "bias")
    with pytest.raises(UnknownNameError, match="did you mean 'c'"):
        resolve(model, "from:cc")
    with pytest.raises(InputError, match="only 4 stages with parameters"):
        resolve(model, "last:5")
    with pytest.raises(InputError, match="trains no parameter"):
        resolve(model, "none")


def test_frozen_numbers_computed_when_absent():
    m = model_from_text(MODEL.replace("frozen: {saved: 2 MiB, bwd_time: 1 ms}, ", ""), "x.yaml")
    r, t = resolve(m, "last:1")
    assert t.computed == ()  # a, relu, b, c are the frozen prefix: no backward, nothing assumed
    r, t = resolve(m, "bias")
    assert "relu" not in t.computed  # no parameters: the same frozen or not
    r, t = resolve(m, "lora:8,last:1")
    assert t.computed == ("c",)
    c = r.stages[3]
    assert c.bwd_time_s == pytest.approx(1e-3) and c.saved_bytes == 4 * MiB


def test_frozen_prefix_plans_are_cheaper(model):
    full = solve_problem(prepare(model, None, memory_bytes=64 * MiB))
    head = solve_problem(prepare(model, None, memory_bytes=64 * MiB, train="last:1"))
    assert head.cost_s == pytest.approx(5e-3 + 2e-3)  # every forward once, one backward
    assert head.peak_bytes < full.peak_bytes
    assert head.schedule.ops[:3] == (Op(OpKind.FN, 1), Op(OpKind.FN, 2), Op(OpKind.FREE_A, 1))


def test_grad_accum_transient_counts_what_trains(model):
    text = MODEL.replace("input: 1 MiB", "batch: 2\ninput: 1 MiB")
    m = model_from_text(text, "ft.yaml")
    pr = prepare(m, None, memory_bytes=64 * MiB, train="bias", grad_accum=2)
    base = prepare(m, None, memory_bytes=64 * MiB, train="bias")
    added = [a.bwd_tmp_bytes - 0 for a in pr.chain.stages]
    assert added == [4096, 0, 4096, 4096, 1024]
    assert [s.saved_bytes for s in pr.chain.stages] == [-(-s.saved_bytes // 2)
                                                        for s in base.chain.stages]


# --- optimizers ---------------------------------------------------------------------------------

def test_optimizer_state_bytes():
    n = 4 * 1_000_000  # one million fp32 parameters
    assert optimizer_state_bytes("sgd", n) == 0
    assert optimizer_state_bytes("momentum", n) == n
    assert optimizer_state_bytes("adam", n) == optimizer_state_bytes("adamw", n) == 2 * n
    # two uint8 states + one fp32 absmax per 2048 elements per state
    assert optimizer_state_bytes("adam8bit", n) == 2 * 1_000_000 + -(-8 * 1_000_000 // 2048)
    assert optimizer_state_bytes("adam-fused", n) == optimizer_state_bytes("adam", n)
    assert set(OPTIMIZER_STATE) == {"sgd", "momentum", "adam", "adamw", "adam-fused",
                                    "adamw-fused", "adam8bit"}
    with pytest.raises(InputError):
        optimizer_state_bytes("adagrad", n)


# --- the CLI ------------------------------------------------------------------------------------

def test_cli_train_and_optimizer(run_cli, tmp_path):
    p = tmp_path / "ft.yaml"
    p.write_text(MODEL)
    r = run_cli("solve", p, "--memory", "64 MiB", "--train", "last:2", "--optimizer", "adamw",
                "--json")
    assert r.exit_code == 0, r
    doc = json.loads(r.stdout)
    t = doc["data"]["training"]
    assert t["train"] == "last:2" and t["frozen_prefix"] == 3
    assert t["trainable_bytes"] == 2 * MiB and t["modes"]["a"] == "frozen"
    assert doc["data"]["memory"]["optimizer"] == "adamw"
    assert doc["data"]["memory"]["grad_bytes"] == 2 * MiB
    r = run_cli("solve", p, "--memory", "64 MiB", "--train", "last:2")
    text = " ".join(r.stdout.split())
    assert "stages 1-3 are frozen and run forward only" in text
    assert "gradients (what trains)" in text
    full = json.loads(run_cli("solve", p, "--memory", "64 MiB", "--json").stdout)
    assert full["data"]["training"]["train"] == "all"
    assert full["data"]["training"]["trainable_fraction"] == 1.0
    r = run_cli("solve", p, "--memory", "64 MiB", "--train", "last:9")
    assert r.exit_code == 2 and "--train" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("solve", p, "--memory", "64 MiB", "--optimizer", "adamm")
    assert r.exit_code == 2


def test_model_file_train_key_and_modes_validated(tmp_path):
    m = model_from_text(MODEL.replace("optimizer: adam", "optimizer: adam8bit\ntrain: last:1"),
                        "ft.yaml")
    assert m.train == "last:1" and m.optimizer == "adam8bit"
    assert prepare(m, None, memory_bytes=64 * MiB).chain.frozen_prefix == 4
    first = ("modes: {frozen: {saved: 2 MiB, bwd_time: 1 ms}, bias: {trainable: 4 KiB, "
             "saved: 2 MiB}}")
    assert first in MODEL
    for bad, msg in (("modes: {frozn: {saved: 2 MiB}}", "did you mean 'frozen'"),
                     ("modes: {bias: {saved: 2 MiB}}", "trainable: is required"),
                     ("modes: {frozen: {trainable: 1 KiB}}", "trains nothing"),
                     ("modes: {frozen: {savd: 2 MiB}}", "did you mean 'saved'"),
                     ("modes: {bias: {trainable: 2 MiB}}", "more than the stage's params"),
                     ("modes: [frozen]", "expected a mapping")):
        with pytest.raises(InputError, match=msg):
            model_from_text(MODEL.replace(first, bad, 1), "ft.yaml")
    with pytest.raises(InputError, match="train"):
        model_from_text(MODEL.replace("optimizer: adam", "train: last:0"), "ft.yaml")


def test_a_resolved_model_is_not_resolved_again(model):
    """Re-preparing a problem's model (another batch, --max-batch) keeps its modes: the frozen
    numbers are not computed twice."""
    m = model_from_text(MODEL.replace("frozen: {saved: 2 MiB, bwd_time: 1 ms}, ", ""), "x.yaml")
    pr = prepare(m, None, memory_bytes=64 * MiB, train="lora:8,last:1")
    again = prepare(pr.model, None, memory_bytes=64 * MiB, train="lora:8,last:1", batch=1)
    assert again.chain == pr.chain and again.memory == pr.memory
    assert again.chain.frozen_prefix == 2
