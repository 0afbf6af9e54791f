"""Predicted vs measured training-step time for the zoo, on this machine (docs/run.md).

    python benchmarks/time_model.py                      # calibrate, then the table (~9 min)
    python benchmarks/time_model.py --profile me.yaml    # a profile from `edgeplan calibrate`
    python benchmarks/time_model.py --only resnet18-224  # one case
    python benchmarks/time_model.py --by-family          # where the time model errs, per family

Everything runs with one thread (``torch.set_num_threads(1)``), calibration included, so that
the numbers are steady on a shared machine; ``--threads N`` runs with N (calibrate the profile
with as many: ``edgeplan calibrate`` times the ladder with torch's thread count). Per case:
``edgeplan import torch`` (through its library: the file text is written and read back) measures
the work per op family of every stage; the stage times are that work priced by the calibrated
profile's families (``edgeplan.work``):
*predicted* is the simulator's cost of the schedule on that chain, with no host timing of the
model at all. *measured* is the fastest executed step of the same schedule
(``torchrun.verify_plan``, the executor; per round at least 5 steps and at least
``STEP_BUDGET_S`` of them, so a 30 ms model runs about 33 steps where a 1 s one runs 5: a short
step is more often caught by a busy moment of a shared host, and every case gets about the same
time to find a quiet one), in the fastest of ``--rounds`` rounds over all the
cases (2: a shared host's slow minutes then cost one round of a case, not the case; the
*rounds* column is the slowest round over the fastest). *host-timed* is the simulator's cost on
the stage times measured on this host (store-all executor steps), the chain model alone without the
time model: the part of the error that is not the time model's. Budgets: store-all, half way
between it and the least activation budget, and the least.

The last column tracks the host's own speed, which drifts on a shared machine: two fixed
probes, one of compute (a ResNet block's convolution, batch norm and ReLU, forward and backward;
the fastest of 20) and one of memory (a copy of 64 MiB between two tensors, the fastest of 10),
are timed at the start of the run (before calibrating, when the script calibrates) and before
each row; *host speed* is, for each probe, the start's time over the time before the row's
fastest round (1.00: as fast as at the start; 0.80: the host runs 25% slower, and a ratio
measured then reads about that much low). On a virtual machine the two drift apart: other
tenants' memory traffic slows the memory-bound models (MobileNetV2, the reduced inputs) while
the compute probe hardly moves.

``--by-family`` shows where the error comes from: one store-all training step of each case with
every operation timed (``WorkCounter(timed=True)``, the fastest of 5 steps) and priced by the
profile's family costs, summed per family: priced / measured per family.
"""

from __future__ import annotations

import argparse
import math
import sys
from functools import partial

import torch

from edgeplan.calibrate import calibrate
from edgeplan.device import DeviceProfile
from edgeplan.formats.device_file import load_device
from edgeplan.formats.model_file import model_from_text
from edgeplan.importers.torch import import_torch, to_yaml
from edgeplan.problem import prepare
from edgeplan.solvers.base import store_all_peak_bytes
from edgeplan.solvers.optimal import solve_optimal
from edgeplan.torchrun import verify_plan, without_tmp

ZOO = "edgeplan.importers.zoo"
#: (label, zoo builder, kwargs, per-sample input shape, batch, input dtype[, autocast dtype])
CASES = [
    ("resnet18-224", "resnet18", {}, (3, 224, 224), 2, "float32"),
    ("resnet50-160", "resnet50", {}, (3, 160, 160), 1, "float32"),
    ("mobilenetv2-224", "mobilenetv2", {}, (3, 224, 224), 2, "float32"),
    ("vgg16-224", "vgg16", {}, (3, 224, 224), 1, "float32"),
    ("bert-base-2l-128", "bert_base_encoder", {"layers": 2}, (128,), 2, "int64"),
    ("gpt2-small-2l-128", "gpt2_small", {"layers": 2}, (128,), 2, "int64"),
    ("resnet18-64", "resnet18", {"classes": 10}, (3, 64, 64), 4, "float32"),
    ("mobilenetv2-64", "mobilenetv2", {"classes": 10, "width": 0.5}, (3, 64, 64), 4, "float32"),
    ("bert-small", "bert_base_encoder",
     {"layers": 2, "hidden": 256, "heads": 4, "ffn": 1024, "vocab": 1000}, (64,), 4, "int64"),
    ("lstm-16", "lstm_unrolled", {"steps": 16, "features": 64, "hidden": 256}, (16, 64), 8,
     "float32"),
    # mixed precision: imported and executed under bf16 autocast, priced by the bf16 families
    ("resnet18-224 bf16", "resnet18", {}, (3, 224, 224), 2, "float32", "bf16"),
    ("bert-base-2l-128 bf16", "bert_base_encoder", {"layers": 2}, (128,), 2, "int64", "bf16"),
]

