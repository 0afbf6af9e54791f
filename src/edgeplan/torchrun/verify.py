"""Run a schedule on a real PyTorch model and compare the measurement with the prediction.

``verify_plan`` measures the model's chain (sizes by the torch importer, host times per stage),
replays the schedule in the simulator on it (the *prediction*), executes one training step with
the :class:`~edgeplan.torchrun.executor.ChainExecutor` (the *measurement*) and a few more steps
for the wall time, and reports predicted vs measured activation peak and step time.

Definitions (docs/run.md):

* predicted peak = the simulator's peak on the measured chain with ``fwd_tmp = bwd_tmp = 0``;
* measured peak = the executor's storage-level accounting (distinct storages of the live
  ``a_0``, ``a_i``, ``A_i`` incl. autograd's saved tensors, ``d_k``; parameters and buffers
  left out), sampled at every op's transient point and after every op;
* the plan's peak (when a ``chain`` from a model file is given) = the simulator on that chain,
  temporaries included; it is what the budget was checked against;
* predicted time = the simulator's cost with per-stage host times = the ``Fall i`` / ``B i``
  op times of the fastest of ``time_reps`` store-all steps run by the executor
  (:class:`~edgeplan.torchrun.measure.StageTimer`); measured time = the fastest wall time of
  ``repeats`` executed steps of the schedule without accounting. The two are taken in
  alternating rounds (one store-all step, one step of the schedule), after a warm-up of each,
  so that both see the host in the same state.

Verdict (``exit_code``): 1 when the measured peak exceeds ``budget_bytes`` or exceeds the
prediction by more than ``tolerance`` (the prediction under-estimated); 0 otherwise. Time is
not part of it; a time ratio outside ``TIME_RATIO_RANGE`` adds a note (``time_ok``).
"""

from __future__ import annotations

import copy
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from ..chain import Chain
from ..errors import InputError
from ..schedule import Schedule
from ..simulator import Trace, simulate
from ._tensors import first_embedding_size, leaves, make_input, preserved_state
from .executor import ChainExecutor, StepResult, check_schedule, frozen_prefix_of, stage_list
from .measure import (
    MeasuredChain,
    StageTimer,
    _is_oom,
    measure_chain,
    time_stages_isolated,
    with_times,
    without_tmp,
)

__all__ = ["Verification", "verify_plan", "make_input", "build_model", "TIME_RATIO_RANGE"]

_DTYPES = ("float32", "float16", "bfloat16", "float64")
TIME_RATIO_RANGE = (0.5, 2.0)  # measured / predicted step time outside it: a note says so
NOISY_SPREAD = 1.5             # median / fastest timed step above this: a note says so


