"""Train a small CNN with an edgeplan checkpointing schedule (CPU, synthetic data, seconds).

    python examples/train_with_edgeplan.py [--steps 30] [--fraction 0.3]

1. Build the model as a chain of stages: an ``nn.Sequential`` whose top-level children are the
   stages. The loss is part of the last stage: here ``loss_fn`` + ``target`` (per batch) are
   attached to the last stage by the executor.
2. Measure the chain on one batch (``measure_chain``: sizes via the torch importer, host times).
3. Pick an activation budget and solve for the optimal schedule (``solve_optimal``); the
   simulator's peak is the prediction.
4. Train: every step is ``optimizer.zero_grad()``, ``executor.step(x, schedule, target=y)``
   (forwards, recomputations and backwards in the schedule's order; parameter gradients end up
   in ``.grad`` exactly as after ``loss.backward()``), ``optimizer.step()``.

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

from edgeplan.solvers.base import store_all_peak_bytes
from edgeplan.solvers.optimal import solve_optimal
from edgeplan.torchrun import ChainExecutor, measure_chain, without_tmp
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


def main(steps: int = 30, batch: int = 16, fraction: float = 0.3, quiet: bool = False
         ) -> list[float]:
    """Train for ``steps`` steps with a schedule for ``fraction`` of the way from the least
    activation memory to store-all; return the losses."""
    say = (lambda *a: None) if quiet else print
    torch.manual_seed(0)
    model = small_cnn()
    data = list(synthetic_data(steps, batch))

    # 2. the chain, measured on one batch (the model's state is left as it was)
    x0, y0 = data[0]
    chain = without_tmp(measure_chain(model, x0, target=y0, loss_fn=F.cross_entropy,
                                      timing=False).chain)

    # 3. a budget between the least memory and store-all, and the optimal schedule for it
    hi = store_all_peak_bytes(chain)
    lo = solve_optimal(chain, hi).min_budget_bytes
    budget = int(lo + fraction * (hi - lo))
    plan = solve_optimal(chain, budget)
    assert plan.feasible
    say(f"activations: store-all {format_size(hi)}, least {format_size(lo)}, budget "
        f"{format_size(budget)} -> predicted peak {format_size(plan.peak_bytes)}, "
        f"{plan.trace.forward_ops - chain.length} recomputed forwards per step")

    # 4. the training loop
    executor = ChainExecutor(model, loss_fn=F.cross_entropy)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    model.train()
    losses: list[float] = []
    for step, (x, y) in enumerate(data):
        opt.zero_grad(set_to_none=True)
        measure = step == 0 or step == steps - 1   # storage accounting costs a little time
        res = executor.step(x, plan.schedule, target=y, measure=measure)
        opt.step()
        losses.append(res.loss_value)
        if measure:
            say(f"step {step:3d}  loss {res.loss_value:.4f}  measured peak "
                f"{format_size(res.peak_bytes)} (predicted {format_size(plan.peak_bytes)}, "
                f"budget {format_size(budget)})  {res.wall_time_s * 1e3:.1f} ms")
            assert res.peak_bytes <= budget
        elif step % 10 == 0:
            say(f"step {step:3d}  loss {res.loss_value:.4f}  {res.wall_time_s * 1e3:.1f} ms")
    return losses


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--fraction", type=float, default=0.3,
                    help="budget: 0 = least memory, 1 = store-all")
    a = ap.parse_args()
    main(a.steps, a.batch, a.fraction)
