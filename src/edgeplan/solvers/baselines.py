"""Baseline strategies: store-all, PyTorch ``checkpoint_sequential`` segments, Chen et al. 2016.

All three checkpointing baselines are *segment* schedules (:func:`segment_schedule`): the chain
is cut into consecutive segments; every segment but the last is checkpointed, the last one runs
recording. In chain-model ops, for segments ``[p_1..q_1], ..., [p_m..q_m]`` (``p_1 = 1``,
``q_m = L``):

* forward, each checkpointed segment ``j < m``: ``Fn p_j .. Fn q_j``, with ``free a_{i-1}``
  right after ``Fn i`` for ``i > p_j``: only the segment's input ``a_{p_j - 1}`` (``a_0`` or
  the previous segment's output) and its output ``a_{q_j}`` stay live;
* forward, the last segment: ``Fall p_m .. Fall L`` (recorded, as PyTorch runs it normally);
* backward: ``B L .. B p_m``; then for ``j = m-1 .. 1``: ``free a_{q_j}`` (its only user, the
  recorded ``A_{q_j + 1}``, was just consumed by ``B p_{j+1}``), ``Fall p_j .. Fall q_j``
  (recompute from the stored input), ``B q_j .. B p_j``.

Each checkpointed stage is thus run twice (``Fn`` then ``Fall``); the last segment's stages once.
One segment is store-all. These schedules are *persistent* (a stored ``a_{q_j}`` lives until its
sub-chain is done), so the optimal DP is never worse on the same budget.
"""

from __future__ import annotations

import math

import numpy as np

from ..chain import Chain, ChainArrays
from ..errors import InputError
from ..schedule import Op, OpKind, Schedule
from ..simulator import simulate
from .base import SolveResult, store_all_schedule, verified

# --------------------------------------------------------------------------------------------
# store-all
# --------------------------------------------------------------------------------------------

def solve_store_all(chain: Chain, budget_bytes: int) -> SolveResult:
    """No checkpointing: ``Fall 1..L`` then ``B L..1``. Infeasible when its peak exceeds the
    budget (``min_budget_bytes`` is that peak)."""
    sched = store_all_schedule(chain)
    tr = simulate(chain, sched)
    if tr.peak_bytes > budget_bytes:
        return SolveResult(solver="store-all", budget_bytes=budget_bytes, feasible=False,
                           schedule=None, trace=None, min_budget_bytes=tr.peak_bytes)
    return SolveResult(solver="store-all", budget_bytes=budget_bytes, feasible=True,
                       schedule=sched, trace=verified(chain, sched, budget_bytes),
                       min_budget_bytes=tr.peak_bytes)


# --------------------------------------------------------------------------------------------
# Segment schedules (shared by segments, sqrt and greedy)
# --------------------------------------------------------------------------------------------

# Compact op lists for screening many candidate schedules: parallel lists of op codes and stages.
FN, FALL, BWD, FREE_A, FREE_ALL = range(5)
_KINDS = (OpKind.FN, OpKind.FALL, OpKind.B, OpKind.FREE_A, OpKind.FREE_ALL)


def ops_to_schedule(codes: list[int], stages: list[int]) -> Schedule:
    """A :class:`Schedule` from parallel lists of op codes (``FN``, ``FALL``, ``BWD``,
    ``FREE_A``, ``FREE_ALL``) and stages."""
    return Schedule(tuple(Op(_KINDS[c], int(i)) for c, i in zip(codes, stages)))


