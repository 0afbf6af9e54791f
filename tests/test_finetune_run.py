"""Fine-tuning plans executed for real (docs/finetune.md): ``fit(..., train=...)`` freezes,
trains biases only or adds LoRA adapters, and its gradients equal plain autograd's on the same
model with the same freezing (float64, dropout on, at the least memory and half way to
store-all); the executor runs a frozen prefix; the measured activation peak stays within the
prediction."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from edgeplan.errors import InputError  # noqa: E402
from edgeplan.importers import nets  # noqa: E402
from edgeplan.torch import fit  # noqa: E402
from edgeplan.torchrun.trainable import LoRALinear  # noqa: E402

CASES = {
    "resnet18-last2": (lambda: nets.resnet18(num_classes=10, width=8),
                       lambda: torch.randn(4, 3, 32, 32), "last:2", None),
    "resnet18-bias": (lambda: nets.resnet18(num_classes=10, width=8),
                      lambda: torch.randn(4, 3, 32, 32), "bias,last:1", None),
    "bert-lora": (lambda: nets.bert_encoder(vocab=50, dim=16, layers=3, heads=2),
                  lambda: {"input_ids": torch.randint(0, 50, (2, 12)),
                           "attention_mask": torch.ones(2, 12, dtype=torch.long)},
                  "lora:4,last:1", ("qkv",)),
    "bert-last3": (lambda: nets.bert_encoder(vocab=50, dim=16, layers=3, heads=2),
                   lambda: {"input_ids": torch.randint(0, 50, (2, 12)),
                            "attention_mask": torch.ones(2, 12, dtype=torch.long)},
                   "last:3", None),
}


def _call(m, x):
    out = m(**x) if isinstance(x, dict) else m(x)
    return out["logits"] if isinstance(out, dict) else out


def _fresh(make, data):
    torch.manual_seed(0)
    m = make().double()
    torch.manual_seed(0)
    x = data()
    return m, (dict(x) if isinstance(x, dict) else x.double())


@pytest.mark.parametrize("case", list(CASES))
def test_finetuned_gradients_equal_autograd(case):
    make, data, train, targets = CASES[case]
    m, x = _fresh(make, data)
    full = fit(m, x, memory="1 GiB", optimizer="sgd", train=train, lora_targets=targets)
    fixed, hi = full.plan.memory.fixed_bytes, full.plan.store_all_peak_bytes
    lo = full.plan.min_activation_bytes
    for frac in (0.0, 0.5):
        m, x = _fresh(make, data)
        w = fit(m, x, memory=fixed + int(lo + frac * (hi - lo)), optimizer="sgd", train=train,
                lora_targets=targets, measure=True)
        t = w.plan.problem.training
        assert t is not None and t.trainable_bytes < t.param_bytes
        lora = [mod for mod in m.modules() if isinstance(mod, LoRALinear)]
        assert bool(lora) == ("lora" in train)
        with torch.no_grad():  # B starts at zero; make the adapters' gradients non-trivial
            for mod in lora:
                mod.lora_B.normal_()
        ref = copy.deepcopy(m)  # the same model, the same freezing and adapters
        trainable = {n for n, p in m.named_parameters() if p.requires_grad}
        assert trainable and trainable != {n for n, _ in m.named_parameters()}
        assert sum(p.numel() * 8 for p in w.trainable_parameters()) == t.trainable_bytes
        torch.manual_seed(1)
        out = _call(w, x)
        torch.manual_seed(1)
        out_ref = _call(ref, x)
        assert torch.equal(out, out_ref)
        tgt = torch.randint(0, out.shape[-1], out.shape[:-1],
                            generator=torch.Generator().manual_seed(3))
        F.cross_entropy(out.reshape(-1, out.shape[-1]), tgt.reshape(-1)).backward()
        F.cross_entropy(out_ref.reshape(-1, out.shape[-1]), tgt.reshape(-1)).backward()
        for (n, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
            assert (p.grad is None) == (q.grad is None) == (n not in trainable), n
            if p.grad is not None:
                assert torch.equal(p.grad, q.grad), n
        measured, predicted = w.measured_peak_bytes(), w.plan.result.peak_bytes
        assert 0.8 * predicted <= measured <= predicted, (measured, predicted)


def test_frozen_prefix_runs_forward_only():
    make, data, _, _ = CASES["resnet18-last2"]
    m, x = _fresh(make, data)
    w = fit(m, x, memory="1 GiB", optimizer="sgd", train="last:2")
    p = w.plan.chain.frozen_prefix
    assert p > 0
    assert not any(op.kind.value == "B" and op.stage <= p for op in w.schedule.ops)
    assert all(not q.requires_grad for _, st in w._captured.stages[:p] for q in st.parameters())
    # the executor refuses a prefix whose parameters would train
    next(iter(w._captured.stages[0][1].parameters())).requires_grad_(True)
    with pytest.raises(InputError, match="requires grad"):
        _call(w, x)


def test_users_loop_fine_tunes():
    make, data, train, targets = CASES["bert-lora"]
    m, x = _fresh(make, data)
    w = fit(m, x, memory="64 MiB", optimizer="adam", train=train, lora_targets=targets)
    opt = torch.optim.Adam(w.trainable_parameters(), lr=1e-2)
    tgt = torch.randint(0, 2, (2,), generator=torch.Generator().manual_seed(0))
    frozen = {n: p.detach().clone() for n, p in m.named_parameters() if not p.requires_grad}
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(_call(w, x), tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]
    for n, p in m.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n  # frozen weights never move


def test_solve_verify_runs_a_frozen_plan(tmp_path):
    """`solve --train ... --verify` and `run --plan` set the stages up as planned (frozen,
    bias-only, LoRA on the layers the file records) and run the schedule, frozen prefix
    included; a LoRA plan without the file's targets is refused."""
    from click.testing import CliRunner

    from edgeplan.cli import main
    from test_import_modes import I, _builder
    src = _builder(tmp_path)
    model = tmp_path / "m.yaml"
    run = CliRunner().invoke
    r = run(main, ["import", "torch", f"{src}:mlp", "--input-shape", str(I), "--batch", "8",
                   "--modes", "frozen,bias,lora:4", "--lora-targets", "a", "-o", str(model)])
    assert r.exit_code == 0, r.output
    for train in ("last:1", "bias,last:1"):
        r = run(main, ["solve", str(model), "-d", "rpi-4-4gb", "--memory", "1 MiB", "--train",
                       train, "--verify", f"{src}:mlp"])
        assert r.exit_code == 0, r.output
        assert "ok: within the budget" in r.output
    plan = tmp_path / "plan.json"
    r = run(main, ["solve", str(model), "-d", "rpi-4-4gb", "--memory", "1 MiB", "--train",
                   "bias,last:1", "-o", str(plan)])
    assert r.exit_code == 0, r.output
    r = run(main, ["run", f"{src}:mlp", "--plan", str(plan)])  # the plan says what trains
    assert r.exit_code == 0, r.output
    assert "ok: within the budget" in r.output
    for train in ("lora:4", "lora:4,from:loss"):  # ll with adapters (the file's targets)
        r = run(main, ["solve", str(model), "-d", "rpi-4-4gb", "--memory", "1 MiB", "--train",
                       train, "--verify", f"{src}:mlp"])
        assert r.exit_code == 0, r.output
        assert "ok: within the budget" in r.output
    text = model.read_text()
    assert "lora: {targets: [a]" in text
    model.write_text("\n".join(ln for ln in text.splitlines() if not ln.startswith("lora:")))
    r = run(main, ["solve", str(model), "-d", "rpi-4-4gb", "--memory", "1 MiB", "--train",
                   "lora:4", "--verify", f"{src}:mlp"])
    assert r.exit_code == 2 and "target layers" in r.output


