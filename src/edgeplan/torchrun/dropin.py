"""A checkpointed model for the user's own training loop.

``checkpoint(model, schedule, example)`` returns an ``nn.Module`` with the same parameters as
``model``; in training (grad enabled) its ``forward`` runs the first part of the schedule and
returns the model's output, and the backward that the user's ``loss.backward()`` reaches (a
``torch.autograd.Function`` around the chain, as Rotor's ``Checkpointable``) runs the rest, so

    loss = criterion(wrapped(x), y); loss.backward(); opt.step()

trains with the planned activation memory. The chain is the model's captured chain
(``torchrun.capture``) plus one *loss stage* (docs/chain-model.md §1: the loss is the chain's
last stage); the user's ``criterion`` is that stage, so the schedule's ``Fall L+1; B L+1`` are
the user's forward of the loss and the start of ``loss.backward()``.

``fit(model, example, memory=..., device=...)`` captures, measures, plans and wraps in one call.

Semantics, as ``torch.utils.checkpoint`` users expect: gradients equal plain autograd's (every
stage's backward runs once; float64 test), dropout masks are replayed on recomputation, batch
norm running statistics are updated once (``ChainExecutor``); under ``torch.no_grad()`` or in
``eval()`` mode the original model runs as it is (nothing to plan); ``state_dict()`` and
``load_state_dict()`` are the original model's (same keys). Gradients with respect to the input
batch are not computed (it is data: ``a_0`` of the chain model).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from ..chain import Chain
from ..errors import InfeasibleError, InputError
from ..schedule import OpKind, Schedule
from ..simulator import simulate
from .capture import CapturedChain, bind_inputs, capture
from .executor import ChainExecutor, _Run, frozen_prefix_of

__all__ = ["LOSSES", "CheckpointedModule", "LossHead", "checkpoint", "fit", "measure_captured",
           "captured_spec", "example_target", "nominal_times", "with_loss"]

LOSSES = ("cross-entropy", "mse", "sum")


def _primary(out: Any) -> torch.Tensor:
    """The tensor a loss reads from a model's output: the output itself, ``["logits"]`` of a
    dict (else its first tensor), the first tensor of a tuple."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict) and isinstance(out.get("logits"), torch.Tensor):
        return out["logits"]
    for t in tree_flatten(out)[0]:
        if isinstance(t, torch.Tensor):
            return t
    raise InputError("the model's output has no tensor to compute a loss on", param="loss")


def example_target(output: Any, loss: str | Callable[..., torch.Tensor]) -> Any:
    """A random target for ``loss`` shaped after the model's ``output`` (class ids for
    cross-entropy over the last dimension, a tensor like the output for mse, None for sum and
    callables)."""
    y = _primary(output)
    if loss == "cross-entropy":
        return torch.randint(0, y.shape[-1], y.shape[:-1], device=y.device)
    if loss == "mse":
        return torch.randn_like(y)
    return None


class LossHead(nn.Module):
    """The loss stage of a captured chain: ``loss(output, target)``."""

    def __init__(self, loss: str | Callable[..., torch.Tensor], target: Any = None):
        super().__init__()
        if isinstance(loss, str) and loss not in LOSSES:
            raise InputError(f"expected one of {', '.join(LOSSES)} or MODULE:CALLABLE, got "
                             f"{loss!r}", param="loss")
        self.loss = loss
        self.target = target

    def forward(self, out: Any) -> torch.Tensor:
        if callable(self.loss):
            return self.loss(out) if self.target is None else self.loss(out, self.target)
        y = _primary(out)
        if self.loss == "sum":
            return y.sum()
        if self.loss == "mse":
            return F.mse_loss(y, self.target)
        return F.cross_entropy(y.reshape(-1, y.shape[-1]), self.target.reshape(-1))


