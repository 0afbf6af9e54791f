"""The PyTorch importer (edgeplan.importers.torch) against hand-computed numbers.

Tiny models (Linear / ReLU / Conv) whose output sizes, saved tensors, FLOPs and parameters are
known exactly. Tests that need torch skip cleanly without it; the shipped example files are
checked without torch.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

B, I, H, O = 8, 64, 32, 16
F32 = 4


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def ti(torch):
    from edgeplan.importers import torch as torch_import
    return torch_import


def _tiny_chain(torch):
    nn = torch.nn

    class SumLoss(nn.Module):
        def forward(self, x):
            return (x * x).sum()

    torch.manual_seed(0)
    return [
        ("lin1", nn.Linear(I, H)),                                          # on a_0
        ("lin2", nn.Linear(H, O)),                                          # saves only its input
        ("linrelu", nn.Sequential(nn.Linear(O, O), nn.ReLU())),             # ReLU saves its output
        ("lrl", nn.Sequential(nn.Linear(O, O), nn.ReLU(), nn.Linear(O, O))),  # inner tensor saved
        ("loss", SumLoss()),
    ]


@pytest.fixture(scope="module")
def tiny(torch, ti):
    stages = _tiny_chain(torch)
    x0 = torch.randn(B, I)
    res = ti.measure_stages(stages, x0)
    return {r.name: r for r in res}


def test_out_bytes_exact(tiny):
    assert tiny["lin1"].out_bytes == B * H * F32
    assert tiny["lin2"].out_bytes == B * O * F32
    assert tiny["linrelu"].out_bytes == B * O * F32
    assert tiny["lrl"].out_bytes == B * O * F32
    assert tiny["loss"].out_bytes == F32  # the scalar loss


def test_saved_excludes_input_includes_output(tiny):
    # Linear saves its input (a_{i-1}: excluded, held by the previous stage) and its weight
    # (a parameter: excluded); saved is then just the output a_i.
    for name in ("lin1", "lin2"):
        assert tiny[name].saved_hook_bytes == 0
        assert tiny[name].saved_bytes == tiny[name].out_bytes
    # Linear+ReLU: ReLU saves its *output* (which is a_i); the Linear's output is not kept.
    assert tiny["linrelu"].saved_hook_bytes == B * O * F32
    assert tiny["linrelu"].saved_bytes == B * O * F32
    # Linear, ReLU, Linear: the ReLU output is saved (by ReLU and by the second Linear: one
    # storage, counted once) and the stage output is added: 2 tensors of B x O.
    assert tiny["lrl"].saved_hook_bytes == B * O * F32
    assert tiny["lrl"].saved_bytes == 2 * B * O * F32
    for r in tiny.values():
        assert r.saved_bytes >= r.out_bytes


def test_saved_agrees_with_allocator(tiny):
    # cross-check: bytes still allocated after the recording forward == saved
    for r in tiny.values():
        assert r.alloc_net_fwd == r.saved_bytes, r.name


def test_the_allocator_trace_pauses_the_garbage_collector():
    # a cyclic collection inside a trace would free unrelated tensors and count them
    import gc

    from edgeplan.torchrun.meter import AllocTrace
    assert gc.isenabled()
    with AllocTrace(True):
        assert not gc.isenabled()
    assert gc.isenabled()
    with AllocTrace(False):
        assert gc.isenabled()


def test_flops(tiny):
    assert tiny["lin1"].fwd_flops == 2 * B * I * H
    # a_0 needs no gradient: stage 1's backward is the weight gradient only
    assert tiny["lin1"].bwd_flops == 2 * B * I * H
    assert tiny["lin2"].fwd_flops == 2 * B * H * O
    assert tiny["lin2"].bwd_flops == 2 * (2 * B * H * O)  # input grad + weight grad
    assert tiny["lrl"].fwd_flops == 2 * (2 * B * O * O)
    assert tiny["loss"].fwd_flops == 0  # elementwise ops are not counted


def test_params_exact(tiny):
    assert tiny["lin1"].param_bytes == (I * H + H) * F32
    assert tiny["lin1"].param_count == I * H + H
    assert tiny["lin2"].param_bytes == (H * O + O) * F32
    assert tiny["lrl"].param_bytes == 2 * (O * O + O) * F32
    assert tiny["loss"].param_bytes == 0
    # the largest trainable tensor (the for-loop optimizer step's temporaries are 2x it)
    assert tiny["lin1"].largest_param_bytes == I * H * F32
    assert tiny["lrl"].largest_param_bytes == O * O * F32
    assert tiny["loss"].largest_param_bytes == 0


def test_tmp_non_negative_and_known_cases(tiny):
    for r in tiny.values():
        assert r.fwd_tmp_bytes >= 0 and r.bwd_tmp_bytes >= 0
    # a lone Linear allocates nothing but its output
    assert tiny["lin1"].fwd_tmp_bytes == 0
    # Linear+ReLU: the Linear's output lives next to the ReLU output for a moment
    assert tiny["linrelu"].fwd_tmp_bytes == B * O * F32
    assert tiny["lin2"].input_grad_bytes == B * H * F32
    assert tiny["lin1"].input_grad_bytes == 0


def test_conv_stage(torch, ti):
    nn = torch.nn
    torch.manual_seed(0)
    c, k, hw = 3, 8, 10
    stages = [("conv", nn.Conv2d(c, k, 3, padding=1, bias=False)),
              ("convrelu", nn.Sequential(nn.Conv2d(k, k, 3, padding=1), nn.ReLU()))]
    r = ti.measure_stages(stages, torch.randn(2, c, hw, hw), measure_tmp=False)
    out = 2 * k * hw * hw * F32
    assert r[0].out_bytes == out and r[0].saved_bytes == out
    assert r[0].fwd_flops == 2 * 2 * k * hw * hw * c * 9
    assert r[0].param_bytes == k * c * 9 * F32
    assert r[1].fwd_flops == 2 * 2 * k * hw * hw * k * 9
    assert r[1].saved_bytes == out  # ReLU saves its output = a_i; the conv input is excluded
    assert r[1].param_bytes == (k * k * 9 + k) * F32
    assert r[0].fwd_tmp_bytes == 0 and r[0].bwd_tmp_bytes == 0  # --no-tmp


def test_shared_parameters_counted_once(torch, ti):
    lin = torch.nn.Linear(H, H)
    r = ti.measure_stages([("a", lin), ("b", lin)], torch.randn(B, H), measure_tmp=False)
    assert r[0].param_bytes == (H * H + H) * F32
    assert r[1].param_bytes == 0


def test_input_passthrough_not_counted(torch, ti):
    nn = torch.nn

    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(I, H)

        def forward(self, x):
            return (x, self.lin(x))

    class Take(nn.Module):
        def forward(self, pair):
            return (pair[1] * 2).sum()

    r = ti.measure_stages([("pair", Pair()), ("take", Take())], torch.randn(B, I))
    assert r[0].out_bytes == B * H * F32  # a_0 is resident anyway: not part of a_1
    assert r[0].saved_bytes == B * H * F32


def test_zoo_parameter_counts(torch):
    from edgeplan.importers import zoo
    known = {zoo.resnet18: (11_689_512, 10), zoo.resnet50: (25_557_032, 18),
             zoo.mobilenetv2: (3_504_872, 20), zoo.bert_base_encoder: (109_483_778, 14),
             zoo.gpt2_small: (124_439_808, 14)}
    for build, (params, stages) in known.items():
        m = build()
        assert sum(p.numel() for p in m.parameters()) == params, build.__name__
        assert len(m) == stages, build.__name__
    small = zoo.lstm_unrolled(steps=3, features=4, hidden=8, classes=2)
    assert len(small) == 4
    assert sum(p.numel() for p in small.parameters()) == 4 * 8 * (4 + 8) + 8 * 8 + 8 * 2 + 2


def test_builder_errors(torch, ti):
    from edgeplan.errors import InputError
    from edgeplan.torchrun import user_model as um
    with pytest.raises(InputError):
        um.resolve("no_colon_here")
    with pytest.raises(InputError):
        um.resolve("edgeplan.importers.zoo:does_not_exist")
    with pytest.raises(InputError):
        um.build_stages(lambda: 42)
    with pytest.raises(InputError):
        um.parse_shape("3xfoo")
    assert um.parse_shape("3x224x224") == (3, 224, 224)
    assert um.parse_kwargs(["steps=4", "name=x"]) == {"steps": 4, "name": "x"}


def _write_builder(tmp_path: Path) -> Path:
    src = tmp_path / "tinymodel.py"
    src.write_text(
        "import torch\n"
        "from torch import nn\n"
        "def build(width=16):\n"
        "    '''A tiny MLP for the importer test.'''\n"
        "    class Loss(nn.Module):\n"
        "        def forward(self, x):\n"
        "            return x.pow(2).mean()\n"
        "    return nn.Sequential(nn.Linear(12, width), nn.ReLU(), nn.Linear(width, 4), Loss())\n")
    return src


def test_cli_writes_a_loadable_file(torch, tmp_path):
    from click.testing import CliRunner

    from edgeplan.cli.imports import import_group
    src = _write_builder(tmp_path)
    out = tmp_path / "tiny.yaml"
    res = CliRunner().invoke(import_group, [
        "torch", f"{src}:build", "--input-shape", "12", "--batch", "5", "--arg", "width=8",
        "--time", "--optimizer", "adam", "-o", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    text = out.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# produced by: edgeplan import torch ")
    assert "--arg width=8" in first and "--time" in first
    data = yaml.safe_load(text)
    assert data["format"] == 1 and data["batch"] == 5 and data["optimizer"] == "adam"
    assert data["input"] == {"shape": [12], "dtype": "float32"}
    assert [s["name"] for s in data["stages"]] == ["linear0", "relu1", "linear2", "loss3"]
    s0 = data["stages"][0]
    assert s0["out"] == 5 * 8 * F32 and s0["fwd_flops"] == 2 * 5 * 12 * 8
    assert s0["params"] == (12 * 8 + 8) * F32
    assert s0["fwd_time"].endswith(" ms")
    try:
        from edgeplan.formats.model_file import load_model
    except ImportError:  # the loader is optional for this test
        return
    m = load_model(out)
    assert m.length == 4 and m.batch == 5 and m.input_bytes == 5 * 12 * F32
    assert m.param_bytes == ((12 * 8 + 8) + (8 * 4 + 4)) * F32
    assert m.stages[0].fwd_time_s > 0


def test_cli_bad_spec(torch, tmp_path):
    from click.testing import CliRunner

    from edgeplan.cli.imports import import_group
    from edgeplan.errors import InputError
    res = CliRunner().invoke(import_group, ["torch", "nosuchmodule_xyz:build", "--input-shape",
                                            "3", "--batch", "1"])
    assert res.exit_code != 0
    assert isinstance(res.exception, InputError)


def test_yaml_writer_quotes_names(torch, ti):
    r = ti.ImportResult(
        name="odd: name", description='say "hi"', batch=1, input_shape=(2,), input_dtype="float32",
        input_bytes=8, dtype="float32", stages=[ti.StageMeasure(
            name="yes", out_bytes=4, saved_bytes=4, fwd_flops=1, bwd_flops=2)],
        param_count=0, param_bytes=0, torch_version="x", measured_tmp=False, timed=False,
        date="2000-01-01")
    data = yaml.safe_load(ti.to_yaml(r, command="edgeplan import torch a:b"))
    assert data["name"] == "odd: name" and data["description"] == 'say "hi"'
    assert data["stages"][0]["name"] == "yes"  # not the boolean true
    assert "largest_param" not in data["stages"][0]  # written only where there are parameters


def test_yaml_round_trips_the_largest_tensor(torch, ti):
    from edgeplan.formats.model_file import model_from_text
    r = ti.ImportResult(
        name="m", description="", batch=1, input_shape=(2,), input_dtype="float32",
        input_bytes=8, dtype="float32", stages=[ti.StageMeasure(
            name="lin", out_bytes=4, saved_bytes=4, fwd_flops=1, bwd_flops=2, param_bytes=40,
            param_count=10, trainable_bytes=40, largest_param_bytes=32)],
        param_count=10, param_bytes=40, torch_version="x", measured_tmp=False, timed=False,
        date="2000-01-01")
    m = model_from_text(ti.to_yaml(r))
    assert m.stages[0].largest_param_bytes == 32 and m.stages[0].param_bytes == 40


# --- the shipped examples (no torch needed) ----------------------------------------------------

KNOWN_PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032, "mobilenetv2": 3_504_872,
                "vgg16": 138_357_544, "bert-base-encoder": 109_483_778, "gpt2-small": 124_439_808,
                "lstm-unrolled": 5_261_322}


@pytest.mark.parametrize("stem", sorted(KNOWN_PARAMS))
def test_example_files(stem):
    path = EXAMPLES / f"{stem}.yaml"
    if not path.exists():
        pytest.skip(f"{path} not generated")
    text = path.read_text()
    first = text.splitlines()[0]
    assert re.match(r"# produced by: edgeplan import torch edgeplan\.importers\.zoo:\w+ ", first)
    assert f"-o examples/{stem}.yaml" in first
    data = yaml.safe_load(text)
    params = sum(s["params"] for s in data["stages"])
    assert params == KNOWN_PARAMS[stem] * F32
    for s in data["stages"]:
        assert isinstance(s["out"], int) and isinstance(s["saved"], int)
        assert s["saved"] >= s["out"]
    try:
        from edgeplan.formats.model_file import load_model
    except ImportError:
        return
    m = load_model(path)
    assert m.param_bytes == KNOWN_PARAMS[stem] * F32


def test_grouped_conv_backward_flops(torch, ti):
    # depthwise conv: forward 2*B*C*H*W*9; backward = grad input + grad weight = 2 x forward
    nn = torch.nn
    c, hw = 8, 6
    st = [("a", nn.Conv2d(c, c, 1, bias=False)),
          ("dw", nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False))]
    r = ti.measure_stages(st, torch.randn(2, c, hw, hw), measure_tmp=False)
    assert r[1].fwd_flops == 2 * 2 * c * hw * hw * 9
    assert r[1].bwd_flops == 2 * r[1].fwd_flops


def test_stage_with_inplace_op_on_its_input(torch, ti):
    # torchvision-style ReLU(inplace=True) as a stage of its own: autograd refuses in-place ops
    # on a leaf, so the importer hands the stage a copy of its input.
    nn = torch.nn
    st = [("lin", nn.Linear(I, H)), ("relu", nn.ReLU(inplace=True)), ("lin2", nn.Linear(H, O))]
    r = ti.measure_stages(st, torch.randn(B, I), timing=True)
    assert r[1].out_bytes == B * H * F32 and r[1].saved_bytes == B * H * F32
    assert r[1].input_grad_bytes == B * H * F32
    assert r[2].fwd_flops == 2 * B * H * O


def test_shared_parameter_gradient_temporary_in_bwd_tmp(torch, ti):
    """A parameter used by several stages: every stage's backward but the one that runs first
    makes a new gradient and adds it to .grad, a transient of the parameter's size."""
    lin = torch.nn.Linear(64, 64)
    shared = ti.measure_stages([("a", lin), ("b", lin), ("c", lin)], torch.randn(4, 64))
    alone = [ti.measure_stages([(n, torch.nn.Linear(64, 64))], torch.randn(4, 64))[0]
             for n in "abc"]
    w = sum(p.numel() * p.element_size() for p in lin.parameters())
    assert shared[0].bwd_tmp_bytes >= w and shared[1].bwd_tmp_bytes >= w
    assert shared[2].bwd_tmp_bytes < w <= shared[0].bwd_tmp_bytes
    assert shared[0].bwd_tmp_bytes - alone[0].bwd_tmp_bytes >= w - 4096