def fast_peak_cost(arrays: ChainArrays, codes: list[int], stages: list[int]) -> tuple[int, float]:
    """Peak (bytes) and cost (s) of a *valid* schedule given as op codes and stages, vectorised.

    The same memory accounting as the simulator (docs/chain-model.md §3) without any of its
    checks: it only ranks candidate schedules inside a solver; the chosen schedule is always
    replayed by the simulator, whose numbers are the ones reported. Costs may differ from the
    simulator's in the last bits (summation order).
    """
    a = arrays
    c = np.asarray(codes, dtype=np.int8)
    i = np.asarray(stages, dtype=np.int64)
    xi, si, di, dprev = a.x[i], a.s[i], a.d[i], a.d[i - 1]
    xprev = np.where(i >= 2, a.x[i - 1], 0)
    delta = np.select([c == FN, c == FALL, c == BWD, c == FREE_A],
                      [xi, si, dprev - si - di, -xi], default=-si)
    extra = np.select([c == FN, c == FALL, c == BWD], [xi + a.f[i], si + a.f[i], xprev + a.b[i]],
                      default=delta)
    mem0 = int(a.x[0] + a.d[len(a.x) - 1])
    before = mem0 + np.concatenate(([0], np.cumsum(delta)[:-1]))
    peak = max(mem0, int((before + extra).max())) if len(c) else mem0
    cost = float(a.tf[i][c <= FALL].sum() + a.tb[i][c == BWD].sum())
    return peak, cost


def _cheaper(cost: float, best: float) -> bool:
    """``cost`` beats ``best`` by more than float noise (ties keep the earlier candidate)."""
    return cost < best - 1e-9 * max(1.0, abs(best))


def segment_ops(n_stages: int, sizes: list[int] | tuple[int, ...]) -> tuple[list[int], list[int]]:
    """The segment schedule of the module docstring as op codes and stages."""
    L = n_stages
    sizes = [int(n) for n in sizes]
    if not sizes or any(n < 1 for n in sizes) or sum(sizes) != L:
        raise InputError(f"segment sizes {sizes} must be positive and add up to {L} stages")
    bounds = []  # (p, q) of each segment, 1-based inclusive
    p = 1
    for n in sizes:
        bounds.append((p, p + n - 1))
        p += n
    codes: list[int] = []
    stages: list[int] = []

    def emit(code: int, stage: int) -> None:
        codes.append(code)
        stages.append(stage)

    for p, q in bounds[:-1]:
        for i in range(p, q + 1):
            emit(FN, i)
            if i > p:
                emit(FREE_A, i - 1)
    p_last, _ = bounds[-1]
    for i in range(p_last, L + 1):
        emit(FALL, i)
    for i in range(L, p_last - 1, -1):
        emit(BWD, i)
    for p, q in reversed(bounds[:-1]):
        emit(FREE_A, q)
        for i in range(p, q + 1):
            emit(FALL, i)
        for i in range(q, p - 1, -1):
            emit(BWD, i)
    return codes, stages


def segment_schedule(chain: Chain, sizes: list[int] | tuple[int, ...]) -> Schedule:
    """The segment schedule of the module docstring for consecutive segment lengths ``sizes``
    (positive, summing to ``L``): every segment but the last is checkpointed."""
    return ops_to_schedule(*segment_ops(chain.length, sizes))


def _bounds_text(sizes: list[int]) -> str:
    return "[" + ",".join(str(n) for n in sizes) + "]"


# --------------------------------------------------------------------------------------------
# segments: torch.utils.checkpoint.checkpoint_sequential
# --------------------------------------------------------------------------------------------

def checkpoint_sequential_split(n_stages: int, segments: int) -> list[int]:
    """Segment lengths of PyTorch ``checkpoint_sequential(functions, segments, input)``:
    ``segment_size = n // segments``; the first ``segments - 1`` chunks have ``segment_size``
    stages (checkpointed), the last takes the remainder (run normally, recorded).

    >>> checkpoint_sequential_split(9, 5), checkpoint_sequential_split(10, 3)
    ([1, 1, 1, 1, 5], [3, 3, 4])
    """
    if isinstance(segments, bool) or not isinstance(segments, int) or \
            not 1 <= segments <= n_stages:
        raise InputError(f"the segment count must be between 1 and the number of stages "
                         f"({n_stages}), got {segments!r}", param="segments")
    size = n_stages // segments
    return [size] * (segments - 1) + [n_stages - size * (segments - 1)]


def segments_schedule(chain: Chain, n_segments: int) -> Schedule:
    """The ``checkpoint_sequential`` schedule with ``n_segments`` segments (see the module
    docstring for the ops)."""
    return segment_schedule(chain, checkpoint_sequential_split(chain.length, n_segments))


