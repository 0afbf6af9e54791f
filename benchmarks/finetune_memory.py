"""Measured vs predicted activation memory of fine-tuning plans (frozen, bias-only, LoRA).

    python benchmarks/finetune_memory.py          # prints a markdown table (a minute or two)

For a CNN and a transformer of ``edgeplan.importers.nets`` (float32, CPU, train mode) and each
``--train`` selection, the model is captured, measured on one batch in the modes the selection
needs (``edgeplan.torch.captured_spec``), planned at the least memory that fits and at
store-all, made to train that way (``torchrun.trainable.apply_modes``: frozen parameters,
LoRA adapters), wrapped (``edgeplan.torch.checkpoint``) and trained for one step after a
warm-up step. Columns as in benchmarks/dropin_memory.py: *executor* is the wrapper's storage
accounting against the simulator's peak without transients; *allocator* is PyTorch's CPU
allocator over the step (plus the input batch) against the peak with the measured transients.
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
from edgeplan.torchrun.trainable import apply_modes
from edgeplan.training import modes_for

MODELS = {
    "ResNet-18 (width 32, 64x64, batch 8)": (
        lambda: nets.resnet18(num_classes=10, width=32), lambda: torch.randn(8, 3, 64, 64),
        ("all", "last:3", "bias,last:1"), None),
    "BERT (4 layers, dim 128, seq 64, batch 8)": (
        lambda: nets.bert_encoder(vocab=1000, dim=128, layers=4, heads=4),
        lambda: {"input_ids": torch.randint(0, 1000, (8, 64)),
                 "attention_mask": torch.ones(8, 64, dtype=torch.long)},
        ("all", "last:4", "bias,last:1", "lora:8,last:1"), ("qkv",)),
}


def _call(m, x):
    out = m(**x) if isinstance(x, dict) else m(x)
    return out["logits"] if isinstance(out, dict) else out


def main() -> None:
    torch.set_num_threads(1)
    print("| model | --train | trains | budget | recomputed fwd | executor / predicted | "
          "allocator / predicted |")
    print("|---|---|---|---|---|---|---|")
    for label, (make, data, selections, targets) in MODELS.items():
        for train in selections:
            for which in ("store-all", "least"):
                torch.manual_seed(0)
                m, x = make(), data()
                cap = capture(m, x)
                spec_tmp = captured_spec(cap, x, optimizer="sgd", measure_tmp=True,
                                         modes=modes_for(train), lora_targets=targets)
                spec = nominal_times(replace(spec_tmp, stages=tuple(
                    replace(s, fwd_tmp_bytes=0, bwd_tmp_bytes=0, modes={
                        k: replace(v, fwd_tmp_bytes=None, bwd_tmp_bytes=None)
                        for k, v in s.modes.items()}) for s in spec_tmp.stages)))
                top = make_plan(spec, None, memory_bytes=2**40, train=train)
                budget = (top.store_all_peak_bytes if which == "store-all"
                          else top.min_activation_bytes)
                plan = make_plan(spec, None, memory_bytes=top.memory.fixed_bytes + budget,
                                 train=train)
                with_tmp = make_plan(nominal_times(spec_tmp), None, memory_bytes=2**40,
                                     train=train)
                t = plan.problem.training
                if t is not None:
                    apply_modes(m, cap.stages, t.modes[:-1], targets)
                w = checkpoint(m, plan, x, measure=True)
                out0 = _call(m, x)
                y = torch.randint(0, out0.shape[-1], out0.shape[:-1])
                del out0
                m.zero_grad(set_to_none=True)
                F.cross_entropy(_call(w, x), y).backward()  # warm-up
                m.zero_grad(set_to_none=True)
                with AllocTrace(True) as tr:
                    F.cross_entropy(_call(w, x), y).backward()
                grads = {p.grad.data_ptr() for p in m.parameters() if p.grad is not None}
                alloc = tr.peak(exclude_final=grads)[0]
                sched = plan.result.schedule
                pred = simulate(plan.chain, sched).peak_bytes
                pred_tmp = simulate(with_tmp.chain, sched).peak_bytes
                x0 = plan.chain.input_bytes
                rec = plan.result.trace.forward_ops - plan.chain.length
                frac = 1.0 if t is None else t.trainable_fraction
                print(f"| {label} | {train} | {frac:.2%} | {which} ({budget / 2**20:.1f} MiB) | "
                      f"{rec} | {w.measured_peak_bytes() / pred:.3f} | "
                      f"{(alloc + x0) / pred_tmp:.3f} |")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
