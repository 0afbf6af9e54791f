"""The planning problem: a model at a batch, on a device, within a memory: THE one set-up.

``prepare`` turns (model, device, memory override, batch, precision) into a ``Problem``: the chain
(stage times from FLOPs at the device's sustained rate, or the model's measured times), the
memory breakdown and the activation budget. ``solve_problem`` runs any strategy of
``solvers.registry`` on it, and is the one place where a negative activation budget (the
parameters, gradients and optimizer state alone exceed the memory) becomes "nothing fits".
``plan``, ``compare``, ``batch`` and ``gate`` all start here, so they cannot disagree on the
budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from .chain import Chain
from .device import DeviceProfile, MemoryBudget, memory_budget
from .errors import InputError
from .model import ModelSpec
from .optimizers import step_transient_bytes
from .progress import Progress  # noqa: F401 - re-exported for the use cases
from .solvers.base import SolveResult, store_all_peak_bytes, with_optimizer_step
from .solvers.registry import get_strategy
from .training import Training, TrainSpec, resolve
from .units import format_size
from .work import FamilyCost

NOTHING_FITS = "parameters, gradients and optimizer state alone exceed the memory"


def overhead_of(cost_s: float | None, compute_time_s: float) -> float | None:
    """``cost / compute - 1``: the recompute overhead fraction (0 for float noise)."""
    if cost_s is None:
        return None
    if compute_time_s <= 0:
        return 0.0
    r = cost_s / compute_time_s - 1.0
    return 0.0 if abs(r) < 1e-9 else r


@dataclass(frozen=True, kw_only=True)
class Problem:
    """A model (at the batch planned for) on a device (or a bare memory size)."""

    model: ModelSpec       # at the micro-batch when gradients accumulate
    device: DeviceProfile | None
    chain: Chain
    memory: MemoryBudget
    precision: str | None  # whose FLOP/s turned FLOPs into seconds; None for measured times
    grad_accum: int = 1    # micro-batches per optimizer step
    training: Training | None = None  # what trains (None: every parameter, ``training.ALL``)
    notes: tuple[str, ...] = ()  # what the set-up assumed (shown with the answer)
    # seconds per op family of one step without recomputation (``time_model == op-families``)
    family_time_s: tuple[tuple[str, float], ...] = ()
    # the optimizer step's temporaries counted in the plan (``optimizers.step_transient_bytes``;
    # 0 where their figure is not known and they are only noted: ``_optimizer_step_bytes``)
    step_bytes: int = 0
    # the optimizer step's temporaries do not fit beside the input (also in ``notes``)
    step_note: str | None = None

    @property
    def batch(self) -> int:
        """Samples per optimizer step (the micro-batch times ``grad_accum``)."""
        return self.model.batch * self.grad_accum

    def time_per_step_s(self, cost_s: float | None) -> float | None:
        """Time of one optimizer step: ``grad_accum`` micro-batch iterations."""
        return None if cost_s is None else cost_s * self.grad_accum

    def time_per_sample_s(self, cost_s: float | None) -> float | None:
        t = self.time_per_step_s(cost_s)
        return None if t is None else t / self.batch

    @property
    def budget_bytes(self) -> int:
        """Activation budget: usable memory minus the fixed part (may be negative)."""
        return self.memory.activation_bytes

    @property
    def compute_time_s(self) -> float:
        """Time per iteration without recomputation."""
        return self.chain.compute_time_s

    @property
    def step_peak_bytes(self) -> int:
        """Activation memory of the optimizer step after the backward (docs/chain-model.md
        §2): the input batch ``x_0`` and the step's temporaries; 0 when it has none."""
        return self.chain.input_bytes + self.step_bytes if self.step_bytes else 0

    @cached_property
    def store_all_peak_bytes(self) -> int:
        """The iteration's peak without recomputation: store-all's, or the optimizer step's."""
        return max(store_all_peak_bytes(self.chain), self.step_peak_bytes)

    def overhead(self, cost_s: float | None) -> float | None:
        return overhead_of(cost_s, self.compute_time_s)

    def energy_j(self, time_s: float | None) -> float | None:
        """Energy of ``time_s`` of training at the device's training power (None without a
        device)."""
        if time_s is None or self.device is None:
            return None
        return time_s * self.device.training_power_w


class ProblemView:
    """The problem's parts by name, for results that hold a ``problem`` (``Plan``,
    ``Pairing``): what the renderers read."""

    problem: Problem

    @property
    def model(self) -> ModelSpec:
        return self.problem.model

    @property
    def device(self) -> DeviceProfile | None:
        return self.problem.device

    @property
    def chain(self) -> Chain:
        return self.problem.chain

    @property
    def memory(self) -> MemoryBudget:
        return self.problem.memory

    @property
    def precision(self) -> str | None:
        return self.problem.precision

    @property
    def store_all_peak_bytes(self) -> int:
        return self.problem.store_all_peak_bytes

    @property
    def compute_time_s(self) -> float:
        return self.problem.compute_time_s


