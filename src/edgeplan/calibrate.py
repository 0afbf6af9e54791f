"""Measure this machine for a device profile (``edgeplan calibrate``).

Run on the device itself (a Pi, a Jetson, any Linux box). Every number it returns was measured
here, now, and says how (``Measurement.how``); the command line writes them as a device
profile with ``[M]`` sources, the command, the date and the torch version.

* memory: ``MemTotal`` of ``/proc/meminfo``; the reserve is what is not available to a new
  process (``MemTotal - MemAvailable``) plus what importing the training framework costs
  (this process's RSS growth when torch is imported, and on CUDA the context);
* compute: training-step throughput (forward and backward FLOPs counted by
  ``torch.utils.flop_counter``, divided by the best wall time of repeated steps) of the op
  families that matter: matrix multiplication, convolution, depthwise convolution; the
  profile's sustained figure is the convolution and matmul mix's, the others go in the notes;
  per precision where this torch build computes it (bf16/fp16 on CPUs that have them);
* element-wise / normalisation work is memory bound: the bandwidth of a large copy (numpy, read
  plus write bytes);
* storage (optional ``path``): sequential write with ``fsync`` and read after dropping the page
  cache (``posix_fadvise``), and the latency of one 4 KiB synchronous write and read.

It never prints; ``progress(label)`` is called before each measurement.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import InputError

__all__ = ["Calibration", "Measurement", "calibrate"]


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
    families: dict[str, dict[str, Measurement]]      # family -> precision -> rate
    storage: dict[str, Measurement] = field(default_factory=dict)  # read, write, *_latency
    kind: str = "cpu"
    torch_version: str = ""
    threads: int = 1
    machine: str = ""


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


def _training_rate(torch: object, make: Callable[[], tuple[object, object]], seconds: float,
                   sync: Callable[[], None]) -> tuple[float, float]:
    """(FLOP/s, FLOPs per step) of forward + backward of ``make() -> (module, input)``."""
    from torch.utils.flop_counter import FlopCounterMode

    module, x = make()

    def step() -> None:
        module.zero_grad(set_to_none=True)  # type: ignore[attr-defined]
        module(x).sum().backward()  # type: ignore[operator]

    with FlopCounterMode(display=False) as fc:
        step()
    flops = float(fc.get_total_flops())
    return flops / _best_time(step, seconds, sync), flops


def calibrate(*, storage_path: str | None = None, seconds: float = 2.0, quick: bool = False,
              device: str = "cpu", progress: Callable[[str], None] | None = None
              ) -> Calibration:
    """Measure this machine (see the module docstring). ``seconds`` per compute measurement;
    ``quick``: smaller problems and shorter runs (a smoke test, not a profile to trust)."""
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
    # compute
    seconds = 0.3 if quick else seconds
    n = 256 if quick else 1024
    hw, ch, b = (16, 32, 4) if quick else (56, 64, 8)
    families: dict[str, dict[str, Measurement]] = {"matmul": {}, "conv": {}, "depthwise": {}}
    sustained: dict[str, Measurement] = {}
    precisions = {"fp32": torch.float32}
    if dev.type == "cuda" or _cpu_has_bf16(torch):
        precisions["bf16"] = torch.bfloat16
    if dev.type == "cuda":
        precisions["fp16"] = torch.float16
    for pname, dt in precisions.items():
        def lin(dt: object = dt) -> tuple[object, object]:
            return (torch.nn.Linear(n, n).to(dev, dt),
                    torch.randn(n, n, device=dev, dtype=dt))  # type: ignore[arg-type]

        def conv(dt: object = dt) -> tuple[object, object]:
            return (torch.nn.Conv2d(ch, ch, 3, padding=1).to(dev, dt),
                    torch.randn(b, ch, hw, hw, device=dev, dtype=dt))  # type: ignore[arg-type]

        def dw(dt: object = dt) -> tuple[object, object]:
            return (torch.nn.Conv2d(ch * 4, ch * 4, 3, padding=1, groups=ch * 4).to(dev, dt),
                    torch.randn(b, ch * 4, hw, hw, device=dev, dtype=dt))  # type: ignore[arg-type]

        rates = {}
        for fam, make, what in (("matmul", lin, f"Linear {n}x{n} on {n} rows"),
                                ("conv", conv, f"Conv2d {ch}->{ch} 3x3 on {b}x{ch}x{hw}x{hw}"),
                                ("depthwise", dw, f"depthwise Conv2d {ch * 4} 3x3 on "
                                                  f"{b}x{ch * 4}x{hw}x{hw}")):
            say(f"{fam} {pname}")
            try:
                rate, flops = _training_rate(torch, make, seconds, sync)
            except RuntimeError:  # this build has no kernel for the dtype
                continue
            rates[fam] = rate
            families[fam][pname] = Measurement(
                rate, f"[M] forward+backward of {what}, {pname}, {flops / 1e6:.0f} MFLOP per "
                      f"step (torch.utils.flop_counter) / best wall time, "
                      f"{torch.get_num_threads()} threads ({how_mem})")
        if "matmul" in rates and "conv" in rates:
            mix = 2.0 / (1.0 / rates["matmul"] + 1.0 / rates["conv"])  # equal FLOPs of each
            sustained[pname] = Measurement(
                mix, f"[M] harmonic mean of the training throughput of convolution "
                     f"({rates['conv'] / 1e9:.3g} GFLOP/s) and matmul "
                     f"({rates['matmul'] / 1e9:.3g} GFLOP/s), {pname}; depthwise and "
                     f"element-wise layers run slower (notes) ({how_mem})")
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
                       storage=storage, kind="gpu" if dev.type == "cuda" else "cpu",
                       torch_version=str(torch.__version__), threads=torch.get_num_threads(),
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
