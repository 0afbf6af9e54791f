"""The chain of docs/chain-model.md §1: stages with times (s) and sizes (bytes).

Notation (docs/chain-model.md -> field):

=========  ======================  ============================================================
symbol     field                   meaning
=========  ======================  ============================================================
``tf_i``   ``fwd_time_s``          forward time of stage i
``tb_i``   ``bwd_time_s``          backward time of stage i
``x_i``    ``out_bytes``           bytes of ``a_i`` and of its gradient ``d_i``
``s_i``    ``saved_bytes``         bytes kept by a *recording* forward (``A_i``), incl. ``a_i``
``f_i``    ``fwd_tmp_bytes``       transient extra bytes during the forward
``b_i``    ``bwd_tmp_bytes``       transient extra bytes during the backward
``x_0``    ``Chain.input_bytes``   the input batch, live for the whole iteration
``p``      ``Chain.frozen_prefix`` stages 1..p train nothing: forward only, no backward
=========  ======================  ============================================================

Accounting conventions (the peers disagree; edgeplan follows docs/chain-model.md):
``a_0`` counts against the activation budget and is never freed; gradients ``d_i`` count and have
size ``x_i``, except ``d_L`` (the loss seed) and ``d_0 .. d_p`` (never computed: no stage before
them trains, docs/chain-model.md §8), which have size 0.

Stages are numbered 1..L in the chain model; ``Chain.stages[i - 1]`` is stage ``i``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ModelError


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One stage of a chain, in seconds and bytes."""

    name: str
    fwd_time_s: float
    bwd_time_s: float
    out_bytes: int
    saved_bytes: int
    fwd_tmp_bytes: int = 0
    bwd_tmp_bytes: int = 0
    param_bytes: int = 0

    def __post_init__(self) -> None:
        for f in ("out_bytes", "saved_bytes", "fwd_tmp_bytes", "bwd_tmp_bytes", "param_bytes"):
            v = getattr(self, f)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
                raise ModelError(f"{f} must be a non-negative integer, got {v!r}", where=self.name)
        for f in ("fwd_time_s", "bwd_time_s"):
            v = getattr(self, f)
            if not (v >= 0 and v < float("inf")):
                raise ModelError(f"{f} must be a finite non-negative number, got {v!r}",
                                 where=self.name)
        if self.saved_bytes < self.out_bytes:
            raise ModelError(
                f"saved ({self.saved_bytes} B) is smaller than out ({self.out_bytes} B); "
                "saved includes the stage's output, so saved >= out", where=self.name)


@dataclass(frozen=True, kw_only=True)
class Chain:
    """A chain of stages 1..L with its input size ``x_0``."""

    name: str
    input_bytes: int
    stages: tuple[Stage, ...]
    notes: tuple[str, ...] = field(default=())
    # docs/chain-model.md §8: stages 1..p train no parameter and need no input gradient, so
    # they run forward once and have no backward; the backward ends with B p+1.
    frozen_prefix: int = 0

    def __post_init__(self) -> None:
        if not self.stages:
            raise ModelError("the chain has no stages")
        if self.input_bytes < 0:
            raise ModelError("input_bytes must be non-negative")
        if not 0 <= self.frozen_prefix < len(self.stages):
            raise ModelError(f"frozen_prefix must be in 0..{len(self.stages) - 1} (the last "
                             f"stage holds the loss and is always trained), got "
                             f"{self.frozen_prefix}")

    def trained_part(self) -> Chain:
        """Stages p+1..L as a chain of their own whose input is ``a_p``: what a solver plans
        when stages 1..p are frozen (``solvers.frozen`` lifts its answer back)."""
        p = self.frozen_prefix
        if p == 0:
            return self
        return Chain(name=self.name, input_bytes=self.stages[p - 1].out_bytes,
                     stages=self.stages[p:], notes=self.notes)

    def merged_prefix(self) -> Chain:
        """The frozen prefix ``1..p`` as one stage ``P`` with nothing to record and a free
        backward, then stages ``p+1..L``: the chain a solver plans when ``a_p`` may be dropped
        and recomputed from the resident ``a_0`` (docs/chain-model.md §8,
        ``solvers.frozen``).

        ``P`` runs the prefix's forward (its time is theirs), outputs ``a_p`` and keeps only
        that when "recorded" (``s = x = x_p``); its transient is the prefix's peak above
        ``a_p``: ``f = max_j (x_{j-1} [j > 1] + x_j + f_j) - x_p``; its backward costs nothing
        and holds nothing. The chain model then counts a gradient ``d_p`` of ``x_p`` bytes
        between ``B p+1`` and ``B P`` that the real schedule never makes (an over-estimate the
        replay on the whole chain removes)."""
        p = self.frozen_prefix
        if p == 0:
            return self
        xp = self.x(p)
        prefix_max = max((self.x(j - 1) if j >= 2 else 0) + self.x(j)
                         + self.stages[j - 1].fwd_tmp_bytes for j in range(1, p + 1))
        merged = Stage(name=f"{self.stages[0].name}..{self.stages[p - 1].name}",
                       fwd_time_s=float(sum(st.fwd_time_s for st in self.stages[:p])),
                       bwd_time_s=0.0, out_bytes=xp, saved_bytes=xp,
                       fwd_tmp_bytes=int(max(prefix_max - xp, 0)), bwd_tmp_bytes=0)
        return Chain(name=self.name, input_bytes=self.input_bytes,
                     stages=(merged, *self.stages[p:]), notes=self.notes)

    @property
    def length(self) -> int:
        return len(self.stages)

    def x(self, i: int) -> int:
        """``x_i``: bytes of ``a_i`` (``x_0`` is the input)."""
        return self.input_bytes if i == 0 else self.stages[i - 1].out_bytes

    def d(self, i: int) -> int:
        """Bytes of the gradient ``d_i``: ``x_i``, but 0 for ``d_0 .. d_p`` and ``d_L``."""
        if i <= self.frozen_prefix or i == self.length:
            return 0
        return self.stages[i - 1].out_bytes

    def stage(self, i: int) -> Stage:
        return self.stages[i - 1]

    @property
    def compute_time_s(self) -> float:
        """Every forward once and every backward of a trained stage: the cost of a schedule with
        no recomputation."""
        p = self.frozen_prefix
        return float(sum(s.fwd_time_s for s in self.stages)
                     + sum(s.bwd_time_s for s in self.stages[p:]))

    @property
    def param_bytes(self) -> int:
        return int(sum(s.param_bytes for s in self.stages))

    def is_homogeneous(self) -> bool:
        first = self.stages[0]
        return all((s.fwd_time_s, s.bwd_time_s, s.out_bytes, s.saved_bytes, s.fwd_tmp_bytes,
                    s.bwd_tmp_bytes) == (first.fwd_time_s, first.bwd_time_s, first.out_bytes,
                                         first.saved_bytes, first.fwd_tmp_bytes,
                                         first.bwd_tmp_bytes) for s in self.stages)

    def arrays(self) -> ChainArrays:
        return ChainArrays.of(self)

    def lists(self) -> ChainLists:
        """Plain-Python per-index lists (index 0..L) for op-by-op loops (simulator, search)."""
        st = self.stages
        return ChainLists(x=[self.input_bytes] + [s.out_bytes for s in st],
                          s=[0] + [s.saved_bytes for s in st],
                          f=[0] + [s.fwd_tmp_bytes for s in st],
                          b=[0] + [s.bwd_tmp_bytes for s in st],
                          tf=[0.0] + [s.fwd_time_s for s in st],
                          tb=[0.0] + [s.bwd_time_s for s in st], frozen=self.frozen_prefix)