@dataclass
class Verification:
    """Predicted vs measured for one schedule on one model (bytes, seconds)."""

    model: str
    stages: int
    schedule: Schedule
    chain: Chain                      # measured (sizes + host times)
    chain_source: str
    trace: Trace                      # simulator on the measured chain, tmp = 0
    step: StepResult                  # the measured step
    predicted_peak_bytes: int
    measured_peak_bytes: int
    predicted_time_s: float
    measured_time_s: float
    budget_bytes: int | None
    tolerance: float
    plan_trace: Trace | None = None   # simulator on the given chain (model file), tmp included
    timed_steps: int = 0
    device: str = "cpu"
    dtype: str | None = None
    batch: int | None = None
    notes: list[str] = field(default_factory=list)
    threads: int = 1                  # torch.get_num_threads() during the timing
    time_spread: float | None = None  # median / fastest timed step (noise indicator)
    time_method: str | None = None    # stage times: "executor", "isolated", "given" (measured=)
    # independent of the executor's accounting: one more step of the schedule, measured by
    # PyTorch's allocator (torch.profiler on the CPU, max_memory_allocated on CUDA) and by the
    # process (peak RSS growth); gradients fresh, their final allocations left out (fixed memory)
    allocator_peak_bytes: int | None = None
    allocator_predicted_bytes: int | None = None   # simulator, transients included when known
    rss_growth_bytes: int | None = None
    # the optimizer step after the backward (``optimizer=``): its temporaries, by the allocator
    # (a second step: the first allocates the state), and the rule's prediction
    optimizer: str | None = None
    optimizer_step_bytes: int | None = None
    optimizer_step_predicted_bytes: int | None = None

    @property
    def allocator_ratio(self) -> float | None:
        if self.allocator_peak_bytes is None or not self.allocator_predicted_bytes:
            return None
        return self.allocator_peak_bytes / self.allocator_predicted_bytes

    @property
    def peak_ratio(self) -> float:
        return self.measured_peak_bytes / self.predicted_peak_bytes if self.predicted_peak_bytes \
            else float("inf") if self.measured_peak_bytes else 1.0

    @property
    def time_ratio(self) -> float | None:
        return self.measured_time_s / self.predicted_time_s if self.predicted_time_s > 0 else None

    @property
    def time_ok(self) -> bool | None:
        """The time ratio is within ``TIME_RATIO_RANGE`` (None when nothing was timed). Not part
        of the verdict: memory is what a plan promises; time is a sanity check of the cost
        model on this host."""
        r = self.time_ratio
        if r is None or self.measured_time_s <= 0:
            return None
        lo, hi = TIME_RATIO_RANGE
        return lo <= r <= hi

    @property
    def within_budget(self) -> bool | None:
        return None if self.budget_bytes is None else self.measured_peak_bytes <= self.budget_bytes

    @property
    def within_tolerance(self) -> bool:
        return self.measured_peak_bytes <= self.predicted_peak_bytes * (1.0 + self.tolerance)

    @property
    def exact(self) -> bool:
        """Every op's measured transient and after bytes equal the simulator's."""
        return all(s.transient_bytes == self.trace.transient_bytes[s.index]
                   and s.after_bytes == self.trace.memory_after_bytes[s.index]
                   for s in self.step.samples)

    @property
    def ok(self) -> bool:
        return self.within_budget is not False and self.within_tolerance

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def plan_peak_bytes(self) -> int | None:
        return None if self.plan_trace is None else self.plan_trace.peak_bytes

    def op_rows(self) -> list[dict]:
        return [{"index": s.index, "op": s.kind, "stage": s.stage,
                 "predicted_transient_bytes": self.trace.transient_bytes[s.index],
                 "measured_transient_bytes": s.transient_bytes,
                 "predicted_after_bytes": self.trace.memory_after_bytes[s.index],
                 "measured_after_bytes": s.after_bytes, "time_s": s.time_s,
                 "cuda_allocated_bytes": s.cuda_allocated_bytes} for s in self.step.samples]

    def to_dict(self, ops: bool = True) -> dict:
        d = {
            "model": self.model, "stages": self.stages, "device": self.device,
            "dtype": self.dtype, "batch": self.batch, "chain_source": self.chain_source,
            "memory": {
                "predicted_peak_bytes": self.predicted_peak_bytes,
                "measured_peak_bytes": self.measured_peak_bytes,
                "ratio": self.peak_ratio,
                "predicted_peak_index": self.trace.peak_index,
                "measured_peak_index": self.step.peak_index,
                "exact": self.exact,
                "plan_peak_bytes": self.plan_peak_bytes,
                "budget_bytes": self.budget_bytes,
                "within_budget": self.within_budget,
                "tolerance": self.tolerance,
                "within_tolerance": self.within_tolerance,
                "strict": self.step.strict,
                "cuda_start_bytes": self.step.cuda_start_bytes,
                "cuda_peak_bytes": self.step.cuda_peak_bytes,
                "allocator_peak_bytes": self.allocator_peak_bytes,
                "allocator_predicted_bytes": self.allocator_predicted_bytes,
                "allocator_ratio": self.allocator_ratio,
                "rss_growth_bytes": self.rss_growth_bytes,
                "optimizer": self.optimizer,
                "optimizer_step_bytes": self.optimizer_step_bytes,
                "optimizer_step_predicted_bytes": self.optimizer_step_predicted_bytes,
            },
            "time": {
                "predicted_s": self.predicted_time_s,
                "measured_s": self.measured_time_s,
                "ratio": self.time_ratio,
                "ratio_range": list(TIME_RATIO_RANGE),
                "within_range": self.time_ok,
                "timed_steps": self.timed_steps,
                "threads": self.threads,
                "spread": self.time_spread,
                "stage_times": self.time_method,
                "plan_cost_s": None if self.plan_trace is None else self.plan_trace.cost_s,
            },
            "loss": self.step.loss_value,
            "forward_ops": self.step.forward_ops,
            "recomputed_forwards": self.step.recomputed_forwards,
            "op_count": len(self.schedule),
            "chain": {"input_bytes": self.chain.input_bytes,
                      "stages": [{"name": s.name, "out_bytes": s.out_bytes,
                                  "saved_bytes": s.saved_bytes, "fwd_time_s": s.fwd_time_s,
                                  "bwd_time_s": s.bwd_time_s} for s in self.chain.stages]},
            "ok": self.ok,
            "notes": list(self.notes),
        }
        if ops:
            d["ops"] = self.op_rows()
        return d