_SEGMENTS_NOTE = ("segments: torch.utils.checkpoint.checkpoint_sequential: the first n-1 segments "
                  "of L//n stages keep only their input and are recomputed once in the backward; "
                  "the last segment (the remainder) runs recording")


def solve_segments(chain: Chain, budget_bytes: int, segments: int | None = None) -> SolveResult:
    """PyTorch ``checkpoint_sequential`` with ``segments`` segments, or, with ``segments=None``,
    the segment count in ``1..L`` that fits the budget with the least simulated cost (ties to
    fewer segments). ``params``: ``segments`` and ``segment_sizes``. When nothing fits,
    ``min_budget_bytes`` is the least simulated peak over the counts tried."""
    L = chain.length
    counts = [segments] if segments is not None else list(range(1, L + 1))
    arrays = chain.arrays()
    best = None  # (cost, n, sizes)
    min_peak = None
    for n in counts:
        sizes = checkpoint_sequential_split(L, n)
        peak, cost = fast_peak_cost(arrays, *segment_ops(L, sizes))
        min_peak = peak if min_peak is None else min(min_peak, peak)
        if peak <= budget_bytes and (best is None or _cheaper(cost, best[0])):
            best = (cost, n, sizes)
    notes = [_SEGMENTS_NOTE]
    if best is None:
        return SolveResult(solver="segments", budget_bytes=budget_bytes, feasible=False,
                           schedule=None, trace=None, min_budget_bytes=min_peak,
                           notes=tuple(notes),
                           params={"segments": segments} if segments is not None else {})
    _, n, sizes = best
    sched = segment_schedule(chain, sizes)
    if segments is None:
        notes.append(f"segments: chose {n} segments {_bounds_text(sizes)}, the cheapest count "
                     "that fits")
    return SolveResult(solver="segments", budget_bytes=budget_bytes, feasible=True,
                       schedule=sched, trace=verified(chain, sched, budget_bytes),
                       min_budget_bytes=min_peak, notes=tuple(notes),
                       params={"segments": n, "segment_sizes": sizes})


# --------------------------------------------------------------------------------------------
# sqrt: Chen et al. 2016
# --------------------------------------------------------------------------------------------

def sqrt_split(n_stages: int) -> list[int]:
    """Chen's sqrt(n) rule: segments of ``k = floor(sqrt(L))`` stages from the input on, so the
    stored boundaries are ``a_k, a_2k, ...``; the last segment holds the remainder
    (``L - k*(ceil(L/k) - 1)`` stages, between 1 and ``k``).

    >>> sqrt_split(16), sqrt_split(10)
    ([4, 4, 4, 4], [3, 3, 3, 1])
    """
    k = math.isqrt(n_stages)
    full, rest = divmod(n_stages, k)
    return [k] * full + ([rest] if rest else [])


def chen_greedy_split(chain: Chain, b: int) -> tuple[list[int], int, int]:
    """Chen et al. 2016 Algorithm 3 on the chain, with threshold ``b`` bytes.

    Walk the stages in order accumulating ``temp += s_i`` (the bytes stage ``i`` keeps when its
    segment is recomputed recording); ``y = max(y, temp)``; when ``temp > b`` (and ``i < L``),
    stage ``i`` closes its segment: ``a_i`` becomes a stored boundary, ``x += x_i``, ``temp = 0``.
    Returns (segment sizes, ``x`` = bytes of the boundaries, ``y`` = largest segment memory).
    """
    L = chain.length
    sizes: list[int] = []
    temp = x = y = 0
    start = 1
    for i in range(1, L + 1):
        temp += chain.stage(i).saved_bytes
        y = max(y, temp)
        if temp > b and i < L:
            x += chain.x(i)
            sizes.append(i - start + 1)
            start = i + 1
            temp = 0
    sizes.append(L - start + 1)
    return sizes, x, y