def test_wrapper_replays_the_users_autocast():
    """Under the user's torch.autocast (bf16, CPU) the recomputations in the backward run in the
    same precision: the gradients equal plain autograd's under the same autocast; planned with
    ``fit(amp="bf16")`` (measured under autocast), the measured peak is within the prediction."""
    make, data, _, _ = CASES["resnet18-last2"]
    torch.manual_seed(0)
    m, x = make(), data()
    full = fit(m, x, memory="1 GiB", optimizer="sgd", amp="bf16")
    assert full.plan.model.amp == "bf16" and full.plan.model.param_element_bytes == 4
    w = fit(m, x, memory=full.plan.memory.fixed_bytes + full.plan.min_activation_bytes,
            optimizer="sgd", amp="bf16", measure=True)
    assert w.plan.result.trace.forward_ops > w.plan.chain.length  # it recomputes
    ref = copy.deepcopy(m)
    tgt = torch.randint(0, 10, (x.shape[0],), generator=torch.Generator().manual_seed(0))
    for mod in (w, ref):
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(_call(mod, x).float(), tgt)
        loss.backward()
    for (n, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad), n
    measured, predicted = w.measured_peak_bytes(), w.plan.result.peak_bytes
    assert 0.8 * predicted <= measured <= predicted, (measured, predicted)


def test_solve_verify_runs_an_autocast_file_under_autocast(tmp_path):
    """A file measured under bf16 autocast (`import torch --amp bf16`) is verified with every
    forward under the same autocast: the executor's accounting matches the plan's chain exactly,
    and its activations are the 16-bit ones (well under the fp32 run's at the same schedule)."""
    from conftest import ROOT
    from edgeplan.formats.device_file import find_device
    from edgeplan.formats.model_file import load_model
    from edgeplan.importers.torch import import_torch, to_yaml
    from edgeplan.solvers.base import store_all_peak_bytes
    from edgeplan.solvers.optimal import solve_optimal
    from edgeplan.torchrun import verify_plan, without_tmp
    spec = f"{ROOT / 'examples' / 'train_with_edgeplan.py'}:small_cnn_with_loss"
    peaks = {}
    for amp in (None, "bf16"):
        r = import_torch(spec, input_shape=(3, 16, 16), batch=4, amp=amp, measure_tmp=False)
        path = tmp_path / f"{amp}.yaml"
        path.write_text(to_yaml(r))
        model = load_model(path)
        assert model.amp == amp
        chain = without_tmp(model.to_chain(find_device("rpi-4-4gb"), "fp32"))
        budget = (solve_optimal(chain, store_all_peak_bytes(chain)).min_budget_bytes
                  + store_all_peak_bytes(chain)) // 2
        res = solve_optimal(chain, budget)
        v = verify_plan(spec, res.schedule, chain, input_shape=(3, 16, 16), batch=4,
                        timing=False, independent=False, amp=model.amp)
        assert v.peak_ratio == 1.0 and v.measured_peak_bytes == res.peak_bytes
        peaks[amp] = v.measured_peak_bytes
    assert peaks["bf16"] < 0.7 * peaks[None]

