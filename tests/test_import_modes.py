"""Per-mode measurements of the torch importer (``--modes``, ``--train``; docs/finetune.md).

A chain whose frozen, bias-only and LoRA numbers are known exactly: a frozen linear layer keeps
no input for a weight gradient and computes no weight-gradient FLOPs; LoRA adds ``r x (in +
out)`` parameters, its ``A x`` intermediates and ``2 r (in + out)`` FLOPs per row.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

B, I, H, O, R = 8, 24, 32, 16, 4
F32 = 4


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _builder(tmp: Path) -> str:
    src = tmp / "modenets.py"
    src.write_text(
        "from collections import OrderedDict\n"
        "import torch\n"
        "from torch import nn\n"
        "class SumLoss(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return (x * x).sum()\n"
        f"def mlp():\n"
        "    '''Linear, then two linear layers in one stage, then the loss.'''\n"
        "    return nn.Sequential(OrderedDict([\n"
        f"        ('lin1', nn.Linear({I}, {H})),\n"
        f"        ('ll', nn.Sequential(OrderedDict([('a', nn.Linear({H}, {H})),\n"
        f"                                          ('b', nn.Linear({H}, {O}))]))),\n"
        "        ('loss', SumLoss())]))\n"
        "def cnn():\n"
        "    '''Conv, two convolutions in one stage, the loss.'''\n"
        "    return nn.Sequential(OrderedDict([\n"
        "        ('c1', nn.Conv2d(3, 4, 3, padding=1)),\n"
        "        ('cc', nn.Sequential(nn.Conv2d(4, 4, 3, padding=1),\n"
        "                             nn.Conv2d(4, 4, 3, padding=1))),\n"
        "        ('loss', SumLoss())]))\n")
    return str(src)


@pytest.fixture(scope="module")
def built(torch, tmp_path_factory):
    from edgeplan.importers import torch as ti
    src = _builder(tmp_path_factory.mktemp("modes"))
    r = ti.import_torch(f"{src}:mlp", input_shape=(I,), batch=B,
                        modes=("frozen", "bias", "lora-r4"), lora_targets=("a", "b"))
    return src, r


def _by(r, mode):
    return {s.name: s for s in r.modes[mode]}


def test_frozen_keeps_no_input_for_a_weight_gradient(built):
    _, r = built
    trained = {s.name: s for s in r.stages}
    frozen = _by(r, "frozen")
    # trained: the inner activation (B x H) is kept for b's weight gradient
    assert trained["ll"].saved_bytes == B * O * F32 + B * H * F32
    assert frozen["ll"].saved_bytes == B * O * F32
    fwd = 2 * B * (H * H + H * O)
    assert trained["ll"].fwd_flops == frozen["ll"].fwd_flops == fwd
    assert trained["ll"].bwd_flops == 2 * fwd     # input and weight gradients
    assert frozen["ll"].bwd_flops == fwd          # input gradients only
    assert frozen["ll"].trainable_bytes == 0
    # the work per op family follows: a frozen backward runs the two input-gradient matmuls only
    assert trained["ll"].bwd_work.get("matmul").flops == 2 * fwd
    assert frozen["ll"].bwd_work.get("matmul").flops == fwd
    assert frozen["ll"].bwd_work.get("matmul").ops < trained["ll"].bwd_work.get("matmul").ops
    # stage 1 frozen: a_0 needs no gradient, so nothing runs backward at all
    assert frozen["lin1"].bwd_flops == 0 and frozen["lin1"].saved_bytes == B * H * F32


def test_bias_only_trains_the_biases(built):
    _, r = built
    bias = _by(r, "bias")
    assert bias["ll"].trainable_bytes == (H + O) * F32
    assert bias["lin1"].trainable_bytes == H * F32
    assert bias["ll"].saved_bytes == B * O * F32  # a bias gradient needs no input
    assert bias["ll"].bwd_flops == 2 * B * (H * H + H * O)


def test_lora_adds_adapters_and_their_intermediates(built):
    _, r = built
    lora = _by(r, "lora-r4")
    trained = {s.name: s for s in r.stages}
    adapters = R * (H + H) + R * (H + O)        # A (r x in) and B (out x r) on a and b
    assert lora["ll"].param_bytes - trained["ll"].param_bytes == adapters * F32
    assert lora["ll"].trainable_bytes == adapters * F32
    # kept: b's input (for its A's gradient) and each A x (for B's gradient), and the output
    assert lora["ll"].saved_bytes == B * O * F32 + B * H * F32 + 2 * B * R * F32
    assert lora["ll"].fwd_flops == trained["ll"].fwd_flops + 2 * B * adapters
    assert r.lora["layers"] == {"lin1": [], "ll": ["ll.a", "ll.b"], "loss": []}


def test_the_model_is_restored_after_lora(torch, built):
    src, _ = built
    from edgeplan.importers import torch as ti
    from edgeplan.torchrun.trainable import LoRALinear, lora_adapters, mode_grads
    from edgeplan.torchrun.user_model import instantiate, resolve
    model = instantiate(resolve(f"{src}:mlp")[0], None)
    stages = list(model.named_children())
    with lora_adapters(stages, 2, ("b",)) as (wrapped, names), mode_grads(wrapped, "lora-r2"):
        assert isinstance(model.ll.b, LoRALinear) and names["ll"] == ["ll.b"]
        assert not model.ll.a.weight.requires_grad and model.ll.b.lora_A.requires_grad
    assert isinstance(model.ll.b, torch.nn.Linear) and not isinstance(model.ll.b, LoRALinear)
    assert all(p.requires_grad for p in model.parameters())
    assert ti  # imported for the module under test


def test_lora_wrapper_starts_equal_to_its_base(torch):
    from edgeplan.torchrun.trainable import LoRALinear
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 5)
    x = torch.randn(3, 6)
    want = lin(x)
    w = LoRALinear(lin, 2, alpha=4)
    assert torch.equal(w(x), want) and w.scaling == 2
    with torch.no_grad():
        w.lora_B.fill_(1.0)
    delta = (x @ w.lora_A.T).sum(dim=1, keepdim=True) * 2
    torch.testing.assert_close(w(x), want + delta)


def test_apply_modes_wraps_a_stage_that_is_a_linear_layer(torch):
    """A stage that is itself a targeted nn.Linear is replaced by its LoRA wrapper, in the
    stage list the executor runs and in the model (an nn.Sequential's child)."""
    from edgeplan.torchrun.trainable import LoRALinear, apply_modes
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    stages = list(model.named_children())
    names = apply_modes(model, stages, ("lora-r2", "frozen", "frozen"), ("0",), 4.0)
    assert names == ["0"]
    assert isinstance(stages[0][1], LoRALinear) and model[0] is stages[0][1]
    trains = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trains == {"0.lora_A", "0.lora_B"}


def test_written_modes_resolve_in_solve(built):
    from edgeplan.formats.model_file import model_from_text
    from edgeplan.importers import torch as ti
    from edgeplan.training import resolve
    _, r = built
    spec = model_from_text(ti.to_yaml(r))
    ll = spec.stages[1]
    assert set(ll.modes) == {"frozen", "bias", "lora-r4"}
    assert ll.modes["frozen"].saved_bytes == B * O * F32
    assert ll.modes["frozen"].bwd_flops == 2 * B * (H * H + H * O)
    assert ll.modes["frozen"].bwd_work.get("matmul").flops == 2 * B * (H * H + H * O)
    assert ll.modes["frozen"].fwd_work is None  # the forward does the same work: not repeated
    assert "modes" not in yaml.safe_load(ti.to_yaml(r))["stages"][2]  # the loss has no params
    m, tr = resolve(spec, "none,lora:4")
    assert tr.modes == ("frozen", "lora-r4", "frozen") and tr.frozen_prefix == 1
    assert tr.trainable_bytes == (R * (H + H) + R * (H + O)) * F32
    assert tr.computed == ()
    assert m.stages[1].bwd_work == ll.modes["lora-r4"].bwd_work  # resolved to the mode's work
    m, tr = resolve(spec, "last:1")
    assert m.stages[0].saved_bytes == B * H * F32 and tr.frozen_prefix == 1
    assert "measured again in each training mode" in spec.derivation


def test_convolution_frozen_and_bias(torch, built):
    from edgeplan.importers import torch as ti
    src, _ = built
    r = ti.import_torch(f"{src}:cnn", input_shape=(3, 6, 6), batch=2, modes=("frozen", "bias"))
    act = 2 * 4 * 6 * 6 * F32
    trained, frozen = r.stages[1], r.modes["frozen"][1]
    # PyTorch's convolution node saves its input whatever needs a gradient (torch 2.13): the
    # measurement shows it, where a formula would have said a frozen conv keeps only a_i
    assert trained.saved_bytes == 2 * act
    assert act <= frozen.saved_bytes <= trained.saved_bytes
    assert frozen.bwd_flops * 2 == trained.bwd_flops          # no weight-gradient FLOPs
    assert frozen.bwd_tmp_bytes < trained.bwd_tmp_bytes
    assert r.modes["bias"][1].trainable_bytes == 8 * F32


def _cli(args):
    from click.testing import CliRunner

    from edgeplan.cli import main
    return CliRunner().invoke(main, args)


def test_cli_train_writes_the_selection_and_its_modes(torch, built, tmp_path):
    src, _ = built
    out = tmp_path / "m.yaml"
    res = _cli(["import", "torch", f"{src}:mlp", "--input-shape", str(I), "--batch", str(B),
                "--train", "lora:4,from:loss", "--lora-targets", "a", "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "--train from:loss,lora:4 --lora-targets a" in text.splitlines()[0]
    data = yaml.safe_load(text)
    assert data["train"] == "from:loss,lora:4"
    ll = data["stages"][1]["modes"]
    assert set(ll) == {"frozen", "lora-r4"} and ll["lora-r4"]["added"] == R * (H + H) * F32
    assert "mode lora-r4: trains" in res.output
    res = _cli(["solve", str(out), "--device", "jetson-nano", "--json"])
    assert res.exit_code == 0, res.output
    import json
    training = json.loads(res.stdout)["data"]["training"]
    assert training["train"] == "from:loss,lora:4"
    assert training["modes"] == {"lin1": "frozen", "ll": "lora-r4", "loss": "train"}


@pytest.mark.parametrize("args, needle", [
    (["--lora-targets", "a"], "need a LoRA mode"),
    (["--modes", "lora:4", "--lora-targets", "qv"], "LoRA target"),
    (["--modes", "frozn"], "frozen"),
])
def test_cli_bad_mode_options_exit_2(torch, built, args, needle):
    src, _ = built
    res = _cli(["import", "torch", f"{src}:mlp", "--input-shape", str(I), "--batch", "2",
                *args])
    assert res.exit_code == 2, res.output
    assert needle in res.output


# --- mixed precision: every forward under torch.autocast (``import torch --amp``) -------------

def test_autocast_measures_16_bit_outputs_and_weight_copies(torch):
    from edgeplan.torchrun.meter import measure_stages
    nn = torch.nn

    class SumLoss(nn.Module):
        def forward(self, x):
            return (x.float() ** 2).sum()

    torch.manual_seed(0)
    stages = [("lin1", nn.Linear(I, H)), ("lin2", nn.Linear(H, O)), ("loss", SumLoss())]
    r = {m.name: m for m in measure_stages(stages, torch.randn(B, I), autocast=torch.bfloat16)}
    bf16 = 2
    # lin1 on a_0: a bf16 output, and the bf16 copy of a_0 kept for the weight gradient (a_0
    # needs no gradient, so the bf16 weight copy is not kept)
    assert r["lin1"].out_bytes == B * H * bf16
    assert r["lin1"].saved_bytes == B * H * bf16 + B * I * bf16
    # lin2 on a bf16 input: its bf16 weight copy is kept for the input gradient
    assert r["lin2"].saved_bytes == B * O * bf16 + H * O * bf16
    assert r["lin2"].param_bytes == (H * O + O) * F32  # the parameters stay fp32
    # the loss casts back to fp32 and keeps that copy
    assert r["loss"].saved_bytes == B * O * F32 + F32


def test_cli_amp_writes_the_precision(torch, built, tmp_path):
    src, _ = built
    out = tmp_path / "amp.yaml"
    res = _cli(["import", "torch", f"{src}:mlp", "--input-shape", str(I), "--batch", str(B),
                "--amp", "bf16", "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    data = yaml.safe_load(text)
    assert data["precision"] == "bf16" and "--amp bf16" in text.splitlines()[0]
    assert "torch.autocast" in data["derivation"]
    assert data["stages"][0]["out"] == B * H * 2
    res = _cli(["import", "torch", f"{src}:mlp", "--input-shape", str(I), "--batch", "2",
                "--amp", "bf16", "--dtype", "bfloat16"])
    assert res.exit_code == 2 and "fp32 parameters" in res.output