def measure_captured(captured: CapturedChain, example: Any, *,
                     loss: str | Callable[..., torch.Tensor] = "cross-entropy",
                     measure_tmp: bool = False, timing: bool = False,
                     modes: tuple[str, ...] = (), lora_targets: Iterable[str] | None = None,
                     lora_alpha: float | None = None, amp: str | None = None
                     ) -> tuple[list[Any], int, list[dict[str, dict[str, Any]]]]:
    """(``StageMeasure`` per stage, the loss stage last; bytes of the input batch; per stage
    the numbers of each of ``modes``, ``torchrun.trainable``) of a captured model, by the one
    stage measurer (``torchrun.meter``), under ``torch.autocast`` with ``amp`` (``bf16`` or
    ``fp16``). The model's state (running statistics, gradients, RNG, which parameters require
    grad) is unchanged."""
    from ..training import TRAIN
    from ._tensors import leaves, preserved_state, storage_key
    from .meter import amp_dtype, measure_stages
    from .trainable import measure_modes, mode_grads, stage_mode_numbers

    x0 = _graph_inputs(captured, example)
    stages = with_loss(captured, x0, loss)
    targets = tuple(lora_targets) if lora_targets else None
    cast = amp_dtype(amp)
    with preserved_state(m for _, m in stages):
        with mode_grads(stages, TRAIN):  # the trained numbers, whatever is frozen now
            measured = measure_stages(stages, x0, measure_tmp=measure_tmp, timing=timing,
                                      autocast=cast)
        by_mode, wrapped = measure_modes(stages, x0, modes, targets, lora_alpha,
                                         measure_tmp=measure_tmp, timing=timing, autocast=cast)
    x0_bytes = sum(n for _, n in {storage_key(t) for t in leaves(x0)})
    return measured, int(x0_bytes), stage_mode_numbers(stages, measured, by_mode, wrapped)


def with_loss(captured: CapturedChain, x0: tuple[Any, ...],
              loss: str | Callable[..., torch.Tensor] | None) -> list[tuple[str, nn.Module]]:
    """The captured stages, and the loss stage on their output (its example target made from
    one no-grad pass on ``x0``) unless ``loss`` is None. The model's state is unchanged."""
    from ._tensors import preserved_state

    if loss is None:
        return list(captured.stages)
    with torch.no_grad(), preserved_state(m for _, m in captured.stages):
        out: Any = x0
        for _, st in captured.stages:
            out = st(out)
    return [*captured.stages, ("loss", LossHead(loss, example_target(out, loss)))]


def captured_spec(captured: CapturedChain, example: Any, *,
                  loss: str | Callable[..., torch.Tensor] = "cross-entropy",
                  optimizer: str = "adam", measure_tmp: bool = False,
                  modes: tuple[str, ...] = (), lora_targets: Iterable[str] | None = None,
                  lora_alpha: float | None = None, amp: str | None = None) -> Any:
    """The ``ModelSpec`` of a captured model with its loss stage (FLOPs; sizes in bytes), with
    the numbers of each training mode in ``modes`` (docs/finetune.md), measured under
    ``torch.autocast`` with ``amp``."""
    from ..model import ModelSpec, ModeSpec, StageSpec

    measured, x0_bytes, per_mode = measure_captured(
        captured, example, loss=loss, measure_tmp=measure_tmp, modes=modes,
        lora_targets=lora_targets, lora_alpha=lora_alpha, amp=amp)
    x0 = _graph_inputs(captured, example)
    first = next((t for t in tree_flatten(x0)[0] if isinstance(t, torch.Tensor)), None)
    batch = int(first.shape[0]) if first is not None and first.dim() else 1
    return ModelSpec(
        name=type(captured.model).__name__, input_bytes=x0_bytes, optimizer=optimizer,
        batch=batch, precision=amp, amp=amp, param_bytes=sum(int(m.param_bytes) for m in measured),
        description=f"captured with torch.fx: {len(captured.stages)} stages of "
                    f"{captured.candidates} candidate cuts, carry={captured.carry}, plus the "
                    "loss",
        stages=tuple(StageSpec(name=m.name, out_bytes=int(m.out_bytes),
                               saved_bytes=int(m.saved_bytes), fwd_flops=float(m.fwd_flops),
                               bwd_flops=float(m.bwd_flops), fwd_tmp_bytes=int(m.fwd_tmp_bytes),
                               bwd_tmp_bytes=int(m.bwd_tmp_bytes),
                               param_bytes=int(m.param_bytes),
                               largest_param_bytes=int(m.largest_param_bytes),
                               modes={k: ModeSpec(**v) for k, v in pm.items()})
                     for m, pm in zip(measured, per_mode, strict=True)))


