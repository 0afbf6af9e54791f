"""Strategies, devices and models side by side (the library behind ``edgeplan compare``).

Every cell is a ``SolveResult`` whose schedule was replayed by the simulator. The strategies are
those of ``solvers.registry`` (the one table); a strategy limited to short chains, or one that
needs a storage tier the device lacks, is reported as skipped. Each ``Pairing`` keeps the
optimal DP's trade-off curve, so figures never solve again.
"""

from __future__ import annotations

from dataclasses import dataclass

from .device import DeviceProfile
from .discretize import DEFAULT_SLOTS
from .errors import LimitError
from .model import ModelSpec
from .problem import Problem, ProblemView, prepare, solve_problem
from .progress import Progress
from .solvers.base import FrontierPoint, SolveResult
from .solvers.registry import STRATEGIES, get_strategy

DEFAULT_STRATEGIES = tuple(STRATEGIES)


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One strategy on one (model, device)."""

    strategy: str
    result: SolveResult | None       # None when skipped
    skipped: str | None = None       # why (e.g. too many stages for exact)

    @property
    def feasible(self) -> bool:
        return self.result is not None and self.result.feasible


@dataclass(frozen=True, kw_only=True)
class Pairing(ProblemView):
    """All strategies for one model on one device."""

    problem: Problem
    cells: tuple[Cell, ...]
    frontier: tuple[FrontierPoint, ...] = ()   # the optimal DP's trade-off curve

    @property
    def budget_bytes(self) -> int:
        return self.memory.activation_bytes

    def best(self) -> Cell | None:
        """The cheapest feasible strategy (ties: the earlier in the list)."""
        ok = [c for c in self.cells if c.feasible]
        return min(ok, key=lambda c: c.result.cost_s) if ok else None  # type: ignore[union-attr]

    def overhead(self, cell: Cell) -> float | None:
        return None if cell.result is None else self.problem.overhead(cell.result.cost_s)

    def energy_j(self, cell: Cell) -> float | None:
        return None if cell.result is None else self.problem.energy_j(cell.result.cost_s)


def check_strategies(names: list[str]) -> tuple[str, ...]:
    """The strategies called ``names`` (``UnknownNameError`` with did-you-mean otherwise)."""
    return tuple(get_strategy(n, param="strategies").name for n in names)


def compare_one(model: ModelSpec, device: DeviceProfile | None, *, memory_bytes: int | None = None,
                strategies: tuple[str, ...] = DEFAULT_STRATEGIES, slots: int = DEFAULT_SLOTS,
                precision: str | None = None, with_frontier: bool = False,
                train: str | None = None, optimizer: str | None = None) -> Pairing:
    """All ``strategies`` for ``model`` on ``device``; ``with_frontier`` also keeps the optimal
    DP's trade-off curve (for figures). ``train`` and ``optimizer`` as for ``prepare``."""
    problem = prepare(model, device, memory_bytes=memory_bytes, precision=precision,
                      train=train, optimizer=optimizer)
    # one optimal solve: the optimal cell, the offload DP's in-memory candidate and the figures'
    # curve all reuse it
    optimal = None
    if with_frontier or {"optimal", "offload"} & set(strategies):
        optimal = solve_problem(problem, "optimal", slots=slots, frontier=with_frontier)
    cells = []
    for name in strategies:
        s = get_strategy(name, param="strategies")
        if s.max_stages is not None and problem.chain.length > s.max_stages:
            cells.append(Cell(strategy=name, result=None,
                              skipped=f"n/a above {s.max_stages} stages"))
            continue
        if s.needs_tier and (device is None or not device.storage):
            cells.append(Cell(strategy=name, result=None, skipped="no storage tier"))
            continue
        if s.name == "optimal" and optimal is not None:
            cells.append(Cell(strategy=name, result=optimal))
            continue
        try:
            res = solve_problem(problem, name, slots=slots,
                                recompute=optimal if problem.budget_bytes >= 0 else None)
        except LimitError as e:
            cells.append(Cell(strategy=name, result=None, skipped=str(e)))
            continue
        cells.append(Cell(strategy=name, result=res))
    return Pairing(problem=problem, cells=tuple(cells),
                   frontier=optimal.frontier if optimal is not None else ())


def compare(models: list[ModelSpec], devices: list[DeviceProfile | None], *,
            progress: Progress | None = None, **kw: object) -> list[Pairing]:
    """Every model on every device, each with every requested strategy.

    ``progress(done, total)`` is called after each (model, device) pair if given.
    """
    pairs = [(m, d) for m in models for d in devices]
    out = []
    for n, (m, d) in enumerate(pairs, 1):
        out.append(compare_one(m, d, **kw))  # type: ignore[arg-type]
        if progress is not None:
            progress(n, len(pairs))
    return out
