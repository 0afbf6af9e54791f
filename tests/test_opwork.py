"""The importer's work per op family (``torchrun.opwork``): hand-counted FLOPs and bytes, the
families, and agreement with torch's own FLOP counter."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from edgeplan.importers import zoo  # noqa: E402
from edgeplan.torchrun.meter import measure_stages  # noqa: E402
from edgeplan.torchrun.opwork import WorkCounter  # noqa: E402
from edgeplan.work import FamilyWork  # noqa: E402


def test_a_linear_layer_by_hand():
    b, i, o = 8, 32, 16
    lin = nn.Linear(i, o)
    x = torch.randn(b, i)
    with WorkCounter() as wc:
        lin(x)
    # addmm(bias, x, W^T): 2 b i o FLOPs; reads bias, x, W, writes the output (fp32)
    moved = 4 * (o + b * i + i * o + b * o)
    assert wc.work().get("matmul") == FamilyWork(1, 2.0 * b * i * o, moved)
    assert wc.work().get("elementwise") is None  # the transpose is a view: no data moved


def test_products_of_a_single_row_or_column_are_the_matvec_family():
    lin = nn.Linear(32, 16)
    one = torch.randn(1, 32, requires_grad=True)
    with WorkCounter() as wc:
        lin(torch.randn(2, 32, requires_grad=True)).backward(torch.ones(2, 16))
    assert wc.work().get("matvec") is None and wc.work().get("matmul").ops == 3
    lin.zero_grad()
    with WorkCounter() as wc:
        lin(one).backward(torch.ones(1, 16))
    # forward: (1, 32) @ W^T; input gradient (1, 16) @ W; weight gradient (16, 1) @ (1, 32)
    assert wc.work().get("matmul") is None and wc.work().get("matvec").ops == 3
    assert wc.work().get("matvec").flops == 3 * 2.0 * 32 * 16
    with WorkCounter() as wc:  # a batch of matrix-vector products; attention-sized bmm is not
        torch.bmm(torch.randn(4, 8, 6), torch.randn(4, 6, 1))
        torch.bmm(torch.randn(4, 8, 6), torch.randn(4, 6, 5))
    assert wc.work().get("matvec").ops == 1 and wc.work().get("matmul").ops == 1


def test_operations_with_large_results_are_counted_apart():
    big = torch.ones(2**23)    # 32 MiB of float32: the result of an add of two is large
    small = torch.ones(2**20)  # 4 MiB
    with WorkCounter(timed=True) as wc:
        big + big
        small + small
        big.add_(big)          # in place: memory it was given, not fresh pages
    w = wc.work().get("elementwise")
    assert w == FamilyWork(3, 0.0, 6 * 2**25 + 3 * 2**22, 3 * 2**25)
    assert [r[5] for r in wc.rows] == [3 * 2**25, 0, 0]


def test_a_parameter_shared_by_stages_adds_its_gradient_accumulation():
    # the same cell in two stages: the earlier stage's backward adds into .grad (AccumulateGrad)
    cell = nn.Linear(64, 64)
    stages = [("a", cell), ("b", nn.Sequential(cell, nn.ReLU()))]
    ms = measure_stages(stages, torch.randn(4, 64), measure_tmp=False)
    pbytes = sum(p.numel() * 4 for p in cell.parameters())
    lone = measure_stages([("a", nn.Linear(64, 64))], torch.randn(4, 64), measure_tmp=False)
    extra = ms[0].bwd_work.get("elementwise")
    base = lone[0].bwd_work.get("elementwise")
    assert extra.ops - (base.ops if base else 0) == 2          # weight and bias
    assert extra.moved_bytes - (base.moved_bytes if base else 0) == 3 * pbytes
    # the last user (its backward runs first) allocates .grad: nothing added
    assert ms[1].bwd_work.get("elementwise").ops == measure_stages(
        [("b", nn.Sequential(nn.Linear(64, 64), nn.ReLU()))], torch.randn(4, 64),
        measure_tmp=False)[0].bwd_work.get("elementwise").ops


def test_families_of_a_small_cnn_and_a_transformer_layer():
    cnn = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1, groups=8),
                        nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.MaxPool2d(2),
                        nn.Dropout(0.5))
    x = torch.randn(2, 8, 8, 8, requires_grad=True)
    with WorkCounter() as wc:
        cnn(x).sum().backward()
    w = wc.work()
    # a grouped convolution with 4 channels per group is a convolution; 1 per group: depthwise
    assert w.get("conv").ops == 4 and w.get("depthwise").ops == 2  # forward + backward each
    assert w.get("norm").ops == 2 and w.get("pool").ops == 2 and w.get("random") is not None
    assert w.get("elementwise").ops > 0
    emb = nn.Embedding(100, 16)
    ids = torch.randint(0, 100, (2, 5))
    with WorkCounter() as wc:
        emb(ids).sum().backward()
    assert wc.work().get("gather").ops == 2  # embedding, its dense backward
    # CPU attention: torch's counter misses it, edgeplan's formula counts 4 b h n n d forward
    q = torch.randn(2, 4, 16, 8, requires_grad=True)
    with WorkCounter() as wc:
        nn.functional.scaled_dot_product_attention(q, q, q)
    assert wc.work().get("matmul").flops == 4 * 2 * 4 * 16 * 16 * 8


@pytest.mark.parametrize("build, shape, dtype", [
    (lambda: zoo.mobilenetv2(classes=10, width=0.5), (3, 32, 32), torch.float32),
    (lambda: zoo.bert_base_encoder(layers=1, hidden=64, heads=2, ffn=128, vocab=50), (16,),
     torch.int64),
])
def test_stage_work_adds_up_to_the_flop_counter(build, shape, dtype):
    torch.manual_seed(0)
    model = build()
    x = torch.randint(0, 50, (2, *shape)) if dtype == torch.int64 else torch.randn(2, *shape)
    for s in measure_stages(list(model.named_children()), x, measure_tmp=False):
        assert s.fwd_work is not None and s.bwd_work is not None
        assert s.fwd_work.flops == s.fwd_flops and s.bwd_work.flops == s.bwd_flops, s.name
        assert s.fwd_work.moved_bytes >= s.out_bytes  # the output was written