def _rss_mark() -> int | None:
    """Reset the process's peak RSS to its current RSS (Linux ``/proc/self/clear_refs``) and
    return that RSS in bytes; None where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _proc_status("VmRSS")
    except OSError:
        return None


def _proc_status(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _allocator_peak(run: Callable[[], object], cuda: torch.device | None,
                    left_out: Callable[[], list[torch.Tensor]] = list) -> int | None:
    """Peak bytes allocated while ``run()`` runs, above what was allocated before, by PyTorch's
    allocator (``max_memory_allocated`` on CUDA, allocation events on the CPU); the tensors
    ``left_out()`` names afterwards (fresh parameter gradients: fixed memory) are not counted.
    None where this torch's CPU allocator reports no events."""
    from .meter import AllocTrace, alloc_events_supported
    if cuda is not None:
        torch.cuda.synchronize(cuda)
        torch.cuda.reset_peak_memory_stats(cuda)
        start = torch.cuda.memory_allocated(cuda)
        run()
        torch.cuda.synchronize(cuda)
        kept = sum(t.numel() * t.element_size() for t in left_out())
        return int(torch.cuda.max_memory_allocated(cuda) - start - kept)
    if not alloc_events_supported():
        return None
    with AllocTrace(True) as tr:
        run()
    return tr.peak(exclude_final={t.data_ptr() for t in left_out()})[0]


def _independent_peaks(ex: ChainExecutor, stages: list[tuple[str, nn.Module]], x: Any,
                       schedule: Schedule, target: Any) -> tuple[int | None, int | None]:
    """(activation peak by PyTorch's allocator, peak RSS growth) of one more step of the
    schedule, with fresh gradients whose final allocations are left out (fixed memory); the
    allocator figure includes the input batch, as the chain model does. The model's state is
    restored afterwards."""
    from ._tensors import storage_bytes

    params = list({id(p): p for _, m in stages for p in m.parameters()}.values())
    x0_bytes = storage_bytes(leaves(x))
    cuda = next((t.device for t in leaves(x) if t.device.type == "cuda"), None)
    with preserved_state(m for _, m in stages):
        for p in params:
            p.grad = None
        rss0 = _rss_mark()
        peak = _allocator_peak(lambda: ex.step(x, schedule, target=target, measure=False), cuda,
                               lambda: [p.grad for p in params if p.grad is not None])
        hwm = _proc_status("VmHWM")
        for p in params:
            p.grad = None
    rss = None if rss0 is None or hwm is None else max(0, hwm - rss0)
    return (None if peak is None else peak + x0_bytes), rss


