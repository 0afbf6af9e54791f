"""Reference architectures, written here, as chains of stages for the torch importer.

Every builder returns an ``nn.Sequential`` whose top-level children are the stages of the chain
(the loss is part of the last stage, a ``LossHead`` computing cross-entropy against a fixed
target). Layouts follow the well-known definitions so parameter counts match the published ones;
no weights are downloaded (random initialisation; only shapes matter to the importer).

=====================  =======================================  ============  =========
builder                layout                                   parameters    stages
=====================  =======================================  ============  =========
``resnet18``           torchvision ResNet-18                    11,689,512    10
``resnet50``           torchvision ResNet-50 (v1.5)             25,557,032    18
``mobilenetv2``        torchvision MobileNetV2 (width 1.0)      3,504,872     20
``vgg16``              torchvision VGG-16 (no batch norm)       138,357,544   16
``bert_base_encoder``  BERT-base (HF BertModel + 2-way head)    109,483,778   14
``gpt2_small``         GPT-2 small (HF GPT2LMHeadModel, tied)   124,439,808   14
``lstm_unrolled``      1-layer LSTM, one stage per time step    5,261,322     steps + 1
=====================  =======================================  ============  =========

Input shapes for ``edgeplan import torch`` (per sample): images ``3x224x224``; BERT ``128`` and
GPT-2 ``256`` token ids (``--input-dtype int64``); the LSTM ``64x256`` (steps x features).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LossHead", "resnet18", "resnet50", "mobilenetv2", "vgg16", "bert_base_encoder",
           "gpt2_small", "lstm_unrolled"]


class LossHead(nn.Module):
    """Cross-entropy of ``logits`` (``[..., classes]``) against a fixed target.

    The target is ``arange(N) % classes`` over the N = prod(leading dims) rows, made on the fly
    so it follows the batch size; the output is the scalar loss (the chain's ``a_L``).
    """

    def __init__(self, classes: int):
        super().__init__()
        self.classes = classes

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        flat = logits.reshape(-1, logits.shape[-1])
        target = torch.arange(flat.shape[0], device=flat.device) % self.classes
        return F.cross_entropy(flat, target)


# --- ResNet (torchvision layout) --------------------------------------------------------------

def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(_conv1x1(inplanes, planes, stride),
                                            nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        width = planes
        self.conv1 = _conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)  # v1.5: stride on the 3x3
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(_conv1x1(inplanes, planes * 4, stride),
                                            nn.BatchNorm2d(planes * 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


class _ClassifierHead(nn.Module):
    """Global average pool, flatten, fully connected, cross-entropy."""

    def __init__(self, features: int, classes: int, dropout: float = 0.0):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(features, classes)
        self.loss = LossHead(classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.loss(self.fc(self.dropout(torch.flatten(self.pool(x), 1))))


def _resnet(block: type, layers: list[int], classes: int = 1000) -> nn.Sequential:
    stages: list[tuple[str, nn.Module]] = [("stem", nn.Sequential(
        nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64),
        nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1)))]
    inplanes = 64
    for li, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for bi in range(n):
            stride = 2 if (li > 1 and bi == 0) else 1
            stages.append((f"layer{li}_{bi}", block(inplanes, planes, stride)))
            inplanes = planes * block.expansion
    stages.append(("head", _ClassifierHead(inplanes, classes)))
    return nn.Sequential(OrderedDict(stages))


def resnet18(classes: int = 1000) -> nn.Sequential:
    """ResNet-18 (torchvision layout): stem, 8 BasicBlocks, pool+fc+loss."""
    return _resnet(BasicBlock, [2, 2, 2, 2], classes)


def resnet50(classes: int = 1000) -> nn.Sequential:
    """ResNet-50 (torchvision layout, v1.5): stem, 16 Bottlenecks, pool+fc+loss."""
    return _resnet(Bottleneck, [3, 4, 6, 3], classes)


# --- MobileNetV2 (torchvision layout) ---------------------------------------------------------

def _conv_bn_relu6(cin: int, cout: int, kernel: int = 3, stride: int = 1,
                   groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups,
                                   bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu6(inp, hidden, kernel=1))
        layers += [_conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


def mobilenetv2(classes: int = 1000, width: float = 1.0) -> nn.Sequential:
    """MobileNetV2 (torchvision layout): stem, 17 inverted residuals, 1x1 conv, pool+fc+loss."""
    setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
               [6, 160, 3, 2], [6, 320, 1, 1]]
    cin = _make_divisible(32 * width)
    last = _make_divisible(1280 * max(1.0, width))
    stages: list[tuple[str, nn.Module]] = [("stem", _conv_bn_relu6(3, cin, stride=2))]
    k = 0
    for t, c, n, s in setting:
        cout = _make_divisible(c * width)
        for i in range(n):
            k += 1
            stages.append((f"block{k}", InvertedResidual(cin, cout, s if i == 0 else 1, t)))
            cin = cout
    stages.append(("conv_last", _conv_bn_relu6(cin, last, kernel=1)))
    stages.append(("head", _ClassifierHead(last, classes, dropout=0.2)))
    return nn.Sequential(OrderedDict(stages))


# --- VGG-16 (torchvision layout, configuration D, no batch norm) --------------------------------

class _Flatten7(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((7, 7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(x), 1)


def vgg16(classes: int = 1000) -> nn.Sequential:
    """VGG-16 (torchvision layout, no batch norm): 13 conv(+ReLU, +max-pool) stages, 3 fc stages."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    stages: list[tuple[str, nn.Module]] = []
    cin = 3
    k = 0
    for j, v in enumerate(cfg):
        if v == "M":
            continue
        k += 1
        mods: list[nn.Module] = [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=True)]
        if j + 1 < len(cfg) and cfg[j + 1] == "M":
            mods.append(nn.MaxPool2d(2, 2))
        stages.append((f"conv{k}", nn.Sequential(*mods)))
        cin = int(v)
    stages.append(("fc1", nn.Sequential(_Flatten7(), nn.Linear(512 * 7 * 7, 4096),
                                        nn.ReLU(inplace=True), nn.Dropout(0.5))))
    stages.append(("fc2", nn.Sequential(nn.Linear(4096, 4096), nn.ReLU(inplace=True),
                                        nn.Dropout(0.5))))
    stages.append(("fc3", nn.Sequential(nn.Linear(4096, classes), LossHead(classes))))
    return nn.Sequential(OrderedDict(stages))


