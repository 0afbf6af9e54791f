"""The optimizer step's temporaries (``optimizers.step_transient_bytes``): measured with
PyTorch's allocator against the rule, and the note a plan gets when they do not fit."""

from __future__ import annotations

import pytest

from edgeplan.formats.model_file import model_from_text
from edgeplan.optimizers import step_transient_bytes
from edgeplan.problem import prepare


def test_the_rule_per_optimizer_and_device_kind():
    assert step_transient_bytes("sgd", 100, 40, "cpu") == 0
    assert step_transient_bytes("momentum", 100, 40, "gpu") == 0
    assert step_transient_bytes("adam", 100, 40, "cpu") == 80      # 2 x the largest tensor
    assert step_transient_bytes("adamw", 100, 40, "gpu") == 100    # foreach: every parameter
    assert step_transient_bytes("adam8bit", 100, 40, "gpu") == 0
    assert step_transient_bytes("adamw-fused", 100, 40, "gpu") == 0  # fused=True
    with pytest.raises(Exception, match="adma"):
        step_transient_bytes("adma", 1, 1, "cpu")


def test_the_rule_is_what_torch_allocates():
    torch = pytest.importorskip("torch")
    from edgeplan.torchrun.meter import AllocTrace, alloc_events_supported
    if not alloc_events_supported():
        pytest.skip("no allocator events in this torch build")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 32))
    x = torch.randn(8, 64)
    total = sum(p.numel() * 4 for p in model.parameters())
    largest = max(p.numel() * 4 for p in model.parameters())
    cases = {"sgd": (lambda ps: torch.optim.SGD(ps, lr=0.1), 0),
             "momentum": (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9), 0),
             "adam (for-loop)": (lambda ps: torch.optim.Adam(ps, foreach=False),
                                 step_transient_bytes("adam", total, largest, "cpu")),
             "adamw (foreach)": (lambda ps: torch.optim.AdamW(ps, foreach=True),
                                 step_transient_bytes("adamw", total, largest, "gpu")),
             "adam (fused)": (lambda ps: torch.optim.Adam(ps, fused=True), 0)}
    for name, (make, want) in cases.items():
        opt = make(model.parameters())
        for _ in range(2):  # the first step also allocates the state (fixed memory)
            model.zero_grad(set_to_none=True)
            model(x).sum().backward()
            with AllocTrace(True) as tr:
                opt.step()
        peak, _ = tr.peak()
        assert want <= peak <= want + 1024, (name, peak, want)  # + a few scalars


MODEL = """format: 1
name: m
input: 1 MiB
optimizer: adam
stages:
  - {name: a, fwd_time: 1 ms, out: 1 MiB, saved: 2 MiB, params: 40 MiB}
  - {name: b, fwd_time: 1 ms, out: 0, saved: 1 MiB, params: 10 MiB}
"""


def test_a_plan_notes_a_step_that_does_not_fit():
    model = model_from_text(MODEL)
    # fixed: 50 MiB params + 50 MiB gradients + 100 MiB Adam state = 200 MiB
    tight = prepare(model, None, memory_bytes=(200 + 20) * 2**20)  # 20 MiB for activations
    note = [n for n in tight.notes if "step allocates" in n]
    assert note and "80.0 MiB" in note[0] and "fused=True" in note[0]
    roomy = prepare(model, None, memory_bytes=(200 + 100) * 2**20)
    assert not [n for n in roomy.notes if "step allocates" in n]
    sgd = prepare(model, None, memory_bytes=(100 + 20) * 2**20, optimizer="sgd")
    assert not [n for n in sgd.notes if "step allocates" in n]


