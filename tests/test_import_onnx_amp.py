"""``import onnx --amp``: mixed-precision numbers computed from an fp32 graph.

Hand-computed bytes on small graphs built with onnx.helper (the 16-bit copies lower-precision
ops keep, the types other ops run in), the rules checked against what torch.autocast itself does
on the CPU, and real models exported from PyTorch compared with ``import torch --amp``'s
measurement of the same model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeplan.errors import InputError  # noqa: E402
from edgeplan.importers import onnx as oi  # noqa: E402
from test_import_onnx import (  # noqa: E402  (cnn: x[N,3,8,8] -> Conv-BN-Relu-MaxPool-Gemm(10))
    _init,
    _inp,
    _save,
    _stage,
    cnn,
)

N = 2


def _as_fp16(path):
    """The same graph with float16 parameters, input and output."""
    m = onnx.load(str(path))
    for i, init in enumerate(list(m.graph.initializer)):
        m.graph.initializer[i].CopyFrom(numpy_helper.from_array(
            numpy_helper.to_array(init).astype(np.float16), init.name))
    for vi in list(m.graph.input) + list(m.graph.output):
        vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    out = path.with_name(path.stem + "-fp16.onnx")
    onnx.save(m, str(out))
    return out


def test_cnn_bf16_by_hand(tmp_path):
    r = oi.import_onnx(cnn(tmp_path), batch=N, stages="nodes", amp="bf16")
    fp = oi.import_onnx(cnn(tmp_path), batch=N, stages="nodes")
    act = N * 4 * 8 * 8                                    # conv1's output elements
    conv = _stage(r, "conv1")
    # the conv casts a_0 (fp32, resident) to bf16 and keeps that copy for its weight gradient;
    # its output is bf16 (it needs no copy of its weight: a_0 needs no gradient)
    assert conv.out_bytes == act * 2
    assert conv.saved_bytes == N * 3 * 8 * 8 * 2 + act * 2
    assert _stage(fp, "conv1").saved_bytes == act * 4      # fp32: keeps the resident a_0 only
    bn = _stage(r, "bn1")                                  # runs in its input's bf16
    assert bn.out_bytes == act * 2 and bn.saved_bytes == 2 * 4 * 4 + act * 2  # + fp32 stats
    assert _stage(r, "relu1").saved_bytes == act * 2       # keeps its bf16 output
    pool = _stage(r, "pool1")                              # int64 indices, bf16 output
    assert pool.saved_bytes == (act // 4) * 8 + (act // 4) * 2
    fc = _stage(r, "fc")  # keeps the bf16 copy of its weight (its input needs a gradient)
    assert fc.out_bytes == N * 10 * 2
    assert fc.saved_bytes == 10 * 64 * 2 + N * 10 * 2
    assert _stage(r, "loss").saved_bytes == N * 10 * 4 + 4  # cross-entropy in fp32
    assert r.precision == "bf16" and r.amp == "bf16"
    assert r.param_bytes == fp.param_bytes                 # parameters stay fp32


def mlp(tmp_path, bias_shape=(32,), scale=False):
    """x[N,16] -> MatMul 16x32 -> Add(b) -> Relu [-> Div by a one-element constant] -> MatMul."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
             helper.make_node("Add", ["h", "b1"], ["hb"], name="add1"),
             helper.make_node("Relu", ["hb"], ["hr"], name="relu1")]
    last = "hr"
    inits = [_init("w1", (16, 32)), _init("b1", bias_shape), _init("w2", (32, 8))]
    if scale:
        nodes.append(helper.make_node("Div", ["hr", "s"], ["hs"], name="div"))
        inits.append(_init("s", ()))
        last = "hs"
    nodes.append(helper.make_node("MatMul", [last, "w2"], ["y"], name="mm2"))
    g = helper.make_graph(nodes, "mlp", [_inp("x", ["N", 16])], [_inp("y", ["N", 8])], inits)
    return _save(tmp_path, g, "mlp")


def test_a_matmul_bias_keeps_the_16_bit_type_a_2d_parameter_promotes(tmp_path):
    r = oi.import_onnx(mlp(tmp_path), batch=N, stages=1, amp="bf16")
    # one graph stage: mm1 keeps the bf16 copy of x; Add(b) is the linear's bias (bf16); Relu
    # keeps its bf16 output; mm2 keeps the bf16 copy of w2 (hr is bf16 already, kept by Relu)
    st = r.stages[0]
    assert st.saved_bytes == N * 16 * 2 + N * 32 * 2 + 32 * 8 * 2 + N * 8 * 2
    # a (1, 32) parameter added is not a bias: bf16 + fp32 promotes to fp32 (as in PyTorch),
    # and mm2 then keeps a bf16 copy of its fp32 input as well
    r2 = oi.import_onnx(mlp(tmp_path, bias_shape=(1, 32)), batch=N, stages=1, amp="bf16")
    st2 = r2.stages[0]
    assert st2.saved_bytes == (N * 16 * 2 + N * 32 * 4 + N * 32 * 2 + 32 * 8 * 2
                               + N * 8 * 2)


def test_a_one_element_divisor_does_not_promote(tmp_path):
    r = oi.import_onnx(mlp(tmp_path, scale=True), batch=N, stages=1, amp="bf16")
    # Div keeps its divisor (a constant, not counted); its output stays bf16 and mm2 keeps it
    st = r.stages[0]
    assert st.saved_bytes == N * 16 * 2 + N * 32 * 2 + N * 32 * 2 + 32 * 8 * 2 + N * 8 * 2