# --- Transformers (eager attention: explicit softmax(QK^T)V, as in HF "eager") -------------------

def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout: nn.Module,
               causal: bool) -> torch.Tensor:
    """q, k, v: [B, heads, S, d] -> [B, heads, S, d]."""
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if causal:
        s = q.shape[-2]
        mask = torch.ones(s, s, dtype=torch.bool, device=q.device).tril()
        scores = torch.where(mask, scores, torch.finfo(scores.dtype).min)
    probs = dropout(torch.softmax(scores, dim=-1))
    return torch.matmul(probs, v)


class BertEmbeddings(nn.Module):
    def __init__(self, vocab: int = 30522, hidden: int = 768, max_pos: int = 512,
                 type_vocab: int = 2, dropout: float = 0.1):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden)
        self.position = nn.Embedding(max_pos, hidden)
        self.token_type = nn.Embedding(type_vocab, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.word(ids) + self.position(pos) + self.token_type(torch.zeros_like(ids))
        return self.dropout(self.norm(x))


class BertLayer(nn.Module):
    def __init__(self, hidden: int = 768, heads: int = 12, ffn: int = 3072, dropout: float = 0.1):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_dropout = nn.Dropout(dropout)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_out_dropout = nn.Dropout(dropout)
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, ffn)
        self.output = nn.Linear(ffn, hidden)
        self.out_dropout = nn.Dropout(dropout)
        self.out_norm = nn.LayerNorm(hidden, eps=1e-12)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        return x.view(b, s, self.heads, h // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        ctx = _attention(self._split(self.query(x)), self._split(self.key(x)),
                         self._split(self.value(x)), self.attn_dropout, causal=False)
        ctx = ctx.transpose(1, 2).reshape(b, s, h)
        x = self.attn_norm(x + self.attn_out_dropout(self.attn_out(ctx)))
        y = self.out_dropout(self.output(F.gelu(self.intermediate(x))))
        return self.out_norm(x + y)


class BertClassifierHead(nn.Module):
    """Pooler (first token, dense + tanh), dropout, classifier, cross-entropy."""

    def __init__(self, hidden: int = 768, classes: int = 2, dropout: float = 0.1):
        super().__init__()
        self.pooler = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, classes)
        self.loss = LossHead(classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.tanh(self.pooler(x[:, 0]))
        return self.loss(self.classifier(self.dropout(pooled)))


def bert_base_encoder(layers: int = 12, hidden: int = 768, heads: int = 12, ffn: int = 3072,
                      vocab: int = 30522, classes: int = 2) -> nn.Sequential:
    """BERT-base encoder (12 layers, hidden 768, 12 heads) with a pooler and a 2-way classifier."""
    stages: list[tuple[str, nn.Module]] = [("embeddings", BertEmbeddings(vocab, hidden))]
    stages += [(f"layer{i + 1}", BertLayer(hidden, heads, ffn)) for i in range(layers)]
    stages.append(("head", BertClassifierHead(hidden, classes)))
    return nn.Sequential(OrderedDict(stages))


class GPT2Embeddings(nn.Module):
    def __init__(self, vocab: int = 50257, hidden: int = 768, positions: int = 1024,
                 dropout: float = 0.1):
        super().__init__()
        self.wte = nn.Embedding(vocab, hidden)
        self.wpe = nn.Embedding(positions, hidden)
        # GPT-2's initialisation (std 0.02), not nn.Embedding's N(0, 1): with the LM head tied to
        # wte, unit-variance embeddings give logits of std ~27, whose softmax underflows into
        # denormal floats and runs 2.3x slower on x86 (measured: log-softmax of 256 x 50257
        # logits 92 ms against 41 ms), a cost no trained model pays
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.02)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        return self.dropout(self.wte(ids) + self.wpe(pos))


