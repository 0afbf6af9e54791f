"""Execute a chain-model schedule (docs/chain-model.md §3) as one PyTorch training step.

The model is a chain of stages (the top-level children of an ``nn.Sequential``, or a list of
modules); stage ``i`` maps ``a_{i-1}`` to ``a_i`` and the **last stage returns the scalar loss**
(docs/chain-model.md §1). With ``loss_fn`` the last stage becomes ``loss_fn(stage_L(a), target)``
-- still one stage, measured and executed as such.

Ops, exactly as the chain model defines them:

``Fn i``
    forward of stage ``i`` under ``torch.no_grad()`` on ``a_{i-1}``; keeps ``a_i``.
``Fall i``
    forward of stage ``i`` with autograd recording, on a detached alias of ``a_{i-1}`` that
    requires grad (not for the input batch ``a_0``, which is data); keeps ``A_i``: the stage's
    graph, the tensors autograd saved for it (captured with ``saved_tensors_hooks``) and its
    output.
``B i``
    ``out_i.backward(d_i)`` (the loss itself for ``i = L``), then ``d_{i-1}`` = the gradient of
    the detached input. ``A_i`` and ``d_i`` are dropped at the end of the op. Parameter
    gradients accumulate in ``.grad`` exactly as one plain ``loss.backward()`` would: every
    stage's backward runs exactly once.
``free_a i`` / ``free_A i``
    drop the executor's references.

A **frozen prefix** (docs/chain-model.md §8) is read from the schedule: when its last backward
is ``B p+1``, stages ``1..p`` run forward only, ``Fall p+1`` takes ``a_p`` as data (no input
gradient, like ``a_0``) and ``B p+1`` computes none. Their parameters must not require grad
(checked: their gradients would silently stay empty). Frozen, bias-only and LoRA stages inside
the trained part need nothing special: autograd computes what their ``requires_grad`` flags ask
(``torchrun.trainable``).

Recomputation is side-effect free: the CPU (and, when CUDA is initialised, every CUDA device's)
RNG state is saved before the first forward of each stage and restored for every later forward
of that stage (so a recomputed dropout mask equals the first one, as in
``torch.utils.checkpoint``), and the global RNG continues as if the stage had run once.
Batch-norm / instance-norm running statistics are updated by the first forward only; later
forwards run on swapped-in clones of the statistic buffers.

Memory accounting (what ``StepResult`` calls *measured*): the bytes of the distinct storages
(``untyped_storage``; views count once) referenced by the executor's live tensors -- the input
batch ``a_0``, every live ``a_i``, every live ``A_i`` (its detached input, its output and every
tensor autograd saved for it), the live gradient ``d_k`` -- leaving out parameters, buffers and the
clones of batch-norm statistics. It is sampled after every op (``after_bytes``) and at each op's
transient point (``transient_bytes``): right after the forward returns (output and saved tensors
alive, the forward's temporaries already gone) and right after the backward returns, before
``A_i`` and ``d_i`` are dropped (``d_{i-1}`` alive). This is the simulator's definition with
``fwd_tmp = bwd_tmp = 0``: temporaries inside an op are not counted. With ``strict=True``
(default) the saved tensors of ``A_i`` stay alive until ``B i`` ends, as the chain model says;
with ``strict=False`` autograd frees them while the backward runs, and the measured ``B``
transient is lower than the model's.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks
from torch.utils._pytree import tree_map

from ..chain import make_chain
from ..errors import InputError, ScheduleError
from ..schedule import OpKind, Schedule
from ..simulator import simulate
from ._tensors import (
    detach_all,
    fixed_storage_keys,
    frozen_running_stats,
    get_rng,
    leaves,
    set_rng,
    storage_bytes,
    storage_key,
)
from .meter import autocast_on

__all__ = ["ChainExecutor", "StepResult", "OpSample", "LossStage", "stage_list", "run_step",
           "check_schedule"]


# --- the model as a chain -------------------------------------------------------------------------

class LossStage(nn.Module):
    """The last stage with a loss: ``loss_fn(module(a), target)``; ``target`` is set per step."""

    def __init__(self, module: nn.Module, loss_fn: Callable[..., torch.Tensor]):
        super().__init__()
        self.module = module
        self.loss_fn = loss_fn
        self.target: Any = None

    def forward(self, x: Any) -> torch.Tensor:
        if self.target is None:
            raise InputError("a loss_fn was given but no target for this step",
                             source="target")
        return self.loss_fn(self.module(x), self.target)


def stage_list(model: Any, loss_fn: Callable[..., torch.Tensor] | None = None
               ) -> list[tuple[str, nn.Module]]:
    """``[(name, module), ...]`` for an ``nn.Sequential`` (its top-level children), a list /
    ``nn.ModuleList`` of modules, or such a list of ``(name, module)`` pairs. With ``loss_fn``
    the last stage is wrapped in a :class:`LossStage`."""
    if isinstance(model, nn.Sequential):
        named = [(f"{type(m).__name__.lower()}{n}" if str(n).isdigit() else str(n), m)
                 for n, m in model.named_children()]
    elif isinstance(model, (list, tuple, nn.ModuleList)):
        named = []
        for k, m in enumerate(model):
            if isinstance(m, tuple) and len(m) == 2 and isinstance(m[1], nn.Module):
                named.append((str(m[0]), m[1]))
            elif isinstance(m, nn.Module):
                named.append((f"{type(m).__name__.lower()}{k + 1}", m))
            else:
                raise InputError(f"item {k} is a {type(m).__name__}, not an nn.Module",
                                 source="model")
    else:
        raise InputError(f"expected nn.Sequential (stages = top-level children) or a list of "
                         f"modules, got {type(model).__name__}", source="model")
    if not named:
        raise InputError("the model has no stages", source="model")
    if loss_fn is not None:
        name, last = named[-1]
        if not isinstance(last, LossStage):
            named[-1] = (name, LossStage(last, loss_fn))
    return named


_EXECUTABLE = frozenset({OpKind.FN, OpKind.FALL, OpKind.B, OpKind.FREE_A, OpKind.FREE_ALL})


def frozen_prefix_of(schedule: Schedule) -> int:
    """``p``: the schedule's backward stops at ``B p+1`` (0 when it reaches ``B 1``)."""
    return min((op.stage for op in schedule.ops if op.kind is OpKind.B), default=1) - 1