def chen_greedy_candidates(chain: Chain, num_grids: int = 6) -> list[tuple[int, list[int], int,
                                                                           int]]:
    """The plans Chen's Appendix A grid search visits: run Algorithm 3 with ``b = 0``, set
    ``b0 = floor(sqrt(x*y))``, then run it for ``b`` over ``[floor(b0/sqrt2), ceil(b0*sqrt2)]``
    in steps of ``max(1, width // num_grids)``. Returns distinct plans as ``(b, sizes, x, y)``
    in visiting order."""
    _, x0, y0 = chen_greedy_split(chain, 0)
    b0 = math.isqrt(x0 * y0)
    b_min = math.floor(b0 / math.sqrt(2))
    b_max = math.ceil(b0 * math.sqrt(2))
    step = max(1, (b_max - b_min) // num_grids)
    seen: set[tuple[int, ...]] = set()
    out = []
    for b in range(b_min, b_max + 1, step):
        sizes, x, y = chen_greedy_split(chain, b)
        if tuple(sizes) not in seen:
            seen.add(tuple(sizes))
            out.append((b, sizes, x, y))
    return out


def solve_sqrt(chain: Chain, budget_bytes: int, variant: str = "sqrt",
               num_grids: int = 6) -> SolveResult:
    """Chen et al. 2016, as segment schedules (module docstring for the ops).

    * ``variant="sqrt"``: segments of ``floor(sqrt(L))`` stages (:func:`sqrt_split`); only the
      boundaries are stored and each segment is recomputed once in the backward, except the last,
      which runs recording in the forward (recomputing it right away would only add time).
    * ``variant="greedy"``: Algorithm 3 with the Appendix A grid search
      (:func:`chen_greedy_candidates`), measured in bytes (``s_i`` per stage, ``x_i`` per
      boundary). Chen picks the plan with the least ``sqrt(x*y)``; here, against a real budget,
      the plan that fits with the least simulated cost is chosen (ties: least ``sqrt(x*y)``,
      then the earlier grid point).

    ``params``: ``variant``, ``segment_sizes`` (and ``segment_length`` or ``b_bytes``,
    ``x_bytes``, ``y_bytes``). When nothing fits, ``min_budget_bytes`` is the least simulated
    peak over the plans tried.
    """
    L = chain.length
    if variant == "sqrt":
        plans: list[tuple[int, list[int], int, int]] = [(0, sqrt_split(L), 0, 0)]
        notes = [f"sqrt: Chen et al. 2016 sqrt(n) rule: segments of floor(sqrt({L})) = "
                 f"{math.isqrt(L)} stages; only segment boundaries are stored; every segment "
                 "but the last is recomputed once in the backward"]
    elif variant == "greedy":
        plans = chen_greedy_candidates(chain, num_grids)
        notes = ["sqrt: Chen et al. 2016 Algorithm 3 (greedy, threshold b on the recorded bytes "
                 "of a segment) with the Appendix A grid search over b; the cheapest plan that "
                 "fits the budget is chosen"]
    else:
        raise InputError(f"unknown sqrt variant {variant!r}; expected 'sqrt' or 'greedy'",
                         param="variant")
    arrays = chain.arrays()
    best = None  # (cost, sqrt(xy), plan)
    min_peak = None
    for plan in plans:
        peak, cost = fast_peak_cost(arrays, *segment_ops(L, plan[1]))
        min_peak = peak if min_peak is None else min(min_peak, peak)
        if peak <= budget_bytes:
            sxy = math.isqrt(plan[2] * plan[3])  # 0 for the sqrt rule (no threshold b)
            if best is None or _cheaper(cost, best[0]) or \
                    (not _cheaper(best[0], cost) and sxy < best[1]):
                best = (cost, sxy, plan)
    if best is None:
        return SolveResult(solver="sqrt", budget_bytes=budget_bytes, feasible=False,
                           schedule=None, trace=None, min_budget_bytes=min_peak,
                           notes=tuple(notes), params={"variant": variant})
    _, _, (b, sizes, x, y) = best
    sched = segment_schedule(chain, sizes)
    params: dict = {"variant": variant, "segment_sizes": sizes}
    if variant == "sqrt":
        params["segment_length"] = math.isqrt(L)
    else:
        params.update({"b_bytes": b, "x_bytes": x, "y_bytes": y})
    return SolveResult(solver="sqrt", budget_bytes=budget_bytes, feasible=True, schedule=sched,
                       trace=verified(chain, sched, budget_bytes), min_budget_bytes=min_peak,
                       notes=tuple(notes), params=params)