class GPT2Block(nn.Module):
    def __init__(self, hidden: int = 768, heads: int = 12, dropout: float = 0.1):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(hidden)
        self.c_attn = nn.Linear(hidden, 3 * hidden)
        self.attn_dropout = nn.Dropout(dropout)
        self.attn_proj = nn.Linear(hidden, hidden)
        self.resid_dropout1 = nn.Dropout(dropout)
        self.ln_2 = nn.LayerNorm(hidden)
        self.c_fc = nn.Linear(hidden, 4 * hidden)
        self.mlp_proj = nn.Linear(4 * hidden, hidden)
        self.resid_dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(h, dim=2)
        q, k, v = (t.view(b, s, self.heads, h // self.heads).transpose(1, 2) for t in (q, k, v))
        ctx = _attention(q, k, v, self.attn_dropout, causal=True).transpose(1, 2).reshape(b, s, h)
        x = x + self.resid_dropout1(self.attn_proj(ctx))
        y = self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        return x + self.resid_dropout2(y)


class GPT2LMHead(nn.Module):
    """Final layer norm, LM head tied to the token embedding, cross-entropy over the vocabulary."""

    def __init__(self, wte: nn.Embedding, hidden: int = 768):
        super().__init__()
        self.ln_f = nn.LayerNorm(hidden)
        self.wte = wte  # shared with the embedding stage (weight tying)
        self.loss = LossHead(wte.num_embeddings)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.loss(F.linear(self.ln_f(x), self.wte.weight))


def gpt2_small(layers: int = 12, hidden: int = 768, heads: int = 12, vocab: int = 50257,
               positions: int = 1024) -> nn.Sequential:
    """GPT-2 small decoder (12 layers, hidden 768, 12 heads, tied LM head) with the LM loss."""
    emb = GPT2Embeddings(vocab, hidden, positions)
    stages: list[tuple[str, nn.Module]] = [("embeddings", emb)]
    stages += [(f"block{i + 1}", GPT2Block(hidden, heads)) for i in range(layers)]
    stages.append(("head", GPT2LMHead(emb.wte, hidden)))
    return nn.Sequential(OrderedDict(stages))


# --- LSTM unrolled over time --------------------------------------------------------------------

class LSTMStep(nn.Module):
    """Time step ``t`` of an LSTM: ``xs`` -> ``(xs, h, c)`` (first step) or
    ``(xs, h, c)`` -> ``(xs, h', c')``. ``xs`` is the input batch ``[B, steps, features]``
    passed through unchanged (it aliases ``a_0``, so the importer does not count it again)."""

    def __init__(self, cell: nn.LSTMCell, t: int):
        super().__init__()
        self.cell = cell  # the same cell in every step (shared weights)
        self.t = t

    def forward(self, state):
        if isinstance(state, torch.Tensor):
            xs, hc = state, None
        else:
            xs, h, c = state
            hc = (h, c)
        h, c = self.cell(xs[:, self.t], hc)
        return (xs, h, c)


class LSTMClassifierHead(nn.Module):
    def __init__(self, hidden: int, classes: int):
        super().__init__()
        self.fc = nn.Linear(hidden, classes)
        self.loss = LossHead(classes)

    def forward(self, state) -> torch.Tensor:
        _, h, _ = state
        return self.loss(self.fc(h))


def lstm_unrolled(steps: int = 64, features: int = 256, hidden: int = 1024,
                  classes: int = 10) -> nn.Sequential:
    """LSTM (1 layer) unrolled over time, one stage per time step, classifier on the last state."""
    cell = nn.LSTMCell(features, hidden)
    stages: list[tuple[str, nn.Module]] = [(f"step{t + 1}", LSTMStep(cell, t))
                                           for t in range(steps)]
    stages.append(("head", LSTMClassifierHead(hidden, classes)))
    return nn.Sequential(OrderedDict(stages))