def check_schedule(schedule: Schedule, length: int) -> None:
    """The schedule is for a chain of ``length`` stages and valid under docs/chain-model.md §3
    and §8 (replayed by the simulator on a zero-sized chain with the schedule's frozen prefix);
    ``InputError`` otherwise."""
    if not schedule.ops:
        raise InputError("the schedule is empty", source="schedule")
    io = sorted({op.kind.value for op in schedule.ops if op.kind not in _EXECUTABLE})
    if io:
        raise InputError(f"the executor runs Fn, Fall, B, free_a and free_A; this schedule also "
                         f"has {', '.join(io)} (storage-tier ops are not executed)",
                         source="schedule")
    top = max(op.stage for op in schedule.ops)
    if top != length:
        raise InputError(f"the schedule is for {top} stages but the model has {length}",
                         source="schedule")
    zero = make_chain("check", fwd=[0.0] * length, bwd=[0.0] * length, out=[0] * length,
                      saved=[0] * length, input_bytes=0)
    prefix = frozen_prefix_of(schedule)
    if 0 < prefix < length:
        zero = replace(zero, frozen_prefix=prefix)
    try:
        simulate(zero, schedule)
    except ScheduleError as e:
        raise InputError(f"invalid schedule: {e}", source="schedule") from None


# --- results --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OpSample:
    """One executed op: its wall time and the live activation bytes (storage accounting) at its
    transient point and after it. ``cuda_allocated_bytes``: ``torch.cuda.memory_allocated`` after
    the op (CUDA runs only)."""

    index: int
    op: str
    kind: str
    stage: int
    time_s: float
    transient_bytes: int
    after_bytes: int
    cuda_allocated_bytes: int | None = None

    def to_dict(self) -> dict:
        return {"index": self.index, "op": self.kind, "stage": self.stage, "time_s": self.time_s,
                "transient_bytes": self.transient_bytes, "after_bytes": self.after_bytes,
                "cuda_allocated_bytes": self.cuda_allocated_bytes}


