"""edgeplan.torchrun: executing schedules in PyTorch, gradients, RNG / batch-norm state, measured
versus predicted memory, and the `edgeplan run` command."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from click.testing import CliRunner  # noqa: E402

from edgeplan.errors import InputError  # noqa: E402
from edgeplan.schedule import Op, OpKind, Schedule  # noqa: E402
from edgeplan.simulator import simulate  # noqa: E402
from edgeplan.solvers.base import store_all_peak_bytes, store_all_schedule  # noqa: E402
from edgeplan.solvers.optimal import solve_optimal  # noqa: E402
from edgeplan.torchrun import ChainExecutor, measure_chain, verify_plan, without_tmp  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


# --- small models (the last stage returns the loss) --------------------------------------------

class LossHead(nn.Module):
    def __init__(self, features: int, classes: int, pool: bool):
        super().__init__()
        self.pool = pool
        self.fc = nn.Linear(features, classes)
        self.classes = classes

    def forward(self, x):
        if self.pool:
            x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        logits = self.fc(x)
        target = torch.arange(logits.shape[0], device=logits.device) % self.classes
        return F.cross_entropy(logits, target)


def small_cnn(p: float = 0.2) -> nn.Sequential:
    def block(ci, co, stride=1):
        return nn.Sequential(nn.Conv2d(ci, co, 3, stride, 1, bias=False), nn.BatchNorm2d(co),
                             nn.ReLU(), nn.Dropout(p))
    return nn.Sequential(block(3, 4), block(4, 4), block(4, 8, 2), block(8, 8),
                         block(8, 16, 2), block(16, 16), LossHead(16, 10, pool=True))


def small_mlp(p: float = 0.2, width: int = 64) -> nn.Sequential:
    def block(ci, co):
        return nn.Sequential(nn.Linear(ci, co), nn.ReLU(), nn.Dropout(p))
    return nn.Sequential(block(32, width), block(width, width), nn.Sequential(
        nn.Linear(width, width), nn.BatchNorm1d(width), nn.Tanh()), block(width, width),
        block(width, width), LossHead(width, 5, pool=False))


def _zero(n):
    from edgeplan.chain import make_chain
    return make_chain("z", fwd=[0] * n, bwd=[0] * n, out=[0] * n, saved=[0] * n, input_bytes=0)


def recompute_all(L: int) -> Schedule:
    """The least-memory schedule: before each B k, recompute a_{k-1} from a_0 with Fn."""
    ops = []
    for k in range(L, 0, -1):
        for j in range(1, k):
            ops.append(Op(OpKind.FN, j))
            if j >= 2:
                ops.append(Op(OpKind.FREE_A, j - 1))
        ops.append(Op(OpKind.FALL, k))
        ops.append(Op(OpKind.B, k))
        if k >= 2:
            ops.append(Op(OpKind.FREE_A, k - 1))
    return Schedule(tuple(ops))


def hand_schedule() -> Schedule:
    """Six stages; first forwards by Fall and Fn, a free_A and recomputations by Fn and Fall."""
    names = """Fall 1, Fn 2, free_A 1, Fn 3, free_a 2, Fall 4, Fall 5, Fall 6, B 6, B 5, B 4,
    free_a 3, Fall 1, Fn 2, Fall 3, B 3, free_a 2, Fall 2, B 2, B 1"""
    ops = []
    for item in names.replace("\n", " ").split(","):
        k, s = item.split()
        ops.append(Op(OpKind(k), int(s)))
    return Schedule(tuple(ops))


def _plain_step(model, x, seed):
    torch.manual_seed(seed)
    loss = model(x)
    loss.backward()
    return loss.detach()


def _grads(model):
    return [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]


def _schedules(chain):
    """store-all, optimal at three budgets, least memory, and the hand schedule (L = 6 only)."""
    c = without_tmp(chain)
    hi = store_all_peak_bytes(c)
    lo = solve_optimal(c, hi).min_budget_bytes
    out = {"store-all": store_all_schedule(c), "least": recompute_all(c.length)}
    for frac in (0.0, 0.4, 0.8):
        r = solve_optimal(c, int(lo + frac * (hi - lo)))
        out[f"optimal@{frac}"] = r.schedule
    if c.length == 6:
        out["hand"] = hand_schedule()
    return out


@pytest.fixture(scope="module")
def cnn64():
    torch.manual_seed(0)
    m = small_cnn().double()
    x = torch.randn(3, 3, 12, 12, dtype=torch.float64)
    return m, x


@pytest.fixture(scope="module")
def mlp64():
    torch.manual_seed(0)
    m = small_mlp().double()
    x = torch.randn(8, 32, dtype=torch.float64)
    return m, x


# --- gradients and state equal a plain step ------------------------------------------------------

@pytest.mark.parametrize("which", ["cnn64", "mlp64"])
def test_gradients_equal_plain_autograd(which, request):
    model, x = request.getfixturevalue(which)
    ref = copy.deepcopy(model)
    loss_ref = _plain_step(ref, x, seed=7)
    g_ref = _grads(ref)
    bufs_ref = [b.clone() for b in ref.buffers()]
    rng_ref = torch.get_rng_state()
    chain = measure_chain(model, x, timing=False).chain
    scheds = _schedules(chain)
    recomputed = 0
    for name, sched in scheds.items():
        m = copy.deepcopy(model)
        torch.manual_seed(7)
        res = ChainExecutor(m).step(x, sched)
        recomputed += res.recomputed_forwards
        # the RNG continues as after a plain step; the loss and every gradient match
        assert torch.equal(torch.get_rng_state(), rng_ref), name
        assert abs(res.loss_value - float(loss_ref)) <= 1e-12, name
        for a, b in zip(_grads(m), g_ref):
            assert (a is None) == (b is None)
            if a is not None:
                assert torch.allclose(a, b, rtol=0, atol=1e-12), name
        # batch-norm running statistics updated exactly once
        for a, b in zip(m.buffers(), bufs_ref):
            assert torch.equal(a, b), name
    assert recomputed > 0


def test_dropout_mask_is_replayed_on_recompute(mlp64):
    model, x = mlp64
    m = copy.deepcopy(model)
    for mod in m.modules():
        if isinstance(mod, nn.Dropout):
            mod.p = 0.5
    ref = copy.deepcopy(m)
    _plain_step(ref, x, seed=3)
    torch.manual_seed(3)
    ChainExecutor(m).step(x, recompute_all(6))
    for a, b in zip(_grads(m), _grads(ref)):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_loss_fn_and_target():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Sequential(nn.Linear(10, 16), nn.ReLU()), nn.Linear(16, 4)).double()
    x = torch.randn(6, 10, dtype=torch.float64)
    y = torch.randint(0, 4, (6,))
    ref = copy.deepcopy(body)
    F.cross_entropy(ref(x), y).backward()
    sched = Schedule((Op(OpKind.FN, 1), Op(OpKind.FALL, 2), Op(OpKind.B, 2), Op(OpKind.FREE_A, 1),
                      Op(OpKind.FALL, 1), Op(OpKind.B, 1)))
    ex = ChainExecutor(body, loss_fn=F.cross_entropy)
    res = ex.step(x, sched, target=y)
    assert res.recomputed_forwards == 1
    for a, b in zip(_grads(body), _grads(ref)):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    with pytest.raises(InputError):
        ex.step(x, sched)  # no target


def test_tuple_outputs_and_shared_weights():
    """The unrolled LSTM: stages pass (xs, h, c) tuples, xs aliases a_0, one cell is shared."""
    from edgeplan.importers.zoo import lstm_unrolled
    torch.manual_seed(0)
    model = lstm_unrolled(steps=4, features=8, hidden=16).double()
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    ref = copy.deepcopy(model)
    _plain_step(ref, x, seed=1)
    chain = measure_chain(model, x, timing=False).chain
    for sched in _schedules(chain).values():
        m = copy.deepcopy(model)
        res = ChainExecutor(m).step(x, sched)
        for a, b in zip(_grads(m), _grads(ref)):
            assert torch.allclose(a, b, rtol=0, atol=1e-12)
        # unused outputs (the last c) get no gradient: measured <= predicted, never above
        assert res.peak_bytes <= simulate(chain, sched).peak_bytes


def test_storage_ops_are_refused(mlp64):
    if not hasattr(OpKind, "W"):
        pytest.skip("no storage-tier ops in this version")
    model, x = mlp64
    ops = (Op(OpKind.FN, 1), Op(OpKind("W"), 1)) + store_all_schedule(_zero(6)).ops
    with pytest.raises(InputError, match="storage-tier"):
        ChainExecutor(copy.deepcopy(model)).step(x, Schedule(ops))


def test_bad_inputs(mlp64):
    model, x = mlp64
    ex = ChainExecutor(copy.deepcopy(model))
    with pytest.raises(InputError, match="5 stages but the model has 6"):
        ex.step(x, store_all_schedule(_zero(5)))
    with pytest.raises(InputError, match="invalid schedule"):
        ex.step(x, Schedule((Op(OpKind.B, 6),) + store_all_schedule(_zero(6)).ops))
    # the last stage must return the loss
    with pytest.raises(InputError, match="scalar loss"):
        ChainExecutor(nn.Sequential(nn.Linear(32, 3), nn.Linear(3, 3)).double()).step(
            x, store_all_schedule(_zero(2)))
    # a stage may not modify its input in place
    bad = nn.Sequential(nn.ReLU(inplace=True), LossHead(32, 3, pool=False)).double()
    with pytest.raises(InputError, match="in place"):
        ChainExecutor(bad).step(x.clone(), store_all_schedule(_zero(2)))


# --- measured versus predicted memory -------------------------------------------------------------

def _models32():
    torch.manual_seed(0)
    cnn = small_cnn()
    x_cnn = torch.randn(4, 3, 16, 16)
    torch.manual_seed(0)
    mlp = small_mlp(width=128)
    x_mlp = torch.randn(32, 32)
    return [("cnn", cnn, x_cnn), ("mlp", mlp, x_mlp)]


@pytest.mark.parametrize("idx", [0, 1])
def test_measured_peak_matches_prediction(idx):
    name, model, x = _models32()[idx]
    mc = measure_chain(model, x, timing=False)  # the importer's sizes
    assert mc.source == "importer"
    chain = without_tmp(mc.chain)
    hi = store_all_peak_bytes(chain)
    lo = solve_optimal(chain, hi).min_budget_bytes
    assert lo < hi
    kinds = set()
    for frac in (0.0, 0.33, 0.66, 1.0):
        budget = int(lo + frac * (hi - lo))
        r = solve_optimal(chain, budget)
        assert r.feasible
        v = verify_plan(model, r.schedule, chain, x=x, budget_bytes=budget, repeats=0,
                        measured=mc)
        assert v.measured_peak_bytes <= budget, (name, frac)
        assert abs(v.peak_ratio - 1.0) <= 0.10, (name, frac, v.peak_ratio)
        assert v.exit_code == 0
        kinds.add(v.step.recomputed_forwards > 0)
        # storage accounting reproduces the simulator op by op
        assert v.exact, (name, frac)
        assert v.plan_peak_bytes == r.trace.peak_bytes
    assert kinds == {True, False}


def test_strict_false_frees_saved_tensors_during_backward(cnn64):
    model, x = cnn64
    chain = measure_chain(model, x, timing=False).chain
    s = store_all_schedule(chain)
    strict = ChainExecutor(copy.deepcopy(model)).step(x, s)
    loose = ChainExecutor(copy.deepcopy(model), strict=False).step(x, s)
    assert strict.peak_bytes == simulate(chain, s).peak_bytes
    assert loose.peak_bytes <= strict.peak_bytes
    assert [o.after_bytes for o in loose.samples] == [o.after_bytes for o in strict.samples]


def test_verify_reports_time_and_over_budget(mlp64):
    model, x = mlp64
    chain = measure_chain(model, x, timing=False).chain
    s = store_all_schedule(chain)
    v = verify_plan(model, s, x=x, budget_bytes=simulate(chain, s).peak_bytes - 1, repeats=1,
                    time_reps=1)
    assert v.within_budget is False and v.exit_code == 1
    assert v.predicted_time_s > 0 and v.measured_time_s > 0 and v.time_ratio > 0
    d = v.to_dict()
    assert d["memory"]["within_budget"] is False and len(d["ops"]) == len(s)
    assert d["memory"]["allocator_ratio"] == v.allocator_ratio


def test_allocator_agrees_on_an_activation_heavy_model(cnn64):
    """Independently of the executor: PyTorch's allocator sees the step's peak near the one
    predicted with the measured transients (the plan's chain). On this small float64 CNN it
    sees up to 8% more: the executor's 5,056-byte RNG snapshot per stage not yet
    back-propagated (docs/run.md; a third more while the allocator's step kept saved tensors to
    the end of each backward and the snapshots to the end of the step), bounded here so that it
    cannot grow unnoticed."""
    model, x = cnn64
    with_tmp = measure_chain(model, x, timing=False, measure_tmp=True).chain
    bare = without_tmp(with_tmp)
    hi = store_all_peak_bytes(bare)
    lo = solve_optimal(bare, hi).min_budget_bytes
    for budget, top in ((hi, 1.15), (lo, 1.15)):
        s = solve_optimal(bare, budget).schedule
        v = verify_plan(model, s, with_tmp, x=x, repeats=0, timing=False)
        assert v.allocator_peak_bytes is not None and 0.85 <= v.allocator_ratio <= top, (
            budget, v.allocator_peak_bytes, v.allocator_predicted_bytes)
    # the caller's model is untouched (verify_plan works on a copy)
    assert all(p.grad is None for p in model.parameters())


# --- the command line -----------------------------------------------------------------------------

MODEL_PY = '''
import torch
from torch import nn
import torch.nn.functional as F

class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 10)
    def forward(self, x):
        logits = self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        return F.cross_entropy(logits, torch.arange(logits.shape[0]) % 10)

def net():
    def block(ci, co, s=1):
        return nn.Sequential(nn.Conv2d(ci, co, 3, s, 1), nn.BatchNorm2d(co), nn.ReLU())
    return nn.Sequential(block(3, 8), block(8, 8), block(8, 16, 2), block(16, 16), Head())
'''

DEVICE = """\
format: 1
name: testdev
title: Test device
kind: cpu
memory: {total: 1 GiB, reserved: 0 MiB}
compute: {precision: fp32, peak: {fp32: 10 GFLOP/s}, sustained: {fp32: 2 GFLOP/s}}
power: {training: 5 W}
"""


@pytest.fixture(scope="module")
def cli_setup(tmp_path_factory):
    from edgeplan.cli import main
    from edgeplan.cli.run import run_cmd
    from edgeplan.importers.torch import import_torch, to_yaml

    if "run" not in main.commands:
        main.add_command(run_cmd)
    d = tmp_path_factory.mktemp("run")
    (d / "net.py").write_text(MODEL_PY)
    spec = f"{d / 'net.py'}:net"
    r = import_torch(spec, input_shape=(3, 16, 16), batch=4, measure_tmp=False)
    (d / "net.yaml").write_text(to_yaml(r, optimizer="sgd"))
    runner = CliRunner()
    (d / "dev.yaml").write_text(DEVICE)
    dev = ["--device", str(d / "dev.yaml")]
    big = runner.invoke(main, ["solve", str(d / "net.yaml"), *dev, "--memory", "1 GiB", "--json"])
    assert big.exit_code == 0, big.output
    doc = json.loads(big.stdout)
    fixed = doc["data"]["memory"]["fixed_bytes"]
    lo = doc["data"]["min_activation_bytes"]
    plan = d / "plan.json"
    res = runner.invoke(main, ["solve", str(d / "net.yaml"), *dev, "--memory",
                               str(fixed + lo + 1000),
                               "-o", str(plan)])
    assert res.exit_code == 0, res.output
    return main, runner, d, spec, plan


def test_cli_run_table_and_json(cli_setup):
    main, runner, _d, spec, plan = cli_setup
    res = runner.invoke(main, ["run", spec, "--plan", str(plan), "--repeats", "1", "--no-time"])
    assert res.exit_code == 0, res.output
    assert "activation peak" in res.output and "match the simulator exactly" in res.output
    res = runner.invoke(main, ["run", spec, "--plan", str(plan), "--json", "--no-time",
                               "--repeats", "0"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    mem = doc["data"]["memory"]
    assert doc["command"] == "run" and doc["status"] == "ok"
    assert mem["measured_peak_bytes"] == mem["predicted_peak_bytes"] <= mem["budget_bytes"]
    assert doc["data"]["recomputed_forwards"] > 0


def test_cli_run_exit_codes(cli_setup):
    main, runner, d, spec, plan = cli_setup
    doc = json.loads(plan.read_text())
    # over budget -> 1
    doc["data"]["budget_bytes"] = 1000
    over = d / "over.json"
    over.write_text(json.dumps(doc))
    res = runner.invoke(main, ["run", spec, "--plan", str(over), "--no-time", "--repeats", "0"])
    assert res.exit_code == 1, res.output
    # a model with another stage count -> 2
    (d / "net2.py").write_text(MODEL_PY.replace("block(16, 16), Head()", "Head()"))
    res = runner.invoke(main, ["run", f"{d / 'net2.py'}:net", "--plan", str(plan)])
    assert res.exit_code == 2 and "stages" in res.output
    # not a plan -> 2, with one JSON document under --json
    bad = d / "bad.json"
    bad.write_text('{"edgeplan_json": 1, "command": "devices", "data": {}}')
    res = runner.invoke(main, ["run", spec, "--plan", str(bad), "--json"])
    assert res.exit_code == 2
    assert json.loads(res.stdout)["status"] == "error"
    # no input shape anywhere -> 2
    doc = json.loads(plan.read_text())
    doc["inputs"]["model"]["path"] = None
    nop = d / "nopath.json"
    nop.write_text(json.dumps(doc))
    res = runner.invoke(main, ["run", spec, "--plan", str(nop)])
    assert res.exit_code == 2 and "--input-shape" in res.output


# --- measured versus predicted step time ----------------------------------------------------------

# Timing on a shared 2-core CI machine: other processes preempt ours for a scheduler tick (~4 ms,
# longer than the whole ~2 ms step of these models) in many steps, so the *median* step of a busy
# machine contains a preemption and medians put the ratio at 2-3 there. Both sides therefore keep
# their fastest whole step out of alternating rounds (docs/run.md): with one thread 1.0-1.2
# here, idle or with a busy-looping process beside the test; with both cores busy about one run
# in ten is still off (up to 4x). Hence up to 3 attempts, the bound staying [0.5, 2]: a
# systematic error (the per-stage timing this replaced was 25-35% low on an idle machine and
# 10-100x off with contended threads) fails every attempt, a host too busy to give one clean
# step in a run does not fail the suite.
TIME_RANGE = (0.5, 2.0)


@contextlib.contextmanager
def _threads(n):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_time_prediction_cnn_one_thread(cli_setup):
    main, runner, _d, spec, plan = cli_setup
    before = torch.get_num_threads()
    ratios = []
    for _ in range(3):
        res = runner.invoke(main, ["run", spec, "--plan", str(plan), "--json", "--threads", "1",
                                   "--repeats", "9"])
        assert res.exit_code == 0, res.output
        assert torch.get_num_threads() == before  # --threads is restored afterwards
        t = json.loads(res.stdout)["data"]["time"]
        assert t["threads"] == 1 and t["timed_steps"] == 9 and t["stage_times"] == "executor"
        assert t["predicted_s"] > 0 and t["measured_s"] > 0
        ratios.append(t["ratio"])
        if TIME_RANGE[0] <= t["ratio"] <= TIME_RANGE[1]:
            assert t["within_range"] is True
            break
        assert t["within_range"] is False
    assert TIME_RANGE[0] <= ratios[-1] <= TIME_RANGE[1], ratios


def test_time_prediction_mlp_one_thread():
    torch.manual_seed(0)
    model, x = small_mlp(width=128), torch.randn(32, 32)
    mc = measure_chain(model, x, timing=False)
    chain = without_tmp(mc.chain)
    hi = store_all_peak_bytes(chain)
    lo = solve_optimal(chain, hi).min_budget_bytes
    sched = solve_optimal(chain, int(lo + 0.3 * (hi - lo))).schedule
    ratios = []
    with _threads(1):
        for _ in range(3):
            v = verify_plan(model, sched, x=x, repeats=9, time_reps=9)
            assert v.step.recomputed_forwards > 0 and v.threads == 1
            ratios.append(v.time_ratio)
            if v.time_ok:
                break
    assert TIME_RANGE[0] <= ratios[-1] <= TIME_RANGE[1], ratios
    assert v.time_method == "executor"
    assert all(s.fwd_time_s > 0 and s.bwd_time_s > 0 for s in v.chain.stages)


def test_time_off_is_reported_not_failed(mlp64):
    """A stage-time chain 50x too slow: the time ratio is reported as off, memory decides."""
    from dataclasses import replace

    from rich.console import Console

    from edgeplan.report.run_report import run_renderable as _table
    model, x = mlp64
    mc = measure_chain(model, x, reps=2)
    assert mc.timed and all(s.fwd_time_s > 0 and s.bwd_time_s > 0 for s in mc.chain.stages)
    slow = replace(mc, chain=replace(mc.chain, stages=tuple(
        replace(s, fwd_time_s=50 * s.fwd_time_s, bwd_time_s=50 * s.bwd_time_s)
        for s in mc.chain.stages)))
    s = store_all_schedule(mc.chain)
    v = verify_plan(model, s, x=x, repeats=3, measured=slow)
    assert v.time_method == "given" and v.time_ratio < 0.5
    assert v.time_ok is False and v.exit_code == 0 and v.ok
    assert any("time prediction is off" in n for n in v.notes)
    d = v.to_dict(ops=False)["time"]
    assert d["within_range"] is False and d["ratio_range"] == [0.5, 2.0]
    console = Console(width=200, record=True)
    console.print(_table(v, {}, False))
    text = console.export_text()
    assert "TIME PREDICTION OFF" in text and "ok: within" in text
    # untimed: no time verdict at all
    v0 = verify_plan(model, s, x=x, repeats=0, timing=False)
    assert v0.time_ok is None and not any("time prediction" in n for n in v0.notes)


def test_example_trains():
    import runpy
    mod = runpy.run_path(str(ROOT / "examples" / "train_with_edgeplan.py"))
    losses = mod["main"](steps=6, batch=8, quiet=True)
    assert len(losses) == 6 and sum(losses[-3:]) / 3 < losses[0]


def test_solve_verify(cli_setup):
    main, runner, d, spec, plan = cli_setup
    doc = json.loads(plan.read_text())
    mem = str(doc["data"]["memory"]["usable_bytes"])
    res = runner.invoke(main, ["solve", str(d / "net.yaml"), "--device", str(d / "dev.yaml"),
                               "--memory", mem, "--verify", spec, "--json"])
    assert res.exit_code == 0, res.output
    v = json.loads(res.stdout)["data"]["verification"]
    assert v["memory"]["measured_peak_bytes"] <= v["memory"]["budget_bytes"]
    res = runner.invoke(main, ["solve", str(d / "net.yaml"), "--device", str(d / "dev.yaml"),
                               "--memory", mem, "--verify", spec])
    assert res.exit_code == 0 and "activation peak" in res.stdout
