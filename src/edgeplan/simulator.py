"""The simulator of docs/chain-model.md §3: the judge of every schedule.

It replays a schedule op by op, checks each op's requirement, and accounts memory in exact bytes:
``M`` is the sum of the sizes of the live tensors ``a_i`` (``x_i``), ``A_i`` (``s_i``) and the one
live gradient ``d_k`` (``x_k``; 0 for ``d_L`` and ``d_0``). Each op has a transient peak
(table of section 3); the schedule's peak is the maximum of those, its cost the sum of op costs.

Conventions where section 3 leaves a choice (documented in docs/model-format.md):

* producing a tensor that is already live (``Fn i`` while ``a_i`` is available, ``Fall i`` while
  ``A_i`` is live) is rejected: it can only waste memory and time;
* ops on a stage whose backward already ran (``i > k``) are rejected, as are non-free ops after
  the last backward.

Frozen prefix (docs/chain-model.md §8): stages ``1..p`` of ``chain.frozen_prefix`` have no
backward, so ``B i`` and ``Fall i`` (nothing to record) are rejected for ``i <= p``; the backward
ends with ``B p+1``, which computes no input gradient (as ``B 1`` does when ``p = 0``).

Storage tier (docs/chain-model.md §6, docs/offload.md): with ``tier=`` the ops ``W i`` (copy
``a_i`` to storage; ``a_i`` must be available and stays live), ``R i`` (read it back: transient
``M + x_i``, then ``a_i`` live; the stored copy stays) and ``free_s i`` (drop the stored copy) are
allowed. Storage holds a set of copies; their total bytes must stay within the capacity
(``storage_bytes``, else ``tier.capacity_bytes``, else unlimited). Writing a copy that is already
stored, or reading ``a_i`` while it is available, is rejected. Memory accounting is the same in
both I/O modes; the simulator reports two makespans:

* ``cost_s`` (synchronous I/O): the sum of op costs, ``W i`` costing
  ``latency_w + x_i / bw_w`` and ``R i`` ``latency_r + x_i / bw_r``;
* ``async_cost_s`` (asynchronous writes): one FIFO I/O channel. ``W i`` is queued on the channel
  and compute goes on; ``R i`` waits for the channel (so for every earlier write) and blocks
  compute while it reads. An op after which ``a_i`` is no longer available in memory
  (``free_a i``, ``free_A i``, ``B i`` freeing ``A_i``), or ``free_s i``, first waits for the
  pending write of ``a_i``: the bytes of ``a_i`` stay counted until its write is done, which the
  op order already guarantees. The makespan ends when compute and the channel are both done.
  ``async_cost_s <= cost_s`` for every schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

from .chain import Chain
from .device import StorageTier
from .errors import ScheduleError
from .schedule import STORAGE_OPS, OpKind, Schedule


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
    # Storage tier (all zero without storage ops). ``cost_s`` is the synchronous makespan;
    # ``async_cost_s`` the makespan with asynchronous writes (equal to ``cost_s`` without writes).
    write_ops: int = 0
    read_ops: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    write_time_s: float = 0.0
    read_time_s: float = 0.0
    storage_peak_bytes: int = 0
    async_cost_s: float | None = None
    tier: str | None = None

    def fits(self, budget_bytes: int) -> bool:
        return self.peak_bytes <= budget_bytes

    def makespan(self, asynchronous: bool = False) -> float:
        """``cost_s`` (synchronous I/O) or ``async_cost_s`` (asynchronous writes)."""
        if asynchronous and self.async_cost_s is not None:
            return self.async_cost_s
        return self.cost_s

    @property
    def io_time_s(self) -> float:
        """Synchronous I/O time: all writes and reads."""
        return self.write_time_s + self.read_time_s

    @property
    def hidden_write_s(self) -> float:
        """Write time hidden behind compute in the asynchronous mode."""
        if self.async_cost_s is None:
            return 0.0
        return max(0.0, self.cost_s - self.async_cost_s)


def simulate(chain: Chain, schedule: Schedule, budget_bytes: int | None = None, *,
             tier: StorageTier | None = None, storage_bytes: int | None = None) -> Trace:
    """Replay ``schedule`` on ``chain``; raise ``ScheduleError`` on the first broken rule.

    With ``budget_bytes``, an op whose transient peak exceeds the budget is an error too.
    ``tier`` enables the storage ops ``W``/``R``/``free_s`` (their costs come from it);
    ``storage_bytes`` caps the bytes on storage (default ``tier.capacity_bytes``; None: no cap).

    >>> from edgeplan.chain import make_chain
    >>> from edgeplan.schedule import Op
    >>> c = make_chain("t", fwd=[1.0], bwd=[2.0], out=[4], saved=[6], input_bytes=3)
    >>> t = simulate(c, Schedule((Op(OpKind.FALL, 1), Op(OpKind.B, 1))))
    >>> (t.peak_bytes, t.cost_s)
    (9, 3.0)
    """
    L = chain.length
    p = chain.frozen_prefix
    cl = chain.lists()
    x, sv, ft, bt, tf, tb, dsize = cl.x, cl.s, cl.f, cl.b, cl.tf, cl.tb, cl.dsize

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
    # storage tier
    cap = storage_bytes if storage_bytes is not None else \
        (tier.capacity_bytes if tier is not None else None)
    stored: set[int] = set()
    stored_bytes = storage_peak = 0
    n_w = n_r = 0
    b_w = b_r = 0
    t_w = t_r = 0.0
    compute = 0.0     # sum of Fn/Fall/B costs (recomputation is measured on it)
    now = 0.0         # asynchronous mode: the compute clock
    chan = 0.0        # asynchronous mode: when the I/O channel is next idle
    pending: dict[int, float] = {}  # asynchronous mode: completion time of the write of a_i

    def available(j: int) -> bool:
        return j in live_a or j in live_A

    def wait_write(j: int) -> None:
        nonlocal now
        done = pending.get(j)
        if done is not None and done > now:
            now = done

    for n, op in enumerate(schedule.ops):
        i = op.stage
        kind = op.kind
        if not 1 <= i <= L:
            raise ScheduleError(f"{op}: stage {i} is outside 1..{L}", index=n)
        if kind in STORAGE_OPS and tier is None:
            raise ScheduleError(f"{op}: storage ops need a storage tier (simulate(..., tier=...))",
                                index=n)
        if k == p and kind not in (OpKind.FREE_A, OpKind.FREE_ALL, OpKind.FREE_S):
            raise ScheduleError(f"{op}: the backward pass is already complete", index=n)
        if kind in (OpKind.FN, OpKind.FALL, OpKind.B, OpKind.W, OpKind.R) and i > k:
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
            compute += tf[i]
            now += tf[i]
            n_fn += 1
        elif kind is OpKind.FALL:
            if i <= p:
                raise ScheduleError(f"{op}: stage {i} is frozen (1..{p}): there is nothing to "
                                    "record", index=n)
            if not available(i - 1):
                raise ScheduleError(f"{op}: needs a_{i - 1}, which is not live", index=n)
            if i in live_A:
                raise ScheduleError(f"{op}: A_{i} is already live", index=n)
            transient = mem + sv[i] + ft[i]
            live_A.add(i)
            mem += sv[i]
            cost += tf[i]
            compute += tf[i]
            now += tf[i]
            n_fall += 1
        elif kind is OpKind.B:
            if i <= p:
                raise ScheduleError(f"{op}: stage {i} is frozen (1..{p}): it has no backward",
                                    index=n)
            if i != k:
                raise ScheduleError(f"{op}: the next backward is B {k}", index=n)
            if i not in live_A:
                raise ScheduleError(f"{op}: needs A_{i} (a recording forward Fall {i})", index=n)
            if not available(i - 1):
                raise ScheduleError(f"{op}: needs a_{i - 1}, which is not live", index=n)
            transient = mem + (x[i - 1] if i >= p + 2 else 0) + bt[i]
            live_A.discard(i)
            mem += -sv[i] - dsize(i) + dsize(i - 1)
            k = i - 1
            cost += tb[i]
            compute += tb[i]
            now += tb[i]
            if i not in live_a:  # A_i released at the end of B i: its write must be done
                wait_write(i)
        elif kind is OpKind.FREE_A:
            if i not in live_a:
                raise ScheduleError(f"{op}: a_{i} is not live", index=n)
            if (i + 1) in live_A and i not in live_A:
                raise ScheduleError(f"{op}: a_{i} is still needed by the recorded A_{i + 1}",
                                    index=n)
            if i not in live_A:
                wait_write(i)
            live_a.discard(i)
            mem -= x[i]
            transient = mem
        elif kind is OpKind.FREE_ALL:
            if i not in live_A:
                raise ScheduleError(f"{op}: A_{i} is not live", index=n)
            if (i + 1) in live_A and i not in live_a:
                raise ScheduleError(f"{op}: a_{i} (inside A_{i}) is still needed by the recorded "
                                    f"A_{i + 1}", index=n)
            if i not in live_a:
                wait_write(i)
            live_A.discard(i)
            mem -= sv[i]
            transient = mem
        elif kind is OpKind.W:
            assert tier is not None
            if not available(i):
                raise ScheduleError(f"{op}: needs a_{i}, which is not live", index=n)
            if i in stored:
                raise ScheduleError(f"{op}: a_{i} is already on storage", index=n)
            if cap is not None and stored_bytes + x[i] > cap:
                raise ScheduleError(f"{op}: storage would hold {stored_bytes + x[i]} bytes, over "
                                    f"its capacity of {cap}", index=n)
            stored.add(i)
            stored_bytes += x[i]
            storage_peak = max(storage_peak, stored_bytes)
            w = tier.write_time_s(x[i])
            cost += w
            t_w += w
            n_w += 1
            b_w += x[i]
            start = max(now, chan)
            chan = start + w
            pending[i] = chan
            transient = mem
        elif kind is OpKind.R:
            assert tier is not None
            if i not in stored:
                raise ScheduleError(f"{op}: a_{i} is not on storage", index=n)
            if available(i):
                raise ScheduleError(f"{op}: a_{i} is already live", index=n)
            transient = mem + x[i]
            live_a.add(i)
            mem += x[i]
            r = tier.read_time_s(x[i])
            cost += r
            t_r += r
            n_r += 1
            b_r += x[i]
            now = max(now, chan) + r
            chan = now
        elif kind is OpKind.FREE_S:
            if i not in stored:
                raise ScheduleError(f"{op}: a_{i} is not on storage", index=n)
            wait_write(i)
            stored.discard(i)
            stored_bytes -= x[i]
            pending.pop(i, None)
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
    if k != p:
        raise ScheduleError(f"the schedule ends before the backward is complete (next: B {k})",
                            index=len(schedule.ops))
    return Trace(peak_bytes=peak, cost_s=cost, peak_index=peak_index, forward_ops=n_fn + n_fall,
                 fn_ops=n_fn, fall_ops=n_fall,
                 recompute_time_s=max(0.0, compute - chain.compute_time_s),
                 transient_bytes=tuple(transients), memory_after_bytes=tuple(after),
                 write_ops=n_w, read_ops=n_r, bytes_written=b_w, bytes_read=b_r,
                 write_time_s=t_w, read_time_s=t_r, storage_peak_bytes=storage_peak,
                 async_cost_s=max(now, chan), tier=None if tier is None else tier.name)