def _optimizer_step(ex: ChainExecutor, stages: list[tuple[str, nn.Module]], x: Any,
                    schedule: Schedule, target: Any, optimizer: str) -> tuple[int, int] | None:
    """(measured, predicted) bytes of the temporaries of ``torch.optim``'s step for
    ``optimizer`` (sgd, momentum, adam, adamw: torch's default implementation for the device;
    adam-fused, adamw-fused: ``fused=True``)
    over the trainable parameters: two steps of the schedule, each followed by the optimizer's
    step, the second measured (:func:`_allocator_peak`). The parameters, their gradients and the
    modules' state are restored; None for an optimizer torch.optim does not have (8-bit Adam)
    or where nothing can be measured."""
    from ..optimizers import step_transient_bytes
    makers = {"sgd": lambda ps: torch.optim.SGD(ps, lr=1e-3),
              "momentum": lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9),
              "adam": lambda ps: torch.optim.Adam(ps, lr=1e-3),
              "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-3),
              "adam-fused": lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True),
              "adamw-fused": lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True)}
    params = [p for p in {id(p): p for _, m in stages for p in m.parameters()}.values()
              if p.requires_grad]
    if optimizer not in makers or not params:
        return None
    cuda = next((t.device for t in leaves(x) if t.device.type == "cuda"), None)
    from .meter import alloc_events_supported
    if cuda is None and not alloc_events_supported():
        return None  # nothing to measure with: do not run the steps
    saved = [p.detach().clone() for p in params]
    measured: int | None = None
    with preserved_state(m for _, m in stages):
        opt = makers[optimizer](params)
        for _ in range(2):
            for p in params:
                p.grad = None
            ex.step(x, schedule, target=target, measure=False)
            measured = _allocator_peak(opt.step, cuda)
        del opt
        for p in params:
            p.grad = None
        with torch.no_grad():
            for p, v in zip(params, saved, strict=True):
                p.copy_(v)
    if measured is None:
        return None
    nbytes = [p.numel() * p.element_size() for p in params]
    predicted = step_transient_bytes(optimizer, sum(nbytes), max(nbytes),
                                     "gpu" if cuda is not None else "cpu")
    return measured, predicted


def _param_dtype(stages: list[tuple[str, nn.Module]]) -> str | None:
    for _, m in stages:
        for p in m.parameters():
            return str(p.dtype).replace("torch.", "")
    return None


def build_model(spec: str, kwargs: dict | None = None, *, seed: int = 0) -> Any:
    """``"package.module:callable"`` or ``"path/file.py:callable"`` -> the model it returns
    (resolved by the torch importer's rules)."""
    from .user_model import resolve
    obj, _ = resolve(spec)
    torch.manual_seed(seed)
    if isinstance(obj, (nn.Module, list, tuple)):
        if kwargs:
            raise InputError("--arg was given but the object is not callable",
                             source="MODULE:CALLABLE")
        return obj
    if not callable(obj):
        raise InputError(f"expected a callable returning nn.Sequential or a list of modules, "
                         f"got {type(obj).__name__}", source="MODULE:CALLABLE")
    try:
        return obj(**(kwargs or {}))
    except TypeError as e:
        raise InputError(f"calling the model builder failed: {e}",
                         source="MODULE:CALLABLE") from None


def _spread(*samples: list[float]) -> float | None:
    """The largest median / fastest over the given series of step times (None without two
    samples): how much interference the typical step saw."""
    vals = [statistics.median(x) / min(x) for x in samples if len(x) >= 2 and min(x) > 0]
    return max(vals) if vals else None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _time_notes(v: Verification) -> list[str]:
    """Notes on the time comparison: off (outside ``TIME_RATIO_RANGE``), noisy, and why."""
    notes = []
    noisy = v.time_spread is not None and v.time_spread > NOISY_SPREAD
    if v.threads > 1 and v.device == "cpu":
        hint = (f"; PyTorch ran {v.threads} threads on {_cores()} cores: when other processes "
                "use those cores, parallel ops wait for descheduled threads and host times jump "
                "10-100x for seconds at a time; try --threads 1 (torch.set_num_threads(1), "
                "OMP_NUM_THREADS=1) or an idle machine")
    else:
        hint = "; the host looks busy: retry on an idle machine" if noisy else ""
    if v.time_ok is False:
        lo, hi = TIME_RATIO_RANGE
        r = f"{v.time_ratio:.2f}" if v.time_ratio >= 0.1 else f"{v.time_ratio:.2g}"
        notes.append(f"the time prediction is off: measured / predicted step time = {r}, "
                     f"outside [{lo:g}, {hi:g}] (the verdict is on memory and not affected)"
                     f"{hint}")
        hint = ""
    if noisy:
        notes.append(f"timings are noisy: the median timed step took {v.time_spread:.1f}x the "
                     f"fastest (the fastest ones are compared){hint}")
    return notes


