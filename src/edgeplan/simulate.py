"""The simulator of chain-model.md section 3: the judge of every schedule.

It replays a schedule op by op, checks each op's requirement, and accounts memory in exact bytes:
``M`` is the sum of the sizes of the live tensors ``a_i`` (``x_i``), ``A_i`` (``s_i``) and the one
live gradient ``d_k`` (``x_k``; 0 for ``d_L`` and ``d_0``). Each op has a transient peak
(table of section 3); the schedule's peak is the maximum of those, its cost the sum of op costs.

Conventions where section 3 leaves a choice (documented in docs/model-format.md):

* producing a tensor that is already live (``Fn i`` while ``a_i`` is available, ``Fall i`` while
  ``A_i`` is live) is rejected: it can only waste memory and time;
* ops on a stage whose backward already ran (``i > k``) are rejected, as are non-free ops after
  ``B 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .chain import Chain
from .errors import ScheduleError
from .schedule import OpKind, Schedule


@dataclass(frozen=True, kw_only=True)
class Trace:
    """What the simulator measured. ``memory_after_bytes[n]`` is ``M`` after op ``n``;
    ``transient_bytes[n]`` the op's transient peak."""

    peak_bytes: int
    cost_s: float
    peak_index: int
    forward_ops: int
    fn_ops: int
    fall_ops: int
    recompute_time_s: float
    transient_bytes: tuple[int, ...]
    memory_after_bytes: tuple[int, ...]

    def fits(self, budget_bytes: int) -> bool:
        return self.peak_bytes <= budget_bytes


def simulate(chain: Chain, schedule: Schedule, budget_bytes: int | None = None) -> Trace:
    """Replay ``schedule`` on ``chain``; raise ``ScheduleError`` on the first broken rule.

    With ``budget_bytes``, an op whose transient peak exceeds the budget is an error too.

    >>> from edgeplan.chain import make_chain
    >>> from edgeplan.schedule import Op
    >>> c = make_chain("t", fwd=[1.0], bwd=[2.0], out=[4], saved=[6], input_bytes=3)
    >>> t = simulate(c, Schedule((Op(OpKind.FALL, 1), Op(OpKind.B, 1))))
    >>> (t.peak_bytes, t.cost_s)
    (9, 3.0)
    """
    L = chain.length
    x = [chain.input_bytes] + [s.out_bytes for s in chain.stages]
    sv = [0] + [s.saved_bytes for s in chain.stages]
    ft = [0] + [s.fwd_tmp_bytes for s in chain.stages]
    bt = [0] + [s.bwd_tmp_bytes for s in chain.stages]
    tf = [0.0] + [s.fwd_time_s for s in chain.stages]
    tb = [0.0] + [s.bwd_time_s for s in chain.stages]

    def dsize(i: int) -> int:
        return 0 if i == 0 or i == L else x[i]

    live_a: set[int] = {0}
    live_A: set[int] = set()
    k = L
    mem = x[0] + dsize(L)
    peak = mem
    peak_index = -1
    cost = 0.0
    n_fn = n_fall = 0
    transients: list[int] = []
    after: list[int] = []

    def available(j: int) -> bool:
        return j in live_a or j in live_A

    for n, op in enumerate(schedule.ops):
        i = op.stage
        kind = op.kind
        if not 1 <= i <= L:
            raise ScheduleError(f"{op}: stage {i} is outside 1..{L}", index=n)
        if k == 0 and kind not in (OpKind.FREE_A, OpKind.FREE_ALL):
            raise ScheduleError(f"{op}: the backward pass is already complete", index=n)
        if kind in (OpKind.FN, OpKind.FALL, OpKind.B) and i > k:
            raise ScheduleError(f"{op}: the backward of stage {i} already ran", index=n)
        if kind is OpKind.FN:
            if not available(i - 1):
                raise ScheduleError(f"{op}: needs a_{i - 1}, which is not live", index=n)
            if available(i):
                raise ScheduleError(f"{op}: a_{i} is already live", index=n)
            transient = mem + x[i] + ft[i]
            live_a.add(i)
            mem += x[i]
            cost += tf[i]
            n_fn += 1
        elif kind is OpKind.FALL:
            if not available(i - 1):
                raise ScheduleError(f"{op}: needs a_{i - 1}, which is not live", index=n)
            if i in live_A:
                raise ScheduleError(f"{op}: A_{i} is already live", index=n)
            transient = mem + sv[i] + ft[i]
            live_A.add(i)
            mem += sv[i]
            cost += tf[i]
            n_fall += 1
        elif kind is OpKind.B:
            if i != k:
                raise ScheduleError(f"{op}: the next backward is B {k}", index=n)
            if i not in live_A:
                raise ScheduleError(f"{op}: needs A_{i} (a recording forward Fall {i})", index=n)
            if not available(i - 1):
                raise ScheduleError(f"{op}: needs a_{i - 1}, which is not live", index=n)
            transient = mem + (x[i - 1] if i >= 2 else 0) + bt[i]
            live_A.discard(i)
            mem += -sv[i] - dsize(i) + dsize(i - 1)
            k = i - 1
            cost += tb[i]
        elif kind is OpKind.FREE_A:
            if i not in live_a:
                raise ScheduleError(f"{op}: a_{i} is not live", index=n)
            if (i + 1) in live_A and i not in live_A:
                raise ScheduleError(f"{op}: a_{i} is still needed by the recorded A_{i + 1}", index=n)
            live_a.discard(i)
            mem -= x[i]
            transient = mem
        elif kind is OpKind.FREE_ALL:
            if i not in live_A:
                raise ScheduleError(f"{op}: A_{i} is not live", index=n)
            if (i + 1) in live_A and i not in live_a:
                raise ScheduleError(f"{op}: a_{i} (inside A_{i}) is still needed by the recorded "
                                    f"A_{i + 1}", index=n)
            live_A.discard(i)
            mem -= sv[i]
            transient = mem
        else:  # pragma: no cover - exhaustive over OpKind
            raise ScheduleError(f"unknown op {op}", index=n)
        if budget_bytes is not None and transient > budget_bytes:
            raise ScheduleError(f"{op}: needs {transient} bytes, over the budget of {budget_bytes}",
                                index=n)
        if transient > peak:
            peak, peak_index = transient, n
        transients.append(transient)
        after.append(mem)
    if k != 0:
        raise ScheduleError(f"the schedule ends before the backward is complete (next: B {k})",
                            index=len(schedule.ops))
    return Trace(peak_bytes=peak, cost_s=cost, peak_index=peak_index, forward_ops=n_fn + n_fall,
                 fn_ops=n_fn, fall_ops=n_fall,
                 recompute_time_s=max(0.0, cost - chain.compute_time_s),
                 transient_bytes=tuple(transients), memory_after_bytes=tuple(after))