@dataclass(frozen=True)
class StepResult:
    """What one executed step did and measured.

    ``peak_bytes``: the largest live activation bytes seen (storage accounting, see the module
    docstring), over the initial state and every op's transient and after points;
    ``peak_index`` the op where it was first reached (-1: the initial state). ``wall_time_s``:
    the whole step; ``compute_time_s``: the sum of the ops' times (the accounting itself left
    out). ``cuda_*``: allocator figures of the input's CUDA device (``None`` on CPU):
    ``cuda_start_bytes`` allocated when the step started (parameters, gradients, optimizer state,
    the input...), ``cuda_peak_bytes`` = ``torch.cuda.max_memory_allocated`` during the step.
    """

    loss: torch.Tensor | None
    samples: tuple[OpSample, ...]
    initial_bytes: int
    peak_bytes: int
    peak_index: int
    wall_time_s: float
    compute_time_s: float
    forward_ops: int
    recomputed_forwards: int
    measured: bool
    strict: bool
    cuda_start_bytes: int | None = None
    cuda_peak_bytes: int | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def loss_value(self) -> float | None:
        return None if self.loss is None else float(self.loss)

    @property
    def cuda_peak_above_start_bytes(self) -> int | None:
        if self.cuda_peak_bytes is None or self.cuda_start_bytes is None:
            return None
        return self.cuda_peak_bytes - self.cuda_start_bytes

    def to_dict(self, ops: bool = True) -> dict:
        d = {"loss": self.loss_value, "peak_bytes": self.peak_bytes if self.measured else None,
             "peak_index": self.peak_index if self.measured else None,
             "initial_bytes": self.initial_bytes, "wall_time_s": self.wall_time_s,
             "compute_time_s": self.compute_time_s, "forward_ops": self.forward_ops,
             "recomputed_forwards": self.recomputed_forwards, "strict": self.strict,
             "cuda_start_bytes": self.cuda_start_bytes, "cuda_peak_bytes": self.cuda_peak_bytes,
             "notes": list(self.notes)}
        if ops:
            d["ops"] = [s.to_dict() for s in self.samples]
        return d


# --- the executor ---------------------------------------------------------------------------------

class _Saved:
    """What the pack hook hands autograd: a box around the saved tensor, so the executor can see
    it and release it (setting ``t = None`` also breaks the output -> grad_fn -> box -> output
    cycle of a stage that saves its own output)."""

    __slots__ = ("__weakref__", "t")

    def __init__(self, t: torch.Tensor):
        self.t = t


def _unpack(box: _Saved) -> torch.Tensor:
    if box.t is None:
        raise RuntimeError("edgeplan: a saved tensor was used after its stage was freed")
    return box.t


