"""Homogeneous multi-level checkpointing: Revolve (Opt0), 1D-Revolve, Disk-Revolve, H-Revolve.

These are the *adjoint-computation* models of reference/algorithms.md sections 2.1 and 2.3, not
the chain model of docs/chain-model.md §3: ``l`` forward steps ``F_0..F_{l-1}`` of cost ``uf``,
``l + 1`` backward steps of cost ``ub``, memory counted in whole checkpoint slots, no recorded
tape kept across steps. They give the homogeneous optima (oracles of reference section 5.2) that
the heterogeneous offload DP (:mod:`edgeplan.solvers.offload`) is compared with in spirit; they
are not a chain-model schedule and report no bytes.

* :func:`opt0_table` - Revolve with ``m`` memory slots (``get_opt_0_table`` of the Inria code):
  ``Opt0(0, m) = ub``; ``Opt0(1, m) = uf + 2 ub`` (``m >= 1``);
  ``Opt0(l, 1) = (l + 1) ub + l (l + 1) / 2 uf``;
  ``Opt0(l, m) = min_{1 <= j < l} j uf + Opt0(l - j, m - 1) + Opt0(j - 1, m)``;
  ``Opt0(l >= 1, 0) = inf``.
* :func:`opt1d_table` - 1D-Revolve: ``x_0`` is already on disk (read cost ``rd``), ``cm`` memory
  slots. ``Opt1D(0) = ub``; ``Opt1D(1) = uf + 2 ub`` (``+ rd`` if ``cm = 0``);
  ``Opt1D(l) = min(Opt0(l, cm), min_j j uf + Opt0(l - j, cm) + rd + Opt1D(j - 1))``
  (``one_read``: ``Opt0(j - 1, cm)`` instead of ``Opt1D(j - 1)``).
* :func:`disk_revolve_table` - Disk-Revolve (Aupy, Herrmann, Hovland, Robert, SISC 2016), an
  unlimited disk with write cost ``wd`` and read cost ``rd``:
  ``Optinf(0) = ub``; ``Optinf(1) = uf + 2 ub`` (``wd + uf + 2 ub + rd`` if ``cm = 0``);
  ``Optinf(l) = min(Opt0(l, cm), min_j wd + j uf + Optinf(l - j) + rd + Opt1D(j - 1))``; the
  one-read variant (``one_read=True``, the default of checkpoint_schedules) uses
  ``Opt0(j - 1, cm)`` for the last term.
* :func:`hrevolve_tables` / :func:`hrevolve_table` - H-Revolve (Herrmann & Pallez, TOMS 2020),
  ``K`` storage levels with sizes ``c_k``, write costs ``w_k`` and read costs ``r_k``, the
  recurrence of ``get_hopt_table`` reproduced as written (including its level-``k > 0`` border
  ``optp[k][1][m] = opt[k-1][1][c_{k-1}]``).

All four are ``O(l^2)`` per slot count (H-Revolve ``O(K l^2 max c)``) and exact in floats for
integer costs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

INF = math.inf


def _check(lmax: int, **nonneg: float) -> None:
    if lmax < 0:
        raise ValueError("lmax must be >= 0")
    for name, v in nonneg.items():
        if not v >= 0:
            raise ValueError(f"{name} must be >= 0, got {v!r}")


def opt0_table(lmax: int, mmax: int, uf: float = 1.0, ub: float = 1.0) -> list[list[float]]:
    """``Opt0(l, m)`` for ``m = 0..mmax`` (rows) and ``l = 0..lmax`` (columns).

    >>> opt0_table(5, 2)[2]
    [1.0, 3.0, 5.0, 8.0, 11.0, 14.0]
    """
    _check(lmax, mmax=mmax, uf=uf, ub=ub)
    uf, ub = float(uf), float(ub)
    opt = [[INF] * (lmax + 1) for _ in range(mmax + 1)]
    for m in range(mmax + 1):
        opt[m][0] = ub
    for m in range(1, mmax + 1):
        if lmax >= 1:
            opt[m][1] = uf + 2 * ub
    if mmax >= 1:
        for l in range(2, lmax + 1):
            opt[1][l] = (l + 1) * ub + l * (l + 1) / 2 * uf
    for m in range(2, mmax + 1):
        for l in range(2, lmax + 1):
            opt[m][l] = min(j * uf + opt[m - 1][l - j] + opt[m][j - 1] for j in range(1, l))
    return opt


def opt1d_table(lmax: int, cm: int, rd: float, uf: float = 1.0, ub: float = 1.0, *,
                one_read: bool = False, opt0: list[list[float]] | None = None) -> list[float]:
    """1D-Revolve ``Opt1D(l)``, ``l = 0..lmax``: ``x_0`` is on disk, ``cm`` memory slots."""
    _check(lmax, cm=cm, rd=rd, uf=uf, ub=ub)
    o0 = opt0 if opt0 is not None else opt0_table(lmax, cm, uf, ub)
    uf, ub = float(uf), float(ub)
    t = [float(ub)]
    if lmax >= 1:
        t.append(uf + 2 * ub + rd if cm == 0 else uf + 2 * ub)
    for l in range(2, lmax + 1):
        last = (lambda j: o0[cm][j - 1]) if one_read else (lambda j: t[j - 1])
        best = min(j * uf + o0[cm][l - j] + rd + last(j) for j in range(1, l))
        t.append(min(o0[cm][l], best))
    return t


def disk_revolve_table(lmax: int, cm: int, wd: float, rd: float, uf: float = 1.0,
                       ub: float = 1.0, *, one_read: bool = True) -> list[float]:
    """Disk-Revolve ``Optinf(l)``, ``l = 0..lmax``, with ``cm`` memory slots and an unlimited disk.

    >>> disk_revolve_table(10, 2, 2, 2)[10]   # below the memory-only Opt0(10, 2) = 35
    34.0
    """
    _check(lmax, cm=cm, wd=wd, rd=rd, uf=uf, ub=ub)
    o0 = opt0_table(lmax, cm, uf, ub)
    o1 = None if one_read else opt1d_table(lmax, cm, rd, uf, ub, one_read=False, opt0=o0)
    uf, ub = float(uf), float(ub)
    t = [float(ub)]
    if lmax >= 1:
        t.append(wd + uf + 2 * ub + rd if cm == 0 else uf + 2 * ub)
    for l in range(2, lmax + 1):
        if one_read:
            best = min(wd + j * uf + t[l - j] + rd + o0[cm][j - 1] for j in range(1, l))
        else:
            assert o1 is not None
            best = min(wd + j * uf + t[l - j] + rd + o1[j - 1] for j in range(1, l))
        t.append(min(o0[cm][l], best))
    return t


def hrevolve_tables(lmax: int, c: Sequence[int], w: Sequence[float], r: Sequence[float],
                    uf: float = 1.0, ub: float = 1.0
                    ) -> tuple[list[list[list[float]]], list[list[list[float]]]]:
    """H-Revolve ``(optp, opt)``, indexed ``[k][l][m]`` (level ``k``, ``l = 0..lmax``,
    ``m = 0..c[k]``). ``optp``: ``x_0`` already stored at level ``k``; ``opt``: not yet."""
    K = len(c)
    if not (K >= 1 and len(w) == len(r) == K):
        raise ValueError("c, w and r must have the same length >= 1")
    _check(lmax, uf=uf, ub=ub)
    for k in range(K):
        _check(lmax, c=c[k], w=w[k], r=r[k])
    uf, ub = float(uf), float(ub)
    opt = [[[INF] * (c[k] + 1) for _ in range(lmax + 1)] for k in range(K)]
    optp = [[[INF] * (c[k] + 1) for _ in range(lmax + 1)] for k in range(K)]
    for k in range(K):
        for m in range(c[k] + 1):
            opt[k][0][m] = ub
            optp[k][0][m] = ub
        if lmax >= 1:
            for m in range(c[k] + 1):
                if m == 0 and k == 0:
                    continue
                optp[k][1][m] = uf + 2 * ub + r[0]
                opt[k][1][m] = w[0] + optp[k][1][m]
    # level 0
    if c[0] >= 1:
        for l in range(2, lmax + 1):
            optp[0][l][1] = (l + 1) * ub + l * (l + 1) / 2 * uf + l * r[0]
            opt[0][l][1] = w[0] + optp[0][l][1]
    for m in range(2, c[0] + 1):
        for l in range(2, lmax + 1):
            optp[0][l][m] = min([j * uf + opt[0][l - j][m - 1] + r[0] + optp[0][j - 1][m]
                                 for j in range(1, l)] + [optp[0][l][1]])
            opt[0][l][m] = w[0] + optp[0][l][m]
    # levels k > 0
    for k in range(1, K):
        below = c[k - 1]
        for l in range(2, lmax + 1):
            opt[k][l][0] = opt[k - 1][l][below]
        for m in range(1, c[k] + 1):
            for l in range(1, lmax + 1):
                optp[k][l][m] = min([opt[k - 1][l][below]]
                                    + [j * uf + opt[k][l - j][m - 1] + r[k] + optp[k][j - 1][m]
                                       for j in range(1, l)])
                opt[k][l][m] = min(opt[k - 1][l][below], w[k] + optp[k][l][m])
    return optp, opt


def hrevolve_table(lmax: int, c: Sequence[int], w: Sequence[float], r: Sequence[float],
                   uf: float = 1.0, ub: float = 1.0) -> list[float]:
    """H-Revolve optimum ``opt[K-1][l][c[K-1]]`` for ``l = 0..lmax`` (all levels available).

    >>> hrevolve_table(10, [2, 20], [0, 2], [0, 2])[10]
    34.0
    """
    _, opt = hrevolve_tables(lmax, c, w, r, uf, ub)
    K = len(c)
    return [opt[K - 1][l][c[K - 1]] for l in range(lmax + 1)]


def disk_gain(l: int, cm: int, wd: float, rd: float, uf: float = 1.0, ub: float = 1.0, *,
              one_read: bool = True) -> float:
    """How much Disk-Revolve saves over memory-only Revolve for ``l`` steps: ``Opt0(l, cm) -
    Optinf(l)`` (0 when the disk is not worth using)."""
    if cm < 1:
        raise ValueError("memory-only Revolve needs cm >= 1")
    return opt0_table(l, cm, uf, ub)[cm][l] - disk_revolve_table(l, cm, wd, rd, uf, ub,
                                                                  one_read=one_read)[l]