def verify_plan(model: Any, schedule: Schedule, chain: Chain | None = None, *,
                x: Any = None, target: Any = None,
                loss_fn: Callable[..., torch.Tensor] | None = None,
                input_shape: tuple[int, ...] | None = None, batch: int | None = None,
                dtype: str | None = None, input_dtype: str | None = None,
                input_high: int | None = None, device: str | None = None,
                kwargs: dict | None = None, budget_bytes: int | None = None,
                tolerance: float = 0.10, repeats: int = 5, timing: bool = True,
                time_reps: int = 5, strict: bool = True, measure_tmp: bool = False,
                copy_model: bool = True, seed: int = 0, name: str | None = None,
                measured: MeasuredChain | None = None, independent: bool = True,
                modes: Sequence[str] | None = None,
                lora: tuple[Sequence[str], float | None] | None = None,
                amp: str | None = None, optimizer: str | None = None) -> Verification:
    """Execute ``schedule`` on ``model`` and compare with the simulator's prediction.

    ``model``: an ``nn.Sequential`` / list of stage modules (the last returns the loss, or give
    ``loss_fn`` and ``target``), or a ``"MODULE:CALLABLE"`` string building one (then ``dtype``
    defaults to float32 and ``device`` to cpu). ``chain``: the chain the plan was solved on (a
    model file's), optional: its simulated peak is reported as ``plan_peak_bytes``; its length
    must match the model's. ``x``: the input batch, or built from ``input_shape``, ``batch``,
    ``input_dtype`` (default ``dtype``), ``input_high``. ``budget_bytes``: the plan's activation
    budget (verdict). ``repeats``: extra unmeasured steps timed for the wall time, the fastest
    counts (0: use the measured step's op times). ``time_reps``: store-all steps timed for the
    per-stage times (the fastest counts), alternating with the ``repeats``. ``copy_model``: run
    on a deep copy (the caller's model, its gradients and running statistics are untouched; the
    RNG state is restored too).
    ``measured``: a :func:`measure_chain` result for this model and input, to skip measuring
    again (e.g. when verifying several schedules); its stage times are used when it has them.
    ``independent``: also run the schedule once under PyTorch's allocator and the process's
    peak RSS (:func:`_independent_peaks`), a check that does not rely on edgeplan's accounting.
    ``modes``: the training mode of every stage (``Training.modes``, from ``solve --train``):
    frozen, bias-only and LoRA stages are set up before anything runs (``torchrun.trainable``);
    ``lora`` gives the adapters' (targets, alpha), as the model file records them. ``amp``
    (``bf16``, ``fp16``; a model file's ``amp:``): mixed precision, every forward under
    ``torch.autocast`` on the model's device (parameters stay fp32), backwards outside it.
    ``optimizer`` (sgd, momentum, adam, adamw): also measure ``torch.optim``'s step
    temporaries after the backward against ``optimizers.step_transient_bytes``.
    """
    if not 0 <= tolerance < 10:
        raise InputError(f"expected a tolerance between 0 and 10, got {tolerance}",
                         param="tolerance")
    label = name
    if isinstance(model, str):
        label = label or model.rpartition(":")[2]
        model = build_model(model, kwargs, seed=seed)
        dtype = dtype or "float32"
        device = device or "cpu"
    elif copy_model:
        model = copy.deepcopy(model)
    label = label or type(model).__name__
    stages = stage_list(model, loss_fn)
    L = len(stages)
    if dtype is not None and dtype not in _DTYPES:
        raise InputError(f"expected one of {', '.join(_DTYPES)}, got {dtype!r}", param="dtype")
    if device is not None:
        try:
            dev = torch.device(device)
        except RuntimeError as e:
            raise InputError(str(e), param="device") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise InputError("CUDA is not available", param="device")
    for _, m in stages:
        if dtype is not None:
            m.to(dtype=getattr(torch, dtype))
        if device is not None:
            m.to(device=device)
        m.train()
    if modes is not None:
        from ..training import lora_rank
        from .trainable import apply_modes
        if len(modes) != L:
            raise InputError(f"{len(modes)} training modes for {L} stages", param="modes")
        if any(lora_rank(m) is not None for m in modes) and lora is None:
            raise InputError("verifying a LoRA plan needs the adapters' target layers (the model "
                             "file's lora: {targets: [...]}, written by `import torch --modes "
                             "lora:R`)", param="modes")
        targets, alpha = lora if lora is not None else ((), None)
        apply_modes(model, stages, modes, tuple(targets) or None, alpha)
    # inputs
    check_schedule(schedule, L)
    if chain is not None and chain.length != L:
        raise InputError(f"the plan's chain has {chain.length} stages but the model has {L}",
                         source="plan")
    rng_before = torch.get_rng_state()
    try:
        if x is None:
            if input_shape is None or batch is None:
                raise InputError("give the input batch x, or input_shape and batch",
                                 param="input_shape")
            torch.manual_seed(seed)
            idt = input_dtype or dtype or "float32"
            high = input_high
            if high is None and not getattr(torch, idt).is_floating_point:
                high = first_embedding_size(stages)
            x = make_input(tuple(input_shape), batch, idt, high=high, device=device or "cpu")
        xs = leaves(x)
        from .meter import amp_dtype
        cast = amp_dtype(amp)
        real_batch = int(xs[0].shape[0]) if xs and xs[0].dim() > 0 else batch
        stages_for_run = stages  # already wrapped with the loss
        if measured is not None:
            if measured.chain.length != L:
                raise InputError(f"the measured chain has {measured.chain.length} stages but the "
                                 f"model has {L}", source="measured")
            mc = measured
        else:
            mc = measure_chain(stages_for_run, x, target=target, timing=False,
                               measure_tmp=measure_tmp, name=label, autocast=cast)
        prefix = frozen_prefix_of(schedule)  # docs/chain-model.md §8: as the plan's chain
        if prefix and mc.chain.frozen_prefix != prefix:
            mc = replace(mc, chain=replace(mc.chain, frozen_prefix=prefix))
        plan_trace = simulate(chain, schedule) if chain is not None else None
        ex = ChainExecutor(stages_for_run, strict=strict, autocast=cast)
        for _, m in stages:
            for p in m.parameters():
                p.grad = None
        torch.manual_seed(seed + 1)
        step = ex.step(x, schedule, target=target, measure=True)
        # Timing. The stage times (store-all steps of the executor, StageTimer) and the timed
        # steps of the schedule are taken in alternating rounds, so that both see the host in
        # the same state (an oversubscribed host changes speed 10-100x for seconds at a time),
        # and both sides keep their fastest whole step (interference only adds time; see
        # StageTimer for why not per-op minimums or medians). The model ends as after the
        # measured step.
        timer = StageTimer(stages_for_run, x, target=target, autocast=cast) \
            if timing and not (measured is not None and measured.timed) else None
        times: list[float] = []
        isolated = False
        with preserved_state(m for _, m in stages):
            if timer is not None:
                try:
                    timer.round(record=False)  # warm-up: first calls in the store-all order
                except InputError as e:
                    if not _is_oom(e):
                        raise
                    timer, isolated = None, True
            time_reps = max(1, time_reps)
            rounds = max(max(0, repeats), time_reps if timer is not None else 0)
            for k in range(rounds):
                if timer is not None and k < time_reps:
                    try:
                        timer.round()
                    except InputError as e:
                        if not _is_oom(e):
                            raise
                        timer, isolated = None, True  # the store-all step does not fit
                if k < repeats:
                    for _, m in stages:
                        for p in m.parameters():
                            p.grad = None
                    times.append(ex.step(x, schedule, target=target,
                                         measure=False).wall_time_s)
        stage_walls = timer.walls if timer is not None else []
        time_method = ("executor" if timer is not None else "isolated" if isolated
                       else "given" if mc.timed else None)
        if timer is not None:
            mc = replace(mc, chain=with_times(mc.chain, timer.times()), timed=True)
        elif isolated:
            mc = replace(mc, chain=with_times(mc.chain, time_stages_isolated(
                stages_for_run, x, reps=time_reps)), timed=True)
        trace = simulate(without_tmp(mc.chain), schedule)
        measured_time = min(times) if times else step.compute_time_s
    finally:
        torch.set_rng_state(rng_before)
    notes = [f"chain sizes measured by the {mc.source}"]
    if not mc.timed:
        notes.append("stage times not measured: the predicted time is 0")
    if plan_trace is not None:
        diff = [s.name for s, p in zip(mc.chain.stages, chain.stages)
                if (s.out_bytes, s.saved_bytes) != (p.out_bytes, p.saved_bytes)]
        if diff:
            notes.append(f"{len(diff)} of {L} stages differ in out/saved bytes from the plan's "
                         f"model file (first: {diff[0]}); check batch, dtype and input shape")
    # the allocator's step runs as a training loop does: autograd frees each saved tensor once
    # the backward is done with it (strict=False), the lifetimes under which the importer
    # measures bwd_tmp; the strict executor above keeps them to the end of B (its accounting)
    indep = (_independent_peaks(ChainExecutor(stages_for_run, strict=False, autocast=cast),
                                stages, x, schedule, target) if independent else None)
    opt_step = (_optimizer_step(ex, stages, x, schedule, target, optimizer)
                if optimizer is not None and independent else None)
    pred_tmp = (plan_trace.peak_bytes if plan_trace is not None else trace.peak_bytes)
    v = Verification(model=label, stages=L, schedule=schedule, chain=mc.chain,
                     chain_source=mc.source, trace=trace, step=step,
                     predicted_peak_bytes=trace.peak_bytes, measured_peak_bytes=step.peak_bytes,
                     predicted_time_s=trace.cost_s, measured_time_s=measured_time,
                     budget_bytes=budget_bytes, tolerance=tolerance, plan_trace=plan_trace,
                     timed_steps=len(times), device=str(xs[0].device) if xs else "cpu",
                     dtype=dtype or _param_dtype(stages),
                     batch=real_batch, notes=notes, threads=torch.get_num_threads(),
                     time_spread=_spread(times, stage_walls), time_method=time_method,
                     allocator_peak_bytes=None if indep is None else indep[0],
                     allocator_predicted_bytes=None if indep is None else pred_tmp,
                     rss_growth_bytes=None if indep is None else indep[1],
                     optimizer=optimizer if opt_step is not None else None,
                     optimizer_step_bytes=None if opt_step is None else opt_step[0],
                     optimizer_step_predicted_bytes=None if opt_step is None else opt_step[1])
    if indep is not None and plan_trace is None:
        v.notes.append("the allocator is compared with the measured chain's peak without "
                       "transients (give the plan's model file for fwd_tmp/bwd_tmp)")
    if isolated:
        v.notes.append("stage times taken with each stage alone (the store-all step does not fit "
                       "in memory): they miss the executor's per-op costs, expect the predicted "
                       "time to be 25-35% low")
    v.notes.extend(_time_notes(v))
    if v.measured_peak_bytes < v.predicted_peak_bytes * (1.0 - tolerance):
        v.notes.append("the measured peak is well below the prediction (stages whose output "
                       "aliases their input, or strict=False)")
    if v.within_budget is False:
        v.notes.append(f"the measured peak {v.measured_peak_bytes} B exceeds the budget "
                       f"{v.budget_bytes} B")
    return v
