"""Homogeneous multi-level oracles: reference/algorithms.md sections 5.1 (Opt0) and 5.2."""

from math import comb

import pytest

from edgeplan.solvers.reference.hrevolve import (
    disk_gain,
    disk_revolve_table,
    hrevolve_table,
    hrevolve_tables,
    opt0_table,
    opt1d_table,
)


def row(s):
    return [float(v) for v in s.split()]


# reference/algorithms.md section 5.2 (uf = ub = 1, l = 0..15)
DISK_2_2 = row("1 3 5 8 11 14 18 22 26 30 34 38 42 46 50 54")
DISK_2_5 = row("1 3 5 8 11 14 18 22 26 30 35 40 45 50 55 60")
DISK_3_1 = row("1 3 5 7 10 13 16 19 22 25 29 32 35 38 42 45")
OPT0_M3_TO_15 = row("1 3 5 7 10 13 16 19 22 25 29 33 37 41 45 49")

# reference/algorithms.md section 5.1: Opt0(l, m), uf = ub = 1, l = 0..12
OPT0 = {
    1: row("1 3 6 10 15 21 28 36 45 55 66 78 91"),
    2: row("1 3 5 8 11 14 18 22 26 30 35 40 45"),
    3: row("1 3 5 7 10 13 16 19 22 25 29 33 37"),
    4: row("1 3 5 7 9 12 15 18 21 24 27 30 33"),
}


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_opt0_table_section_5_1(m):
    assert opt0_table(12, 4)[m] == OPT0[m]


def _t(l, s):
    """Revolve's extra forward steps, closed form r*l - C(s + r, s + 1) (section 2.1)."""
    r = 0
    while comb(s + r, s) < l:
        r += 1
    return r * l - comb(s + r, s + 1)


@pytest.mark.parametrize("uf,ub", [(1, 1), (1, 0), (2, 3), (0.5, 2)])
def test_opt0_identity(uf, ub):
    tab = opt0_table(30, 6, uf, ub)
    for m in range(1, 7):
        for l in range(31):
            assert tab[m][l] == pytest.approx(uf * _t(l + 1, m) + (l + 1) * ub)
    assert tab[0][0] == ub and all(v == float("inf") for v in tab[0][1:])


@pytest.mark.parametrize("cm,wd,expected", [(2, 2, DISK_2_2), (2, 5, DISK_2_5), (3, 1, DISK_3_1)])
@pytest.mark.parametrize("one_read", [True, False])
def test_disk_revolve_section_5_2(cm, wd, expected, one_read):
    assert disk_revolve_table(15, cm, wd, wd, one_read=one_read) == expected


def test_disk_helps_only_when_cheap():
    o2 = opt0_table(15, 2)[2]
    # wd = rd = 2: below memory-only Opt0(l, 2) from l = 10 on (35 at l = 10)
    assert o2[10] == 35 and DISK_2_2[10] == 34
    assert [l for l in range(16) if DISK_2_2[l] < o2[l]] == list(range(10, 16))
    assert disk_gain(10, 2, 2, 2) == 1 and disk_gain(15, 2, 2, 2) == 61 - 54
    # wd = rd = 5: equals memory-only Opt0(l, 2) up to l = 14 (the disk is not worth using);
    # at l = 15 Opt0(15, 2) = t(16, 2) + 16 = 61 while the section 5.2 row has 60, so the
    # reference's "equals ... up to l = 15" holds up to l = 14 only (the row itself is exact)
    assert DISK_2_5[:15] == o2[:15]
    assert o2[15] == 61 and DISK_2_5[15] == 60
    assert all(disk_gain(l, 2, 5, 5) == 0 for l in range(1, 15))
    assert disk_gain(15, 2, 5, 5) == 1


def test_opt1d_between_memory_and_disk():
    o0 = opt0_table(15, 2)
    for one_read in (True, False):
        t1 = opt1d_table(15, 2, 2, one_read=one_read)
        # x0 already on disk: never worse than memory-only, never worse than paying the write
        assert all(t1[l] <= o0[2][l] for l in range(16))
        assert all(t1[l] <= DISK_2_2[l] for l in range(16))
    assert opt1d_table(1, 0, 4)[1] == 1 + 2 + 4


@pytest.mark.parametrize("w,expected", [(5, DISK_2_5), (2, DISK_2_2)])
def test_hrevolve_two_levels_reproduce_disk_revolve(w, expected):
    assert hrevolve_table(15, [2, 20], [0, w], [0, w]) == expected


def test_hrevolve_one_level_is_opt0():
    assert hrevolve_table(15, [3], [0], [0]) == OPT0_M3_TO_15
    assert hrevolve_table(15, [3], [0], [0]) == opt0_table(15, 3)[3]


def test_hrevolve_tables_shape_and_validation():
    _optp, opt = hrevolve_tables(5, [2, 4], [0, 1], [0, 1])
    assert len(opt) == 2 and len(opt[1]) == 6 and len(opt[1][0]) == 5
    with pytest.raises(ValueError):
        hrevolve_tables(5, [2, 4], [0], [0, 1])
    with pytest.raises(ValueError):
        disk_revolve_table(-1, 2, 1, 1)
