"""Every strategy by name, behind one signature: ``f(chain, budget_bytes, **opts) -> SolveResult``.

=============  =====================================================  ========================
name           what                                                   options
=============  =====================================================  ========================
``store-all``  no checkpointing (``baselines.solve_store_all``)       -
``segments``   PyTorch ``checkpoint_sequential`` (``solve_segments``)  ``segments``
``sqrt``       Chen et al. 2016 (``solve_sqrt``)                       ``variant``, ``num_grids``
``revolve``    binomial checkpointing (``revolve.solve_revolve``)      ``snapshots``
``optimal``    the persistent-schedule DP (``solve_optimal``)          ``slots``
``exact``      exhaustive search, <= 8 stages (``exact.exact_cost``)   -
=============  =====================================================  ========================

A strategy that cannot fit the budget returns ``feasible=False`` (with ``min_budget_bytes`` where
known); it does not raise. Options: a caller may pass one option set to every strategy, so an
option that another strategy uses is ignored, as is any option whose value is ``None`` (the
strategy's default applies); an option no strategy knows is an ``InputError``. ``exact`` raises
``LimitError`` above ``MAX_EXACT_STAGES`` stages, ``optimal`` above its table limit; invalid
option values (``segments=0``, ``variant="x"``) are ``InputError``.
"""

from __future__ import annotations

import difflib
import functools
from typing import Callable

from ..chain import Chain
from ..discretize import DEFAULT_SLOTS
from ..errors import InputError, UnknownNameError
from .base import SolveResult, store_all_peak_bytes, verified
from .baselines import solve_segments, solve_sqrt, solve_store_all
from .exact import exact_cost
from .optimal import solve_optimal
from .revolve import solve_revolve

Strategy = Callable[..., SolveResult]

# Options each strategy uses (the keyword names of its solver).
_OPTIONS: dict[str, tuple[str, ...]] = {
    "store-all": (),
    "segments": ("segments",),
    "sqrt": ("variant", "num_grids"),
    "revolve": ("snapshots",),
    "optimal": ("slots",),
    "exact": (),
}
KNOWN_OPTIONS = frozenset(o for opts in _OPTIONS.values() for o in opts)


def _store_all(chain: Chain, budget_bytes: int) -> SolveResult:
    return solve_store_all(chain, budget_bytes)


def _segments(chain: Chain, budget_bytes: int, segments: int | None = None) -> SolveResult:
    return solve_segments(chain, budget_bytes, segments=segments)


def _sqrt(chain: Chain, budget_bytes: int, variant: str = "sqrt", num_grids: int = 6) -> SolveResult:
    return solve_sqrt(chain, budget_bytes, variant=variant, num_grids=num_grids)


def _revolve(chain: Chain, budget_bytes: int, snapshots: int | None = None) -> SolveResult:
    return solve_revolve(chain, budget_bytes, snapshots=snapshots)


def _optimal(chain: Chain, budget_bytes: int, slots: int = DEFAULT_SLOTS) -> SolveResult:
    return solve_optimal(chain, budget_bytes, slots=slots, with_frontier=False)


@functools.lru_cache(maxsize=32)
def exact_min_budget(chain: Chain) -> int:
    """The least activation budget at which *any* valid schedule exists: binary search with the
    exhaustive search (short chains only; cached per chain).

    Bounds: the store-all peak fits; nothing fits below the transient of any ``B i`` in the
    best case, ``x_0 + d_i + s_i + b_i`` plus, for ``i >= 2``, ``a_{i-1}`` and the new
    ``d_{i-1}`` (``2 x_{i-1}``)."""
    hi = store_all_peak_bytes(chain)
    lo = max(chain.input_bytes + chain.d(i) + chain.stage(i).saved_bytes
             + chain.stage(i).bwd_tmp_bytes + (2 * chain.x(i - 1) if i >= 2 else 0)
             for i in range(1, chain.length + 1))
    lo = min(lo, hi)
    while lo < hi:
        mid = (lo + hi) // 2
        if exact_cost(chain, mid) is None:
            lo = mid + 1
        else:
            hi = mid
    return hi


def _exact(chain: Chain, budget_bytes: int) -> SolveResult:
    found = exact_cost(chain, budget_bytes)  # raises LimitError above MAX_EXACT_STAGES
    if found is None:
        return SolveResult(solver="exact", budget_bytes=budget_bytes, feasible=False,
                           schedule=None, trace=None, min_budget_bytes=exact_min_budget(chain),
                           notes=("exact: no schedule of any kind fits this budget",))
    _, sched = found
    return SolveResult(solver="exact", budget_bytes=budget_bytes, feasible=True, schedule=sched,
                       trace=verified(chain, sched, budget_bytes))


_IMPL: dict[str, Strategy] = {
    "store-all": _store_all,
    "segments": _segments,
    "sqrt": _sqrt,
    "revolve": _revolve,
    "optimal": _optimal,
    "exact": _exact,
}


def _uniform(name: str) -> Strategy:
    impl = _IMPL[name]
    used = _OPTIONS[name]

    def run(chain: Chain, budget_bytes: int, **opts) -> SolveResult:
        unknown = sorted(set(opts) - KNOWN_OPTIONS)
        if unknown:
            raise InputError(f"unknown option(s) {', '.join(unknown)} for strategy {name!r}; "
                             f"known: {', '.join(sorted(KNOWN_OPTIONS))}")
        kw = {k: v for k, v in opts.items() if k in used and v is not None}
        return impl(chain, budget_bytes, **kw)

    run.__name__ = f"strategy_{name.replace('-', '_')}"
    run.__doc__ = f"Strategy {name!r}: {impl.__name__}(chain, budget_bytes, **opts); " \
                  f"options used: {', '.join(used) or 'none'}."
    return run


STRATEGIES: dict[str, Strategy] = {name: _uniform(name) for name in _IMPL}


def strategy_names() -> list[str]:
    return list(STRATEGIES)


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name``; ``UnknownNameError`` with did-you-mean suggestions if none."""
    if name in STRATEGIES:
        return STRATEGIES[name]
    key = str(name).strip().lower().replace("_", "-")
    if key in STRATEGIES:
        return STRATEGIES[key]
    suggestions = tuple(difflib.get_close_matches(key, list(STRATEGIES), n=3, cutoff=0.5))
    hint = f"did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else \
        f"known strategies: {', '.join(STRATEGIES)}"
    raise UnknownNameError(f"unknown strategy {name!r}", suggestions=suggestions,
                           source="--strategy", hint=hint)


def solve(strategy: str, chain: Chain, budget_bytes: int, **opts) -> SolveResult:
    """Run the strategy called ``strategy`` on ``chain`` within ``budget_bytes`` of activation
    memory (see the module docstring for names and options)."""
    return get_strategy(strategy)(chain, budget_bytes, **opts)
