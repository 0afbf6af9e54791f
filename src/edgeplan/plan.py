"""One planning run: model + device (+ overrides) -> memory breakdown, trade-off curve, schedule.

This is the library behind ``edgeplan solve``. It never prints; ``report.plan_report`` renders a
``Plan``. The set-up is ``problem.prepare``; the recommended schedule is the optimal DP's, with
its whole trade-off curve; with an ``OffloadRequest`` the offload DP reuses that in-memory answer
(one fill, not two) and the flash-endurance estimate follows.
"""

from __future__ import annotations

from dataclasses import dataclass

from .device import DeviceProfile, StorageTier
from .discretize import DEFAULT_SLOTS
from .endurance import EnduranceEstimate, endurance_estimate
from .errors import InputError
from .model import ModelSpec
from .problem import Problem, ProblemView, overhead_of, prepare, solve_problem
from .progress import Progress, time_limited
from .solvers.base import SolveResult
from .training import TrainSpec

__all__ = ["OffloadPlan", "OffloadRequest", "Plan", "make_plan", "overhead_of", "time_limited"]


@dataclass(frozen=True, kw_only=True)
class OffloadRequest:
    """Also plan checkpoint offload to a storage tier of the device (docs/chain-model.md §6)."""

    tier: str | None = None       # the tier's name; None: the profile's first
    asynchronous: bool = False    # writes overlap the compute that follows them


@dataclass(frozen=True, kw_only=True)
class OffloadPlan:
    """The offload answer for the plan's chain and budget."""

    result: SolveResult
    tier: StorageTier
    endurance: EnduranceEstimate | None


@dataclass(frozen=True, kw_only=True)
class Plan(ProblemView):
    problem: Problem
    result: SolveResult
    offload: OffloadPlan | None = None

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
    def time_s(self) -> float | None:
        return self.result.cost_s

    @property
    def overhead(self) -> float | None:
        """Recompute overhead as a fraction of the no-recompute time."""
        return self.problem.overhead(self.result.cost_s)

    def energy_j(self, time_s: float | None) -> float | None:
        return self.problem.energy_j(time_s)


def make_plan(model: ModelSpec, device: DeviceProfile | None, *, memory_bytes: int | None = None,
              slots: int = DEFAULT_SLOTS, precision: str | None = None, batch: int | None = None,
              offload: OffloadRequest | None = None, progress: Progress | None = None,
              time_limit_s: float | None = None, grad_accum: int = 1,
              train: TrainSpec | str | None = None, optimizer: str | None = None,
              master_weights: bool = False) -> Plan:
    """Plan training of ``model`` on ``device``.

    ``memory_bytes``, ``batch``, ``precision``, ``grad_accum``, ``train``, ``optimizer`` and
    ``master_weights`` are those of ``problem.prepare``. ``slots``:
    memory slots of the DP. ``offload``: also plan offload to a storage tier (needs a device).
    ``time_limit_s`` stops the DP cleanly (``LimitError``) once exceeded.
    """
    problem = prepare(model, device, memory_bytes=memory_bytes, batch=batch, precision=precision,
                      grad_accum=grad_accum, train=train, optimizer=optimizer,
                      master_weights=master_weights)
    progress = time_limited(progress, time_limit_s)
    result = solve_problem(problem, "optimal", slots=slots, frontier=True, progress=progress)
    off = None
    if offload is not None:
        off = _offload(problem, result, offload, slots)
    return Plan(problem=problem, result=result, offload=off)


def _offload(problem: Problem, recompute: SolveResult, req: OffloadRequest,
             slots: int) -> OffloadPlan:
    from .solvers.offload import storage_tier

    if problem.device is None:
        raise InputError("offload needs a device (its storage tiers)", param="device")
    tier = storage_tier(problem.device, req.tier)
    res = solve_problem(problem, "offload", tier=tier, asynchronous=req.asynchronous,
                        slots=slots, recompute=recompute if recompute.budget_bytes >= 0 else None)
    endurance = None
    io = res.io
    if res.feasible and io is not None and io.bytes_written and io.makespan_s:
        endurance = endurance_estimate(io.bytes_written, iter_per_s=1.0 / io.makespan_s,
                                       capacity_bytes=tier.capacity_bytes)
    return OffloadPlan(result=res, tier=tier, endurance=endurance)
