"""Binomial checkpointing (Revolve; Griewank 1992, Griewank & Walther, ACM TOMS 2000, Alg. 799).

Two layers:

1. **The Revolve model** (reference/algorithms.md section 2.1). A chain of ``l`` equal steps and
   ``s`` snapshot slots; the initial state ``x_0`` occupies one of the slots. Reversing step ``i``
   re-runs it with taping from state ``x_{i-1}`` and then runs its adjoint. The quantity
   minimised is the number of *extra* forward steps (advances) ``t(l, s)``:

   * :func:`revolve_extra_forwards` - closed form ``t(l, s) = r*l - C(s + r, s + 1)`` with
     ``r`` = :func:`repetition_number` (least ``r`` with ``C(s + r, s) >= l``);
   * :func:`revolve_dp_table` / :func:`revolve_extra_forwards_dp` - Griewank's recurrence, for
     cross-checking;
   * :func:`beta` (``C(s + r, s)``), :func:`adjust` (revolve.cpp's snapshot-count suggestion),
     :func:`opt0` (the cost-weighted form of the Inria H-Revolve code);
   * :func:`revolve_actions` - Revolve's own offline action sequence (``advance``, ``takeshot``,
     ``restore``, ``firsturn``, ``youturn``, ``terminate``), a re-implementation of the offline
     ``revolve()`` routine; its advances add up to exactly ``t(l, s)``.

2. **The mapping onto the chain model** (docs/chain-model.md §3), :func:`revolve_schedule`
   and the solver :func:`solve_revolve`. Step ``i`` is stage ``i``, state ``x_j`` is ``a_j``:

   * ``takeshot`` at ``capo = j``: ``a_j`` (already live) becomes a snapshot and is kept. Each
     snapshot is one stored ``a_j`` of ``x_j`` bytes; **the input ``a_0`` counts as one of the
     ``s`` snapshots** (as in Revolve itself);
   * ``advance`` from ``p`` to ``q``: ``Fn p+1 .. Fn q``, freeing each intermediate ``a_{j-1}``
     that is not a snapshot (and not ``a_0``) right after ``Fn j``;
   * ``firsturn`` / ``youturn`` at ``capo = j`` (the reverse of step ``j + 1``):
     ``Fall j+1``, ``B j+1``, then ``free a_j`` (``j >= 1``): whether ``a_j`` was the working
     state or a snapshot, nothing needs it any more (Revolve releases that snapshot here too);
   * ``restore``: no op (the snapshot is live; the next advance starts from it).

   Revolve keeps **no recorded tape across steps**: every stage is run recording (``Fall i``)
   immediately before its backward, so the stages ``1..L-1`` are always run at least twice and
   even with ample memory Revolve costs ``sum(tf_1..tf_{L-1})`` more than store-all
   (``t(L, s) >= L - 1``). The number of forward ops of the mapped schedule is exactly
   ``L + t(L, s)`` (``L`` ``Fall`` plus ``t(L, s)`` ``Fn``), on any chain.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from ..chain import Chain
from ..errors import InputError
from ..schedule import Schedule
from .base import SolveResult, verified
from .baselines import BWD, FALL, FN, FREE_A, _cheaper, fast_peak_cost, ops_to_schedule

# --------------------------------------------------------------------------------------------
# The Revolve model: counts
# --------------------------------------------------------------------------------------------

def beta(s: int, r: int) -> int:
    """``beta(s, r) = C(s + r, s)``: the most steps ``s`` snapshots can reverse when no step is
    advanced more than ``r`` times (revolve.cpp ``maxrange(s, r)``)."""
    if s < 0 or r < 0:
        raise ValueError("beta(s, r) needs s >= 0 and r >= 0")
    return math.comb(s + r, s)


def _check_ls(l: int, s: int) -> None:
    if l < 1:
        raise ValueError(f"the number of steps must be >= 1, got {l}")
    if s < 1 and l > 1:
        raise ValueError(f"{l} steps need at least one snapshot, got {s}")


def repetition_number(l: int, s: int) -> int:
    """The repetition number ``r``: the least ``r >= 0`` with ``C(s + r, s) >= l``
    (revolve.cpp ``get_r``)."""
    _check_ls(l, s)
    r = 0
    while beta(s, r) < l:
        r += 1
    return r


def revolve_extra_forwards(l: int, s: int) -> int:
    """``t(l, s)``: the least number of extra forward steps (advances) to reverse ``l`` steps
    with ``s`` snapshots, initial state included. Closed form ``r*l - C(s + r, s + 1)``
    (revolve.cpp ``numforw``).

    >>> revolve_extra_forwards(10, 2), revolve_extra_forwards(100, 5)
    (20, 316)
    """
    _check_ls(l, s)
    if l == 1:
        return 0
    r = repetition_number(l, s)
    return r * l - math.comb(s + r, s + 1)


def revolve_dp_table(l_max: int, s_max: int) -> list[list[float]]:
    """``t(l, s)`` by Griewank's recurrence for ``0 <= s <= s_max``, ``1 <= l <= l_max``, as
    ``table[s][l]`` (``table[s][0]`` unused): ``t(1, s) = 0``; ``t(l, 0) = inf`` for ``l >= 2``;
    ``t(l, s) = min_{1 <= j < l} j + t(l - j, s - 1) + t(j, s)`` (advance ``j`` steps and store
    ``x_j``, reverse the right part with one slot fewer, then the left part with all ``s``).
    O(l_max^2 s_max); the cross-check of the closed form."""
    if l_max < 1 or s_max < 0:
        raise ValueError("revolve_dp_table needs l_max >= 1 and s_max >= 0")
    table = [[math.inf] * (l_max + 1) for _ in range(s_max + 1)]
    for s in range(s_max + 1):
        table[s][1] = 0
        if s == 0:
            continue
        prev, cur = table[s - 1], table[s]
        for ll in range(2, l_max + 1):
            cur[ll] = min(j + prev[ll - j] + cur[j] for j in range(1, ll))
    return table


def revolve_extra_forwards_dp(l: int, s: int) -> float:
    """``t(l, s)`` by Griewank's recurrence (:func:`revolve_dp_table`); ``inf`` when ``s = 0``
    and ``l >= 2``."""
    if l < 1 or s < 0:
        raise ValueError("revolve_extra_forwards_dp needs l >= 1 and s >= 0")
    return revolve_dp_table(l, s)[s][l]


def opt0(l: int, m: int, uf: float = 1.0, ub: float = 1.0) -> float:
    """The cost-weighted Revolve optimum of the Inria H-Revolve code (``get_opt_0_table``):
    ``l`` forward steps ``F_0..F_{l-1}``, ``l + 1`` backward steps, ``m >= 1`` memory slots.

    ``Opt0(0, m) = ub``; ``Opt0(1, m) = uf + 2 ub``; ``Opt0(l, 1) = (l + 1) ub + l(l + 1)/2 uf``;
    ``Opt0(l, m) = min_{1 <= j < l} j uf + Opt0(l - j, m - 1) + Opt0(j - 1, m)``.
    Identity: ``Opt0(l, m) = uf * t(l + 1, m) + (l + 1) * ub``.
    """
    if l < 0 or m < 1:
        raise ValueError("opt0 needs l >= 0 and m >= 1")
    # table[mm][ll]
    table = [[0.0] * (l + 1) for _ in range(m + 1)]
    for mm in range(1, m + 1):
        for ll in range(0, l + 1):
            if ll == 0:
                v = ub
            elif ll == 1:
                v = uf + 2 * ub
            elif mm == 1:
                v = (ll + 1) * ub + ll * (ll + 1) / 2 * uf
            else:
                v = min(j * uf + table[mm - 1][ll - j] + table[mm][j - 1] for j in range(1, ll))
            table[mm][ll] = v
    return table[m][l]


def adjust(steps: int) -> int:
    """revolve.cpp ``adjust(steps)``: a snapshot count with snapshots ~ repetitions ~ log(steps)
    for which ``beta(snaps, reps) >= steps``.

    >>> [adjust(n) for n in (4, 10, 100, 1000, 10000)]
    [2, 3, 5, 7, 8]
    """
    if steps < 1:
        raise ValueError("adjust needs steps >= 1")
    snaps = reps = 1
    shift = 0
    while beta(snaps + shift, reps + shift) > steps and min(snaps, reps) + shift > 0:
        shift -= 1
    while beta(snaps + shift, reps + shift) < steps:
        shift += 1
    snaps += shift
    reps += shift
    last = -1
    while snaps >= 0 and reps >= 0 and beta(snaps, reps) >= steps:
        if snaps > reps:
            snaps -= 1
            last = 0
        else:
            reps -= 1
            last = 1
    if last == 0:
        snaps += 1
    elif last == 1:
        reps += 1
    return snaps


# --------------------------------------------------------------------------------------------
# The Revolve model: the offline action sequence
# --------------------------------------------------------------------------------------------

class Action(str, Enum):
    ADVANCE = "advance"      # run steps capo_before+1 .. capo forward, nothing recorded
    TAKESHOT = "takeshot"    # store the current state x_capo in snapshot slot `check`
    RESTORE = "restore"      # make snapshot `check` (state x_capo) the current state
    FIRSTURN = "firsturn"    # reverse step capo+1 (the last step): forward with tape + adjoint
    YOUTURN = "youturn"      # reverse step capo+1 (any later step)
    TERMINATE = "terminate"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RevolveAction:
    """One action and Revolve's state right after it: ``capo`` (current state index), ``fine``
    (steps ``capo+1..fine`` remain to reverse, before a turn's decrement) and ``check`` (the
    top snapshot slot in use). For ``advance``, ``start`` is the state it advanced from; for a
    turn, ``capo`` is ``j`` and the step reversed is ``j + 1``."""

    action: Action
    capo: int
    fine: int
    check: int
    start: int = -1

    @property
    def steps(self) -> int:
        """Forward steps this action runs without taping (``advance`` only)."""
        return self.capo - self.start if self.action is Action.ADVANCE else 0


def revolve_actions(l: int, s: int) -> list[RevolveAction]:
    """Revolve's offline action sequence for ``l`` steps and ``s`` snapshots (``x_0`` in slot 0),
    ending with ``terminate``. Its advances sum to exactly ``t(l, s)``.

    Worked example (algorithms.md section 5.1, ``l = 3``, ``s = 2``)::

        takeshot 0, advance 0->1, takeshot 1, advance 1->2, firsturn (step 3), restore 1,
        youturn (step 2), restore 0, youturn (step 1), terminate
    """
    return [RevolveAction(*t) for t in _revolve_raw(l, s)]


def _revolve_raw(l: int, s: int) -> Iterator[tuple[Action, int, int, int, int]]:
    """Revolve's offline routine as a generator of ``(action, capo, fine, check, start)``."""
    _check_ls(l, s)
    ch: list[int] = [0] * max(1, s)  # ch[j]: the state held in snapshot slot j
    check = -1                       # top slot in use (-1: none yet)
    capo, fine = 0, l
    turned = False
    while True:
        if fine == capo:
            # Back at a snapshot, or done.
            if check == -1 or capo == ch[0]:
                yield (Action.TERMINATE, capo, fine, check, -1)
                return
            capo = ch[check]
            yield (Action.RESTORE, capo, fine, check, -1)
            continue
        if fine - capo == 1:
            # Reverse the step capo+1; a snapshot of x_capo is released afterwards.
            fine -= 1
            if check >= 0 and ch[check] == capo:
                check -= 1
            act = Action.YOUTURN if turned else Action.FIRSTURN
            turned = True
            yield (act, capo, fine, check, -1)
            continue
        if check == -1:
            # First call with more than one step: x_0 goes into slot 0.
            check = 0
            ch[0] = capo
            yield (Action.TAKESHOT, capo, fine, check, -1)
            continue
        if ch[check] != capo:
            check += 1
            if check >= s:  # pragma: no cover - cannot happen with the advance rule below
                raise AssertionError("revolve ran out of snapshot slots")
            ch[check] = capo
            yield (Action.TAKESHOT, capo, fine, check, -1)
            continue
        # Advance: where to put the next snapshot, with ds free slots (this one included).
        ds = s - check
        span = fine - capo
        reps, rng = 0, 1
        while rng < span:
            reps += 1
            rng = rng * (reps + ds) // reps          # rng = beta(ds, reps)
        b1 = rng * reps // (ds + reps)                # beta(ds, reps - 1)
        b2 = b1 * ds // (ds + reps - 1) if ds > 1 else 1   # beta(ds - 1, reps - 1)
        if ds == 1:
            b3 = 0
        else:
            b3 = b2 * (ds - 1) // (ds + reps - 2) if ds > 2 else 1  # beta(ds - 2, reps - 1)
        b4 = b2 * (reps - 1) // ds                    # beta(ds, reps - 2)
        if ds < 3:
            b5 = 0
        else:
            b5 = b3 * (ds - 2) // reps if ds > 3 else 1        # beta(ds - 3, reps)
        start = capo
        if span <= b1 + b3:
            capo = capo + b4
        elif span >= rng - b5:
            capo = capo + b1
        else:
            capo = fine - b2 - b3
        if capo == start:
            capo = start + 1
        yield (Action.ADVANCE, capo, fine, check, start)


