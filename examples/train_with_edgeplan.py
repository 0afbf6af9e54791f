"""Your model, a plan, your training loop: train a residual CNN with an edgeplan schedule.

    python examples/train_with_edgeplan.py [--steps 30] [--fraction 0.3]

1. ``ResidualNet`` is a plain ``nn.Module`` with residual connections that returns logits.
2. ``edgeplan.torch.fit(model, batch, memory=...)`` captures it with torch.fx, cuts it into
   stages, measures them on one batch, plans the optimal checkpointing schedule for the
   memory and returns a wrapper with the model's parameters.
3. The training loop is the usual one: ``loss = F.cross_entropy(wrapped(x), y)``,
   ``loss.backward()``, ``opt.step()``; the wrapper's backward runs the schedule (recomputing
   what it dropped) and the gradients are plain autograd's. Under ``torch.no_grad()`` or in
   ``eval()`` it is the plain model.

``small_cnn_with_loss`` is the same network with a fixed-target loss head, for the command line:

    edgeplan import torch examples/train_with_edgeplan.py:small_cnn_with_loss \\
        --input-shape 3x32x32 --batch 16 --time -o cnn.yaml
    edgeplan solve cnn.yaml --memory 12MiB -o plan.json
    edgeplan run examples/train_with_edgeplan.py:small_cnn_with_loss --plan plan.json
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

import edgeplan.torch as ept
from edgeplan.units import format_size

CLASSES = 10


def _block(ci: int, co: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(ci, co, 3, stride, 1, bias=False), nn.BatchNorm2d(co),
                         nn.ReLU(), nn.Dropout(0.05))


class Classifier(nn.Module):
    def __init__(self, features: int, classes: int):
        super().__init__()
        self.fc = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def small_cnn(classes: int = CLASSES) -> nn.Sequential:
    """Seven stages: six conv-BN-ReLU-dropout blocks and a pooled linear classifier (logits)."""
    return nn.Sequential(_block(3, 16), _block(16, 16), _block(16, 32, 2), _block(32, 32),
                         _block(32, 64, 2), _block(64, 64), Classifier(64, classes))


class FixedTargetLoss(nn.Module):
    """Cross-entropy against ``arange(N) % classes`` (a stand-in target for measuring)."""

    def __init__(self, head: nn.Module, classes: int):
        super().__init__()
        self.head = head
        self.classes = classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(x)
        target = torch.arange(logits.shape[0], device=logits.device) % self.classes
        return F.cross_entropy(logits, target)


def small_cnn_with_loss(classes: int = CLASSES) -> nn.Sequential:
    """``small_cnn`` whose last stage returns the loss (for `edgeplan import` / `edgeplan run`)."""
    m = small_cnn(classes)
    m[-1] = FixedTargetLoss(m[-1], classes)
    return m


def synthetic_data(n: int, batch: int, seed: int = 0):
    """Noise images plus a per-class colour offset: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.randn(CLASSES, 3, 1, 1, generator=g)
    for _ in range(n):
        y = torch.randint(0, CLASSES, (batch,), generator=g)
        x = torch.randn(batch, 3, 32, 32, generator=g) + 1.5 * colours[y]
        yield x, y


class ResidualNet(nn.Module):
    """A plain nn.Module with residual blocks: what people write (no nn.Sequential of stages)."""

    def __init__(self, classes: int = CLASSES):
        super().__init__()
        self.stem = _block(3, 16)
        self.b1, self.b2 = _block(16, 16), _block(16, 16)
        self.down = _block(16, 32, 2)
        self.b3, self.b4 = _block(32, 32), _block(32, 32)
        self.head = Classifier(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.b2(self.b1(x))          # residual
        x = self.down(x)
        x = x + self.b4(self.b3(x))          # residual
        return self.head(x)                  # logits: the loss stays in the training loop


def main(steps: int = 30, batch: int = 16, fraction: float = 0.3, quiet: bool = False
         ) -> list[float]:
    """Train ``ResidualNet`` for ``steps`` steps with a schedule for ``fraction`` of the way from
    the least activation memory to store-all, in a normal PyTorch loop; return the losses."""
    say = (lambda *a: None) if quiet else print
    torch.manual_seed(0)
    model = ResidualNet()
    data = list(synthetic_data(steps, batch))
    x0, _ = data[0]

    # plan: capture the model, measure it on one batch, find the least memory and store-all
    probe = ept.fit(model, x0, memory="1 GiB", optimizer="momentum")
    lo, hi = probe.plan.min_activation_bytes, probe.plan.store_all_peak_bytes
    budget = int(lo + fraction * (hi - lo))
    # wrap for that budget (memory for training = parameters, gradients, momentum + activations)
    wrapped = ept.fit(model, x0, memory=probe.plan.memory.fixed_bytes + budget,
                      optimizer="momentum", measure=True)
    r = wrapped.plan.result
    say(f"{len(wrapped.stage_names)} stages; activations: store-all {format_size(hi)}, least "
        f"{format_size(lo)}, budget {format_size(budget)} -> predicted peak "
        f"{format_size(r.peak_bytes)}, {r.trace.forward_ops - wrapped.plan.chain.length} "
        "recomputed forwards per step")

    # train: the usual loop, unchanged
    opt = torch.optim.SGD(wrapped.parameters(), lr=0.02, momentum=0.9)
    wrapped.train()
    losses: list[float] = []
    for step, (x, y) in enumerate(data):
        loss = F.cross_entropy(wrapped(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step in (0, steps - 1) or step % 10 == 0:
            peak = wrapped.measured_peak_bytes()
            say(f"step {step:3d}  loss {losses[-1]:.4f}  measured activation peak "
                f"{format_size(peak)} (predicted {format_size(r.peak_bytes)}, budget "
                f"{format_size(budget)})")
            assert peak is not None and peak <= budget
    # evaluation: the plain model, no schedule
    with torch.no_grad():
        wrapped.eval()
        acc = sum(int((wrapped(x).argmax(1) == y).sum()) for x, y in data[-3:]) / (3 * batch)
        say(f"accuracy on the last batches: {acc:.0%}")
    return losses


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--fraction", type=float, default=0.3,
                    help="budget: 0 = least memory, 1 = store-all")
    a = ap.parse_args()
    main(a.steps, a.batch, a.fraction)
