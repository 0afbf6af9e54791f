"""Models as people write them (plain ``nn.Module`` with residuals, skips, dict inputs), for the
graph-capture path: ``edgeplan import torch edgeplan.importers.nets:resnet18`` needs no
restructuring. No weights are downloaded: every model starts from PyTorch's default
initialisation.

* :func:`resnet18` -- the torchvision layout (``conv1, bn1, relu, maxpool, layer1..4, avgpool,
  fc``) with ``BasicBlock`` residuals;
* :func:`unet` -- a U-Net with long skip connections (concatenated in the decoder);
* :func:`bert_encoder` -- a BERT-style encoder taking ``input_ids`` and ``attention_mask`` (the
  extended mask is computed once and used by every layer), returning a dict of logits;
* :func:`vit` -- a small Vision Transformer (patch embedding, class token, encoder, head).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "ResNet", "UNet", "BertEncoder", "ViT", "resnet18", "unet",
           "bert_encoder", "vit"]


# --- ResNet (torchvision layout) -----------------------------------------------------------------

class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2), num_classes: int = 1000,
                 width: int = 64):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(width, layers[0])
        self.layer2 = self._layer(width * 2, layers[1], 2)
        self.layer3 = self._layer(width * 4, layers[2], 2)
        self.layer4 = self._layer(width * 8, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8, num_classes)

    def _layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        mods = [BasicBlock(self.inplanes, planes, stride)]
        self.inplanes = planes
        mods += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes: int = 1000, width: int = 64) -> ResNet:
    """ResNet-18 (He et al. 2016) in torchvision's layout; ``width`` 64 is the real model."""
    return ResNet((2, 2, 2, 2), num_classes=num_classes, width=width)


# --- U-Net ---------------------------------------------------------------------------------------

def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Ronneberger et al. 2015, with padding (output size = input size) and batch norm."""

    def __init__(self, in_channels: int = 3, classes: int = 2, width: int = 16, depth: int = 3):
        super().__init__()
        chans = [width * 2**i for i in range(depth + 1)]
        self.inc = _double_conv(in_channels, chans[0])
        self.downs = nn.ModuleList(_double_conv(chans[i], chans[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2)
                                 for i in reversed(range(depth)))
        self.dec = nn.ModuleList(_double_conv(2 * chans[i], chans[i])
                                 for i in reversed(range(depth)))
        self.outc = nn.Conv2d(chans[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for up, dec in zip(self.ups, self.dec):
            x = dec(torch.cat([skips.pop(), up(x)], dim=1))
        return self.outc(x)


def unet(classes: int = 2, width: int = 16, depth: int = 3) -> UNet:
    """A U-Net for segmentation (per-pixel class logits)."""
    return UNet(classes=classes, width=width, depth=depth)


# --- Transformers --------------------------------------------------------------------------------

class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        if mask is not None:
            att = att + mask
        att = self.drop(att.softmax(dim=-1))
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.pre_norm = pre_norm
        self.ln1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.pre_norm:  # ViT
            x = x + self.attn(self.ln1(x), mask)
            return x + self.mlp(self.ln2(x))
        x = self.ln1(x + self.attn(x, mask))  # BERT (post-norm)
        return self.ln2(x + self.mlp(x))


class BertEncoder(nn.Module):
    """BERT-style: token + position embeddings, post-norm layers, a [CLS] classifier."""

    def __init__(self, vocab: int = 30522, dim: int = 768, layers: int = 12, heads: int = 12,
                 max_len: int = 512, classes: int = 2, dropout: float = 0.1):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(max_len, dim)
        self.ln = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(_Block(dim, heads, 4 * dim, dropout, pre_norm=False)
                                    for _ in range(layers))
        self.cls = nn.Linear(dim, classes)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        t = input_ids.shape[1]
        pos = torch.arange(t, device=input_ids.device)
        x = self.drop(self.ln(self.tok(input_ids) + self.pos(pos)))
        ext = None
        if attention_mask is not None:  # computed once, used by every layer
            ext = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, ext)
        return {"logits": self.cls(x[:, 0]), "hidden": x}


def bert_encoder(vocab: int = 30522, dim: int = 768, layers: int = 12, heads: int = 12,
                 classes: int = 2) -> BertEncoder:
    """BERT-base shaped by default (110 M parameters with its embeddings); smaller by argument."""
    return BertEncoder(vocab=vocab, dim=dim, layers=layers, heads=heads, classes=classes)


class ViT(nn.Module):
    """Dosovitskiy et al. 2021: patches, a class token, pre-norm encoder, a linear head."""

    def __init__(self, image: int = 224, patch: int = 16, dim: int = 384, layers: int = 12,
                 heads: int = 6, classes: int = 1000, dropout: float = 0.0):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        n = (image // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[_Block(dim, heads, 4 * dim, dropout, pre_norm=True)
                                      for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def vit(image: int = 224, patch: int = 16, dim: int = 384, layers: int = 12, heads: int = 6,
        classes: int = 1000) -> ViT:
    """ViT-Small/16 by default (22 M parameters); smaller by argument."""
    return ViT(image=image, patch=patch, dim=dim, layers=layers, heads=heads, classes=classes)
