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

*Large results.* An operation whose fresh results (not the tensors it writes in place) take
at least ``LARGE_RESULT_BYTES`` (32 MiB) writes into memory that is fresh from the kernel:
glibc serves allocations above its mmap threshold (32 MiB at most on 64-bit Linux) with a new
mapping each time, and every page is zero-filled on first touch. Such operations run at a
fraction of the bandwidth of the others (measured: an add of two 64 MiB float32 tensors at 6-7
GB/s, a 4 MiB one at 30 GB/s, on the development host). Their bytes are counted apart
(``FamilyWork.large_bytes``, part of ``moved_bytes``) and priced at ``large_bandwidth`` where
the profile has one: ``bytes_f / bandwidth_f`` becomes ``(bytes_f - large_f) / bandwidth_f +
large_f / large_bandwidth_f``; without it (or in a model file without the split) all bytes are
priced at ``bandwidth_f``.

*Per pass.* A family's backward operations are other kernels than its forward ones, and can
run at another speed: batch norm's forward computes the batch statistics, a reduction pass
over its input before the normalising one, and moves 3-4 GB/s on the development host where
its backward moves 10-13 GB/s. A profile may give a family a ``backward`` set of constants;
the work of a stage's backward pass (the model file keeps work per pass) is priced by it, the
forward's (``Fall``, ``Fn`` and the recomputations alike) by the family's own.

``edgeplan calibrate`` fits the three constants of each family (and ``large_bandwidth`` where
its ladder has large results), per pass, to operations it times on this machine (never to a
user's model).

Families (``FAMILIES``): ``matmul`` (mm, addmm, bmm, attention kernels), ``matvec`` (the
matrix products of a single row or column, or of a contraction of length 1: a linear layer on
one row, its gradients; the BLAS runs them as matrix-vector and outer products, kernels that
stream the matrix, where two rows or more take the matrix-matrix kernel, which packs it first:
a 25088 x 4096 layer on one row moves 18-23 GB/s on the development host, on two 9-10 GB/s; a
profile without it prices them as ``matmul``, ``FALLBACK_FAMILIES``), ``conv`` (dense and
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

#: priced by their FLOPs and their bytes
COMPUTE_FAMILIES = ("matmul", "conv", "depthwise")
#: priced by their bytes alone (a matrix-vector product's FLOPs are a fixed multiple of the
#: matrix's bytes: its time is the streaming of the matrix)
MEMORY_FAMILIES = ("matvec", "norm", "pool", "gather", "random", "softmax", "elementwise")
FAMILIES = ("matmul", "matvec", "conv", "depthwise") + MEMORY_FAMILIES[1:]
#: families a device profile may leave out, each priced as the family it maps to (profiles
#: calibrated before the family was split off priced its operations so)
FALLBACK_FAMILIES = {"matvec": "matmul"}

__all__ = ["COMPUTE_FAMILIES", "FALLBACK_FAMILIES", "FAMILIES", "LARGE_RESULT_BYTES",
           "MEMORY_FAMILIES", "FamilyCost", "FamilyWork", "Work", "work_time_s"]

#: results of at least this many bytes are fresh mappings (module docstring, "Large results")
LARGE_RESULT_BYTES = 32 * 2**20


@dataclass(frozen=True)
class FamilyWork:
    """What one family's operations of a pass did: how many, FLOPs, bytes read + written, and
    of those bytes the ones moved by operations with large results (``LARGE_RESULT_BYTES``)."""

    ops: int
    flops: float
    moved_bytes: int
    large_bytes: int = 0

    def __add__(self, other: FamilyWork) -> FamilyWork:
        return FamilyWork(self.ops + other.ops, self.flops + other.flops,
                          self.moved_bytes + other.moved_bytes,
                          self.large_bytes + other.large_bytes)


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
        (A parameter-bound operation's weight bytes do not scale either, and which results
        are large depends on the batch; re-import at the batch for those.)"""
        return Work(tuple((f, FamilyWork(w.ops, w.flops * r, int(round(w.moved_bytes * r)),
                                         int(round(w.large_bytes * r))))
                          for f, w in self.families))

    def __add__(self, other: Work) -> Work:
        d = dict(self.families)
        for f, w in other.families:
            d[f] = d[f] + w if f in d else w
        return Work.of(d)


@dataclass(frozen=True, kw_only=True)
class FamilyCost:
    """A device's price of one family's operations: seconds each, FLOP/s and bytes/s (the
    bytes of operations with large results at ``large_bandwidth_bytes_per_s`` if given).
    ``backward``: the same four constants for the family's operations in a backward pass,
    where calibrate fitted them apart (module docstring, "Per pass"); None: one price for
    both passes."""

    overhead_s: float = 0.0
    flop_rate: float | None = None        # compute families only
    bandwidth_bytes_per_s: float | None = None
    large_bandwidth_bytes_per_s: float | None = None
    backward: FamilyCost | None = None

    def time_s(self, w: FamilyWork, backward: bool = False) -> float:
        if backward and self.backward is not None:
            return self.backward.time_s(w)
        t = w.ops * self.overhead_s
        if w.flops and self.flop_rate:
            t += w.flops / self.flop_rate
        moved = w.moved_bytes
        if w.large_bytes and self.large_bandwidth_bytes_per_s:
            t += w.large_bytes / self.large_bandwidth_bytes_per_s
            moved -= w.large_bytes
        if moved and self.bandwidth_bytes_per_s:
            t += moved / self.bandwidth_bytes_per_s
        return t


def work_time_s(work: Work, costs: Mapping[str, FamilyCost], backward: bool = False) -> float:
    """Seconds of ``work`` at ``costs`` (module docstring), the work of a backward pass with
    ``backward``; every family of the work must be priced (a calibrated profile prices all of
    ``FAMILIES``)."""
    total = 0.0
    for f, w in work.families:
        c = costs.get(f)
        if c is None:
            raise InputError(f"the device prices no {f!r} operations")
        total += c.time_s(w, backward)
    return total