def revolve_advances(actions: list[RevolveAction]) -> int:
    """Total forward steps of the ``advance`` actions (= ``t(l, s)`` for Revolve's sequence)."""
    return sum(a.steps for a in actions)


# --------------------------------------------------------------------------------------------
# Mapping onto the chain model
# --------------------------------------------------------------------------------------------

def revolve_ops(n_stages: int, snapshots: int) -> tuple[list[int], list[int]]:
    """Revolve's action sequence for ``n_stages`` steps as chain-model op codes and stages
    (``baselines.FN`` etc.; the mapping is in the module docstring)."""
    if isinstance(snapshots, bool) or not isinstance(snapshots, int) or snapshots < 1:
        raise InputError(f"revolve needs a snapshot count >= 1, got {snapshots!r}",
                         param="snapshots")
    codes: list[int] = []
    stages: list[int] = []
    snaps: set[int] = {0}
    _check_ls(n_stages, snapshots)
    for a, capo, _, _, start in _revolve_raw(n_stages, snapshots):
        if a is Action.TAKESHOT:
            snaps.add(capo)
        elif a is Action.ADVANCE:
            for j in range(start + 1, capo + 1):
                codes.append(FN)
                stages.append(j)
                if j - 1 >= 1 and (j - 1) not in snaps:
                    codes.append(FREE_A)
                    stages.append(j - 1)
        elif a is Action.FIRSTURN or a is Action.YOUTURN:
            j = capo
            codes += (FALL, BWD)
            stages += (j + 1, j + 1)
            if j >= 1:
                codes.append(FREE_A)
                stages.append(j)
                snaps.discard(j)
        # RESTORE, TERMINATE: no op
    return codes, stages


