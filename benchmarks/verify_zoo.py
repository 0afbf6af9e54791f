"""Measured vs predicted memory of one training step for the shipped zoo, three ways.

    python benchmarks/verify_zoo.py               # markdown table, a few minutes on 2 cores

Each model of ``edgeplan.importers.zoo`` (reduced inputs so that it runs on a small machine;
the last stage returns the loss) is measured by the importer's stage measurer with transients
(``measure_tmp=True``), solved at three activation budgets (store-all, half way, the least
that fits) and run by ``torchrun.verify_plan`` (one thread, CPU): *executor* is edgeplan's own
storage accounting against the simulator without transients; *allocator* is PyTorch's CPU
allocator (``torch.profiler``, ``profile_memory=True``) over one more step of the schedule, plus
the input batch, with fresh gradients whose final allocations (fixed memory) are left out,
against the simulator *with* the measured transients.
"""

from __future__ import annotations

import sys

import torch

from edgeplan.importers import zoo
from edgeplan.solvers.base import store_all_peak_bytes
from edgeplan.solvers.optimal import solve_optimal
from edgeplan.torchrun import measure_chain, verify_plan, without_tmp

CASES = [
    ("resnet18", lambda: zoo.resnet18(classes=10), (3, 64, 64), 4, "float32"),
    ("mobilenetv2", lambda: zoo.mobilenetv2(classes=10, width=0.5), (3, 64, 64), 4, "float32"),
    ("vgg16", lambda: zoo.vgg16(classes=10), (3, 32, 32), 2, "float32"),
    ("bert (2 layers, hidden 256, seq 64)",
     lambda: zoo.bert_base_encoder(layers=2, hidden=256, heads=4, ffn=1024, vocab=1000),
     (64,), 4, "int64"),
    ("gpt2 (2 layers, hidden 256, seq 64)",
     lambda: zoo.gpt2_small(layers=2, hidden=256, heads=4, vocab=1000, positions=64),
     (64,), 4, "int64"),
    ("lstm (16 steps, hidden 256)", lambda: zoo.lstm_unrolled(steps=16, features=64,
                                                              hidden=256), (16, 64), 8,
     "float32"),
]


def main() -> None:
    torch.set_num_threads(1)
    print("| model | budget | recomputed fwd | executor / predicted | allocator / predicted "
          "(with transients) |")
    print("|---|---|---|---|---|")
    for name, build, shape, batch, dtype in CASES:
        torch.manual_seed(0)
        model = build()
        high = 1000 if dtype == "int64" else None
        from edgeplan.torchrun import make_input
        x = make_input(shape, batch, dtype, high=high)
        mc = measure_chain(model, x, timing=False, measure_tmp=True, name=name)
        chain = mc.chain
        bare = without_tmp(chain)
        hi = store_all_peak_bytes(bare)
        lo = solve_optimal(bare, hi).min_budget_bytes
        for label, budget in (("store-all", hi), ("half way", (lo + hi) // 2), ("least", lo)):
            res = solve_optimal(bare, budget)
            v = verify_plan(model, res.schedule, chain, x=x, budget_bytes=budget, timing=False,
                            repeats=0, measured=mc)
            rec = v.step.recomputed_forwards
            print(f"| {name} | {label} ({budget / 2**20:.1f} MiB) | {rec} | "
                  f"{v.peak_ratio:.3f} | "
                  + ("-" if v.allocator_ratio is None else f"{v.allocator_ratio:.3f}") + " |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
