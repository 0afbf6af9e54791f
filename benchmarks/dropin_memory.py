"""Measured vs predicted activation memory of the drop-in wrapper on the four captured models.

    python benchmarks/dropin_memory.py            # prints a markdown table (about a minute)

For each model of ``edgeplan.importers.nets`` (float32, CPU, train mode) and three activation
budgets (store-all, half way, the least that fits), the model is captured, measured on one batch
(``edgeplan.torch.captured_spec``), planned, wrapped (``edgeplan.torch.checkpoint``) and trained
for one step in a plain loop after a warm-up step (so parameter gradients already exist):

* *executor*: the wrapper's own storage accounting (distinct storages of the live activations,
  saved tensors and gradients after every op), against the simulator's peak of the schedule on
  the chain without transients;
* *allocator*: PyTorch's CPU allocator (``torch.profiler``, ``profile_memory=True``) over the
  whole step, plus the input batch, against the simulator's peak on the chain *with* the
  measured transients (``fwd_tmp``/``bwd_tmp``); the gradients are fresh (``zero_grad()``,
  which sets them to None: their final allocations are fixed memory and left out), and, in the
  last column, accumulated into existing ``.grad`` tensors (``zero_grad(set_to_none=False)`` or
  gradient accumulation), where each parameter's new gradient is a temporary the chain model
  does not count.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import torch
import torch.nn.functional as F

from edgeplan.importers import nets
from edgeplan.plan import make_plan
from edgeplan.simulator import simulate
from edgeplan.torch import capture, captured_spec, checkpoint
from edgeplan.torchrun.dropin import nominal_times
from edgeplan.torchrun.meter import AllocTrace

MODELS = {
    "ResNet-18 (width 32, 64x64, batch 8)": (lambda: nets.resnet18(num_classes=10, width=32),
                                             lambda: torch.randn(8, 3, 64, 64)),
    "U-Net (width 16, depth 3, 64x64, batch 4)": (lambda: nets.unet(width=16, depth=3),
                                                  lambda: torch.randn(4, 3, 64, 64)),
    "BERT (4 layers, dim 128, seq 64, batch 8)": (
        lambda: nets.bert_encoder(vocab=1000, dim=128, layers=4, heads=4),
        lambda: {"input_ids": torch.randint(0, 1000, (8, 64)),
                 "attention_mask": torch.ones(8, 64, dtype=torch.long)}),
    "ViT (4 layers, dim 128, 64x64/8, batch 8)": (
        lambda: nets.vit(image=64, patch=8, dim=128, layers=4, heads=4, classes=10),
        lambda: torch.randn(8, 3, 64, 64)),
}


def _call(m, x):
    return m(**x) if isinstance(x, dict) else m(x)


def _logits(out):
    return out["logits"] if isinstance(out, dict) else out


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    print("| model | budget | stages | recomputed fwd | executor / predicted | "
          "allocator / predicted | allocator, accumulating / predicted |")
    print("|---|---|---|---|---|---|---|")
    for label, (make, data) in MODELS.items():
        m, x = make(), data()
        cap = capture(m, x)
        spec_tmp = captured_spec(cap, x, optimizer="sgd", measure_tmp=True)
        spec = replace(spec_tmp, stages=tuple(replace(s, fwd_tmp_bytes=0, bwd_tmp_bytes=0)
                                              for s in spec_tmp.stages))
        spec = nominal_times(spec)
        top = make_plan(spec, None, memory_bytes=2**40)
        fixed, hi, lo = (top.memory.fixed_bytes, top.store_all_peak_bytes,
                         top.min_activation_bytes)
        chain_tmp = spec_tmp.to_chain(None) if not spec_tmp.uses_flops else replace(
            top.chain, stages=tuple(replace(s, fwd_tmp_bytes=t.fwd_tmp_bytes,
                                            bwd_tmp_bytes=t.bwd_tmp_bytes)
                                    for s, t in zip(top.chain.stages, spec_tmp.stages)))
        for name, budget in (("store-all", hi), ("half way", (lo + hi) // 2), ("least", lo)):
            plan = make_plan(spec, None, memory_bytes=fixed + budget)
            w = checkpoint(m, plan, x, measure=True)
            out0 = _logits(_call(m, x))
            y = torch.randint(0, out0.shape[1], (out0.shape[0],) + tuple(out0.shape[2:]))
            del out0
            m.zero_grad(set_to_none=True)
            F.cross_entropy(_logits(_call(w, x)), y).backward()  # warm-up
            peaks = []
            for fresh in (True, False):
                m.zero_grad(set_to_none=fresh)
                with AllocTrace(True) as tr:
                    F.cross_entropy(_logits(_call(w, x)), y).backward()
                grads = {p.grad.data_ptr() for p in m.parameters() if p.grad is not None}
                peaks.append(tr.peak(exclude_final=grads if fresh else None)[0])
            sched = plan.result.schedule
            pred = simulate(plan.chain, sched).peak_bytes
            pred_tmp = simulate(chain_tmp, sched).peak_bytes
            x0 = plan.chain.input_bytes
            rec = plan.result.trace.forward_ops - plan.chain.length
            print(f"| {label} | {name} ({budget / 2**20:.1f} MiB) | {len(cap.stages)} + loss | "
                  f"{rec} | {w.measured_peak_bytes() / pred:.3f} | "
                  f"{(peaks[0] + x0) / pred_tmp:.3f} | {(peaks[1] + x0) / pred_tmp:.3f} |")
            sys.stdout.flush()
        del m


if __name__ == "__main__":
    main()
