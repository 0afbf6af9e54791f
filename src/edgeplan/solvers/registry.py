"""THE strategy table: every strategy by name, behind one signature.

``get_strategy(name)(chain, budget_bytes, **opts) -> SolveResult``; ``solve(name, chain, budget,
**opts)`` is the same in one call. A new strategy is one ``Strategy`` record in ``STRATEGIES``
(and its algorithm module); ``compare``, ``check``, the CLI's ``--strategies`` and the tests pick
it up from here.

================  ===================================================  ============================
name              what                                                 options
================  ===================================================  ============================
``store-all``     no checkpointing (``baselines.solve_store_all``)     -
``segments``      PyTorch ``checkpoint_sequential`` (``solve_segments``)  ``segments``
``sqrt``          Chen et al. 2016, sqrt(n) segments (``solve_sqrt``)   ``variant``, ``num_grids``
``sqrt-greedy``   Chen et al. 2016, greedy segments (``solve_sqrt``)    ``num_grids``
``revolve``       binomial checkpointing (``revolve.solve_revolve``)    ``snapshots``
``optimal``       the persistent-schedule DP (``solve_optimal``)        ``slots``, ``frontier``,
                                                                       ``progress``
``exact``         exhaustive search, <= 8 stages (``solve_exact``)      -
``offload``       the DP with a storage tier (``solve_offload``)        ``tier`` (required),
                                                                       ``asynchronous``, ``slots``,
                                                                       ``storage_bytes``,
                                                                       ``recompute``, ``progress``
================  ===================================================  ============================

A strategy that cannot fit the budget returns ``feasible=False`` (with ``min_budget_bytes`` where
known); it does not raise. Options: a caller may pass one option set to every strategy, so an
option that another strategy uses is ignored, as is any option whose value is ``None`` (the
strategy's default applies); an option no strategy knows is an ``InputError`` naming the
parameter. On a chain with a frozen prefix (docs/chain-model.md §8) a strategy plans the trained
part and ``solvers.frozen.lift`` turns its answer into one for the whole chain, unless it is
``frozen_native`` (``exact``). A strategy refuses chains above its ``max_stages`` with
``LimitError``; one that ``needs_tier`` refuses to run without ``tier`` (``InputError``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..chain import Chain
from ..errors import InputError, LimitError, UnknownNameError
from .base import SolveResult
from .baselines import solve_segments, solve_sqrt, solve_store_all
from .exact import MAX_EXACT_STAGES, solve_exact
from .frozen import best, lift, unmerge
from .offload import solve_offload
from .optimal import solve_optimal
from .revolve import solve_revolve


def _optimal(chain: Chain, budget_bytes: int, *, frontier: bool = False,
             **kw: Any) -> SolveResult:
    return solve_optimal(chain, budget_bytes, with_frontier=frontier, **kw)


@dataclass(frozen=True, kw_only=True)
class Strategy:
    """One row of the strategy table."""

    name: str
    run: Callable[..., SolveResult]
    summary: str
    options: tuple[str, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    needs_tier: bool = False
    max_stages: int | None = None
    frozen_native: bool = False  # plans a frozen prefix itself (else: solvers.frozen.lift)

    def __call__(self, chain: Chain, budget_bytes: int, **opts: Any) -> SolveResult:
        unknown = sorted(set(opts) - KNOWN_OPTIONS)
        if unknown:
            raise InputError(f"unknown option(s) {', '.join(unknown)} for strategy "
                             f"{self.name!r}; known: {', '.join(sorted(KNOWN_OPTIONS))}",
                             param=unknown[0])
        if self.max_stages is not None and chain.length > self.max_stages:
            raise LimitError(f"{self.name} is limited to {self.max_stages} stages (this chain "
                             f"has {chain.length}); use the optimal solver")
        kw = {k: v for k, v in opts.items() if k in self.options and v is not None}
        if self.needs_tier and "tier" not in kw:
            raise InputError(f"strategy {self.name!r} needs a storage tier", param="tier")
        kw.update(self.fixed)
        if chain.frozen_prefix == 0 or self.frozen_native:
            return self.run(chain, budget_bytes, **kw)
        # docs/chain-model.md §8: plan the trained part beside the resident a_0 and lift it
        # back (below x_0 the lift answers infeasible: the prefix's peak is at least x_0), or
        # plan the prefix as one checkpointable stage with a free backward, so that a_p may be
        # recomputed from a_0 (Chain.merged_prefix); the better of both (solvers.frozen)
        io_kw = {"tier": kw.get("tier"), "storage_bytes": kw.get("storage_bytes")}
        sub = self.run(chain.trained_part(), max(budget_bytes - chain.input_bytes, 0), **kw)
        kept = lift(chain, budget_bytes, sub, **io_kw)
        merged = self.run(chain.merged_prefix(), budget_bytes, **kw)
        return best(kept, unmerge(chain, budget_bytes, merged, **io_kw))


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy(name="store-all", run=solve_store_all, summary="no checkpointing"),
    Strategy(name="segments", run=solve_segments, options=("segments",),
             summary="PyTorch checkpoint_sequential"),
    Strategy(name="sqrt", run=solve_sqrt, options=("variant", "num_grids"),
             summary="Chen et al. 2016: sqrt(n) segments"),
    Strategy(name="sqrt-greedy", run=solve_sqrt, options=("num_grids",),
             fixed=MappingProxyType({"variant": "greedy"}),
             summary="Chen et al. 2016: greedy segments"),
    Strategy(name="revolve", run=solve_revolve, options=("snapshots",),
             summary="binomial checkpointing (Griewank and Walther)"),
    Strategy(name="optimal", run=_optimal, options=("slots", "frontier", "progress"),
             summary="optimal persistent schedule (heterogeneous-chain DP)"),
    Strategy(name="exact", run=solve_exact, max_stages=MAX_EXACT_STAGES, frozen_native=True,
             summary="exhaustive search over every schedule"),
    Strategy(name="offload", run=solve_offload, needs_tier=True,
             options=("tier", "asynchronous", "slots", "storage_bytes", "recompute", "progress"),
             summary="optimal DP with checkpoints offloaded to storage"),
)}
KNOWN_OPTIONS = frozenset(o for s in STRATEGIES.values() for o in s.options)


def strategy_names() -> list[str]:
    return list(STRATEGIES)


def get_strategy(name: str, *, param: str = "strategy") -> Strategy:
    """The strategy called ``name``; ``UnknownNameError`` with did-you-mean suggestions if none
    (naming ``param``, the caller's parameter)."""
    if name in STRATEGIES:
        return STRATEGIES[name]
    key = str(name).strip().lower().replace("_", "-")
    if key in STRATEGIES:
        return STRATEGIES[key]
    raise UnknownNameError.for_name("strategy", name, STRATEGIES, param=param)


def solve(strategy: str, chain: Chain, budget_bytes: int, **opts: Any) -> SolveResult:
    """Run the strategy called ``strategy`` on ``chain`` within ``budget_bytes`` of activation
    memory (see the module docstring for names and options)."""
    return get_strategy(strategy)(chain, budget_bytes, **opts)