class _Record:
    """``A_i``: the recorded forward of one stage."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.inp: Any = None
        self.inp_leaves: list[torch.Tensor] = []
        self.out: Any = None
        self.out_leaves: list[torch.Tensor] = []
        self.saved: list[Any] = []        # _Saved (strict) or weakref to _Saved
        self.extra_fixed: set[int] = set()  # storages of batch-norm statistic clones

    def pack(self, t: torch.Tensor) -> _Saved:
        box = _Saved(t)
        self.saved.append(box if self.strict else weakref.ref(box))
        return box

    def boxes(self):
        for b in self.saved:
            box = b if self.strict else b()
            if box is not None and box.t is not None:
                yield box

    def tensors(self):
        yield from self.inp_leaves
        yield from self.out_leaves
        for box in self.boxes():
            yield box.t

    def release(self) -> None:
        for box in list(self.boxes()):
            box.t = None
        self.saved.clear()
        self.inp = self.out = None
        self.inp_leaves = []
        self.out_leaves = []


class _Run:
    """The state of one step: live ``a_i`` / ``A_i`` / ``d_k``."""

    def __init__(self, ex: ChainExecutor, x0: Any, measure: bool):
        self.ex = ex
        self.x0 = x0
        self.prefix = 0  # docs/chain-model.md §8: set by the step from its schedule
        self.a0_keys = {storage_key(t)[0] for t in leaves(x0)}
        self.a: dict[int, Any] = {}
        self.A: dict[int, _Record] = {}
        self.d: list[torch.Tensor | None] | None = None
        self.k = ex.length
        self.rng: dict[int, Any] = {}
        self.fixed = fixed_storage_keys(m for _, m in ex.stages)
        self.measure = measure
        self.loss: torch.Tensor | None = None
        self.forwards = 0
        self.recomputes = 0

    # accounting
    def live_bytes(self, extra: Sequence[torch.Tensor | None] = ()) -> int:
        if not self.measure:
            return 0
        exclude = set(self.fixed)
        tensors: list[torch.Tensor | None] = list(leaves(self.x0))
        for v in self.a.values():
            tensors.extend(leaves(v))
        for rec in self.A.values():
            exclude |= rec.extra_fixed
            tensors.extend(rec.tensors())
        if self.d is not None:
            tensors.extend(self.d)
        tensors.extend(extra)
        return storage_bytes(tensors, exclude)

    # inputs
    def available(self, j: int) -> Any:
        if j == 0:
            return self.x0
        if j in self.a:
            return self.a[j]
        return detach_all(self.A[j].out)

    def prepare(self, obj: Any, grad: bool = True) -> Any:
        """Detached aliases; floating tensors not aliasing ``a_0`` require grad (none with
        ``grad=False``: the input of the first stage after a frozen prefix is data)."""
        def f(t: Any) -> Any:
            if not isinstance(t, torch.Tensor):
                return t
            t = t.detach()
            if grad and (t.is_floating_point() or t.is_complex()) and \
                    storage_key(t)[0] not in self.a0_keys:
                t.requires_grad_(True)
            return t
        return tree_map(f, obj)

    # one forward of stage i, with RNG / batch-norm handling
    def forward(self, i: int, inp: Any, record: _Record | None) -> Any:
        name, module = self.ex.stages[i - 1]
        versions = [(t, t._version) for t in leaves(inp)] if self.ex.check_inplace else []
        first = i not in self.rng
        self.forwards += 1
        try:
            if first:
                self.rng[i] = get_rng()
                out = self._call(module, inp, record, self.ex.autocast)
            else:
                self.recomputes += 1
                now = get_rng()
                set_rng(self.rng[i])
                try:
                    with frozen_running_stats(module) as clones:
                        if record is not None:
                            record.extra_fixed = {storage_key(c)[0] for c in clones}
                        out = self._call(module, inp, record, self.ex.autocast)
                finally:
                    set_rng(now)
        except InputError:
            raise
        except Exception as e:
            raise InputError(f"the forward of stage {i} failed: {type(e).__name__}: {e}",
                             where=name) from e
        for t, v in versions:
            if t._version != v:
                raise InputError(f"stage {i} modified its input a_{i - 1} in place, which may be "
                                 "a checkpoint needed again", where=name,
                                 hint="use inplace=False or merge the module into the previous "
                                      "stage")
        if i == self.ex.length and not self.ex.loss_outside:
            outs = leaves(out)
            if len(outs) != 1 or outs[0].numel() != 1:
                raise InputError("the last stage must return the scalar loss (or give loss_fn)",
                                 where=name)
            if self.loss is None:
                self.loss = outs[0].detach()
        return out

    @staticmethod
    def _call(module: nn.Module, inp: Any, record: _Record | None, autocast: Any = None) -> Any:
        # mixed precision: forwards (and recomputations) under torch.autocast, backwards
        # outside it, as torch.amp recommends and as the stage measurer measured them
        amp = autocast_on(autocast, inp)
        if record is None:
            with torch.no_grad(), amp:
                return module(inp)
        with torch.enable_grad(), saved_tensors_hooks(record.pack, _unpack), amp:
            return module(inp)


class ChainExecutor:
    """Runs training steps of a chain model following a schedule.

    >>> ex = ChainExecutor(model)                      # doctest: +SKIP
    >>> res = ex.step(x, schedule)                     # doctest: +SKIP
    >>> optimizer.step(); optimizer.zero_grad()        # doctest: +SKIP

    ``strict``: keep each recorded stage's saved tensors until its ``B`` op ends (the chain
    model's lifetimes; default) instead of letting autograd free them during the backward.
    ``check_inplace``: fail when a stage modifies its input in place. ``synchronize``: on CUDA,
    synchronise after each op so op times are device times (default: when the input is on CUDA).
    ``loss_outside``: the last stage returns the model's output, not the loss; its backward is
    seeded with the output's gradient (``_Run.d``), as the drop-in wrapper (``torchrun.dropin``)
    does with the gradient the user's own loss produces. ``autocast``: a 16-bit dtype,
    every forward (recomputations too) under ``torch.autocast`` on the input's device, the
    backwards outside it.
    """

    def __init__(self, model: Any, *, loss_fn: Callable[..., torch.Tensor] | None = None,
                 strict: bool = True, check_inplace: bool = True,
                 synchronize: bool | None = None, loss_outside: bool = False,
                 autocast: Any = None):
        self.stages = stage_list(model, loss_fn)
        self.autocast = autocast  # a 16-bit dtype: forwards under torch.autocast
        self.loss_fn = loss_fn
        self.loss_outside = loss_outside
        self.strict = strict
        self.check_inplace = check_inplace
        self.synchronize = synchronize

    @property
    def length(self) -> int:
        return len(self.stages)

    @property
    def modules(self) -> list[nn.Module]:
        return [m for _, m in self.stages]

    def step(self, x: Any, schedule: Schedule, *, target: Any = None,
             measure: bool = True) -> StepResult:
        """Run one training step: every op of ``schedule`` in order. Gradients accumulate into
        the parameters' ``.grad`` (call ``optimizer.step()`` and ``zero_grad()`` yourself).

        ``x``: the input batch ``a_0`` (a tensor or a pytree of tensors). ``target``: passed to
        ``loss_fn``. ``measure=False`` skips the storage accounting (for timing).
        """
        check_schedule(schedule, self.length)
        prefix = frozen_prefix_of(schedule)
        self.check_frozen(prefix)
        last = self.stages[-1][1]
        if isinstance(last, LossStage):
            last.target = target
        elif target is not None:
            raise InputError("a target was given but the executor has no loss_fn",
                             source="target")
        x0 = detach_all(x)
        devs = {t.device for t in leaves(x0) if t.device.type == "cuda"}
        cuda_dev = next(iter(devs)) if devs else None
        sync = self.synchronize if self.synchronize is not None else cuda_dev is not None
        cuda_start = cuda_peak = None
        if cuda_dev is not None:
            torch.cuda.synchronize(cuda_dev)
            torch.cuda.reset_peak_memory_stats(cuda_dev)
            cuda_start = int(torch.cuda.memory_allocated(cuda_dev))
        run = _Run(self, x0, measure)
        run.prefix = prefix
        samples: list[OpSample] = []
        t_start = time.perf_counter()
        initial = run.live_bytes()
        peak, peak_index = initial, -1
        compute = 0.0
        try:
            for n, op in enumerate(schedule.ops):
                t0 = time.perf_counter()
                transient = self._do(run, op.kind, op.stage)
                if sync and cuda_dev is not None:
                    torch.cuda.synchronize(cuda_dev)
                dt = time.perf_counter() - t0
                compute += dt
                if transient is None:  # frees
                    transient = run.live_bytes()
                    after = transient
                else:
                    after = run.live_bytes()
                alloc = int(torch.cuda.memory_allocated(cuda_dev)) if cuda_dev is not None else None
                samples.append(OpSample(n, str(op), op.kind.value, op.stage, dt, transient, after,
                                        alloc))
                for v in (transient, after):
                    if v > peak:
                        peak, peak_index = v, n
        finally:
            for rec in run.A.values():
                rec.release()
            if isinstance(last, LossStage):
                last.target = None
        if cuda_dev is not None:
            torch.cuda.synchronize(cuda_dev)
            cuda_peak = int(torch.cuda.max_memory_allocated(cuda_dev))
        wall = time.perf_counter() - t_start
        n_b = schedule.count(OpKind.B)
        return StepResult(loss=run.loss, samples=tuple(samples), initial_bytes=initial,
                          peak_bytes=peak, peak_index=peak_index, wall_time_s=wall,
                          compute_time_s=compute, forward_ops=run.forwards,
                          recomputed_forwards=run.forwards - n_b, measured=measure,
                          strict=self.strict, cuda_start_bytes=cuda_start,
                          cuda_peak_bytes=cuda_peak)

    def check_frozen(self, prefix: int) -> None:
        """``InputError`` when a stage of the frozen prefix ``1..prefix`` (``frozen_prefix_of``
        the schedule) has parameters that require grad: the schedule runs no backward for
        them. Checked at every step: the caller may change ``requires_grad`` between steps."""
        for name, module in self.stages[:prefix]:
            trains = [n for n, p in module.named_parameters() if p.requires_grad]
            if trains:
                raise InputError(f"the schedule runs no backward for stages 1..{prefix} "
                                 f"(a frozen prefix), but {name}.{trains[0]} requires grad",
                                 where=name, hint="freeze the prefix's parameters "
                                 "(requires_grad_(False)) or plan with them trained")

    def _do(self, run: _Run, kind: OpKind, i: int) -> int | None:
        """Execute one op; return its transient live bytes (None for frees)."""
        if kind is OpKind.FN:
            out = run.forward(i, run.available(i - 1), None)
            out = detach_all(out)
            run.a[i] = out
            return run.live_bytes()
        if kind is OpKind.FALL:
            rec = _Record(self.strict)
            inp = run.prepare(run.available(i - 1), grad=i - 1 > run.prefix)
            rec.inp = inp
            rec.inp_leaves = leaves(inp)
            rec.out = run.forward(i, inp, rec)
            rec.out_leaves = leaves(rec.out)
            run.A[i] = rec
            return run.live_bytes()
        if kind is OpKind.B:
            return self._backward(run, i)
        if kind is OpKind.FREE_A:
            del run.a[i]
            return None
        if kind is OpKind.FREE_ALL:
            run.A.pop(i).release()
            return None
        raise InputError(f"unknown op {kind}")  # pragma: no cover

    def _backward(self, run: _Run, i: int) -> int:
        rec = run.A[i]
        name = self.stages[i - 1][0]
        if i == self.length and not self.loss_outside:
            tensors = [t for t in rec.out_leaves if t.requires_grad]
            grads: list[torch.Tensor | None] = [None] * len(tensors)
        else:
            d = run.d or []
            pairs = [(t, g) for t, g in zip(rec.out_leaves, d)
                     if g is not None and t.requires_grad]
            tensors = [t for t, _ in pairs]
            grads = [g for _, g in pairs]
        if tensors:
            try:
                torch.autograd.backward(tensors, grads)
            except Exception as e:
                raise InputError(f"the backward of stage {i} failed: {type(e).__name__}: {e}",
                                 where=name) from e
        d_new: list[torch.Tensor | None] | None = None
        if i - 1 > run.prefix:
            d_new = [t.grad if t.requires_grad else None for t in rec.inp_leaves]
        transient = run.live_bytes(d_new or ())
        run.A.pop(i)
        # no forward of stage i follows its backward: its RNG snapshot (torch's CPU generator
        # state, 5,056 bytes, kept so that a recomputation redraws the same dropout masks) goes
        run.rng.pop(i, None)
        rec.release()
        run.d = d_new
        run.k = i - 1
        return transient


def run_step(model: Any, x: Any, schedule: Schedule, *, target: Any = None,
             loss_fn: Callable[..., torch.Tensor] | None = None, strict: bool = True,
             measure: bool = True) -> StepResult:
    """One training step of ``model`` following ``schedule`` (see :class:`ChainExecutor`)."""
    return ChainExecutor(model, loss_fn=loss_fn, strict=strict).step(
        x, schedule, target=target, measure=measure)