def revolve_schedule(chain: Chain, snapshots: int) -> Schedule:
    """Revolve's action sequence for ``chain.length`` steps and ``snapshots`` slots, as chain-model
    ops (the mapping is in the module docstring). ``a_0`` is snapshot slot 0."""
    return ops_to_schedule(*revolve_ops(chain.length, snapshots))


MODEL_NOTES = (
    "revolve: each snapshot is one stored activation a_i (x_i bytes); the input a_0 counts as one "
    "of the snapshots",
    "revolve: the Revolve model keeps no recorded tape across steps: each stage is re-run "
    "recording (Fall i) right before its backward B i, so stages 1..L-1 always run at least "
    "twice (t(L, s) >= L - 1 extra forwards); cost and peak are the simulator's, in the chain "
    "model",
)


def solve_revolve(chain: Chain, budget_bytes: int, *, snapshots: int | None = None) -> SolveResult:
    """Binomial checkpointing (Revolve) mapped onto the chain model.

    Each snapshot is one stored activation ``a_i`` (``x_i`` bytes) and **the input ``a_0`` counts
    as one of the ``s`` snapshots**. The reverse of step ``i`` is ``Fall i`` then ``B i``: the
    Revolve model keeps no recorded tape across steps (see the module docstring), so Revolve does
    ``t(L, s) >= L - 1`` extra forwards even when memory is ample.

    Choosing ``s`` (``snapshots=None``; more than ``L - 1`` snapshots change nothing):

    * homogeneous chain (``chain.is_homogeneous()``): the largest ``s`` in ``1..max(1, L-1)``
      whose peak fits, by binary search (on equal steps the peak grows and the cost falls
      strictly with ``s``; the tests check this);
    * heterogeneous chain: peak and cost are not monotone in ``s`` there, so every ``s`` is
      replayed and the one that fits with the least cost is chosen (ties to fewer snapshots).
      The schedule is valid, but Revolve's snapshot placement assumes equal steps (noted in
      ``notes``).

    Candidates are ranked by a vectorised replay (``baselines.fast_peak_cost``); the chosen
    schedule is replayed by the simulator. ``params``: ``snapshots``, ``extra_forwards``
    (``t(L, s)``) and ``repetitions``. When nothing fits, ``min_budget_bytes`` is the least peak
    over the candidates (``s = 1`` on a homogeneous chain).
    """
    L = chain.length
    notes = list(MODEL_NOTES)
    if not chain.is_homogeneous():
        notes.append("revolve: the chain is not homogeneous; Revolve assumes equal steps, so its "
                      "snapshot placement is not optimal here (the schedule is still valid)")
    arrays = chain.arrays()
    s_max = max(1, L - 1)

    def measure(s: int) -> tuple[int, float]:
        return fast_peak_cost(arrays, *revolve_ops(L, s))

    best = None  # (cost, s)
    if snapshots is not None:
        peak, cost = measure(snapshots)
        min_peak = peak
        if peak <= budget_bytes:
            best = (cost, snapshots)
    elif chain.is_homogeneous():
        # Equal steps: the peak grows and the cost falls with s (checked in the tests), so
        # binary-search the largest s that fits.
        min_peak = measure(1)[0]
        lo, hi = 0, (s_max if min_peak <= budget_bytes else 0)
        # invariant: s = lo fits (0: none yet), no s > hi fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if measure(mid)[0] <= budget_bytes:
                lo = mid
            else:
                hi = mid - 1
        if lo >= 1:
            best = (measure(lo)[1], lo)
    else:
        min_peak = None
        for s in range(1, s_max + 1):
            peak, cost = measure(s)
            min_peak = peak if min_peak is None else min(min_peak, peak)
            if peak <= budget_bytes and (best is None or _cheaper(cost, best[0])):
                best = (cost, s)
    if best is None:
        return SolveResult(solver="revolve", budget_bytes=budget_bytes, feasible=False,
                           schedule=None, trace=None, min_budget_bytes=min_peak,
                           notes=tuple(notes))
    _, s = best
    sched = revolve_schedule(chain, s)
    tr = verified(chain, sched, budget_bytes)
    params = {"snapshots": s, "extra_forwards": revolve_extra_forwards(L, s),
              "repetitions": repetition_number(L, s)}
    return SolveResult(solver="revolve", budget_bytes=budget_bytes, feasible=True, schedule=sched,
                       trace=tr, min_budget_bytes=min_peak, notes=tuple(notes), params=params)