#: per round and case, executed steps are timed for at least this long (and at least 5, at
#: most 40 of them), sized by the predicted step time
STEP_BUDGET_S = 1.0


def steps_for(predicted_s: float) -> int:
    """How many steps a round times for a case predicted to take ``predicted_s``."""
    return min(40, max(5, math.ceil(STEP_BUDGET_S / max(predicted_s, 1e-6))))


def host_probe() -> float:
    """Seconds of a fixed workload (see the module docstring), the fastest of 20 after a warm-up
    (about 0.3 s)."""
    import time

    from torch import nn

    net = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU())
    x = torch.randn(2, 64, 56, 56)
    best = float("inf")
    for i in range(21):
        net.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        net(x).sum().backward()
        if i:
            best = min(best, time.perf_counter() - t0)
    return best


def memory_probe() -> float:
    """Seconds of a 64 MiB tensor-to-tensor copy (read and write), the fastest of 10."""
    import time

    a, b = torch.ones(2**24), torch.empty(2**24)
    best = float("inf")
    for i in range(11):
        t0 = time.perf_counter()
        b.copy_(a)
        if i:
            best = min(best, time.perf_counter() - t0)
    return best


def calibrated_profile() -> DeviceProfile:
    print(f"calibrating this machine ({torch.get_num_threads()} threads, 6 passes: about 2 "
          "minutes) ...", file=sys.stderr)
    cal = calibrate(passes=6)  # a shared host drifts: 6 passes fit steadier than the default 3
    return DeviceProfile(
        name="this-host", title="this host, calibrated", kind=cal.kind,
        total_bytes=int(cal.total_bytes.value), reserved_bytes=int(cal.reserved_bytes.value),
        precision="fp32", peak_flops={}, training_power_w=5.0,
        sustained_flops={p: m.value for p, m in cal.sustained_flops.items()},
        bandwidth_bytes_per_s=cal.bandwidth_bytes_per_s.value, families=cal.families)


def _vocab(fn: str, kwargs: dict, dtype: str) -> int | None:
    """The token-id range of a language model's input (None for a float input)."""
    return kwargs.get("vocab", 30522 if "bert" in fn else 50257) if dtype == "int64" else None