def nominal_times(spec: Any) -> Any:
    """``spec`` with stage times from its FLOPs at a nominal 1 GFLOP/s: without a device the
    seconds mean nothing, but their ratios rank the schedules as the device's would."""
    from dataclasses import replace

    return replace(spec, stages=tuple(replace(
        s, fwd_time_s=(s.fwd_flops or 0.0) / 1e9, bwd_time_s=(s.bwd_flops or 0.0) / 1e9)
        for s in spec.stages))


def _graph_inputs(captured: CapturedChain, example: Any) -> tuple[Any, ...]:
    """``a_0``: the batch in the order of the captured graph's inputs."""
    given, values, _ = bind_inputs(captured.model, example)
    if given != captured.input_names:
        raise InputError(f"the model was captured with the arguments {captured.input_names} "
                         f"and is called with {given}; call it the same way (or capture again)",
                         param="example_input")
    return values


def _split(schedule: Schedule, length: int) -> tuple[Schedule, Schedule]:
    """(the ops before the loss stage's forward, the ops after its backward). The schedule is
    for ``length`` model stages plus the loss stage ``length + 1``; its ``Fall L+1; B L+1`` are
    the user's loss and the start of ``loss.backward()``."""
    ops = schedule.ops
    loss = length + 1
    at = [k for k, op in enumerate(ops) if op.stage == loss]
    kinds = [ops[k].kind for k in at]
    if kinds != [OpKind.FALL, OpKind.B, OpKind.FREE_ALL][:len(kinds)] or len(at) < 2 or \
            at[1] != at[0] + 1:
        raise InputError(f"the schedule must run the loss stage {loss} once, as "
                         f"'Fall {loss}; B {loss}' (got {[str(ops[k]) for k in at]})",
                         param="schedule")
    rest = [op for op in ops[at[1] + 1:] if op.stage != loss]
    return Schedule(tuple(ops[:at[0]])), Schedule(tuple(rest))


class _Step:
    """One training step in flight: the executor's state between the forward and the backward."""

    def __init__(self, ex: ChainExecutor, fwd: Schedule, bwd: Schedule, measure: bool,
                 prefix: int = 0):
        self.ex, self.fwd, self.bwd, self.measure = ex, fwd, bwd, measure
        self.prefix = prefix
        self.run: _Run | None = None
        self.peak_bytes = 0
        self.spec: Any = None
        self.template: list[Any] = []
        self.autocast: list[tuple[str, Any]] = []

    def _sample(self) -> None:
        if self.measure and self.run is not None:
            self.peak_bytes = max(self.peak_bytes, self.run.live_bytes())

    def start(self, x0: tuple[Any, ...]) -> Any:
        from ._tensors import detach_all

        self.run = _Run(self.ex, detach_all(x0), self.measure)
        self.run.prefix = self.prefix
        # the user's torch.autocast, replayed around the recomputations in the backward (as
        # torch.utils.checkpoint does)
        self.autocast = [(dev, torch.get_autocast_dtype(dev)) for dev in ("cpu", "cuda")
                         if torch.is_autocast_enabled(dev)]
        self._sample()
        for op in self.fwd.ops:
            self.ex._do(self.run, op.kind, op.stage)
            self._sample()
        return detach_all(self.run.available(self.ex.length))

    def finish(self, grads: list[torch.Tensor | None]) -> None:
        run = self.run
        assert run is not None
        run.d = grads
        run.k = self.ex.length
        try:
            with contextlib.ExitStack() as amp:
                for dev, dtype in self.autocast:
                    amp.enter_context(torch.autocast(dev, dtype=dtype))
                for op in self.bwd.ops:
                    self.ex._do(run, op.kind, op.stage)
                    self._sample()
        finally:
            for rec in run.A.values():
                rec.release()
            self.run = None


class _Scheduled(torch.autograd.Function):
    """Forward: the schedule up to the loss; backward: the rest, seeded with the output's
    gradient. The dummy input requires grad so that autograd reaches the backward even when no
    input does (the parameters' gradients accumulate inside it, as in reentrant checkpointing)."""

    @staticmethod
    def forward(ctx: Any, step: _Step, dummy: torch.Tensor, *x0: Any) -> Any:
        out = step.start(tuple(x0))
        flat, step.spec = tree_flatten(out)
        step.template = [None if isinstance(v, torch.Tensor) else v for v in flat]
        ctx.step, ctx.n_inputs = step, len(x0)
        ctx.set_materialize_grads(False)
        return tuple(v for v in flat if isinstance(v, torch.Tensor))

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> Any:
        ctx.step.finish(list(grads))
        return (None, None) + (None,) * ctx.n_inputs


