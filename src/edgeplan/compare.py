"""Strategies, devices and models side by side (the library behind ``edgeplan compare``).

Every cell is a ``SolveResult`` whose schedule was replayed by the simulator. ``exact`` runs only
on chains short enough for the exhaustive search and is reported as skipped otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from .device import DeviceProfile, MemoryBudget, memory_budget
from .discretize import DEFAULT_SLOTS
from .errors import LimitError
from .model import ModelSpec
from .plan import overhead_of
from .solvers.base import SolveResult, store_all_peak_bytes
from .solvers.exact import MAX_EXACT_STAGES
from .solvers.registry import solve as solve_strategy

# Display name -> (registry name, options).
STRATEGIES: dict[str, tuple[str, dict]] = {
    "store-all": ("store-all", {}),
    "segments": ("segments", {}),
    "sqrt": ("sqrt", {"variant": "sqrt"}),
    "sqrt-greedy": ("sqrt", {"variant": "greedy"}),
    "revolve": ("revolve", {}),
    "optimal": ("optimal", {}),
    "exact": ("exact", {}),
    "offload": ("offload", {}),  # the device's first storage tier, synchronous I/O
}
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
class Pairing:
    """All strategies for one model on one device."""

    model: ModelSpec
    device: DeviceProfile | None
    memory: MemoryBudget
    compute_time_s: float
    store_all_peak_bytes: int
    cells: tuple[Cell, ...]

    @property
    def budget_bytes(self) -> int:
        return self.memory.activation_bytes

    def best(self) -> Cell | None:
        """The cheapest feasible strategy (ties: the earlier in the list)."""
        ok = [c for c in self.cells if c.feasible]
        return min(ok, key=lambda c: c.result.cost_s) if ok else None

    def overhead(self, cell: Cell) -> float | None:
        return None if cell.result is None else overhead_of(cell.result.cost_s, self.compute_time_s)

    def energy_j(self, cell: Cell) -> float | None:
        if cell.result is None or cell.result.cost_s is None or self.device is None:
            return None
        return cell.result.cost_s * self.device.training_power_w


def check_strategies(names: list[str]) -> tuple[str, ...]:
    from difflib import get_close_matches

    from .errors import UnknownNameError
    for n in names:
        if n not in STRATEGIES:
            close = get_close_matches(n, list(STRATEGIES), n=2, cutoff=0.5)
            raise UnknownNameError(f"unknown strategy {n!r}", source="--strategies",
                                   hint=(f"did you mean {' or '.join(map(repr, close))}?" if close
                                         else f"choose from {', '.join(STRATEGIES)}"),
                                   suggestions=tuple(close))
    return tuple(names)


def compare_one(model: ModelSpec, device: DeviceProfile | None, *, memory_bytes: int | None = None,
                strategies: tuple[str, ...] = DEFAULT_STRATEGIES, slots: int = DEFAULT_SLOTS,
                precision: str | None = None) -> Pairing:
    chain = model.to_chain(device, precision)
    mem = memory_budget(param_bytes=model.param_bytes, optimizer=model.optimizer, device=device,
                        memory_bytes=memory_bytes)
    budget = mem.activation_bytes
    cells = []
    for name in strategies:
        reg, opts = STRATEGIES[name]
        if name == "exact" and chain.length > MAX_EXACT_STAGES:
            cells.append(Cell(strategy=name, result=None,
                              skipped=f"n/a above {MAX_EXACT_STAGES} stages"))
            continue
        if reg == "optimal":
            opts = {"slots": slots}
        if reg == "offload" and (device is None or not device.storage):
            cells.append(Cell(strategy=name, result=None, skipped="no storage tier"))
            continue
        try:
            if reg == "offload":
                from .solvers.offload import solve_offload, storage_tier
                res = solve_offload(chain, max(budget, 0), storage_tier(device), slots=slots)
            else:
                res = solve_strategy(reg, chain, max(budget, 0), **opts)
        except LimitError as e:
            cells.append(Cell(strategy=name, result=None, skipped=str(e)))
            continue
        if budget < 0:  # the fixed part alone does not fit: nothing is feasible
            res = SolveResult(solver=res.solver, budget_bytes=budget, feasible=False, schedule=None,
                              trace=None, min_budget_bytes=res.min_budget_bytes,
                              discretization=res.discretization, notes=res.notes, params=res.params)
        cells.append(Cell(strategy=name, result=res))
    return Pairing(model=model, device=device, memory=mem, compute_time_s=chain.compute_time_s,
                   store_all_peak_bytes=store_all_peak_bytes(chain), cells=tuple(cells))


def compare(models: list[ModelSpec], devices: list[DeviceProfile | None], *, progress=None,
            **kw) -> list[Pairing]:
    """Every model on every device, each with every requested strategy.

    ``progress(done, total)`` is called after each (model, device) pair if given.
    """
    pairs = [(m, d) for m in models for d in devices]
    out = []
    for n, (m, d) in enumerate(pairs, 1):
        out.append(compare_one(m, d, **kw))
        if progress is not None:
            progress(n, len(pairs))
    return out