@dataclass(frozen=True)
class ChainLists:
    """``x``, ``s``, ``f``, ``b``, ``tf``, ``tb`` as lists indexed 0..L (0 = input / padding)."""

    x: list
    s: list
    f: list
    b: list
    tf: list
    tb: list
    frozen: int = 0  # the chain's frozen prefix p

    def dsize(self, i: int) -> int:
        """Bytes of the gradient ``d_i``: 0 for ``d_0 .. d_p`` and ``d_L``."""
        return 0 if i <= self.frozen or i == len(self.x) - 1 else self.x[i]


@dataclass(frozen=True)
class ChainArrays:
    """numpy view for kernels, index 0..L (index 0 of per-stage arrays is unused padding).

    ``x[i]`` = x_i, ``s[i]`` = s_i, ``d[i]`` = size of d_i, ``f``/``b`` tmp bytes, ``tf``/``tb``
    times.
    """

    x: np.ndarray
    s: np.ndarray
    d: np.ndarray
    f: np.ndarray
    b: np.ndarray
    tf: np.ndarray
    tb: np.ndarray

    @classmethod
    def of(cls, chain: Chain) -> ChainArrays:
        L = chain.length
        x = np.array([chain.input_bytes] + [s.out_bytes for s in chain.stages], dtype=np.int64)
        s = np.array([0] + [st.saved_bytes for st in chain.stages], dtype=np.int64)
        d = x.copy()
        d[:chain.frozen_prefix + 1] = 0
        d[L] = 0
        f = np.array([0] + [st.fwd_tmp_bytes for st in chain.stages], dtype=np.int64)
        b = np.array([0] + [st.bwd_tmp_bytes for st in chain.stages], dtype=np.int64)
        tf = np.array([0.0] + [st.fwd_time_s for st in chain.stages], dtype=np.float64)
        tb = np.array([0.0] + [st.bwd_time_s for st in chain.stages], dtype=np.float64)
        return cls(x, s, d, f, b, tf, tb)


def make_chain(name: str, *, fwd: list[float], bwd: list[float], out: list[int], saved: list[int],
               input_bytes: int, fwd_tmp: list[int] | None = None,
               bwd_tmp: list[int] | None = None) -> Chain:
    """Build a chain from parallel lists (tests, benchmarks, oracles). Lists are for stages 1..L."""
    L = len(fwd)
    fwd_tmp = fwd_tmp or [0] * L
    bwd_tmp = bwd_tmp or [0] * L
    if not (len(bwd) == len(out) == len(saved) == len(fwd_tmp) == len(bwd_tmp) == L):
        raise ModelError("make_chain: all lists must have the same length")
    stages = tuple(
        Stage(name=f"s{i + 1}", fwd_time_s=float(fwd[i]), bwd_time_s=float(bwd[i]),
              out_bytes=int(out[i]), saved_bytes=int(saved[i]), fwd_tmp_bytes=int(fwd_tmp[i]),
              bwd_tmp_bytes=int(bwd_tmp[i]))
        for i in range(L))
    return Chain(name=name, input_bytes=int(input_bytes), stages=stages)
