import math

import pytest

from edgeplan import units
from edgeplan.errors import UnitError


@pytest.mark.parametrize("text,expected", [
    ("12 MiB", 12 * 2**20), ("12 MB", 12_000_000), ("1.5 GiB", 3 * 2**29), ("1.5GB", 1_500_000_000),
    ("300 B", 300), ("300", 300), (300, 300), ("4 KiB", 4096), ("4 kB", 4000), ("0", 0),
    ("2 TiB", 2 * 2**40), ("1e3 B", 1000), ("10 bytes", 10),
])
def test_parse_size(text, expected):
    assert units.parse_size(text) == expected


def test_mib_and_mb_are_distinct():
    assert units.parse_size("1 MiB") - units.parse_size("1 MB") == 48_576


@pytest.mark.parametrize("bad", ["big", "12 Mb", "1 Gbit", "-3 MiB", "nan MiB", "inf", "1.5",
                                 "12 XB", True, [1], -1, float("nan"), 1.5, "12 MiBs"])
def test_parse_size_rejects(bad):
    with pytest.raises(UnitError):
        units.parse_size(bad)


def test_bits_error_says_bits():
    with pytest.raises(UnitError, match="bits"):
        units.parse_size("12 Mb")
    with pytest.raises(UnitError, match="bits"):
        units.parse_bandwidth("100 Mbps")


def test_fractional_bytes_round_up():
    assert units.parse_size("1.0001 KiB") == 1025


@pytest.mark.parametrize("text,expected", [("3.2 ms", 3.2e-3), ("1.5 s", 1.5), ("40 us", 4e-5),
                                           ("2", 2.0), (0.5, 0.5), ("1 min", 60.0)])
def test_parse_time(text, expected):
    assert math.isclose(units.parse_time(text), expected)


@pytest.mark.parametrize("bad", ["fast", "-1 ms", "3 parsecs", "nan s"])
def test_parse_time_rejects(bad):
    with pytest.raises(UnitError):
        units.parse_time(bad)


@pytest.mark.parametrize("text,expected", [("1.8 GFLOP", 1.8e9), ("350 MFLOP", 3.5e8),
                                           ("2 GFLOPs", 2e9), (1e6, 1e6), ("5 kFLOP", 5e3)])
def test_parse_flops(text, expected):
    assert math.isclose(units.parse_flops(text), expected)


def test_flops_rejects_rate():
    with pytest.raises(UnitError, match="rate"):
        units.parse_flops("2 GFLOP/s")


@pytest.mark.parametrize("text,expected", [("236 GFLOP/s", 236e9), ("236 GFLOPS", 236e9),
                                           ("5.3 TFLOP/s", 5.3e12)])
def test_parse_flop_rate(text, expected):
    assert math.isclose(units.parse_flop_rate(text), expected)


@pytest.mark.parametrize("text,expected", [("45 MB/s", 45e6), ("25.6 GB/s", 25.6e9),
                                           ("100 MiB/s", 100 * 2**20)])
def test_parse_bandwidth(text, expected):
    assert math.isclose(units.parse_bandwidth(text), expected)


def test_parse_power_and_percent():
    assert units.parse_power("600 mW") == pytest.approx(0.6)
    assert units.parse_percent("30%") == pytest.approx(0.3)
    with pytest.raises(UnitError):
        units.parse_percent("lots")


def test_format():
    assert units.format_size(1536) == "1.5 KiB"
    assert units.format_time(0.0123) == "12.3 ms"
    assert units.format_time(2.5) == "2.50 s"
