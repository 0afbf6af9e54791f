"""Measure the chain of a PyTorch model (sizes and per-stage times) for the prediction side.

Sizes come from the torch importer (``edgeplan.importers.torch_import.measure_stages``: each stage
alone on the previous stage's detached output, ``saved`` from ``saved_tensors_hooks``, storages
counted once, parameters / buffers / the stage input excluded); when the importer is missing, an
equivalent measurement here does the same without FLOPs and allocator events. Times are the
fastest of repeated recording forwards and seeded backwards of each stage alone.

Every measurement runs inside ``preserved_state``: running statistics, parameter gradients and
the RNG state are as before afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks

from ..chain import Chain, Stage
from ..errors import InputError
from ._tensors import (detach_all, fixed_storage_keys, leaves, preserved_state, storage_key)
from .executor import LossStage, stage_list

__all__ = ["MeasuredChain", "measure_chain", "time_stages", "without_tmp"]


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


def _own_sizes(stages: list[tuple[str, nn.Module]], x0: Any) -> list[tuple[int, int, int]]:
    """(out, saved, params) per stage, by the importer's rules (no FLOPs, no tmp)."""
    fixed = fixed_storage_keys(m for _, m in stages)
    a0_keys = {storage_key(t)[0] for t in leaves(x0)}
    counted: set[int] = set()
    res = []
    prev = x0
    for name, module in stages:
        inp = _prepare(prev, a0_keys)
        in_keys = {storage_key(t)[0] for t in leaves(inp)}
        packed: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            k, n = storage_key(t)
            packed[k] = max(packed.get(k, 0), n)
            return t

        try:
            with torch.enable_grad(), saved_tensors_hooks(pack, lambda t: t):
                out = module(inp)
        except Exception as e:  # noqa: BLE001
            raise InputError(f"running the stage failed: {type(e).__name__}: {e}",
                             where=name) from e
        outs = {}
        for t in leaves(out):
            k, n = storage_key(t)
            if k not in a0_keys:
                outs[k] = max(outs.get(k, 0), n)
        saved = {k: n for k, n in packed.items() if k not in fixed | in_keys | a0_keys}
        for k, n in outs.items():
            saved[k] = max(saved.get(k, 0), n)
        pbytes = 0
        for p in module.parameters():
            if id(p) not in counted:
                counted.add(id(p))
                pbytes += p.numel() * p.element_size()
        out_b = sum(outs.values())
        res.append((out_b, max(sum(saved.values()), out_b), pbytes))
        prev = detach_all(out)
        del out
    return res


def time_stages(stages: list[tuple[str, nn.Module]], x0: Any, *, reps: int = 5,
                warmup: int = 1) -> list[tuple[float, float]]:
    """(forward, backward) seconds per stage: the fastest of ``reps`` recording forwards and
    seeded backwards of each stage alone, after ``warmup`` runs (state preserved). The minimum,
    not the median: on a shared machine interference only ever adds time."""
    a0_keys = {storage_key(t)[0] for t in leaves(x0)}
    out_times: list[tuple[float, float]] = []
    with preserved_state(m for _, m in stages):
        prev = x0
        for name, module in stages:
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


def measure_chain(model: Any, x: Any, *, target: Any = None,
                  loss_fn: Callable[..., torch.Tensor] | None = None, timing: bool = True,
                  reps: int = 5, measure_tmp: bool = False, name: str = "model",
                  use_importer: bool = True) -> MeasuredChain:
    """The chain of ``model`` on the input batch ``x`` (stages as :func:`stage_list` makes them).

    Sizes from the torch importer when available (``use_importer``), else measured here by the
    same rules; ``fwd_tmp``/``bwd_tmp`` only with ``measure_tmp`` (importer only, via allocator
    events). Times from :func:`time_stages` with ``timing``, else 0. The model's state (running
    statistics, gradients, RNG) is unchanged afterwards.
    """
    stages = stage_list(model, loss_fn)
    last = stages[-1][1]
    if isinstance(last, LossStage):
        last.target = target
    x0 = detach_all(x)
    source = "torchrun"
    sizes: list[tuple[int, int, int, int, int]] = []
    try:
        with preserved_state(m for _, m in stages):
            measures = None
            if use_importer:
                try:
                    from ..importers.torch_import import measure_stages
                except ImportError:
                    measures = None
                else:
                    measures = measure_stages(stages, x0, measure_tmp=measure_tmp, timing=False)
                    source = "importer"
                    sizes = [(int(s.out_bytes), int(s.saved_bytes), int(s.fwd_tmp_bytes),
                              int(s.bwd_tmp_bytes), int(s.param_bytes)) for s in measures]
            if measures is None:
                sizes = [(o, s, 0, 0, p) for o, s, p in _own_sizes(stages, x0)]
        times = time_stages(stages, x0, reps=reps) if timing else [(0.0, 0.0)] * len(stages)
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
