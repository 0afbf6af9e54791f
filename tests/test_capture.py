"""Any nn.Module in, a checkpointed model out: torch.fx capture, cut points, the drop-in wrapper.

The four models of ``edgeplan.importers.nets`` (a torchvision-layout ResNet-18, a U-Net with long
skips, a BERT-style encoder taking a dict, a ViT), small: captured without restructuring, the
chain reproduces the model, the wrapper's gradients equal plain autograd's (float64, at the
least memory and half way to store-all, dropout on), the user's own loop trains (the loss
decreases over 20 steps), and the measured activation peak stays within the prediction.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from edgeplan.errors import InputError  # noqa: E402
from edgeplan.importers import nets  # noqa: E402
from edgeplan.torch import capture, checkpoint, fit  # noqa: E402

MODELS = {
    "resnet18": (lambda: nets.resnet18(num_classes=10, width=8),
                 lambda: torch.randn(4, 3, 32, 32)),
    "unet": (lambda: nets.unet(width=4, depth=3), lambda: torch.randn(2, 3, 32, 32)),
    "bert": (lambda: nets.bert_encoder(vocab=50, dim=16, layers=3, heads=2),
             lambda: {"input_ids": torch.randint(0, 50, (2, 12)),
                      "attention_mask": torch.ones(2, 12, dtype=torch.long)}),
    "vit": (lambda: nets.vit(image=32, patch=8, dim=16, layers=3, heads=2, classes=10),
            lambda: torch.randn(2, 3, 32, 32)),
}


def _call(m, x):
    return m(**x) if isinstance(x, dict) else m(x)


def _logits(out):
    return out["logits"] if isinstance(out, dict) else out


def _double(x):
    return dict(x) if isinstance(x, dict) else x.double()


@pytest.mark.parametrize("name", list(MODELS))
def test_capture_reproduces_the_model(name):
    torch.manual_seed(0)
    make, data = MODELS[name]
    m, x = make().eval(), data()
    cap = capture(m, x)
    assert len(cap.stages) >= 8 and cap.candidates >= len(cap.stages) - 1
    y = tuple(x.values()) if isinstance(x, dict) else (x,)
    with torch.no_grad():
        for _, st in cap.stages:
            y = st(y)
        ref = _call(m, x)
    assert torch.equal(_logits(y), _logits(ref))
    # a stage shares the model's parameters: no copies
    ids = {id(p) for p in m.parameters()}
    assert all(id(p) in ids for _, st in cap.stages for p in st.parameters())


def test_residual_blocks_are_never_cut_inside_with_carry_none():
    m = nets.resnet18(num_classes=10, width=8)
    cap = capture(m, torch.randn(2, 3, 32, 32), carry="none", granularity="finest")
    # every cut crosses exactly one tensor; no cut between a block's input and its add
    assert all(not c.carried for c in cap.cuts)
    names = [n for n, _ in cap.stages]
    assert "layer1.0" in names and "layer2.0" in names


def test_bert_carries_its_attention_mask():
    m = nets.bert_encoder(vocab=50, dim=16, layers=3, heads=2)
    x = {"input_ids": torch.randint(0, 50, (2, 12)),
         "attention_mask": torch.ones(2, 12, dtype=torch.long)}
    cap = capture(m, x)
    assert cap.input_names == ["input_ids", "attention_mask"]
    # the extended mask is computed once and crosses the layer cuts as a carried value
    assert any(c.carried for c in cap.cuts)
    assert all(c.carried_bytes <= 0.25 * c.main_bytes for c in cap.cuts)
    assert not capture(m, x, carry="none").cuts or all(
        not c.carried for c in capture(m, x, carry="none").cuts)


@pytest.mark.parametrize("name", list(MODELS))
def test_wrapper_gradients_equal_autograd(name):
    torch.manual_seed(0)
    make, data = MODELS[name]
    m = make().double()
    x = _double(data())
    ref = copy.deepcopy(m)
    full = fit(m, x, memory="1 GiB", optimizer="sgd")
    fixed, hi = full.plan.memory.fixed_bytes, full.plan.store_all_peak_bytes
    lo = full.plan.min_activation_bytes
    for frac in (0.0, 0.5):
        w = fit(m, x, memory=fixed + int(lo + frac * (hi - lo)), optimizer="sgd", measure=True)
        assert w.plan.result.trace.forward_ops > w.plan.chain.length  # it recomputes
        for p in list(m.parameters()) + list(ref.parameters()):
            p.grad = None
        torch.manual_seed(1)
        out = _logits(_call(w, x))
        torch.manual_seed(1)
        out_ref = _logits(_call(ref, x))
        assert torch.equal(out, out_ref)
        tgt = torch.randint(0, out.shape[1], (out.shape[0],) + tuple(out.shape[2:]),
                            generator=torch.Generator().manual_seed(3))
        F.cross_entropy(out, tgt).backward()
        F.cross_entropy(out_ref, tgt).backward()
        for (n, p), q in zip(m.named_parameters(), ref.parameters()):
            assert (p.grad is None) == (q.grad is None), n
            if p.grad is not None:
                assert torch.equal(p.grad, q.grad), n
        # the executor's storage accounting: within the prediction, and close to it
        measured, predicted = w.measured_peak_bytes(), w.plan.result.peak_bytes
        assert 0.85 * predicted <= measured <= predicted, (measured, predicted)


@pytest.mark.parametrize("name", list(MODELS))
def test_users_own_loop_trains(name):
    torch.manual_seed(0)
    make, data = MODELS[name]
    m, x = make(), data()
    w = fit(m, x, memory="1 GiB", optimizer="adam")
    lo = w.plan.min_activation_bytes
    w = fit(m, x, memory=w.plan.memory.fixed_bytes + lo, optimizer="adam")
    opt = torch.optim.Adam(w.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(5)
    out0 = _logits(_call(m.eval(), x))
    m.train()
    target = torch.randint(0, out0.shape[1], (out0.shape[0],) + tuple(out0.shape[2:]),
                           generator=g)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(_logits(_call(w, x)), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_eval_no_grad_and_state_dict():
    torch.manual_seed(0)
    m = nets.resnet18(num_classes=10, width=8)
    x = torch.randn(2, 3, 32, 32)
    w = fit(m, x, memory="64 MiB")
    assert list(w.state_dict()) == list(m.state_dict())
    w.load_state_dict(copy.deepcopy(m.state_dict()))
    with torch.no_grad():
        assert torch.equal(w(x), m(x))           # the plain model, no schedule
    w.eval()
    assert torch.equal(w(x), m(x))               # eval(): the plain model too
    assert not m.training
    w.train()
    assert m.training
    assert {id(p) for p in w.parameters()} == {id(p) for p in m.parameters()}


def test_uncapturable_model_names_the_construct():
    class Gate(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow
                return self.a(x)
            return self.b(x)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp, self.gate, self.out = torch.nn.Linear(8, 8), Gate(), torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.out(torch.relu(self.gate(torch.relu(self.inp(x)))))

    with pytest.raises(InputError) as e:
        capture(Net(), torch.randn(4, 8))
    msg = str(e.value)
    assert "if x.sum() > 0" in msg and "--leaf" in msg
    cap = capture(Net(), torch.randn(4, 8), leaves=["gate"])
    assert any(n.startswith("gate") for n, _ in cap.stages)
    with pytest.raises(InputError, match="did you mean 'gate'"):
        capture(Net(), torch.randn(4, 8), leaves=["gat"])


def test_checkpoint_with_a_plan_and_mismatches():
    torch.manual_seed(0)
    m = nets.resnet18(num_classes=10, width=8)
    x = torch.randn(2, 3, 32, 32)
    plan = fit(m, x, memory="64 MiB").plan
    w = checkpoint(m, plan, x)
    assert w.schedule == plan.result.schedule
    F.cross_entropy(w(x), torch.tensor([1, 2])).backward()
    assert all(p.grad is not None for p in m.parameters())
    with pytest.raises(InputError, match="stages"):
        checkpoint(m, plan, x, granularity="finest")


def test_granularity_balances_stages():
    m = nets.vit(image=32, patch=8, dim=16, layers=4, heads=2, classes=10)
    x = torch.randn(2, 3, 32, 32)
    assert len(capture(m, x, granularity=4).stages) == 4
    assert len(capture(m, x, granularity="finest").stages) > len(capture(m, x).stages)
    with pytest.raises(InputError):
        capture(m, x, granularity="lots")


@pytest.mark.slow
def test_cli_import_captures_and_solves(tmp_path):
    out = tmp_path / "bert.yaml"
    r = subprocess.run(
        [sys.executable, "-m", "edgeplan", "import", "torch",
         "edgeplan.importers.nets:bert_encoder",
         "--arg", "vocab=50", "--arg", "dim=16", "--arg", "layers=2", "--arg", "heads=2",
         "--input", "input_ids=12:int64", "--input", "attention_mask=12:int64", "--batch", "2",
         "--loss", "cross-entropy", "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "captured with torch.fx:" in r.stderr and "carried" in r.stderr
    text = out.read_text()
    assert "--input input_ids=12:int64" in text and "name: loss" in text
    plan_file = tmp_path / "plan.json"
    r = subprocess.run([sys.executable, "-m", "edgeplan", "solve", str(out), "-d", "rpi-4-4gb",
                        "--memory", "48 MiB", "-o", str(plan_file)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # the plan file drives the drop-in wrapper of the same model in Python
    torch.manual_seed(0)
    m = nets.bert_encoder(vocab=50, dim=16, layers=2, heads=2)
    x = {"input_ids": torch.randint(0, 50, (2, 12)),
         "attention_mask": torch.ones(2, 12, dtype=torch.long)}
    w = checkpoint(m, str(plan_file), x)
    F.cross_entropy(w(**x)["logits"], torch.tensor([0, 1])).backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if not n.startswith("pos"))
    r = subprocess.run(
        [sys.executable, "-m", "edgeplan", "import", "torch", "edgeplan.importers.nets:unet",
         "--input-shape", "3x32x32", "--batch", "2", "--loss", "cross-entropy", "--leaf", "ups",
         "--leaf", "nope", "-o", str(tmp_path / "u.yaml")],
        capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--leaf: no submodule 'nope'" in r.stderr, r.stderr