def prepare(model: ModelSpec, device: DeviceProfile | None, *, memory_bytes: int | None = None,
            batch: int | None = None, precision: str | None = None,
            grad_accum: int = 1, train: TrainSpec | str | None = None,
            optimizer: str | None = None, master_weights: bool = False) -> Problem:
    """Set up the planning problem.

    Parameters
    ----------
    model, device
        The model file and the device profile (None: give ``memory_bytes``, and the model's
        stages must carry measured times).
    memory_bytes
        Replaces the device's usable memory (total - reserved); the fixed part (parameters,
        gradients, optimizer state) is always subtracted to get the activation budget.
    batch
        Scales activations and compute from the model file's batch.
    precision
        Which sustained FLOP/s of the device turns FLOPs into seconds (default: the model's,
        then the device's).
    grad_accum
        Split each batch into this many micro-batches whose gradients accumulate before the
        optimizer step: the chain is the model at the micro-batch (activations and compute
        scale down, parameters, gradients and optimizer state do not), and every stage's
        backward gets a transient of its parameters' size: from the second micro-batch on, each
        parameter's new gradient is a temporary added to ``.grad`` (measured: docs/run.md).
    train
        What trains (``training.parse_train``: ``all``, ``last:3``, ``bias``, ``lora:8,last:1``;
        default: the file's ``train:``, else all): each stage takes its numbers in its mode,
        the leading stages that train nothing become the chain's frozen prefix
        (docs/chain-model.md §8), gradients and optimizer state count only what trains.
    optimizer
        Replaces the file's optimizer (``optimizers.OPTIMIZER_STATE``).
    master_weights
        The file's parameters are 16-bit (``import torch --dtype bfloat16``) and the recipe
        keeps an fp32 master copy of the trainable ones, with the optimizer state on it.

    Raises
    ------
    InputError
        The stages are given in FLOPs and there is no device to turn them into seconds.
    """
    try:
        model, training = resolve(model, train if train is not None else model.train)
    except InputError as e:
        if train is not None or e.source:
            raise
        raise InputError(e.message, source=model.source, where="train") from None
    if optimizer is not None:  # checked with the fixed part (memory_budget)
        model = replace(model, optimizer=optimizer)
    if batch is not None and batch != model.batch:
        model = model.scaled_to_batch(batch)
    if grad_accum < 1 or model.batch % grad_accum:
        raise InputError(f"the batch ({model.batch}) must split into {grad_accum} equal "
                         "micro-batches", param="grad_accum")
    if grad_accum > 1:
        model = model.scaled_to_batch(model.batch // grad_accum)
        model = replace(model, stages=tuple(
            replace(s, bwd_tmp_bytes=s.bwd_tmp_bytes + (
                s.param_bytes if s.trainable_bytes is None else s.trainable_bytes))
            for s in model.stages))
    if device is None and model.uses_flops:
        raise InputError("stages are given in FLOPs; a device is needed to turn them into "
                         "seconds", source=model.source, param="device")
    chain = model.to_chain(device, precision)
    if master_weights and model.param_element_bytes == 4:
        raise InputError("master weights are an fp32 copy of 16-bit parameters; this file's "
                         "parameters are fp32 (measure the model with `edgeplan import torch "
                         "--dtype bfloat16`)", source=model.source, param="master_weights")
    mem = memory_budget(param_bytes=model.param_bytes, optimizer=model.optimizer, device=device,
                        memory_bytes=memory_bytes, trainable_bytes=model.trainable_bytes,
                        master_factor=4 // model.param_element_bytes if master_weights else 0)
    used = None
    if device is not None and model.uses_flops:
        used = precision or model.precision or device.precision
    notes = []
    step, exact = _optimizer_step_bytes(model, device, mem)
    step_note = _optimizer_step_note(model, device, mem, step, exact)
    if step_note:
        notes.append(step_note)
    counted_step = step if exact else 0
    family_time: tuple[tuple[str, float], ...] = ()
    if time_model(model, device, used) == "op-families":
        assert device is not None and used is not None
        family_time = family_times(model, model.family_costs(device, used) or {})
        total = sum(t for _, t in family_time) or 1.0
        notes.append("compute by op family (one step without recomputation): " + ", ".join(
            f"{f} {t / total:.0%}" for f, t in family_time if t / total >= 0.005))
        notes.append(f"stage times: the work per op family priced by {device.name}'s "
                     f"calibrated {used} families (overhead + FLOPs / rate + bytes / bandwidth "
                     "per operation), not one sustained FLOP/s")
    if precision is not None and model.precision is not None and precision != model.precision:
        how = (f"measure mixed precision with `edgeplan import torch --amp {precision}`"
               if precision in ("bf16", "fp16") else "docs/finetune.md")
        notes.append(f"compute at {precision} FLOP/s; activation bytes are the file's "
                     f"{model.precision} measurements ({how})")
    return Problem(model=model, device=device, chain=chain, memory=mem, precision=used,
                   grad_accum=grad_accum, training=None if training.spec.is_all else training,
                   notes=tuple(notes), family_time_s=family_time, step_bytes=counted_step,
                   step_note=step_note)


def _optimizer_step_bytes(model: ModelSpec, device: DeviceProfile | None,
                          mem: MemoryBudget) -> tuple[int, bool]:
    """``torch.optim``'s step temporaries (``optimizers.step_transient_bytes``) on the device's
    default implementation (foreach on CUDA, for-loop off it), and whether the figure is exact
    enough to count in the plan (docs/chain-model.md §2): foreach copies every trained
    parameter (exact); the for-loop allocates twice the largest trained tensor, known where
    the file records each fully trained stage's ``largest_param`` (``import torch`` does; a
    stage trained in part, bias-only or LoRA, is bounded by its trainable bytes); without it
    the largest stage's parameters only bound it, and the step is a note."""
    kind = device.kind if device is not None else "cpu"
    largest, exact = 0, True
    for s in model.stages:
        trained = s.param_bytes if s.trainable_bytes is None else s.trainable_bytes
        if not trained:
            continue
        if trained == s.param_bytes:  # fully trained: its largest tensor, where the file has it
            if s.largest_param_bytes is None:
                exact = False
            else:
                trained = s.largest_param_bytes
        largest = max(largest, trained)
    step = step_transient_bytes(model.optimizer, mem.grad_bytes, largest, kind)
    return step, exact or kind == "gpu"


def _optimizer_step_note(model: ModelSpec, device: DeviceProfile | None,
                         mem: MemoryBudget, step: int, exact: bool) -> str | None:
    """A note when the optimizer step's temporaries, live after the backward beside the input
    batch, do not fit in the activation budget (where ``exact``, no plan fits then:
    ``with_optimizer_step``)."""
    kind = device.kind if device is not None else "cpu"
    budget = mem.activation_bytes
    if step == 0 or budget < 0 or step + model.input_bytes <= budget:
        return None
    how = ("foreach, the default on CUDA: a copy of every trained parameter" if kind == "gpu"
           else "for-loop, the default off CUDA: 2x the largest trained tensor" if exact
           else "for-loop, the default off CUDA: 2x the largest tensor, bounded by the largest "
                "stage's trained parameters")
    return (f"torch.optim's {model.optimizer} step allocates about {format_size(step)} of "
            f"temporaries ({how}) after the backward, more than the "
            f"{format_size(budget)} activation budget leaves beside the input: create it with "
            f"fused=True and plan with --optimizer {model.optimizer}-fused (no temporaries), or "
            "train fewer parameters (--train)")


def family_times(model: ModelSpec, costs: Mapping[str, FamilyCost]
                 ) -> tuple[tuple[str, float], ...]:
    """Seconds per op family of one step without recomputation: every stage's forward work,
    and the backward work of every stage after the frozen prefix (docs/chain-model.md §8),
    priced by ``costs``; largest first. Stages with measured times are not included."""
    acc: dict[str, float] = {}
    for i, st in enumerate(model.stages, start=1):
        if st.fwd_time_s is not None:
            continue
        works = [(st.fwd_work, False)] + ([(st.bwd_work, True)] if i > model.frozen_prefix
                                          else [])
        for w, backward in works:
            for f, fw in (w.families if w is not None else ()):
                c = costs.get(f)
                if c is not None:
                    acc[f] = acc.get(f, 0.0) + c.time_s(fw, backward)
    return tuple(sorted(acc.items(), key=lambda kv: -kv[1]))


def time_model(model: ModelSpec, device: DeviceProfile | None, precision: str | None) -> str:
    """How stage times were obtained: ``measured`` (the file's times), ``op-families`` (the
    work per op family priced by the device's calibrated families, ``edgeplan.work``) or
    ``sustained`` (FLOPs at the device's one sustained FLOP/s)."""
    if precision is None or device is None:
        return "measured"
    return "op-families" if model.family_costs(device, precision) is not None else "sustained"


def solve_problem(problem: Problem, strategy: str = "optimal", **opts: Any) -> SolveResult:
    """Run ``strategy`` (a name of ``solvers.registry``) on the problem's chain and budget.

    With a negative budget the strategy is run at budget 0 (for its least budget and, for
    ``optimal``, the trade-off curve) and the answer is made infeasible with the note
    :data:`NOTHING_FITS`; every caller gets that same answer. A strategy that needs a storage
    tier gets the device's first one unless ``tier`` is given.
    """
    s = get_strategy(strategy)
    if s.needs_tier and opts.get("tier") is None:
        from .solvers.offload import storage_tier
        if problem.device is None:
            raise InputError(f"strategy {s.name!r} needs a device with a storage tier",
                             param="device")
        opts["tier"] = storage_tier(problem.device)
    budget = problem.budget_bytes
    res = with_optimizer_step(s(problem.chain, max(budget, 0), **opts), problem.step_peak_bytes)
    if budget >= 0:
        return res
    return replace(res, budget_bytes=budget, feasible=False, schedule=None, trace=None,
                   notes=(NOTHING_FITS,))