def test_a_cuda_plan_counts_the_optimizer_step():
    """On a gpu device the foreach step's temporaries (every trained parameter: 50 MiB here)
    run after the backward beside the 1 MiB input: the least budget is 51 MiB, below it nothing
    fits, above it the peak is the step's; fused=True has none; off CUDA it is a note only."""
    from dataclasses import replace

    from edgeplan.formats.device_file import find_device
    from edgeplan.problem import solve_problem
    model = model_from_text(MODEL)
    gpu = find_device("jetson-orin-nano-4gb")
    assert gpu.kind == "gpu"
    need = 51 * 2**20
    tight = prepare(model, gpu, memory_bytes=(200 + 20) * 2**20)
    assert tight.step_peak_bytes == need and tight.store_all_peak_bytes == need
    r = solve_problem(tight, "optimal", frontier=True)
    assert not r.feasible and r.min_budget_bytes == need and r.peak_bytes is None
    assert "optimizer step needs 51.0 MiB" in r.notes[0]
    assert [(p.budget_bytes, p.peak_bytes) for p in r.frontier] == [(need, need)]
    roomy = solve_problem(prepare(model, gpu, memory_bytes=(200 + 60) * 2**20), "optimal")
    assert roomy.feasible and roomy.peak_bytes == roomy.step_peak_bytes == need
    assert roomy.trace is not None and roomy.trace.peak_bytes < need  # the schedule's own
    fused = prepare(model, gpu, memory_bytes=(200 + 20) * 2**20, optimizer="adam-fused")
    assert fused.step_peak_bytes == 0 and solve_problem(fused, "optimal").feasible
    cpu = prepare(model, replace(gpu, kind="cpu"), memory_bytes=(200 + 20) * 2**20)
    assert cpu.step_peak_bytes == 0 and any("step allocates" in n for n in cpu.notes)
    assert solve_problem(cpu, "optimal").feasible


def test_a_cpu_plan_counts_the_step_where_the_file_gives_the_largest_tensors(tmp_path):
    """Off CUDA the for-loop step allocates twice the largest trained tensor: counted where
    every fully trained stage records ``largest_param`` (30 MiB here: 60 MiB + the 1 MiB
    input), a note where one does not (the stage's parameters only bound it), and bounded by
    the trainable bytes of a stage trained in part."""
    from edgeplan.problem import solve_problem
    text = MODEL.replace("params: 40 MiB}", "params: 40 MiB, largest_param: 30 MiB}").replace(
        "params: 10 MiB}", "params: 10 MiB, largest_param: 10 MiB}")
    model = model_from_text(text)
    assert model.stages[0].largest_param_bytes == 30 * 2**20
    p = prepare(model, None, memory_bytes=(200 + 20) * 2**20)
    assert p.step_peak_bytes == 61 * 2**20
    r = solve_problem(p, "optimal")
    assert not r.feasible and r.min_budget_bytes == 61 * 2**20
    assert solve_problem(prepare(model, None, memory_bytes=(200 + 70) * 2**20),
                         "optimal").peak_bytes == 61 * 2**20
    from click.testing import CliRunner

    from edgeplan.cli import main
    f = tmp_path / "m.yaml"
    f.write_text(text)
    out = CliRunner().invoke(main, ["solve", str(f), "--memory", "270 MiB"]).stdout
    assert "Minimum with checkpointing: 61.0 MiB of activations (set by the adam step" in out
    half = model_from_text(MODEL.replace("params: 40 MiB}",
                                         "params: 40 MiB, largest_param: 30 MiB}"))
    assert prepare(half, None, memory_bytes=(200 + 20) * 2**20).step_peak_bytes == 0
    with pytest.raises(Exception, match="more than the stage's params"):
        model_from_text(MODEL.replace("params: 10 MiB}", "params: 10 MiB, largest_param: "
                                                          "11 MiB}"))


def test_finetune_notes_the_recommended_plans_step():
    from edgeplan.finetune import plan_finetune
    model = model_from_text(MODEL)
    ft = plan_finetune([model], None, memory_bytes=(200 + 20) * 2**20, selections=["all"])
    assert ft.recommended is not None
    assert any(n.startswith("recommended plan: torch.optim's adam step") for n in ft.notes)


def test_verify_measures_the_step_against_the_rule():
    pytest.importorskip("torch")
    from conftest import ROOT
    from edgeplan.solvers.base import store_all_schedule
    from edgeplan.torchrun import measure_chain, verify_plan
    from edgeplan.torchrun.verify import build_model
    spec = f"{ROOT / 'examples' / 'train_with_edgeplan.py'}:small_cnn_with_loss"
    import torch
    x = torch.randn(4, 3, 16, 16)
    chain = measure_chain(build_model(spec), x, timing=False).chain
    for opt in ("adam", "sgd", "adam-fused"):
        v = verify_plan(spec, store_all_schedule(chain), x=x, timing=False, optimizer=opt)
        pred, meas = v.optimizer_step_predicted_bytes, v.optimizer_step_bytes
        assert pred is not None and meas is not None and pred <= meas <= pred + 1024, opt
        assert (pred > 0) == (opt == "adam")
        assert v.to_dict()["memory"]["optimizer_step_bytes"] == meas
