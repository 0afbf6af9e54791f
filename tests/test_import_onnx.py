"""The ONNX importer (edgeplan.importers.onnx) against hand-computed numbers.

Every model is built here with onnx.helper (no files, no downloads): a Conv-BN-Relu-Pool-Gemm
CNN, a two-block residual CNN (its Add skip connections decide where the chain may be cut), an
MLP of MatMul+Add+Relu, a self-attention-like MatMul of two activations, and graphs with ops the
importer cannot cost (Einsum, a custom-domain op), which must be reported, never silently zero.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeplan.importers import onnx as oi  # noqa: E402

F32 = 4
FLOAT = TensorProto.FLOAT


def _init(name, shape, dtype=np.float32):
    return numpy_helper.from_array(np.zeros(shape, dtype=dtype), name)


def _save(tmp_path, graph, name="model", opset=17, domains=()):
    ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=ops, producer_name="edgeplan-test")
    p = tmp_path / f"{name}.onnx"
    onnx.save(model, str(p))
    return p


def _inp(name, shape, t=FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def _stage(r, name):
    return next(s for s in r.stages if s.name == name)


# --- the models ---------------------------------------------------------------------------------

def cnn(tmp_path):
    """x[N,3,8,8] -> Conv(3->4, 3x3, pad 1, bias) -> BN -> Relu -> MaxPool 2x2 -> Flatten ->
    Gemm."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["n1"], name="bn1"),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["p1"], ["f1"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f1", "wf", "bf"], ["y"], name="fc", transB=1),
    ]
    inits = [_init("w1", (4, 3, 3, 3)), _init("b1", (4,)), _init("g", (4,)), _init("be", (4,)),
             _init("mu", (4,)), _init("var", (4,)), _init("wf", (10, 64)), _init("bf", (10,))]
    g = helper.make_graph(nodes, "cnn", [_inp("x", ["N", 3, 8, 8])], [_inp("y", ["N", 10])],
                          inits)
    return _save(tmp_path, g, "cnn")


def _block(prefix, x, c):
    return [
        helper.make_node("Conv", [x, f"{prefix}w1"], [f"{prefix}c1"], name=f"{prefix}conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", [f"{prefix}c1"], [f"{prefix}r1"], name=f"{prefix}relu1"),
        helper.make_node("Conv", [f"{prefix}r1", f"{prefix}w2"], [f"{prefix}c2"],
                         name=f"{prefix}conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Add", [f"{prefix}c2", x], [f"{prefix}sum"], name=f"{prefix}add"),
        helper.make_node("Relu", [f"{prefix}sum"], [f"{prefix}out"], name=f"{prefix}relu2"),
    ], [_init(f"{prefix}w1", (c, c, 3, 3)), _init(f"{prefix}w2", (c, c, 3, 3))]


C, HW = 4, 8


