"""Measure the chain of a PyTorch model (sizes and per-stage times) for the prediction side.

Sizes come from the one stage measurer (``torchrun.meter.measure_stages``, which the importer
uses too: each stage alone on the previous stage's detached output, ``saved`` from
``saved_tensors_hooks``, storages counted once, parameters / buffers / the stage input
excluded). Times are the
``Fall i`` / ``B i`` op times of the fastest of several store-all steps run by the executor
(:class:`StageTimer`), so they include what the executor pays per op.

Every measurement runs inside ``preserved_state``: running statistics, parameter gradients and
the RNG state are as before afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..chain import Chain, Stage
from ..errors import InputError
from ..schedule import Op, OpKind, Schedule
from ._tensors import detach_all, leaves, preserved_state, storage_key
from .executor import ChainExecutor, LossStage, stage_list
from .meter import measure_stages

__all__ = ["MeasuredChain", "StageTimer", "measure_chain", "time_stages", "time_stages_isolated",
           "with_times", "without_tmp"]


@dataclass(frozen=True)
class MeasuredChain:
    """The chain measured from a model: ``chain`` (bytes; times when timed, else 0) and where the
    sizes came from (``"importer"`` or ``"torchrun"``)."""

    chain: Chain
    source: str
    timed: bool
    measured_tmp: bool


def without_tmp(chain: Chain) -> Chain:
    """The same chain with ``fwd_tmp = bwd_tmp = 0``: the quantity storage accounting sees."""
    from dataclasses import replace
    return replace(chain, stages=tuple(replace(s, fwd_tmp_bytes=0, bwd_tmp_bytes=0)
                                       for s in chain.stages))


def _prepare(prev: Any, a0_keys: set[int]) -> Any:
    from torch.utils._pytree import tree_map

    def f(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        t = t.detach()
        if (t.is_floating_point() or t.is_complex()) and storage_key(t)[0] not in a0_keys:
            t.requires_grad_(True)
        return t
    return tree_map(f, prev)


def _sync(x0: Any) -> None:
    for t in leaves(x0):
        if t.device.type == "cuda":
            torch.cuda.synchronize(t.device)
            return


def _store_all(length: int) -> Schedule:
    return Schedule(tuple(Op(OpKind.FALL, i) for i in range(1, length + 1))
                    + tuple(Op(OpKind.B, i) for i in range(length, 0, -1)))


def _is_oom(e: BaseException) -> bool:
    oom = tuple(t for t in (getattr(torch, "OutOfMemoryError", None),
                            getattr(torch.cuda, "OutOfMemoryError", None)) if t is not None)
    while e is not None:
        if oom and isinstance(e, oom):
            return True
        e = e.__cause__
    return False


class StageTimer:
    """Per-stage host times taken from the executor itself.

    Each :meth:`round` runs one store-all step (``Fall 1..L``, ``B L..1``) with the
    :class:`~edgeplan.torchrun.executor.ChainExecutor` (no accounting) and records every op's
    time: ``Fall i`` is stage ``i``'s forward, ``B i`` its backward. :meth:`times` gives the
    stage times of the fastest recorded round (the least disturbed whole step).

    Why the executor and not each stage alone in a tight loop: the executed step pays, per op,
    the executor's own work (detached aliases, saved-tensor hooks, RNG snapshots) and runs the
    stages one after another, each with colder caches and another allocator state; a stage
    timed alone, again and again, does neither and came out 25-35% faster than the same op in a
    step. Why a whole round and not the fastest time of each op: interference (preemption by
    other processes, a descheduled OpenMP thread) adds time to some ops of most rounds; the
    minimum of each op over the rounds is a step that never ran, and the median of each op
    misses the disturbance that the median step contains. The fastest round is a real step, as
    is the fastest timed step of the schedule it is compared with. Memory: the store-all
    step's peak (every stage's saved tensors at once).

    The modules' state is the caller's business (wrap in ``preserved_state``); parameter
    gradients are set to None before every round.
    """

    def __init__(self, stages: list[tuple[str, nn.Module]], x0: Any, *, target: Any = None,
                 autocast: Any = None):
        self.stages = stages
        self.x0 = x0
        last = stages[-1][1]
        self.target = target if isinstance(last, LossStage) else None
        self.ex = ChainExecutor(stages, autocast=autocast)
        self.schedule = _store_all(len(stages))
        self.fwd: list[list[float]] = [[] for _ in stages]
        self.bwd: list[list[float]] = [[] for _ in stages]
        self.walls: list[float] = []

    def round(self, record: bool = True) -> None:
        for _, m in self.stages:
            for p in m.parameters():
                p.grad = None
        res = self.ex.step(self.x0, self.schedule, target=self.target, measure=False)
        if not record:
            return
        for s in res.samples:
            if s.kind == OpKind.FALL.value:
                self.fwd[s.stage - 1].append(s.time_s)
            elif s.kind == OpKind.B.value:
                self.bwd[s.stage - 1].append(s.time_s)
        self.walls.append(res.wall_time_s)

    @property
    def rounds(self) -> int:
        return len(self.walls)

    def fastest(self) -> int:
        """The recorded round with the shortest store-all step."""
        if not self.walls:
            raise ValueError("no round recorded")
        return min(range(len(self.walls)), key=self.walls.__getitem__)

    def round_times(self, k: int) -> list[tuple[float, float]]:
        """(forward, backward) seconds per stage in recorded round ``k``."""
        return [(f[k], b[k]) for f, b in zip(self.fwd, self.bwd)]

    def times(self) -> list[tuple[float, float]]:
        """(forward, backward) seconds per stage of the fastest round."""
        return self.round_times(self.fastest())


def time_stages(stages: list[tuple[str, nn.Module]], x0: Any, *, reps: int = 7,
                warmup: int = 1, target: Any = None,
                autocast: Any = None) -> list[tuple[float, float]]:
    """(forward, backward) seconds per stage: the op times of the fastest of ``reps`` store-all
    steps run by the executor (:class:`StageTimer`), after ``warmup`` unrecorded ones
    (first-call costs: oneDNN primitive creation, allocator growth). State (running
    statistics, gradients, RNG) preserved. When the store-all step does not fit in device
    memory, each stage is timed alone instead (:func:`time_stages_isolated`)."""
    with preserved_state(m for _, m in stages):
        timer = StageTimer(stages, x0, target=target, autocast=autocast)
        try:
            for _ in range(max(0, warmup)):
                timer.round(record=False)
            for _ in range(max(1, reps)):
                timer.round()
        except InputError as e:
            if not _is_oom(e):
                raise
        else:
            return timer.times()
    return time_stages_isolated(stages, x0, reps=reps, warmup=warmup)


def time_stages_isolated(stages: list[tuple[str, nn.Module]], x0: Any, *, reps: int = 7,
                         warmup: int = 1) -> list[tuple[float, float]]:
    """(forward, backward) seconds per stage, each stage alone on the previous stage's output:
    the fastest of ``reps`` recording forwards and seeded backwards after ``warmup`` runs (state
    preserved). Needs only one stage's memory at a time, but misses the executor's per-op costs
    (see :class:`StageTimer`): typically 25-35% below the executed ops."""
    a0_keys = {storage_key(t)[0] for t in leaves(x0)}
    out_times: list[tuple[float, float]] = []
    with preserved_state(m for _, m in stages):
        prev = x0
        for _name, module in stages:
            fw: list[float] = []
            bw: list[float] = []
            nxt = None
            for r in range(warmup + max(1, reps)):
                inp = _prepare(prev, a0_keys)
                _sync(x0)
                t0 = time.perf_counter()
                with torch.enable_grad():
                    out = module(inp)
                _sync(x0)
                t1 = time.perf_counter()
                outs = [t for t in leaves(out) if t.requires_grad]
                seeds = [torch.ones_like(t) for t in outs]
                _sync(x0)
                t2 = time.perf_counter()
                if outs:
                    torch.autograd.backward(outs, seeds)
                _sync(x0)
                t3 = time.perf_counter()
                if r >= warmup:
                    fw.append(t1 - t0)
                    bw.append(t3 - t2)
                if nxt is None:
                    nxt = detach_all(out)
                del out, outs, seeds, inp
                for p in module.parameters():
                    p.grad = None
            out_times.append((min(fw), min(bw)))
            prev = nxt
    return out_times


def with_times(chain: Chain, times: list[tuple[float, float]]) -> Chain:
    """``chain`` with the per-stage (forward, backward) seconds ``times``."""
    from dataclasses import replace
    return replace(chain, stages=tuple(replace(s, fwd_time_s=float(f), bwd_time_s=float(b))
                                       for s, (f, b) in zip(chain.stages, times)))


def measure_chain(model: Any, x: Any, *, target: Any = None,
                  loss_fn: Callable[..., torch.Tensor] | None = None, timing: bool = True,
                  reps: int = 7, measure_tmp: bool = False,
                  name: str = "model", autocast: Any = None) -> MeasuredChain:
    """The chain of ``model`` on the input batch ``x`` (stages as :func:`stage_list` makes them).

    Sizes from the one stage measurer (``torchrun.meter.measure_stages``, the importer's);
    ``fwd_tmp``/``bwd_tmp`` only with ``measure_tmp`` (allocator events). Times from
    :func:`time_stages` with ``timing``, else 0. The model's state (running statistics,
    gradients, RNG) is unchanged afterwards. ``autocast``: a 16-bit dtype, measured and
    timed with every forward under ``torch.autocast`` (mixed precision).
    """
    stages = stage_list(model, loss_fn)
    last = stages[-1][1]
    if isinstance(last, LossStage):
        last.target = target
    x0 = detach_all(x)
    source = "importer"  # the importer's stage measurer
    try:
        with preserved_state(m for _, m in stages):
            measures = measure_stages(stages, x0, measure_tmp=measure_tmp, timing=False,
                                      autocast=autocast)
        sizes = [(int(s.out_bytes), int(s.saved_bytes), int(s.fwd_tmp_bytes),
                  int(s.bwd_tmp_bytes), int(s.param_bytes)) for s in measures]
        times = (time_stages(stages, x0, reps=reps, target=target, autocast=autocast)
                 if timing else [(0.0, 0.0)] * len(stages))
    finally:
        if isinstance(last, LossStage):
            last.target = None
    chain_stages = tuple(
        Stage(name=n, fwd_time_s=float(tf), bwd_time_s=float(tb), out_bytes=o, saved_bytes=s,
              fwd_tmp_bytes=f, bwd_tmp_bytes=b, param_bytes=p)
        for (n, _), (o, s, f, b, p), (tf, tb) in zip(stages, sizes, times))
    x0_bytes = sum(n for _, n in {storage_key(t) for t in leaves(x0)})
    chain = Chain(name=name, input_bytes=int(x0_bytes), stages=chain_stages,
                  notes=(f"measured by edgeplan.torchrun ({source})",))
    return MeasuredChain(chain=chain, source=source, timed=timing,
                         measured_tmp=measure_tmp and source == "importer")