def by_family(device: DeviceProfile, cases: list[tuple]) -> None:
    """Per op family: measured op time of one step vs the profile's price of the same ops."""
    import importlib

    from edgeplan.torchrun import make_input
    from edgeplan.torchrun.meter import amp_dtype, autocast_on
    from edgeplan.torchrun.opwork import WorkCounter
    from edgeplan.work import FamilyWork

    print("| model | family | ops | MB moved | measured | priced | priced / measured |")
    print("|---|---|---|---|---|---|---|")
    for label, fn, kwargs, shape, batch, dtype, *amp_ in cases:
        amp = amp_[0] if amp_ else None
        costs = device.family_costs(amp or "fp32")
        if costs is None:
            continue
        model = getattr(importlib.import_module(ZOO), fn)(**kwargs)
        x = make_input(shape, batch, dtype, high=_vocab(fn, kwargs, dtype))
        best: list | None = None
        for _ in range(5):
            model.zero_grad(set_to_none=True)
            with WorkCounter(timed=True) as wc:
                with autocast_on(amp_dtype(amp), x):
                    out = model(x)
                n_fwd = len(wc.rows)
                out.float().sum().backward()
            rows = [(*r, i >= n_fwd) for i, r in enumerate(wc.rows)]
            if best is None or sum(r[4] for r in rows) < sum(r[4] for r in best):
                best = rows
        agg: dict[str, list[float]] = {}
        for _, fam, flops, moved, dt, large, backward in best or []:
            a = agg.setdefault(fam, [0, 0.0, 0.0, 0.0])
            a[0] += 1
            a[1] += moved
            a[2] += dt
            a[3] += costs[fam].time_s(FamilyWork(1, flops, moved, large), backward)
        tot = [sum(a[i] for a in agg.values()) for i in range(4)]
        for fam, a in sorted(agg.items(), key=lambda kv: -kv[1][2]) + [("all", tot)]:
            print(f"| {label} | {fam} | {int(a[0])} | {a[1] / 2**20:.0f} | {a[2] * 1e3:.1f} ms | "
                  f"{a[3] * 1e3:.1f} ms | {a[3] / a[2]:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", help="a calibrated device profile (default: calibrate now)")
    ap.add_argument("--only", action="append", help="run only this case (repeatable)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="times over all cases; each row counts its fastest round (default 2)")
    ap.add_argument("--by-family", action="store_true",
                    help="per op family: measured op times of one step vs their price")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads, calibration included (default 1)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds: expected 1 or more")
    if args.threads < 1:
        ap.error("--threads: expected 1 or more")
    torch.set_num_threads(args.threads)
    probe0, mem0 = host_probe(), memory_probe()
    device = load_device(args.profile) if args.profile else calibrated_profile()
    if device.family_costs("fp32") is None:
        sys.exit(f"{args.profile}: no compute.families for fp32; run `edgeplan calibrate`")
    print(f"profile: {device.title}; host probes at the start: compute {probe0 * 1e3:.2f} ms, "
          f"memory {2 * 2**26 / mem0 / 1e9:.1f} GB/s",
          file=sys.stderr)
    if args.by_family:
        by_family(device, [c for c in CASES if not args.only or c[0] in args.only])
        return
    # set-up once per case: the model file, its chain priced by the profile, the schedules
    runs = []
    for label, fn, kwargs, shape, batch, dtype, *amp_ in CASES:
        if args.only and label not in args.only:
            continue
        amp = amp_[0] if amp_ else None
        if amp is not None and device.family_costs(amp) is None:
            print(f"{label}: the profile has no {amp} families, skipped", file=sys.stderr)
            continue
        spec = f"{ZOO}:{fn}"
        high = _vocab(fn, kwargs, dtype)
        r = import_torch(spec, input_shape=shape, batch=batch, input_dtype=dtype,
                         input_high=high, kwargs=kwargs, name=label, measure_tmp=False, amp=amp)
        model = model_from_text(to_yaml(r), f"{label}.yaml")
        chain = prepare(model, device).chain
        bare = without_tmp(chain)
        hi = store_all_peak_bytes(bare)
        lo = solve_optimal(bare, hi).min_budget_bytes
        for name, budget in (("store-all", hi), ("half way", (lo + hi) // 2), ("least", lo)):
            res = solve_optimal(bare, budget)
            assert res.schedule is not None and res.cost_s is not None
            steps = steps_for(res.cost_s)
            measure = partial(verify_plan, spec, res.schedule, chain, kwargs=kwargs,
                              input_shape=shape, batch=batch, input_dtype=dtype,
                              input_high=high, timing=True, repeats=steps, time_reps=3,
                              independent=False, measure_tmp=False, amp=amp)
            run = {"label": label, "name": name, "predicted": res.cost_s, "measure": measure,
                   "steps": steps, "rounds": []}
            runs.append(run)
    # the rounds: every case measured once per round, so that a slow minute of a shared host
    # costs one round of each case, not all of one case's steps
    for k in range(args.rounds):
        print(f"round {k + 1} of {args.rounds}", file=sys.stderr)
        for run in runs:
            speed = (probe0 / host_probe(), mem0 / memory_probe())
            v = run["measure"]()
            run["rounds"].append((v.measured_time_s, v.predicted_time_s, speed))
    print("| model | budget | predicted | measured | predicted / measured | host-timed / "
          "measured | steps per round | rounds, slowest / fastest | host speed, compute / memory |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for run in runs:
        measured, host_timed, speed = min(run["rounds"], key=lambda m: m[0])
        slowest = max(m[0] for m in run["rounds"])
        ratio = run["predicted"] / measured
        host = host_timed / measured if host_timed else float("nan")
        worst = max(worst, abs(ratio - 1))
        print(f"| {run['label']} | {run['name']} | {run['predicted'] * 1e3:.1f} ms | "
              f"{measured * 1e3:.1f} ms | {ratio:.2f} | {host:.2f} | {run['steps']} | "
              f"{slowest / measured:.2f} | "
              f"{speed[0]:.2f} / {speed[1]:.2f} |", flush=True)
    print(f"\nlargest |predicted / measured - 1|: {worst:.0%}")


if __name__ == "__main__":
    main()
