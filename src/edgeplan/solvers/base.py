"""The one result type every solver returns, and the helpers they share."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..chain import Chain
from ..discretize import Discretization
from ..schedule import Op, OpKind, Schedule
from ..simulator import Trace, simulate
from ..units import format_size


@dataclass(frozen=True, kw_only=True)
class FrontierPoint:
    """One step of the memory/time trade-off: the least activation budget (bytes, as replayed by
    the simulator) at which ``cost_s`` is reached."""

    budget_bytes: int
    peak_bytes: int
    cost_s: float

    def to_dict(self) -> dict:
        return {"budget_bytes": self.budget_bytes, "peak_bytes": self.peak_bytes,
                "cost_s": self.cost_s}


@dataclass(frozen=True, kw_only=True)
class IOStats:
    """Storage I/O of an offload schedule per iteration (docs/chain-model.md §6), from its replay.

    ``makespan_s`` is in ``mode`` (``"sync"`` or ``"async"``); ``recompute_cost_s`` is the
    in-memory optimum's cost (None when nothing fits in memory alone); ``gain_s`` and
    ``gain_fraction`` are the recompute cost minus the makespan, and that over the recompute cost
    (None without a recompute answer).
    """

    mode: str
    makespan_s: float
    sync_cost_s: float
    async_cost_s: float
    bytes_written: int
    bytes_read: int
    writes: int
    reads: int
    write_time_s: float
    read_time_s: float
    storage_peak_bytes: int
    offload_used: bool
    recompute_cost_s: float | None
    gain_s: float | None
    gain_fraction: float | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class SolveResult:
    """A solver's answer for one chain and activation budget.

    ``feasible`` is False when no schedule of this strategy fits; then ``schedule`` and ``trace``
    are None and ``min_budget_bytes`` (if known) is the least budget that would fit.
    ``trace`` is always the simulator's replay of ``schedule``: cost and peak come from it;
    ``step_peak_bytes`` is what the optimizer step needs after it (docs/chain-model.md §2,
    :func:`with_optimizer_step`), and ``peak_bytes`` the larger of the two.
    ``params`` holds the solver's own choices (segments, snapshots, ...); ``io`` the storage
    traffic of an offload schedule.
    """

    solver: str
    budget_bytes: int
    feasible: bool
    schedule: Schedule | None
    trace: Trace | None
    min_budget_bytes: int | None = None
    discretization: Discretization | None = None
    frontier: tuple[FrontierPoint, ...] = ()
    notes: tuple[str, ...] = field(default=())
    params: dict = field(default_factory=dict)
    io: IOStats | None = None
    step_peak_bytes: int = 0

    @property
    def cost_s(self) -> float | None:
        return None if self.trace is None else self.trace.cost_s

    @property
    def peak_bytes(self) -> int | None:
        return None if self.trace is None else max(self.trace.peak_bytes, self.step_peak_bytes)


def _step_note(step_peak_bytes: int) -> str:
    return (f"the optimizer step needs {format_size(step_peak_bytes)} of activation memory "
            "(the input batch and its temporaries) after the backward, more than the budget")


def with_optimizer_step(res: SolveResult, step_peak_bytes: int) -> SolveResult:
    """``res`` with the optimizer step after the schedule (docs/chain-model.md §2): the step
    runs once every activation but ``a_0`` is freed and needs ``step_peak_bytes`` (``x_0`` and
    its temporaries) of the activation budget, so the iteration's peak is the larger of the
    schedule's and the step's, the least budget is at least the step's, below it nothing fits,
    and the trade-off curve's steps below it merge into one at it (the cheapest)."""
    if step_peak_bytes <= 0:
        return res
    least = res.min_budget_bytes
    least = None if least is None else max(least, step_peak_bytes)
    front: list[FrontierPoint] = []
    for p in res.frontier:  # budgets ascending, costs descending
        q = FrontierPoint(budget_bytes=max(p.budget_bytes, step_peak_bytes),
                          peak_bytes=max(p.peak_bytes, step_peak_bytes), cost_s=p.cost_s)
        if front and front[-1].budget_bytes == q.budget_bytes:
            front[-1] = q if q.cost_s <= front[-1].cost_s else front[-1]
        else:
            front.append(q)
    out = replace(res, min_budget_bytes=least, frontier=tuple(front),
                  step_peak_bytes=step_peak_bytes)
    if res.feasible and res.budget_bytes < step_peak_bytes:
        # a schedule fits this budget, below the step's need: the least budget is the step's
        out = replace(out, feasible=False, schedule=None, trace=None,
                      min_budget_bytes=step_peak_bytes,
                      notes=(_step_note(step_peak_bytes),))  # the schedule's notes are moot
    return out


def verified(chain: Chain, schedule: Schedule, budget_bytes: int | None = None) -> Trace:
    """Replay a solver's schedule; a rejection is a solver bug (``ScheduleError``)."""
    return simulate(chain, schedule, budget_bytes)


def frozen_prefix_ops(p: int) -> tuple[Op, ...]:
    """The forward of a frozen prefix (docs/chain-model.md §8): ``Fn 1 .. Fn p``, each input
    freed once the next activation exists (``a_0`` stays: the input batch is resident)."""
    ops: list[Op] = []
    for j in range(1, p + 1):
        ops.append(Op(OpKind.FN, j))
        if j >= 2:
            ops.append(Op(OpKind.FREE_A, j - 1))
    return tuple(ops)


def store_all_schedule(chain: Chain) -> Schedule:
    """No checkpointing: ``Fall 1..L`` then ``B L..1`` (after the frozen prefix's forward,
    ``Fall p+1..L`` then ``B L..p+1``)."""
    L, p = chain.length, chain.frozen_prefix
    return Schedule(frozen_prefix_ops(p) + tuple(Op(OpKind.FALL, i) for i in range(p + 1, L + 1))
                    + tuple(Op(OpKind.B, i) for i in range(L, p, -1)))


def store_all_peak_bytes(chain: Chain) -> int:
    return simulate(chain, store_all_schedule(chain)).peak_bytes