def resnet(tmp_path):
    """Stem conv+relu, two residual blocks (Add skip), global average pool, Gemm."""
    nodes = [helper.make_node("Conv", ["x", "ws"], ["s"], name="stem", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["s"], ["s_r"], name="stem_relu")]
    inits = [_init("ws", (C, C, 3, 3))]
    b1, i1 = _block("b1_", "s_r", C)
    b2, i2 = _block("b2_", "b1_out", C)
    nodes += b1 + b2 + [
        helper.make_node("GlobalAveragePool", ["b2_out"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wf"], ["y"], name="fc", transB=1),
    ]
    inits += i1 + i2 + [_init("wf", (10, C))]
    g = helper.make_graph(nodes, "resnet", [_inp("x", ["batch", C, HW, HW])],
                          [_inp("y", ["batch", 10])], inits)
    return _save(tmp_path, g, "resnet")


def mlp(tmp_path, extra=None, domains=()):
    """x[N,16] -> MatMul 16x32 -> Add -> Relu -> MatMul 32x8 -> Add."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="add1"),
        helper.make_node("Relu", ["hb"], ["hr"], name="relu1"),
        helper.make_node("MatMul", ["hr", "w2"], ["o"], name="mm2"),
        helper.make_node("Add", ["o", "b2"], ["y"], name="add2"),
    ]
    inits = [_init("w1", (16, 32)), _init("b1", (32,)), _init("w2", (32, 8)), _init("b2", (8,))]
    if extra:
        nodes, inits = extra(nodes, inits)
    g = helper.make_graph(nodes, "mlp", [_inp("x", ["N", 16])], [_inp("y", ["N", 8])], inits)
    return _save(tmp_path, g, "mlp", domains=domains)


# --- the CNN: sizes, FLOPs, saved, params --------------------------------------------------------

@pytest.fixture
def cnn_nodes(tmp_path):
    return oi.import_onnx(cnn(tmp_path), batch=2, stages="nodes")


def test_cnn_nodes_sizes_and_flops(cnn_nodes):
    r, n = cnn_nodes, 2
    assert [s.name for s in r.stages] == ["conv1", "bn1", "relu1", "pool1", "flatten", "fc",
                                          "loss"]
    assert r.batch == n and r.input_bytes == n * 3 * 8 * 8 * F32
    conv_out = n * 4 * 8 * 8                                   # elements
    conv = _stage(r, "conv1")
    mm = 2 * n * 4 * 8 * 8 * (3 // 1) * 3 * 3                  # 2*N*Cout*Ho*Wo*Cin/g*kh*kw
    assert conv.fwd_flops == mm + conv_out                     # + bias
    assert conv.bwd_flops == mm + conv_out     # a_0 needs no gradient: the weight gradient only
    assert conv.out_bytes == conv.saved_bytes == conv_out * F32  # keeps a_0 only (resident)
    assert conv.param_bytes == (4 * 3 * 9 + 4) * F32
    assert conv.largest_param_bytes == 4 * 3 * 9 * F32         # the weight, not the bias
    bn = _stage(r, "bn1")
    assert bn.fwd_flops == bn.bwd_flops == 7 * conv_out
    assert bn.saved_bytes == conv_out * F32 + 2 * 4 * F32     # its input is the stage input
    assert bn.param_bytes == 2 * 4 * F32                       # running mean/var are buffers
    relu = _stage(r, "relu1")
    assert relu.fwd_flops == relu.bwd_flops == conv_out
    assert relu.saved_bytes == relu.out_bytes == conv_out * F32
    pool = _stage(r, "pool1")
    pool_out = n * 4 * 4 * 4
    assert pool.fwd_flops == pool_out * 4
    assert pool.out_bytes == pool_out * F32
    assert pool.saved_bytes == pool_out * F32 + pool_out * 8   # output + int64 indices
    flat = _stage(r, "flatten")
    assert flat.fwd_flops == 0 and flat.out_bytes == flat.saved_bytes == pool_out * F32
    fc = _stage(r, "fc")
    assert fc.fwd_flops == 2 * n * 10 * 64 + n * 10
    assert fc.bwd_flops == 2 * (2 * n * 10 * 64) + n * 10
    assert fc.out_bytes == fc.saved_bytes == n * 10 * F32
    assert fc.param_bytes == (640 + 10) * F32 and fc.largest_param_bytes == 640 * F32
    loss = r.stages[-1]
    assert loss.out_bytes == 4 and loss.saved_bytes == n * 10 * F32 + 4
    assert loss.fwd_flops == 4 * n * 10 and loss.bwd_flops == 2 * n * 10
    assert r.param_bytes == (112 + 8 + 650) * F32 and r.param_count == 112 + 8 + 650
    assert not r.uncosted
    for s in r.stages:
        assert s.saved_bytes >= s.out_bytes


def test_cnn_auto_groups_conv_bn_relu_pool(tmp_path):
    r = oi.import_onnx(cnn(tmp_path), batch=2)
    n, conv_out, pool_out = 2, 2 * 4 * 64, 2 * 4 * 16
    assert [s.name for s in r.stages] == ["conv1", "fc", "loss"]
    s = r.stages[0]
    assert s.out_bytes == pool_out * F32                        # the flattened pool output
    # BN keeps the conv output (+ statistics), Relu its output (MaxPool's input: same tensor,
    # counted once), MaxPool int64 indices; the output (a view of the pool output) is added.
    assert s.saved_bytes == (2 * conv_out * F32 + 2 * 4 * F32 + pool_out * 8
                             + pool_out * F32)
    assert r.stages[1].saved_bytes == r.stages[1].out_bytes == n * 10 * F32


def test_batch_scales_and_fixed_batch(tmp_path):
    p = cnn(tmp_path)
    r1 = oi.import_onnx(p, stages="nodes")
    assert r1.batch == 1 and any("batch 1" in x for x in r1.notes)
    r8 = oi.import_onnx(p, batch=8, stages="nodes")
    for a, b in zip(r1.stages, r8.stages):
        assert b.out_bytes == 8 * a.out_bytes or b.name == "loss"
        assert b.fwd_flops == 8 * a.fwd_flops
        assert b.param_bytes == a.param_bytes


# --- the residual net: articulation points -------------------------------------------------------

def _block_nodes(p):
    return {f"{p}conv1", f"{p}relu1", f"{p}conv2", f"{p}add"}


def test_resnet_no_cut_inside_a_block(tmp_path):
    r = oi.import_onnx(resnet(tmp_path), batch=2, stages="nodes")
    names = [s.name for s in r.stages]
    assert names == ["stem", "stem_relu", "b1_conv1", "b1_relu2", "b2_conv1", "b2_relu2", "gap",
                     "flatten", "fc", "loss"]
    for p in ("b1_", "b2_"):
        holders = [s for s in r.stages if _block_nodes(p) & set(s.nodes)]
        assert len(holders) == 1, p
        assert set(holders[0].nodes) == _block_nodes(p)
        assert holders[0].out_tensors == [f"{p}sum"]
    assert r.segment_count == 9


def test_resnet_block_numbers(tmp_path):
    r = oi.import_onnx(resnet(tmp_path), batch=2)
    assert [s.name for s in r.stages] == ["stem", "b1_conv1", "b2_conv1", "fc", "loss"]
    n, act = 2, 2 * C * HW * HW
    conv = 2 * n * C * HW * HW * C * 9
    b1 = _stage(r, "b1_conv1")
    assert b1.fwd_flops == 2 * conv + 3 * act                  # 2 convs, relu, add, relu
    assert b1.bwd_flops == 2 * 2 * conv + 3 * act              # input + weight grads
    # conv1 keeps the block input (the stage input: excluded), relu1 keeps r1, conv2 keeps r1
    # (once), Add keeps nothing, relu2 keeps its output = out
    assert b1.saved_bytes == 2 * act * F32 and b1.out_bytes == act * F32
    assert b1.param_bytes == 2 * C * C * 9 * F32
    stem = _stage(r, "stem")
    assert stem.fwd_flops == conv + act and stem.bwd_flops == conv + act
    assert stem.saved_bytes == act * F32
    # weightless segments join the stage before: GAP (keeps nothing) and Flatten end block 2,
    # whose out is the small flattened pool output (a view of the GAP output, added to saved)
    b2 = _stage(r, "b2_conv1")
    assert b2.fwd_flops == b1.fwd_flops + act
    assert b2.out_bytes == n * C * F32 and b2.out_tensors == ["flat"]
    assert b2.saved_bytes == 2 * act * F32 + n * C * F32
    fc = _stage(r, "fc")  # Gemm keeps its input: the stage input (excluded)
    assert fc.fwd_flops == 2 * n * 10 * C and fc.bwd_flops == 2 * fc.fwd_flops
    assert fc.saved_bytes == fc.out_bytes == n * 10 * F32


def test_stages_n_balances_flops(tmp_path):
    p = resnet(tmp_path)
    r = oi.import_onnx(p, batch=2, stages=3)
    assert len(r.stages) == 3 + 1
    assert sum(s.segments for s in r.stages[:-1]) == r.segment_count
    both = oi.import_onnx(p, batch=2, stages="nodes")
    assert sum(s.fwd_flops for s in r.stages) == sum(s.fwd_flops for s in both.stages)
    assert sum(s.param_bytes for s in r.stages) == sum(s.param_bytes for s in both.stages)
    big = oi.import_onnx(p, batch=2, stages=50)
    assert len(big.stages) == r.segment_count + 1


def test_balance_helper():
    assert oi.balance([5, 1, 1, 1, 5, 1], 3) in ([1, 3, 2], [1, 4, 1], [2, 2, 2])
    assert max(sum(g) for g in _groups([5, 1, 1, 1, 5, 1], oi.balance([5, 1, 1, 1, 5, 1], 3))) \
        <= 6
    assert oi.balance([1, 2, 3], 10) == [1, 1, 1]
    assert sum(oi.balance([0] * 7, 3)) == 7 and len(oi.balance([0] * 7, 3)) == 3


def test_stage_names_from_exporter_paths():
    def node(name, op="Conv"):
        return helper.make_node(op, ["a"], ["b"], name=name)
    used = set()
    block = [node("/layer1/layer1.0/conv1/Conv"), node("/layer1/layer1.0/relu/Relu", "Relu"),
             node("/layer1/layer1.0/Add", "Add")]
    assert oi.stage_name(block, 1, used) == "layer1.0"
    # a name taken: the weighted nodes' path, then a suffix
    assert oi.stage_name(block, 2, used) == "layer1.0.conv1"
    assert oi.stage_name(block, 2, used) == "layer1.0.conv1_2"
    assert oi.stage_name([node("/features/features.3/Conv")], 3, used) == "features.3"
    assert oi.stage_name([node(""), node("", "Relu")], 4, used) == "conv"
    assert oi.stage_name([node("1bad name")], 5, used) == "s1bad_name"


def _groups(w, sizes):
    out, pos = [], 0
    for s in sizes:
        out.append(w[pos:pos + s])
        pos += s
    return out


# --- MatMul: MLP, batched, two activations -------------------------------------------------------

def test_mlp(tmp_path):
    r = oi.import_onnx(mlp(tmp_path), batch=4)
    n = 4
    assert [s.name for s in r.stages] == ["mm1", "mm2", "loss"]
    s1, s2 = r.stages[0], r.stages[1]
    assert s1.fwd_flops == 2 * n * 16 * 32 + n * 32 + n * 32
    assert s1.bwd_flops == 2 * n * 16 * 32 + n * 32 + n * 32   # no input grad for a_0
    assert s1.out_bytes == s1.saved_bytes == n * 32 * F32     # Relu's output; Add keeps nothing
    assert s1.param_bytes == (16 * 32 + 32) * F32
    assert s2.fwd_flops == 2 * n * 32 * 8 + n * 8
    assert s2.bwd_flops == 2 * (2 * n * 32 * 8) + n * 8
    assert s2.saved_bytes == s2.out_bytes == n * 8 * F32


def test_batched_matmul_of_two_activations(tmp_path):
    n, t, d = 2, 5, 6
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="proj"),
        helper.make_node("Transpose", ["q"], ["qt"], name="tr", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "qt"], ["sc"], name="scores"),
        helper.make_node("Softmax", ["sc"], ["p"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["p", "q"], ["y"], name="mix"),
    ]
    g = helper.make_graph(nodes, "att", [_inp("x", ["N", t, d])], [_inp("y", ["N", t, d])],
                          [_init("wq", (d, d))])
    p = _save(tmp_path, g, "att")
    assert len(oi.import_onnx(p, batch=n).stages) == 3  # q alone crosses after the projection
    r = oi.import_onnx(p, batch=n, stages=1)
    assert len(r.stages) == 2
    s = r.stages[0]
    proj, scores, mix = 2 * n * t * d * d, 2 * n * t * t * d, 2 * n * t * d * t
    assert s.fwd_flops == proj + scores + 5 * n * t * t + mix
    assert s.bwd_flops == proj + 2 * scores + 5 * n * t * t + 2 * mix
    # q (and its transposed view: one storage), the softmax output p, and the output y
    assert s.saved_bytes == (n * t * d + n * t * t + n * t * d) * F32
    assert s.out_bytes == n * t * d * F32


# --- ops that cannot be costed are reported ------------------------------------------------------

def _with_einsum(nodes, inits):
    nodes = nodes[:3] + [helper.make_node("Einsum", ["hr", "we"], ["e"], name="ein",
                                          equation="bi,ij->bj"),
                         helper.make_node("MatMul", ["e", "w2"], ["o"], name="mm2"), nodes[4]]
    return nodes, inits + [_init("we", (32, 32))]


def _with_custom(nodes, inits):
    nodes = nodes[:3] + [helper.make_node("Fancy", ["hr"], ["fz"], name="fancy",
                                          domain="com.example"),
                         helper.make_node("MatMul", ["fz", "w2"], ["o"], name="mm2"), nodes[4]]
    return nodes, inits


def test_einsum_reported_not_zero(tmp_path):
    r = oi.import_onnx(mlp(tmp_path, _with_einsum), batch=4, stages="nodes")
    assert [(u.op, u.node) for u in r.uncosted] == [("Einsum", "ein")]
    st = next(s for s in r.stages if s.uncosted)
    assert st.name == "ein" and st.fwd_flops == 0
    assert st.out_bytes == 4 * 32 * F32                         # shape inference knows Einsum
    assert st.saved_bytes == st.out_bytes                        # keeps its inputs: stage input
    text = oi.to_yaml(r, command="test")
    assert "# NOT COSTED (FLOPs below exclude them): Einsum 'ein'" in text
    assert "NOT COSTED (1 ops: Einsum x1)" in text.replace("\n  ", " ")


def test_custom_domain_op_reported_and_shape_assumed(tmp_path):
    r = oi.import_onnx(mlp(tmp_path, _with_custom, domains=("com.example",)), batch=4)
    assert [(u.op, u.node) for u in r.uncosted] == [("com.example::Fancy", "fancy")]
    assert any("assumed equal to the first input" in x for x in r.notes)
    # the custom op follows the Relu in the first stage; its output has the Relu's shape
    s1 = r.stages[0]
    assert s1.out_bytes == 4 * 32 * F32 and s1.uncosted
    assert r.stages[1].fwd_flops == 2 * 4 * 32 * 8 + 4 * 8


# --- the command line ----------------------------------------------------------------------------

def _cli(args):
    from click.testing import CliRunner

    from edgeplan.cli import main
    return CliRunner().invoke(main, args)


def test_cli_writes_a_file_that_loads_and_solves(tmp_path):
    from edgeplan.formats.model_file import load_model
    src = resnet(tmp_path)
    out = tmp_path / "resnet.yaml"
    res = _cli(["import", "onnx", str(src), "--batch", "2", "--optimizer", "adam", "-o",
                str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    first = text.splitlines()[0]
    assert first == (f"# produced by: edgeplan import onnx {src} --batch 2 --optimizer adam "
                     f"-o {out}")
    data = yaml.safe_load(text)
    assert data["batch"] == 2 and data["optimizer"] == "adam" and data["precision"] == "fp32"
    assert data["input"] == {"shape": [C, HW, HW], "dtype": "float32"}
    assert "cross-entropy" in data["derivation"] and "articulation" in data["derivation"]
    assert data["stages"][-1]["name"] == "loss" and data["stages"][-1]["out"] == 4
    m = load_model(out)
    assert m.length == 5 and m.input_bytes == 2 * C * HW * HW * F32
    assert m.param_bytes == (5 * C * C * 9 + 10 * C) * F32
    solved = _cli(["solve", str(out), "--memory", "1GiB", "--device", "rpi-4-4gb"])
    assert solved.exit_code == 0, solved.output


def test_cli_reports_uncosted_ops_on_stderr(tmp_path):
    src = mlp(tmp_path, _with_einsum)
    out = tmp_path / "m.yaml"
    res = _cli(["import", "onnx", str(src), "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "warning: 1 op(s) could not be costed (Einsum x1)" in res.stderr
    from edgeplan.formats.model_file import load_model
    assert load_model(out).length == 4  # mm1+add+relu | einsum | mm2+add | loss


def test_cli_stdout_and_stage_modes(tmp_path):
    src = cnn(tmp_path)
    res = _cli(["import", "onnx", str(src), "--stages", "nodes", "-q"])
    assert res.exit_code == 0, res.output
    assert len(yaml.safe_load(res.stdout)["stages"]) == 7
    res = _cli(["import", "onnx", str(src), "--stages", "2", "-q"])
    assert len(yaml.safe_load(res.stdout)["stages"]) == 3
    assert "--stages 2" in res.stdout.splitlines()[0]
    # one stage per node, a 0-FLOP Flatten among them: still a valid, solvable file
    out = tmp_path / "nodes.yaml"
    res = _cli(["import", "onnx", str(src), "--batch", "4", "--stages", "nodes", "--tuple-cuts",
                "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "--stages nodes --tuple-cuts" in out.read_text().splitlines()[0]
    solved = _cli(["solve", str(out), "--memory", "1GiB", "--device", "rpi-4-4gb"])
    assert solved.exit_code == 0, solved.output


@pytest.mark.parametrize("case", ["missing", "not_onnx", "empty", "bad_stages", "bad_dim",
                                  "fixed_batch", "directory"])
def test_cli_bad_input_exit_2_one_line(tmp_path, case):
    args = ["import", "onnx"]
    if case == "missing":
        args.append(str(tmp_path / "nope.onnx"))
    elif case == "not_onnx":
        p = tmp_path / "model.yaml"
        p.write_text("format: 1\nname: x\n")
        args.append(str(p))
    elif case == "empty":
        p = tmp_path / "empty.onnx"
        p.write_bytes(b"")
        args.append(str(p))
    elif case == "bad_stages":
        args += [str(cnn(tmp_path)), "--stages", "many"]
    elif case == "bad_dim":
        args += [str(cnn(tmp_path)), "--dim", "seq=128"]
    elif case == "fixed_batch":
        g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [_inp("x", [3, 4])], [_inp("y", [3, 4])])
        args += [str(_save(tmp_path, g, "fixed")), "--batch", "8"]
    else:
        args.append(str(tmp_path))
    res = _cli(args)
    assert res.exit_code == 2, (case, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeplan: error: "), res.stderr
    assert "Traceback" not in res.output


def test_symbolic_dims(tmp_path):
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                          [_inp("x", ["batch", "seq", 8])], [_inp("y", ["batch", "seq", 4])],
                          [_init("w", (8, 4))])
    p = _save(tmp_path, g, "seq")
    with pytest.raises(oi.InputError, match="--dim seq=N"):
        oi.import_onnx(p, batch=2)
    r = oi.import_onnx(p, batch=2, dims={"seq": 16})
    assert r.stages[0].fwd_flops == 2 * 2 * 16 * 4 * 8
    assert r.input_shape == (16, 8) and r.dims == {"seq": 16}
    assert "seq=16" in oi.derivation_text(r)


def test_fixed_batch_is_used(tmp_path):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g",
                          [_inp("x", [3, 4])], [_inp("y", [3, 4])])
    r = oi.import_onnx(_save(tmp_path, g, "fixed"))
    assert r.batch == 3 and r.input_bytes == 12 * F32
    assert r.stages[0].bwd_flops == 0  # nothing needs a gradient


def test_multiple_inputs_written_as_bytes(tmp_path):
    g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["s"], name="add"),
                           helper.make_node("MatMul", ["s", "w"], ["y"], name="mm")], "g",
                          [_inp("a", ["N", 8]), _inp("b", ["N", 8], FLOAT)],
                          [_inp("y", ["N", 2])], [_init("w", (8, 2))])
    r = oi.import_onnx(_save(tmp_path, g, "two"), batch=3)
    assert r.input_bytes == 2 * 3 * 8 * F32 and r.input_shape is None
    text = oi.to_yaml(r)
    assert f"input: {2 * 3 * 8 * F32}" in text
    from edgeplan.formats.model_file import load_model
    p = tmp_path / "two.yaml"
    p.write_text(text)
    assert load_model(p).input_bytes == 2 * 3 * 8 * F32


def test_graph_with_its_own_loss_gets_no_loss_stage(tmp_path):
    n, k = 4, 10
    nodes = [helper.make_node("Gemm", ["x", "w"], ["logits"], name="fc", transB=1),
             helper.make_node("SoftmaxCrossEntropyLoss", ["logits", "labels"], ["loss"],
                              name="ce", reduction="mean")]
    g = helper.make_graph(nodes, "g", [_inp("x", ["N", 6]), _inp("labels", ["N"],
                                                                 TensorProto.INT64)],
                          [_inp("loss", [])], [_init("w", (k, 6))])
    r = oi.import_onnx(_save(tmp_path, g, "withloss"), batch=n, stages="nodes")
    assert [s.name for s in r.stages] == ["fc", "ce"] and not r.loss_added
    assert r.input_bytes == n * 6 * F32 + n * 8 and r.input_shape is None
    ce = r.stages[-1]
    assert ce.out_bytes == 4 and ce.fwd_flops == 4 * n * k
    assert ce.saved_bytes == n * k * F32 + 4                   # log-probabilities + the loss
    assert "no loss stage was added" in oi.derivation_text(r).replace("\n", " ")


def test_shape_metadata_does_not_block_cuts(tmp_path):
    # Shape(x) is computed first and used by a Reshape at the end: it is live across every
    # position, but it is shape metadata, not an activation, so the chain is still cut.
    nodes = [helper.make_node("Shape", ["x"], ["shp"], name="shape"),
             helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
             helper.make_node("Relu", ["h"], ["hr"], name="relu"),
             helper.make_node("MatMul", ["hr", "w2"], ["o"], name="mm2"),
             helper.make_node("Reshape", ["o", "shp"], ["y"], name="reshape")]
    g = helper.make_graph(nodes, "g", [_inp("x", ["N", 8])], [_inp("y", ["N", 8])],
                          [_init("w1", (8, 16)), _init("w2", (16, 8))])
    r = oi.import_onnx(_save(tmp_path, g, "meta"), batch=2, stages="nodes")
    assert [s.name for s in r.stages] == ["mm1", "relu", "mm2", "reshape", "loss"]
    assert r.stages[0].nodes == ["shape", "mm1"]
    assert r.stages[3].fwd_flops == 0 and r.stages[3].out_bytes == 2 * 8 * F32
    assert not r.uncosted


def _rnn(tmp_path, steps=3, n=2, h=8):
    """x[N,h] -> (h0, c0); each step: h' = Tanh(h W + c U), c' = Sigmoid(c V); y = h_T W_out.
    The state is two tensors: no single-tensor cut inside the recurrence."""
    nodes = [helper.make_node("MatMul", ["x", "wh"], ["h0"], name="init_h"),
             helper.make_node("MatMul", ["x", "wc"], ["c0"], name="init_c")]
    for t in range(1, steps + 1):
        p = f"s{t}_"
        nodes += [
            helper.make_node("MatMul", [f"h{t - 1}", "w"], [p + "a"], name=p + "mm_h"),
            helper.make_node("MatMul", [f"c{t - 1}", "u"], [p + "b"], name=p + "mm_c"),
            helper.make_node("Add", [p + "a", p + "b"], [p + "s"], name=p + "add"),
            helper.make_node("Tanh", [p + "s"], [f"h{t}"], name=p + "tanh"),
            helper.make_node("MatMul", [f"c{t - 1}", "v"], [p + "d"], name=p + "mm_v"),
            helper.make_node("Sigmoid", [p + "d"], [f"c{t}"], name=p + "sigmoid"),
        ]
    nodes.append(helper.make_node("MatMul", [f"h{steps}", "wo"], ["y"], name="out"))
    inits = [_init(k, (h, h)) for k in ("wh", "wc", "w", "u", "v")] + [_init("wo", (h, 4))]
    g = helper.make_graph(nodes, "rnn", [_inp("x", ["N", h])], [_inp("y", ["N", 4])], inits)
    return _save(tmp_path, g, "rnn")


def _check_chain(path, r):
    """Each stage reads only a_0, constants and what the stage before it produced (a_{i-1})."""
    m = onnx.load(str(path))
    made = {o: n.name for n in m.graph.node for o in n.output}
    stage_of = {name: i for i, s in enumerate(r.stages) for name in s.nodes}
    for n in m.graph.node:
        i = stage_of[n.name]
        for t in n.input:
            if t in made and stage_of[made[t]] != i:
                assert stage_of[made[t]] == i - 1 and t in r.stages[i - 1].out_tensors, (n.name, t)


def test_tuple_cuts_split_an_unrolled_recurrence(tmp_path):
    p, n, h = _rnn(tmp_path), 2, 8
    single = oi.import_onnx(p, batch=n, stages="nodes")
    # the state (h, c) is two tensors: no single-tensor cut inside the recurrence
    assert [s.name for s in single.stages] == ["init_h", "init_c", "out", "loss"]
    assert len(single.stages[1].nodes) == 1 + 3 * 6
    tup = oi.import_onnx(p, batch=n, stages="nodes", tuple_cuts=True)
    assert len(tup.stages) >= 3 + 3  # at least one cut per step
    for r in (single, tup):
        _check_chain(p, r)
    for s in tup.stages[:-2]:
        assert s.out_bytes == len(s.out_tensors) * n * h * F32 and s.saved_bytes >= s.out_bytes
    assert max(len(s.out_tensors) for s in tup.stages) == 2
    assert sum(s.fwd_flops for s in tup.stages) == sum(s.fwd_flops for s in single.stages)
    assert sum(s.param_bytes for s in tup.stages) == sum(s.param_bytes for s in single.stages)
    assert "--tuple-cuts" in oi.derivation_text(tup)


def test_every_stage_reads_only_the_previous_stage(tmp_path):
    for build in (cnn, resnet, mlp):
        p = build(tmp_path)
        for mode in ("nodes", "auto", 2):
            _check_chain(p, oi.import_onnx(p, batch=2, stages=mode))


def test_tuple_cuts_keep_residual_blocks_whole(tmp_path):
    r = oi.import_onnx(resnet(tmp_path), batch=2, stages="nodes", tuple_cuts=True)
    for p in ("b1_", "b2_"):
        holders = [s for s in r.stages if _block_nodes(p) & set(s.nodes)]
        assert len(holders) == 1 and set(holders[0].nodes) == _block_nodes(p)
