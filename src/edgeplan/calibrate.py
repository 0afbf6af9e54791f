"""Measure this machine for a device profile (``edgeplan calibrate``).

Run on the device itself (a Pi, a Jetson, any Linux box). Every number it returns was measured
here, now, and says how (``Measurement.how``); the command line writes them as a device
profile with ``[M]`` sources, the command, the date and the torch version.

* memory: ``MemTotal`` of ``/proc/meminfo``; the reserve is what is not available to a new
  process (``MemTotal - MemAvailable``) plus what importing the training framework costs
  (this process's RSS growth when torch is imported, and on CUDA the context);
* compute, per precision this torch build computes (bf16 / fp16 where the CPU or GPU has
  them): every operation of forward + backward steps of a ladder of layers (``_ladders``) is
  timed (at its fastest over up to ``PASSES`` passes of the ladder) and counted
  (``torchrun.opwork.WorkCounter``: family, FLOPs, bytes); each op family's ``overhead +
  flops / rate + bytes / bandwidth`` is fitted to its operations (:func:`fit_family`,
  ``edgeplan.work``), to those of the forward and of the backward pass apart where the ladder
  has enough of both (``MIN_PASS_ROWS``), and the profile's one sustained figure is the conv
  and matmul operations' FLOPs over their time (for model files without work per family);
* memory bandwidth: a large numpy copy (read plus write bytes);
* storage (optional ``path``): sequential write with ``fsync`` and read after dropping the page
  cache (``posix_fadvise``), and the latency of one 4 KiB synchronous write and read.

It never prints; ``progress(label)`` is called before each measurement.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from .errors import InputError
from .work import COMPUTE_FAMILIES, FAMILIES, FamilyCost

__all__ = ["MIN_PASS_ROWS", "PASSES", "Calibration", "Measurement", "calibrate", "fit_families",
           "fit_family"]

#: The ladder is timed this many times over, one pass after the other, and each operation
#: counts at its fastest: a shared or throttling machine's slow minute then shifts one pass, not
#: the whole fit (single passes a minute apart on a shared 2-core host fitted convolution rates
#: of 86-118 GFLOP/s; see docs/run.md).
PASSES = 3

#: seconds the ladder's passes may take, all precisions together: a pass after the first is
#: made only while it fits (a slow board, whose first pass takes long, makes fewer), so that
#: the whole calibration stays within about two minutes
LADDER_BUDGET_S = 80.0

#: a family gets backward constants of its own (``FamilyCost.backward``) where the ladder
#: timed at least this many of its operations in each pass; else one fit prices both
MIN_PASS_ROWS = 6


@dataclass(frozen=True)
class Measurement:
    value: float
    how: str


@dataclass
class Calibration:
    """What ``calibrate`` measured (bytes, FLOP/s, bytes/s, seconds)."""

    total_bytes: Measurement
    reserved_bytes: Measurement
    bandwidth_bytes_per_s: Measurement
    sustained_flops: dict[str, Measurement]          # precision -> conv+matmul training mix
    families: dict[str, dict[str, FamilyCost]]       # precision -> family -> fitted cost
    # precision -> family (and "<family> backward" where fitted apart) -> median rel. error
    fit_error: dict[str, dict[str, float]]
    storage: dict[str, Measurement] = field(default_factory=dict)  # read, write, *_latency
    kind: str = "cpu"
    torch_version: str = ""
    threads: int = 1
    machine: str = ""
    passes: dict[str, int] = field(default_factory=dict)  # precision -> times over the ladder


def _meminfo() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                k, _, v = line.partition(":")
                parts = v.split()
                if parts:
                    out[k] = int(parts[0]) * 1024
    except OSError as e:
        raise InputError(f"cannot read /proc/meminfo ({e.strerror}); calibrate runs on Linux",
                         param="memory") from None
    return out


def _rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _best_time(fn: Callable[[], object], seconds: float, sync: Callable[[], None]) -> float:
    fn()  # warm-up
    sync()
    best, start = float("inf"), time.perf_counter()
    n = 0
    while n < 3 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
        n += 1
        if n >= 200:
            break
    return best


def _ladders(torch: Any, quick: bool, big_elements: int = 2**24
             ) -> dict[str, list[tuple[str, Callable[[], Any]]]]:
    """Micro-networks per op family: the layer shapes of the usual CNN pyramids (ResNet, VGG,
    MobileNet stages at small batches) and transformer blocks, small to large, so that each
    family's fit sees operations from a few KiB to tens of MiB (softmax up to ``big_elements``
    per tensor: a language model's vocabulary-wide logits; element-wise up to a CNN stem's
    activation, 4 x 64 x 112 x 112). ``(label, make)``; ``make()`` returns ``(module, input)``.
    Each network's forward + backward is timed op by op."""
    nn = torch.nn
    base: Any = nn.Module

    class Attention(base):
        def __init__(self, heads: int):
            super().__init__()
            self.heads = heads

        def forward(self, x: Any) -> Any:
            b, n, d = x.shape
            q = x.view(b, n, self.heads, d // self.heads).transpose(1, 2)
            return (q @ q.transpose(-2, -1)).softmax(-1) @ q

    class Residual(base):
        def forward(self, x: Any) -> Any:
            y = torch.relu(x) + x
            return torch.nn.functional.gelu(y) * 0.5

    class Softmax(base):
        def forward(self, x: Any) -> Any:
            return x.softmax(-1) + x.log_softmax(-1)

    def conv(c: int, h: int, b: int, k: int = 3, cin: int | None = None, stride: int = 1,
             groups: int = 1) -> tuple[str, Callable[[], Any]]:
        ci = cin or c
        label = f"Conv2d {ci}->{c} {k}x{k}/{stride}{' dw' if groups > 1 else ''} on {b}x{h}x{h}"
        return label, lambda: (nn.Conv2d(ci, c, k, stride=stride, padding=k // 2, groups=groups),
                               torch.randn(b, ci, h, h))

    def lin(i: int, o: int, rows: int) -> tuple[str, Callable[[], Any]]:
        return f"Linear {i}->{o} on {rows} rows", lambda: (nn.Linear(i, o), torch.randn(rows, i))

    def net(label: str, make_mod: Callable[[], Any], shape: tuple[int, ...],
            ids: int = 0) -> tuple[str, Callable[[], Any]]:
        def make() -> Any:
            x = torch.randint(0, ids, shape) if ids else torch.randn(*shape)
            return make_mod(), x
        return label, make

    if quick:
        return {
            "conv": [conv(16, 16, 2), conv(64, 4, 2)],
            "depthwise": [conv(32, 16, 2, groups=32), conv(128, 4, 2, groups=128)],
            "matmul": [lin(128, 128, 64), lin(512, 512, 2), net("attention", lambda: Attention(2),
                                                                 (2, 32, 64))],
            "matvec": [lin(128, 128, 1), lin(512, 256, 1)],
            "norm": [net("BatchNorm2d", lambda: nn.BatchNorm2d(16), (2, 16, 16, 16)),
                     net("LayerNorm", lambda: nn.LayerNorm(128), (64, 128))],
            "pool": [net("MaxPool2d", lambda: nn.MaxPool2d(3, 2, 1), (2, 16, 16, 16))],
            "gather": [net("Embedding", lambda: nn.Embedding(500, 64), (2, 32), ids=500)],
            "random": [net("Dropout", lambda: nn.Dropout(0.1), (64, 128))],
            "elementwise": [net("relu, add, gelu, mul", Residual, (64, 128))],
            "softmax": [net("softmax, log_softmax", Softmax, (64, 128))],
        }
    bn = nn.BatchNorm2d
    return {
        "conv": [conv(64, 56, 2), conv(128, 28, 2), conv(256, 14, 2), conv(512, 7, 2),
                 conv(64, 16, 4), conv(256, 4, 4), conv(512, 2, 4), conv(32, 112, 1),
                 conv(64, 56, 2, k=1, cin=256), conv(256, 14, 2, k=1, cin=1024),
                 conv(128, 56, 2, cin=64, stride=2), conv(64, 224, 1, k=7, cin=3, stride=2),
                 # small ones (60 us and less), whose time is mostly the overhead: without them
                 # three calibrations within half an hour on the development host fitted the
                 # forward's overhead at 0, 78 and 129 us (two with them: 79 and 82 us)
                 conv(16, 8, 4), conv(96, 4, 4, k=1, cin=16), conv(16, 8, 4, k=1, cin=96)],
        "depthwise": [conv(c, h, b, groups=c) for c, h, b in
                      ((32, 112, 2), (144, 56, 2), (192, 28, 2), (384, 14, 2), (960, 7, 2),
                       (96, 16, 4), (384, 4, 4))]
        + [conv(96, 112, 2, groups=96, stride=2), conv(144, 56, 2, groups=144, stride=2)],
        "matmul": [lin(768, 768, 256), lin(768, 3072, 256), lin(3072, 768, 256),
                   lin(256, 1024, 256), lin(1024, 256, 64), lin(4096, 4096, 2),
                   lin(2048, 1000, 8), lin(256, 256, 16), lin(256, 1024, 8), lin(64, 64, 16),
                   net("attention 12 heads, 128 x 768", lambda: Attention(12), (2, 128, 768)),
                   net("attention 4 heads, 64 x 256", lambda: Attention(4), (4, 64, 256))],
        # linear layers on one row (classifier heads at batch 1): 7 forwards, 14 backwards
        "matvec": [lin(i, o, 1) for i, o in ((4096, 4096), (2048, 1000), (1280, 1000), (768, 768),
                                             (1024, 256), (256, 256), (64, 64))],
        "norm": [net(f"BatchNorm2d {c} on {b}x{h}x{h}", partial(bn, c), (b, c, h, h))
                 for c, h, b in ((64, 56, 4), (64, 16, 4), (256, 4, 4), (32, 112, 2))]
        + [net(f"LayerNorm {n} on 256 rows", partial(nn.LayerNorm, n), (256, n))
           for n in (256, 768, 3072)],
        "pool": [net("MaxPool2d 3/2 64 on 2x112x112", lambda: nn.MaxPool2d(3, 2, 1),
                     (2, 64, 112, 112)),
                 net("MaxPool2d 3/2 64 on 4x32x32", lambda: nn.MaxPool2d(3, 2, 1),
                     (4, 64, 32, 32)),
                 net("AdaptiveAvgPool2d 512 on 2x7x7", lambda: nn.AdaptiveAvgPool2d(1),
                     (2, 512, 7, 7)),
                 net("AvgPool2d 2 256 on 2x28x28", lambda: nn.AvgPool2d(2), (2, 256, 28, 28))]
        # VGG's 2x2 max pools: with them each pass has MIN_PASS_ROWS pool operations and is
        # fitted apart (a max pool's forward, which tracks the argmax of every window, moves
        # 0.4-0.7 GB/s on the development host where its backward, a scatter, moves 5-10x more)
        + [net(f"MaxPool2d 2 {c} on 1x{h}x{h}", partial(nn.MaxPool2d, 2), (1, c, h, h))
           for c, h in ((64, 112), (256, 56), (512, 28))],
        "gather": [net("Embedding 30522x768 on 2x128", lambda: nn.Embedding(30522, 768),
                       (2, 128), ids=30522),
                   net("Embedding 1000x256 on 4x64", lambda: nn.Embedding(1000, 256), (4, 64),
                       ids=1000),
                   net("Embedding 8000x512 on 8x64", lambda: nn.Embedding(8000, 512), (8, 64),
                       ids=8000)],
        "random": [net(f"Dropout 0.1 on {'x'.join(map(str, sh))}", lambda: nn.Dropout(0.1), sh)
                   for sh in ((256, 768), (2, 64, 56, 56), (128, 3072), (16, 64))],
        "elementwise": [net(f"relu, add, gelu, mul on {'x'.join(map(str, sh))}", Residual, sh)
                        for sh in ((2, 64, 56, 56), (4, 256, 14, 14), (256, 768), (64, 256),
                                   (2, 8), (max(1, min(4, big_elements // 802816)), 64, 112,
                                            112))],
        "softmax": [net(f"softmax, log_softmax on {'x'.join(map(str, sh))}", Softmax, sh)
                    for sh in ((2, 12, 128, 128), (256, 1000), (16, 64), (4, 4, 64, 64),
                               (max(1, big_elements // 50257), 50257))],
    }


#: one timed operation: family, FLOPs, bytes, seconds, large bytes, whether in the backward
OpRow = tuple[str, float, int, float, int, bool]


def _op_rows(torch: Any, make: Callable[[], Any], seconds: float, dtype: Any, dev: Any,
             sync: Callable[[], None], max_bytes: int | None = None) -> list[OpRow]:
    """(family, flops, bytes, seconds, large bytes, backward) of every operation of one forward
    + backward of ``make()``: the operations of the fastest of repeated steps. A network whose
    parameters and input, with their gradients, would take more than ``max_bytes`` is skipped
    (no rows): on a small board the largest layers of the ladder do not fit beside the rest.

    The step is made to look like one layer inside a network, not a layer alone: the backward
    starts from a dense gradient (``backward(g)``; the gradient of ``.sum()`` would be a
    broadcast scalar, which sends normalisation and convolution backwards down slower strided
    paths and moves almost no bytes), and the caches are flushed before the forward and before
    the backward (``_flush``), since inside a network a layer's input and its saved tensors come
    from memory, not from the cache of a network a few KiB big."""
    from .torchrun.opwork import WorkCounter
    module, x = make()
    size = sum(p.numel() * p.element_size() for p in module.parameters()) + \
        x.numel() * x.element_size()
    if max_bytes is not None and 3 * size > max_bytes:
        return []
    module = module.to(dev, dtype)
    x = x.to(dev, dtype).requires_grad_(True) if x.is_floating_point() else x.to(dev)
    with torch.no_grad():
        g = torch.randn_like(module(x).float())
    flush = _flush(torch, dev)

    def step() -> list[OpRow]:
        module.zero_grad(set_to_none=True)
        with WorkCounter(timed=True, sync=sync if dev.type == "cuda" else None) as wc:
            flush()
            out = module(x).float()
            n_fwd = len(wc.rows)
            flush()
            out.backward(g)
            sync()
        return [(str(r[1]), float(r[2]), int(r[3]), float(r[4]), int(r[5]), i >= n_fwd)
                for i, r in enumerate(wc.rows)]

    step()  # warm-up
    best = step()
    start, n = time.perf_counter(), 1
    while n < 3 or (time.perf_counter() - start < seconds and n < 30):
        rows = step()
        n += 1
        if sum(r[3] for r in rows) < sum(r[3] for r in best):
            best = rows  # the fastest whole step, as the executor's timing keeps
    return best


def _fastest_ops(a: list[OpRow] | None, b: list[OpRow]) -> list[OpRow]:
    """Operation by operation the faster of two timings of the same network (the same
    operations in the same order); where one has no rows (the network was skipped), the other;
    where their operations differ, the faster whole step. An operation with large results
    (fresh memory, ``work.LARGE_RESULT_BYTES``) keeps the *slower* timing: in a training step
    its pages are zero-filled on first touch, and a pass that found them mapped already is the
    exception (the bf16 embedding gradient of the ladder, 47 MB: 2.6-2.9 GB/s in six
    calibrations on the development host, 21-25 GB/s in two, which priced a BERT step 25% low)."""
    if not a or not b:
        return a or b
    if [(*r[:3], r[5]) for r in a] != [(*r[:3], r[5]) for r in b]:
        return a if sum(r[3] for r in a) <= sum(r[3] for r in b) else b
    return [(max if x[4] else min)(x, y, key=lambda r: r[3]) for x, y in zip(a, b)]


def _flush(torch: Any, dev: Any) -> Callable[[], None]:
    """Evict the CPU caches: write a 64 MiB buffer (more than the last-level cache of any board
    edgeplan targets) with numpy, which the op counter does not see. Nothing on CUDA (a GPU's
    L2 holds a few MiB; its activations stream from device memory anyway)."""
    if dev.type == "cuda":
        return lambda: None
    import numpy as np
    buf = np.zeros(2**23)  # 64 MiB of float64

    def flush() -> None:
        np.add(buf, 1.0, out=buf)
    return flush


def _nnls(a: Any, y: Any) -> Any:
    """Non-negative least squares for a few unknowns: the best of the unconstrained fits on
    every subset of columns whose coefficients are all >= 0 (exact for these sizes)."""
    import itertools

    import numpy as np
    best_r, best = np.inf, np.zeros(a.shape[1])
    for k in range(1, a.shape[1] + 1):
        for sub in itertools.combinations(range(a.shape[1]), k):
            c = np.linalg.lstsq(a[:, sub], y, rcond=None)[0]
            if (c < 0).any():
                continue
            r = float(np.sum((a[:, sub] @ c - y) ** 2))
            if r < best_r:
                best_r, best = r, np.zeros(a.shape[1])
                best[list(sub)] = c
    return best


def fit_family(rows: list[tuple[float, int, float, int]], compute: bool
               ) -> tuple[FamilyCost, float]:
    """``FamilyCost`` of ``(flops, bytes, seconds, large bytes)`` rows for ``t = overhead +
    flops / rate + (bytes - large) / bandwidth + large / large_bandwidth``, all >= 0, in two
    least-squares fits: the overhead from a fit in relative error (each operation counts alike,
    so the small ones, whose time is mostly overhead, decide it), then the rate and the
    bandwidths from a fit in absolute error of the time above that overhead (the large
    operations, which make up a training step's time, decide them). ``large_bandwidth`` is
    fitted only where some rows have large results (else None: priced at ``bandwidth``).
    Returns the cost and the fit's median relative error."""
    import numpy as np
    t = np.array([r[2] for r in rows])
    large = np.array([r[3] for r in rows], dtype=float) / 1e9
    small = np.array([r[1] for r in rows], dtype=float) / 1e9 - large
    work = [small]  # GB; coefficients: s per G
    if compute:
        work.insert(0, np.array([r[0] for r in rows], dtype=float) / 1e9)
    has_large = bool(large.any())
    if has_large:
        work.append(large)
    w = 1.0 / np.maximum(t, 1e-9)
    a = np.stack([np.ones(len(rows)), *work], axis=1)
    overhead = float(_nnls(a * w[:, None], t * w)[0])
    c = _nnls(np.stack(work, axis=1), np.maximum(t - overhead, 0.0))
    rate = (1e9 / c[0] if c[0] > 0 else None) if compute else None
    per_gb = c[1 if compute else 0]
    bw = 1e9 / per_gb if per_gb > 0 else None
    large_bw = (1e9 / c[-1] if c[-1] > 0 else None) if has_large else None
    pred = overhead + np.stack(work, axis=1) @ c
    err = float(np.median(np.abs(pred - t) / t))
    return FamilyCost(overhead_s=overhead, flop_rate=rate, bandwidth_bytes_per_s=bw,
                      large_bandwidth_bytes_per_s=large_bw), err


def fit_families(rows: dict[tuple[str, bool], list[tuple[float, int, float, int]]]
                 ) -> tuple[dict[str, FamilyCost], dict[str, float]]:
    """Every family's cost from its timed operations, ``(family, backward) -> (flops, bytes,
    seconds, large bytes)`` rows: the forward's and the backward's apart where each pass has
    ``MIN_PASS_ROWS`` operations (``FamilyCost.backward``), else one fit of both. Returns the
    costs and the fits' median relative errors (``"<family> backward"`` for a backward fit)."""
    costs, errs = {}, {}
    for f in FAMILIES:
        fwd_rows, bwd_rows = rows.get((f, False), []), rows.get((f, True), [])
        if not fwd_rows and not bwd_rows:
            raise InputError(f"calibrate measured no {f} operation", param="device")
        compute = f in COMPUTE_FAMILIES
        if min(len(fwd_rows), len(bwd_rows)) < MIN_PASS_ROWS:
            costs[f], errs[f] = fit_family(fwd_rows + bwd_rows, compute)  # one for both
            continue
        fwd, errs[f] = fit_family(fwd_rows, compute)
        bwd, errs[f"{f} backward"] = fit_family(bwd_rows, compute)
        # large results cost the same fresh pages in either pass: a pass whose ladder
        # operations had none takes the other pass's price for them
        fwd_large = fwd.large_bandwidth_bytes_per_s or bwd.large_bandwidth_bytes_per_s
        bwd_large = bwd.large_bandwidth_bytes_per_s or fwd.large_bandwidth_bytes_per_s
        costs[f] = replace(fwd, large_bandwidth_bytes_per_s=fwd_large,
                           backward=replace(bwd, large_bandwidth_bytes_per_s=bwd_large))
    return costs, errs


def calibrate(*, storage_path: str | None = None, seconds: float = 2.0, quick: bool = False,
              device: str = "cpu", progress: Callable[[str], None] | None = None,
              passes: int = PASSES) -> Calibration:
    """Measure this machine (see the module docstring). ``seconds`` per compute measurement;
    ``quick``: smaller problems and shorter runs (a smoke test, not a profile to trust);
    ``passes``: passes over the ladder, each as long as one of the default ``PASSES`` (the time
    budget grows with them), for a steadier fit on a machine whose speed drifts."""
    if passes < 1:
        raise InputError(f"passes: expected 1 or more, got {passes}", param="passes")
    say = progress or (lambda _label: None)
    say("memory")
    rss0 = _rss()
    try:
        import torch
    except ImportError:
        raise InputError("calibrate needs PyTorch to measure training throughput",
                         hint="pip install 'edgeplan[torch]'") from None
    import numpy as np

    framework = max(0, _rss() - rss0)
    info = _meminfo()
    total, avail = info.get("MemTotal", 0), info.get("MemAvailable", 0)
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("CUDA is not available", param="device")
        before = _rss()
        torch.zeros(1, device=dev)
        torch.cuda.synchronize(dev)
        framework += max(0, _rss() - before)

        def sync() -> None:
            torch.cuda.synchronize(dev)
    else:
        def sync() -> None:
            return None
    stamp = time.strftime("%Y-%m-%d")
    how_mem = f"edgeplan calibrate {stamp}, torch {torch.__version__}"
    reserved = min(total - 1, (total - avail) + framework)
    cal_total = Measurement(float(total), f"[M] MemTotal of /proc/meminfo ({how_mem}); the "
                                          "kernel's view, a little under the physical RAM")
    ctx = " and the CUDA context" if dev.type == "cuda" else ""
    cal_reserved = Measurement(float(reserved), f"[M] MemTotal - MemAvailable "
                                                f"({(total - avail) / 2**20:.0f} MiB) + importing "
                                                f"torch ({framework / 2**20:.0f} MiB RSS{ctx}) "
                                                f"({how_mem}); close other programs first")
    # compute: every family's ladder, op by op, per precision
    seconds = 0.3 if quick else seconds
    precisions = {"fp32": torch.float32}
    if dev.type == "cuda" or _cpu_has_bf16(torch):
        precisions["bf16"] = torch.bfloat16
    if dev.type == "cuda":
        precisions["fp16"] = torch.float16
    families: dict[str, dict[str, FamilyCost]] = {}
    fit_err: dict[str, dict[str, float]] = {}
    sustained: dict[str, Measurement] = {}
    # the largest calibration tensors: 64 MiB of fp32, or 1/64 of the memory available now
    ladders = _ladders(torch, quick, big_elements=max(2**16, min(2**24, avail // 256)))
    per_pass = seconds / (1 if quick else PASSES)  # per family and pass
    passes = 1 if quick else passes
    made: dict[str, int] = {}
    budget = LADDER_BUDGET_S * passes / PASSES / len(precisions)  # per precision
    for pname, dt in precisions.items():
        # (family, backward) -> (flops, bytes, seconds, large bytes) of its operations
        rows: dict[tuple[str, bool], list[tuple[float, int, float, int]]] = {
            (f, b): [] for f in FAMILIES for b in (False, True)}
        # (family, net) -> its operations, each at its fastest over the passes so far
        best: dict[tuple[str, int], list[OpRow]] = {}
        t0 = time.perf_counter()
        try:
            for k in range(passes):
                took = time.perf_counter() - t0
                if k and took / k * (k + 1) > budget:
                    break  # one more pass would not fit the budget
                for fam, nets in ladders.items():
                    say(f"{fam} {pname}" + (f" (pass {k + 1} of {passes})" if passes > 1 else ""))
                    for i, (_label, make) in enumerate(nets):
                        ops = _op_rows(torch, make, per_pass / len(nets), dt, dev, sync,
                                       max_bytes=avail // 8 or None)
                        best[fam, i] = _fastest_ops(best.get((fam, i)), ops)
                made[pname] = k + 1
        except RuntimeError:  # this build has no kernel for the dtype
            if pname == "fp32":
                raise
            continue
        for ops in best.values():
            for f, flops, moved, sec, large, backward in ops:
                rows[f, backward].append((flops, moved, sec, large))
        families[pname], fit_err[pname] = fit_families(rows)
        # the profile's one sustained figure: conv and matmul FLOPs over their time
        mix = {f: rows[f, False] + rows[f, True] for f in ("conv", "matmul")}
        flops = sum(r[0] for f in mix for r in mix[f])
        secs = sum(r[2] for f in mix for r in mix[f])
        per = {f: sum(r[0] for r in mix[f]) / sum(r[2] for r in mix[f]) for f in mix}
        nthr = torch.get_num_threads()
        threads = f"{nthr} thread{'s' if nthr != 1 else ''}"
        sustained[pname] = Measurement(
            flops / secs, f"[M] training forward + backward FLOPs (torch.utils.flop_counter) / "
                          f"time of the convolution ({per['conv'] / 1e9:.3g} GFLOP/s) and "
                          f"matmul ({per['matmul'] / 1e9:.3g} GFLOP/s) operations of the "
                          f"calibration ladder, {pname}, {threads}; "
                          f"compute.families prices each op family ({how_mem})")
    if "fp32" not in sustained:
        raise InputError("could not measure fp32 training throughput on this machine",
                         param="device")
    say("memory bandwidth")
    size = (16 if quick else 256) * 2**20
    a = np.ones(size // 8)
    c = np.empty_like(a)
    t = _best_time(lambda: np.copyto(c, a), 0.2 if quick else 1.0, lambda: None)
    bw = Measurement(2 * size / t, f"[M] numpy copy of {size // 2**20} MiB, read + write bytes "
                                   f"/ best time ({how_mem})")
    storage: dict[str, Measurement] = {}
    if storage_path is not None:
        storage = _storage(storage_path, (8 if quick else 256) * 2**20, how_mem, say)
    import platform
    return Calibration(total_bytes=cal_total, reserved_bytes=cal_reserved,
                       bandwidth_bytes_per_s=bw, sustained_flops=sustained, families=families,
                       fit_error=fit_err,
                       storage=storage, kind="gpu" if dev.type == "cuda" else "cpu",
                       torch_version=str(torch.__version__), threads=torch.get_num_threads(),
                       passes=made,
                       machine=f"{platform.machine()} {platform.processor() or ''}".strip())


def _cpu_has_bf16(torch: object) -> bool:
    try:
        x = torch.randn(64, 64, dtype=torch.bfloat16)  # type: ignore[attr-defined]
        (x @ x).sum()
        return True
    except RuntimeError:
        return False


def _storage(path: str, size: int, how: str, say: Callable[[str], None]
             ) -> dict[str, Measurement]:
    """Sequential write (fsync) and cold read of ``size`` bytes, and 4 KiB sync latencies, in
    a scratch file under ``path`` (removed afterwards)."""
    if not os.path.isdir(path):
        raise InputError("not a folder", source=path)
    f = os.path.join(path, f".edgeplan-calibrate-{os.getpid()}")
    block = os.urandom(4 * 2**20)
    try:
        say("storage write")
        t0 = time.perf_counter()
        with open(f, "wb", buffering=0) as fh:
            done = 0
            while done < size:
                done += fh.write(block[:min(len(block), size - done)])
            os.fsync(fh.fileno())
        write = size / (time.perf_counter() - t0)
        say("storage read")
        _drop_cache(f)
        t0 = time.perf_counter()
        with open(f, "rb", buffering=0) as fh:
            while fh.read(len(block)):
                pass
        read = size / (time.perf_counter() - t0)
        lat_w, lat_r = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            with open(f, "r+b", buffering=0) as fh:
                fh.write(block[:4096])
                os.fsync(fh.fileno())
            lat_w.append(time.perf_counter() - t0)
            _drop_cache(f)
            t0 = time.perf_counter()
            with open(f, "rb", buffering=0) as fh:
                fh.read(4096)
            lat_r.append(time.perf_counter() - t0)
    except OSError as e:
        raise InputError(f"cannot measure the storage: {e.strerror or e}", source=path) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(f)
    where = f"a scratch file in {path}"
    return {
        "write": Measurement(write, f"[M] sequential write of {size // 2**20} MiB with fsync to "
                                    f"{where} ({how})"),
        "read": Measurement(read, f"[M] sequential read of {size // 2**20} MiB after dropping "
                                  f"the page cache (posix_fadvise), {where} ({how})"),
        "write_latency": Measurement(min(lat_w), f"[M] best of 5 4-KiB writes with fsync ({how})"),
        "read_latency": Measurement(min(lat_r), f"[M] best of 5 cold 4-KiB reads ({how})"),
    }


def _drop_cache(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