def test_amp_needs_an_fp32_graph(tmp_path):
    p = _as_fp16(cnn(tmp_path))
    with pytest.raises(InputError, match="autocast trains fp32 parameters"):
        oi.import_onnx(p, batch=N, amp="bf16")
    with pytest.raises(InputError, match="autocast type"):
        oi.import_onnx(cnn(tmp_path), batch=N, amp="int8")


def test_cli_writes_amp_and_the_file_plans(tmp_path):
    from click.testing import CliRunner

    from edgeplan.cli import main
    from edgeplan.formats.model_file import load_model

    out = tmp_path / "m.yaml"
    res = CliRunner().invoke(main, ["import", "onnx", str(cnn(tmp_path)), "--batch", "2",
                                    "--amp", "bf16", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "--amp bf16" in text.splitlines()[0] and "amp: bf16" in text
    assert "computed, not measured" in text
    m = load_model(out)
    assert m.amp == "bf16" and m.precision == "bf16"
    res = CliRunner().invoke(main, ["solve", str(out), "-d", "jetson-orin-nano-8gb", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["inputs"]["precision"] == "bf16"  # the 16-bit FLOP/s


# --- the rules against torch.autocast itself ------------------------------------------------------

def test_the_rules_are_torchs_cpu_autocast():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    h, W = torch.randn(4, 16), torch.randn(16, 16, requires_grad=True)
    x, w = torch.randn(2, 4, 6, 6), torch.randn(4, 4, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = [F.conv2d(x, w), F.conv_transpose2d(x, w), F.linear(h, W), h @ W,
               torch.einsum("ij,jk->ik", h, W), F.prelu(x, torch.ones(1)),
               torch.nn.LSTM(16, 4)(h[None])[0]]
        hb, xb = F.linear(h, W), F.conv2d(x, w)
        same = [F.batch_norm(xb, None, None, torch.ones(4), torch.zeros(4), training=True),
                F.layer_norm(hb, (16,), torch.ones(16), torch.zeros(16)), torch.softmax(hb, -1),
                F.gelu(hb), F.max_pool2d(xb, 2), hb / torch.tensor(2.0), hb * 3.0]
        promoted = hb + torch.ones(1, 16)
        loss = F.cross_entropy(hb, torch.zeros(4, dtype=torch.long))
    assert all(t.dtype == torch.bfloat16 for t in low)
    assert all(t.dtype == torch.bfloat16 for t in same)
    assert promoted.dtype == torch.float32 and loss.dtype == torch.float32
    # a conv keeps the bf16 copy of its fp32 input for the weight gradient: one saved tensor
    # of 2 bytes per element besides the weight copy
    xr = torch.randn(2, 3, 8, 8)
    wr = torch.randn(4, 3, 3, 3, requires_grad=True)
    kept = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t), \
            torch.autocast("cpu", dtype=torch.bfloat16):
        F.conv2d(xr, wr)
    assert sorted((t.dtype, t.numel()) for t in kept) == sorted(
        [(torch.bfloat16, xr.numel()), (torch.bfloat16, wr.numel())])


# --- real models: computed from the export vs measured by import torch --------------------------

def _export(torch, model, x, path):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}},
                          training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                          dynamo=False)


def _saved_sum(path) -> int:
    import yaml
    with open(path) as fh:
        return sum(s["saved"] for s in yaml.safe_load(fh)["stages"])


@pytest.mark.parametrize("case", ["resnet18", "bert"])
def test_computed_amp_is_close_to_the_measured(tmp_path, case):
    torch = pytest.importorskip("torch")
    from click.testing import CliRunner

    from edgeplan.cli import main
    from edgeplan.importers import zoo

    if case == "resnet18":
        model, x = zoo.resnet18(classes=10), torch.randn(2, 3, 64, 64)
        spec = ["edgeplan.importers.zoo:resnet18", "--arg", "classes=10", "--input-shape",
                "3x64x64"]
        tol = 0.002
    else:
        kw = {"layers": 1, "hidden": 64, "heads": 2, "ffn": 128, "vocab": 100}
        model, x = zoo.bert_base_encoder(**kw), torch.randint(0, 100, (2, 16))
        spec = ["edgeplan.importers.zoo:bert_base_encoder", "--input-shape", "16",
                "--input-dtype", "int64"] + [a for k, v in kw.items()
                                              for a in ("--arg", f"{k}={v}")]
        tol = 0.08  # the transposed copies PyTorch makes in attention (docs/importing.md)
    _export(torch, model, x, tmp_path / "m.onnx")
    run = CliRunner().invoke
    res = run(main, ["import", "onnx", str(tmp_path / "m.onnx"), "--batch", "2", "--amp",
                     "bf16", "-q", "-o", str(tmp_path / "o.yaml")])
    assert res.exit_code == 0, res.output
    res = run(main, ["import", "torch", *spec, "--batch", "2", "--amp", "bf16", "-o",
                     str(tmp_path / "t.yaml")])
    assert res.exit_code == 0, res.output
    computed, measured = _saved_sum(tmp_path / "o.yaml"), _saved_sum(tmp_path / "t.yaml")
    assert abs(computed / measured - 1) < tol, (computed, measured)
