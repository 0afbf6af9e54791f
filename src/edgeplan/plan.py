"""One planning run: model + device (+ overrides) -> memory breakdown, trade-off curve, schedule.

This is the library behind ``edgeplan solve``. It never prints; the CLI renders a ``Plan``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .chain import Chain
from .device import DeviceProfile, MemoryBudget, memory_budget
from .discretize import DEFAULT_SLOTS
from .errors import LimitError
from .model import ModelSpec
from .solvers.base import SolveResult, store_all_peak_bytes
from .solvers.optimal import solve_optimal


def overhead_of(cost_s: float | None, compute_time_s: float) -> float | None:
    """``cost / compute - 1``: the recompute overhead fraction (0 for float noise)."""
    if cost_s is None:
        return None
    if compute_time_s <= 0:
        return 0.0
    r = cost_s / compute_time_s - 1.0
    return 0.0 if abs(r) < 1e-9 else r


@dataclass(frozen=True, kw_only=True)
class Plan:
    model: ModelSpec
    device: DeviceProfile | None
    chain: Chain
    memory: MemoryBudget
    precision: str | None
    store_all_peak_bytes: int
    result: SolveResult

    @property
    def feasible(self) -> bool:
        return self.result.feasible

    @property
    def fits_without_checkpointing(self) -> bool:
        return self.store_all_peak_bytes <= self.memory.activation_bytes

    @property
    def min_activation_bytes(self) -> int | None:
        return self.result.min_budget_bytes

    @property
    def min_memory_bytes(self) -> int | None:
        """Least usable device memory (fixed part + activations) at which a schedule exists."""
        m = self.result.min_budget_bytes
        return None if m is None else m + self.memory.fixed_bytes

    @property
    def min_device_memory_bytes(self) -> int | None:
        """Least total device memory (reserve included) at which a schedule exists."""
        m = self.min_memory_bytes
        return None if m is None else m + self.memory.reserved_bytes

    @property
    def compute_time_s(self) -> float:
        return self.chain.compute_time_s

    @property
    def time_s(self) -> float | None:
        return self.result.cost_s

    @property
    def overhead(self) -> float | None:
        """Recompute overhead as a fraction of the no-recompute time."""
        return overhead_of(self.result.cost_s, self.compute_time_s)

    def energy_j(self, time_s: float | None) -> float | None:
        if time_s is None or self.device is None:
            return None
        return time_s * self.device.training_power_w


def time_limited(progress, time_limit_s: float | None):
    """Wrap a DP progress callback so that the solve stops with ``LimitError`` past the limit."""
    if time_limit_s is None:
        return progress
    deadline = time.monotonic() + time_limit_s

    def cb(done: int, total: int) -> None:
        if time.monotonic() > deadline:
            raise LimitError(f"stopped after the time limit of {time_limit_s:g} s with the DP "
                             f"{100 * done // max(total, 1)}% done; use fewer --slots, merge "
                             "stages or raise --time-limit")
        if progress is not None:
            progress(done, total)
    return cb


def make_plan(model: ModelSpec, device: DeviceProfile | None, *, memory_bytes: int | None = None,
              slots: int = DEFAULT_SLOTS, precision: str | None = None, batch: int | None = None,
              progress=None, time_limit_s: float | None = None) -> Plan:
    """Plan training of ``model`` on ``device``.

    ``memory_bytes`` replaces the device's usable memory (total - reserved); the fixed part
    (parameters, gradients, optimizer state) is always subtracted to get the activation budget.
    ``time_limit_s`` stops the DP cleanly (``LimitError``) once exceeded.
    """
    progress = time_limited(progress, time_limit_s)
    if batch is not None and batch != model.batch:
        model = model.scaled_to_batch(batch)
    chain = model.to_chain(device, precision)
    mem = memory_budget(param_bytes=model.param_bytes, optimizer=model.optimizer, device=device,
                        memory_bytes=memory_bytes)
    budget = mem.activation_bytes
    peak_all = store_all_peak_bytes(chain)
    result = solve_optimal(chain, max(budget, -1), slots=slots, progress=progress) if budget >= 0 \
        else _nothing_fits(chain, budget, slots, progress)
    used_precision = None
    if device is not None and model.uses_flops:
        used_precision = precision or model.precision or device.precision
    return Plan(model=model, device=device, chain=chain, memory=mem, precision=used_precision,
                store_all_peak_bytes=peak_all, result=result)


def _nothing_fits(chain: Chain, budget: int, slots: int, progress) -> SolveResult:
    """Fixed part alone exceeds the memory: report the least activation budget anyway."""
    res = solve_optimal(chain, 0, slots=slots, progress=progress)
    return SolveResult(solver=res.solver, budget_bytes=budget, feasible=False, schedule=None,
                       trace=None, min_budget_bytes=res.min_budget_bytes,
                       discretization=res.discretization, frontier=res.frontier,
                       notes=("parameters, gradients and optimizer state alone exceed the memory",))
