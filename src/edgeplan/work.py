"""Work per op family and the time model that prices it (docs/chain-model.md §7, "roofline").

A stage's forward (or backward) is a sequence of tensor operations. The importer sorts each one
into a *family* and adds up, per family, the number of operations, their FLOPs (the FLOP
counter's formulas; 0 for the memory families) and the bytes they read and write (every tensor
argument and result, views excluded). A calibrated device profile gives per family and
precision an ``overhead`` per operation, a ``rate`` (FLOP/s, compute families) and a
``bandwidth`` (bytes/s). One operation then costs

    t_op = overhead_f + flops / rate_f + bytes / bandwidth_f

(compute and memory time add: a conservative roofline, no overlap assumed), and because the
model is linear in (ops, flops, bytes) a stage's time is exactly the sum of its families'
totals priced so: ``t = sum_f ops_f * overhead_f + flops_f / rate_f + bytes_f / bandwidth_f``.
``edgeplan calibrate`` fits the three constants of each family to operations it times on this
machine (never to a user's model).

Families (``FAMILIES``): ``matmul`` (mm, addmm, bmm, attention kernels), ``conv`` (dense and
grouped convolutions), ``depthwise`` (one input channel per group), ``norm`` (batch, layer,
group normalisation), ``pool`` (max / average pooling), ``gather`` (embedding, index, scatter),
``random`` (dropout masks, random fills), ``softmax`` (softmax, log-softmax and their
backward: an exponential and a reduction per element, several times the cost of a plain
element-wise pass) and ``elementwise`` (everything else that moves data: activations,
additions, reductions, copies).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import InputError

COMPUTE_FAMILIES = ("matmul", "conv", "depthwise")
MEMORY_FAMILIES = ("norm", "pool", "gather", "random", "softmax", "elementwise")
FAMILIES = COMPUTE_FAMILIES + MEMORY_FAMILIES

__all__ = ["COMPUTE_FAMILIES", "FAMILIES", "MEMORY_FAMILIES", "FamilyCost", "FamilyWork",
           "Work", "work_time_s"]


@dataclass(frozen=True)
class FamilyWork:
    """What one family's operations of a pass did: how many, FLOPs, bytes read + written."""

    ops: int
    flops: float
    moved_bytes: int

    def __add__(self, other: FamilyWork) -> FamilyWork:
        return FamilyWork(self.ops + other.ops, self.flops + other.flops,
                          self.moved_bytes + other.moved_bytes)


@dataclass(frozen=True)
class Work:
    """A pass's work per family (families in ``FAMILIES`` order, only those with operations)."""

    families: tuple[tuple[str, FamilyWork], ...] = ()

    @staticmethod
    def of(items: Mapping[str, FamilyWork] | Iterable[tuple[str, FamilyWork]]) -> Work:
        d = dict(items.items() if isinstance(items, Mapping) else items)
        unknown = [f for f in d if f not in FAMILIES]
        if unknown:
            raise InputError(f"unknown op family {unknown[0]!r}; expected one of "
                             f"{', '.join(FAMILIES)}")
        return Work(tuple((f, d[f]) for f in FAMILIES if f in d and d[f].ops > 0))

    def get(self, family: str) -> FamilyWork | None:
        return dict(self.families).get(family)

    @property
    def flops(self) -> float:
        return float(sum(w.flops for _, w in self.families))

    @property
    def moved_bytes(self) -> int:
        return int(sum(w.moved_bytes for _, w in self.families))

    def scaled(self, r: float) -> Work:
        """The work of ``r`` times the batch: FLOPs and bytes scale, the operations do not.
        (A parameter-bound operation's weight bytes do not scale either; re-import at the
        batch for those.)"""
        return Work(tuple((f, FamilyWork(w.ops, w.flops * r, int(round(w.moved_bytes * r))))
                          for f, w in self.families))

    def __add__(self, other: Work) -> Work:
        d = dict(self.families)
        for f, w in other.families:
            d[f] = d[f] + w if f in d else w
        return Work.of(d)


@dataclass(frozen=True, kw_only=True)
class FamilyCost:
    """A device's price of one family's operations: seconds each, FLOP/s and bytes/s."""

    overhead_s: float = 0.0
    flop_rate: float | None = None        # compute families only
    bandwidth_bytes_per_s: float | None = None

    def time_s(self, w: FamilyWork) -> float:
        t = w.ops * self.overhead_s
        if w.flops and self.flop_rate:
            t += w.flops / self.flop_rate
        if w.moved_bytes and self.bandwidth_bytes_per_s:
            t += w.moved_bytes / self.bandwidth_bytes_per_s
        return t


def work_time_s(work: Work, costs: Mapping[str, FamilyCost]) -> float:
    """Seconds of ``work`` at ``costs`` (module docstring); every family of the work must be
    priced (a calibrated profile prices all of ``FAMILIES``)."""
    total = 0.0
    for f, w in work.families:
        c = costs.get(f)
        if c is None:
            raise InputError(f"the device prices no {f!r} operations")
        total += c.time_s(w)
    return total