class CheckpointedModule(nn.Module):
    """``model`` trained with a checkpointing schedule (see the module docstring)."""

    def __init__(self, model: nn.Module, captured: CapturedChain, schedule: Schedule, *,
                 chain: Chain | None = None, measure: bool = False, plan: Any = None):
        super().__init__()
        self.module = model
        length = len(captured.stages)
        planned = max((op.stage for op in schedule.ops), default=0)
        if planned != length + 1:
            raise InputError(f"the schedule is for {planned} stages (the loss included) but the "
                             f"captured model has {length} stages plus the loss; capture it "
                             "with the granularity, carry and leaves it was planned with",
                             param="schedule")
        self._fwd, self._bwd = _split(schedule, length)
        self._prefix = frozen_prefix_of(schedule)  # docs/chain-model.md §8
        if chain is not None:
            if chain.length != length + 1:
                raise InputError(f"the schedule's chain has {chain.length} stages, the captured "
                                 f"model {length} plus its loss", param="schedule")
            # the simulator judges the schedule before it runs (raises if it is not valid)
            self.trace = simulate(chain, schedule)
        self.schedule = schedule
        self.plan = plan
        self.measure = measure
        self.last_peak_bytes: int | None = None
        # not registered: the stages share the model's parameters, which the model owns
        object.__setattr__(self, "_captured", captured)
        # strict=False: autograd frees each saved tensor once the backward is done with it, as
        # in plain training and as the importer measures bwd_tmp (holding them to the end of
        # B, the strict executor's accounting, needs up to 15 % more: docs/run.md)
        object.__setattr__(self, "_executor", ChainExecutor(captured.stages, loss_outside=True,
                                                            strict=False))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not torch.is_grad_enabled() or not self.training:
            return self.module(*args, **kwargs)  # evaluation: nothing to plan
        example: Any = kwargs if kwargs and not args else (args[0] if len(args) == 1 and
                                                           not kwargs else args)
        if args and kwargs:
            raise InputError("call the checkpointed model with positional or with keyword "
                             "arguments, as it was captured", param="example_input")
        x0 = _graph_inputs(self._captured, example)
        for t in tree_flatten(x0)[0]:
            if isinstance(t, torch.Tensor) and t.requires_grad:
                raise InputError("the input batch requires grad; the checkpointed model "
                                 "computes no input gradient (the batch is data)",
                                 param="example_input")
        self._executor.check_frozen(self._prefix)
        step = _Step(self._executor, self._fwd, self._bwd, self.measure, self._prefix)
        dummy = torch.empty(0, requires_grad=True)
        outs = _apply(step, dummy, x0)
        self._last_step = step
        return outs

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True,
                        assign: bool = False) -> Any:  # type: ignore[override]
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters that train (``requires_grad``): what to give the optimizer."""
        return [p for p in self.module.parameters() if p.requires_grad]

    @property
    def stage_names(self) -> list[str]:
        return [n for n, _ in self._captured.stages]

    def measured_peak_bytes(self) -> int | None:
        """Peak live activation bytes of the last training step (``measure=True``), by the
        executor's storage accounting (the loss stage, run by the caller, not included)."""
        step = getattr(self, "_last_step", None)
        return step.peak_bytes if step is not None and self.measure else None


def _apply(step: _Step, dummy: torch.Tensor, x0: tuple[Any, ...]) -> Any:
    tensors = _Scheduled.apply(step, dummy, *x0)
    if not isinstance(tensors, tuple):
        tensors = (tensors,)
    it = iter(tensors)
    flat = [next(it) if v is None else v for v in step.template]
    return tree_unflatten(flat, step.spec)


def checkpoint(model: nn.Module, schedule: Schedule | Any, example: Any, *,
               granularity: str | int = "auto", carry: str = "small", leaves: Iterable[str] = (),
               chain: Chain | None = None, measure: bool = False) -> CheckpointedModule:
    """Wrap ``model`` to train with ``schedule``: a ``Schedule``, a ``Plan`` (its recommended
    schedule) or the path of a plan file written by ``edgeplan solve MODEL -o plan.json``.

    The model is captured on ``example`` with ``granularity``, ``carry`` and ``leaves``, which
    must be those the schedule was planned for (``edgeplan import torch`` records them); the
    schedule has one stage more than the captured chain, the loss.
    """
    plan = None
    if isinstance(schedule, (str, os.PathLike)):  # a plan file from `edgeplan solve -o`
        from ..formats.plan_file import load_plan
        schedule = load_plan(str(schedule))["schedule"]
    if hasattr(schedule, "result") and hasattr(schedule, "chain"):
        plan = schedule
        if not plan.feasible:
            raise InfeasibleError("the plan has no schedule: nothing fits its budget",
                                  budget_bytes=plan.memory.activation_bytes,
                                  min_budget_bytes=plan.min_activation_bytes)
        chain = chain or plan.chain
        schedule = plan.result.schedule
    captured = capture(model, example, granularity=granularity, carry=carry, leaves=leaves)
    return CheckpointedModule(model, captured, schedule, chain=chain, measure=measure,
                              plan=plan)


def fit(model: nn.Module, example: Any, *, memory: int | str | None = None,
        device: str | Any = None, loss: str | Callable[..., torch.Tensor] = "cross-entropy",
        optimizer: str = "adam", granularity: str | int = "auto", carry: str = "small",
        leaves: Iterable[str] = (), slots: int = 500, measure: bool = False,
        train: str | None = None, lora_targets: Iterable[str] | None = None,
        lora_alpha: float | None = None, amp: str | None = None) -> CheckpointedModule:
    """Capture ``model``, measure its chain on ``example``, plan for ``memory`` (bytes or a size
    like ``"512 MiB"``: the memory for training, parameters, gradients and ``optimizer`` state
    included) and/or a ``device`` (a profile name, path or ``DeviceProfile``), and wrap it.

    ``train`` (``last:3``, ``bias``, ``lora:8,last:1``: ``training.parse_train``) fine-tunes
    part of the model: each stage is measured in the modes the selection needs, planned with
    them, and ``model`` is changed to train that way: frozen parameters stop requiring grad,
    LoRA adapters (``torchrun.trainable.LoRALinear``) replace the targeted linear layers
    (``lora_targets``: names or dotted tails; default every ``nn.Linear`` of a LoRA stage).
    Build the optimizer after ``fit``, on ``wrapped.trainable_parameters()``.

    ``amp`` (``bf16``, ``fp16``): the loop trains under ``torch.autocast`` with that dtype; the
    chain is measured so, and the device's FLOP/s for it time the plan. Run the forward (and
    the loss) under the same autocast: the wrapper replays it in its recomputations.

    Raises ``InfeasibleError`` (with the least memory that would do) when nothing fits.
    """
    from .. import units
    from ..formats.device_file import find_device
    from ..plan import make_plan
    from ..training import modes_for
    from .trainable import apply_modes

    if memory is None and device is None:
        raise InputError("give memory (e.g. \"512 MiB\") or a device", param="memory")
    memory_bytes = units.parse_size(memory) if isinstance(memory, str) else memory
    dev = find_device(device) if isinstance(device, str) else device
    captured = capture(model, example, granularity=granularity, carry=carry, leaves=leaves)
    targets = tuple(lora_targets) if lora_targets else None
    spec = captured_spec(captured, example, loss=loss, optimizer=optimizer,
                         modes=modes_for(train), lora_targets=targets, lora_alpha=lora_alpha,
                         amp=amp)
    if dev is None:
        spec = nominal_times(spec)
    plan = make_plan(spec, dev, memory_bytes=memory_bytes, slots=slots, train=train)
    if not plan.feasible:
        need = plan.min_memory_bytes
        raise InfeasibleError(
            f"{spec.name} does not train in {units.format_size(plan.memory.usable_bytes)}"
            + (f": at least {units.format_size(need)} needed" if need is not None else ""),
            budget_bytes=plan.memory.activation_bytes,
            min_budget_bytes=plan.min_activation_bytes)
    assert plan.result.schedule is not None
    if plan.problem.training is not None:  # the model trains as planned (the loss stage last)
        apply_modes(model, captured.stages, plan.problem.training.modes[:-1], targets,
                    lora_alpha)
    return CheckpointedModule(model, captured, plan.result.schedule, chain=plan.chain,
                              measure=measure, plan=plan)
