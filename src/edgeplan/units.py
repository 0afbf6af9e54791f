"""Parsing and formatting of quantities: the only place where text becomes a number.

One internal unit per dimension: bytes (``int``), seconds (``float``), FLOP (``float``), bytes/s
(``float``), FLOP/s (``float``), watts (``float``). IEC and SI prefixes are distinct:
``"1 MiB"`` is 1,048,576 bytes, ``"1 MB"`` is 1,000,000 bytes. Bits (``Mb``, ``Gbit``) are
rejected with a hint, as are negative, NaN and infinite values.

>>> parse_size("12 MiB")
12582912
>>> parse_size("1.5 GB")
1500000000
>>> parse_time("3.2 ms")
0.0032
>>> parse_flops("1.8 GFLOP")
1800000000.0
>>> parse_bandwidth("45 MB/s")
45000000.0
>>> format_size(12582912)
'12.0 MiB'
"""

from __future__ import annotations

import math
import re

from .errors import UnitError

# Larger sizes are typos, not edge devices (1 EiB).
MAX_SIZE_BYTES = 2**60

_SI = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_IEC = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_TIME = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9,
         "min": 60.0, "h": 3600.0}

_NUM = r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|nan|infinity))"
_QTY = re.compile(r"^\s*" + _NUM + r"\s*([A-Za-zµ/]*)\s*$", re.IGNORECASE)


def _qualified(what: str, adjective: str) -> str:
    """``'a size'`` -> ``'a non-negative size'``."""
    article, _, noun = what.partition(" ")
    return f"a {adjective} {noun}" if article in ("a", "an") else f"{adjective} {what}"


def _split(text: str, what: str, example: str) -> tuple[float, str]:
    m = _QTY.match(text)
    if not m:
        raise UnitError(f'expected {what} like "{example}", got {text!r}')
    value = float(m.group(1))
    if math.isnan(value) or math.isinf(value):
        raise UnitError(f'expected {_qualified(what, "finite")} like "{example}", got {text!r}')
    if value < 0:
        raise UnitError(f'expected {_qualified(what, "non-negative")} like "{example}", got '
                        f'{text!r}')
    return value, m.group(2)


def _number(value: object, what: str, example: str) -> float | None:
    """A plain YAML number (int/float), validated; None when ``value`` is a string."""
    if isinstance(value, bool):
        raise UnitError(f'expected {what} like "{example}", got {value!r}')
    if isinstance(value, (int, float)):
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            raise UnitError(f'expected {_qualified(what, "finite")} like "{example}", got '
                            f'{value!r}')
        if value < 0:
            raise UnitError(f'expected {_qualified(what, "non-negative")} like "{example}", got '
                            f'{value!r}')
        return float(value)
    if not isinstance(value, str):
        raise UnitError(f'expected {what} like "{example}", got {type(value).__name__} {value!r}')
    return None


def _prefix_factor(unit: str, base: str, what: str, example: str, text: str) -> float:
    """Factor of ``unit`` = <SI or IEC prefix> + ``base`` (base matched case-sensitively)."""
    if not unit.endswith(base):
        raise UnitError(f'expected {what} like "{example}", got {text!r}')
    prefix = unit[: len(unit) - len(base)]
    if prefix in _IEC:
        return float(_IEC[prefix])
    if prefix in _SI:
        return float(_SI[prefix])
    raise UnitError(f'unknown prefix {prefix!r} in {text!r}; expected {what} like "{example}"')


def parse_size(value: object) -> int:
    """Bytes from ``"12 MiB"``, ``"12 MB"``, ``"1.5 GiB"``, ``"300 B"`` or a plain int (bytes).

    Fractional results round up to whole bytes (a size is never under-counted).
    """
    example = "12 MiB"
    num = _number(value, "a size", example)
    if num is not None:
        if isinstance(value, float) and not float(value).is_integer():
            raise UnitError(f'expected a whole number of bytes or a size like "{example}", got '
                            f'{value!r}')
        return _bounded(int(num), value)
    text = str(value)
    v, unit = _split(text, "a size", example)
    if unit == "":
        if not float(v).is_integer():
            raise UnitError(f'expected a whole number of bytes or a size like "{example}", got '
                            f'{text!r}')
        return _bounded(int(v), text)
    if re.fullmatch(r"[kKMGTP]i?b(it)?s?|bits?|[kKMGTP]?bps", unit):
        raise UnitError(f"{text!r} is in bits; sizes are in bytes (B), e.g. \"{example}\"")
    if unit in ("bytes", "byte"):
        unit = "B"
    factor = _prefix_factor(unit, "B", "a size", example, text)
    return _bounded(int(math.ceil(v * factor - 1e-9)), text)


def _bounded(n: int, text: object) -> int:
    if n > MAX_SIZE_BYTES:
        raise UnitError(f"{text!r} is implausibly large (more than 1 EiB)")
    return n


def parse_time(value: object) -> float:
    """Seconds from ``"3.2 ms"``, ``"1.5 s"``, ``"40 us"`` or a plain number (seconds)."""
    example = "3.2 ms"
    num = _number(value, "a duration", example)
    if num is not None:
        return num
    text = str(value)
    v, unit = _split(text, "a duration", example)
    if unit == "":
        return v
    if unit not in _TIME:
        raise UnitError(f'expected a duration like "{example}" (units s, ms, us, ns), got {text!r}')
    return v * _TIME[unit]


def parse_flops(value: object) -> float:
    """FLOP count from ``"1.8 GFLOP"``, ``"350 MFLOP"`` or a plain number.

    ``GFLOPs`` (plural) is accepted as a count; a rate must be written ``GFLOP/s``.
    """
    example = "1.8 GFLOP"
    num = _number(value, "a FLOP count", example)
    if num is not None:
        return num
    text = str(value)
    v, unit = _split(text, "a FLOP count", example)
    if unit == "":
        return v
    if unit.endswith("/s"):
        raise UnitError(f'expected a FLOP count like "{example}", got the rate {text!r}')
    u = unit[:-1] if unit.endswith("s") and unit.upper().endswith("FLOPS") else unit
    if not u.upper().endswith("FLOP"):
        raise UnitError(f'expected a FLOP count like "{example}", got {text!r}')
    prefix = u[:-4]
    if prefix not in _SI:
        raise UnitError(f'unknown prefix {prefix!r} in {text!r}; expected a FLOP count like '
                        f'"{example}"')
    return v * _SI[prefix]


def parse_flop_rate(value: object) -> float:
    """FLOP/s from ``"236 GFLOP/s"`` (also ``"236 GFLOPS"``) or a plain number."""
    example = "236 GFLOP/s"
    num = _number(value, "a FLOP rate", example)
    if num is not None:
        return num
    text = str(value)
    v, unit = _split(text, "a FLOP rate", example)
    if unit == "":
        return v
    if unit.endswith("/s"):
        base = unit[:-2]
    elif unit.upper().endswith("FLOPS"):
        base = unit[:-1]
    else:
        raise UnitError(f'expected a FLOP rate like "{example}", got {text!r}')
    if not base.upper().endswith("FLOP"):
        raise UnitError(f'expected a FLOP rate like "{example}", got {text!r}')
    prefix = base[:-4]
    if prefix not in _SI:
        raise UnitError(f'unknown prefix {prefix!r} in {text!r}; expected a FLOP rate like '
                        f'"{example}"')
    return v * _SI[prefix]


def parse_bandwidth(value: object) -> float:
    """Bytes/s from ``"45 MB/s"``, ``"25.6 GB/s"``, ``"100 MiB/s"`` or a plain number."""
    example = "45 MB/s"
    num = _number(value, "a bandwidth", example)
    if num is not None:
        return num
    text = str(value)
    v, unit = _split(text, "a bandwidth", example)
    if unit == "":
        return v
    if re.fullmatch(r"[kKMGTP]?i?b(it)?s?/s|[kKMGTP]?bps", unit):
        raise UnitError(f"{text!r} is in bits per second; bandwidths are in bytes (B/s), e.g. "
                        f"\"{example}\"")
    if not unit.endswith("/s"):
        raise UnitError(f'expected a bandwidth like "{example}", got {text!r}')
    return v * _prefix_factor(unit[:-2], "B", "a bandwidth", example, text)


def parse_power(value: object) -> float:
    """Watts from ``"10 W"``, ``"600 mW"`` or a plain number."""
    example = "10 W"
    num = _number(value, "a power", example)
    if num is not None:
        return num
    text = str(value)
    v, unit = _split(text, "a power", example)
    factors = {"": 1.0, "W": 1.0, "mW": 1e-3, "kW": 1e3}
    if unit not in factors:
        raise UnitError(f'expected a power like "{example}", got {text!r}')
    return v * factors[unit]


def parse_percent(value: object) -> float:
    """A fraction from ``"30%"`` (0.30) or a plain number taken as a percentage (30 -> 0.30)."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            text = text[:-1]
        try:
            v = float(text)
        except ValueError:
            raise UnitError(f'expected a percentage like "30%", got {value!r}') from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
    else:
        raise UnitError(f'expected a percentage like "30%", got {value!r}')
    if math.isnan(v) or math.isinf(v) or v < 0:
        raise UnitError(f'expected a non-negative percentage like "30%", got {value!r}')
    return v / 100.0


DAY_S = 86400.0

# --- rates, periods and energies of `edgeplan why` -----------------------------------------

_PERIOD_WORDS = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": DAY_S, "day": DAY_S, "days": DAY_S,
    "w": 7 * DAY_S, "wk": 7 * DAY_S, "week": 7 * DAY_S, "weeks": 7 * DAY_S,
    "month": 30 * DAY_S, "months": 30 * DAY_S,       # 30 days
    "y": 365 * DAY_S, "yr": 365 * DAY_S, "year": 365 * DAY_S, "years": 365 * DAY_S,
}


def parse_period(value: object, *, what: str = "a period") -> float:
    """Seconds from ``"1 day"``, ``"12 h"``, ``"2 weeks"``, ``"day"`` (= 1 day), ``"30 min"``.

    Everything :func:`edgeplan.parse_time` reads, plus day/week/month (30 d)/year (365 d).
    """
    example = "1 day"
    text = str(value).strip()
    if text and not (text[0].isdigit() or text[0] in ".+-"):
        text = "1 " + text  # "day" -> "1 day"
    try:
        return parse_time(text)
    except UnitError:
        pass
    v, unit = _split(text, what, example)  # the number rules of edgeplan.units
    factor = _PERIOD_WORDS.get(unit) or _PERIOD_WORDS.get(unit.lower())
    if factor is None:
        raise UnitError(f'expected {what} like "{example}" (s, min, h, day, week, month, '
                        f'year), got {value!r}')
    return v * factor


def parse_data_rate(value: object) -> float:
    """Bytes per second from ``"2 GB/day"``, ``"30 KB/s"``, ``"500 MiB/h"``, ``"1 GB/week"``.

    The size is read by :func:`edgeplan.parse_size` (so bits are rejected with a hint),
    the period by :func:`parse_period`.
    """
    text = str(value).strip()
    size_text, sep, per = text.rpartition("/")
    if not sep or not size_text.strip() or not per.strip():
        raise UnitError(f'expected a data rate like "2 GB/day" or "30 KB/s", got {value!r}')
    size = parse_size(size_text.strip())
    period = parse_period(per.strip(), what="a period")
    if period <= 0:
        raise UnitError(f"the period of {value!r} must be positive")
    return size / period


_ENERGY = {"J": 1.0, "mJ": 1e-3, "uJ": 1e-6, "µJ": 1e-6, "nJ": 1e-9, "pJ": 1e-12}


def parse_energy_per_byte(value: object) -> float:
    """Joules per byte from ``"5 uJ/B"``, ``"0.7 uJ/bit"``, ``"40 nJ/bit"``, ``"2e-6"`` (J/B)."""
    example = "5 uJ/B"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = _number(value, "an energy per byte", example)
        assert v is not None
        return v
    text = str(value).strip()
    v, unit = _split(text, "an energy per byte", example)
    if unit == "":
        return v
    num, sep, den = unit.partition("/")
    if not sep or num not in _ENERGY or den not in ("B", "byte", "bit", "b"):
        raise UnitError(f'expected an energy per byte like "{example}" or "0.7 uJ/bit", '
                        f"got {value!r}")
    per_bit = den in ("bit", "b")
    return v * _ENERGY[num] * (8.0 if per_bit else 1.0)


_BITRATE = {"bit/s": 1.0, "bps": 1.0, "kbit/s": 1e3, "kbps": 1e3, "Kbit/s": 1e3, "Kbps": 1e3,
            "Mbit/s": 1e6, "Mbps": 1e6, "Gbit/s": 1e9, "Gbps": 1e9}


def parse_uplink(value: object) -> float:
    """Bytes per second from a bandwidth (``"1 MB/s"``, via :func:`parse_bandwidth`) or, as
    radios are quoted, a bit rate (``"5 Mbit/s"``, ``"250 kbps"``)."""
    try:
        return parse_bandwidth(value)
    except UnitError:
        text = str(value).strip()
        try:
            v, unit = _split(text, "a bandwidth", "1 MB/s")
        except UnitError:
            raise UnitError(f'expected a bandwidth like "1 MB/s" or "5 Mbit/s", got {value!r}') \
                from None
        if unit in _BITRATE:
            return v * _BITRATE[unit] / 8.0
        raise UnitError(f'expected a bandwidth like "1 MB/s" or "5 Mbit/s", got {value!r}') \
            from None



# --- formatting (for people; JSON carries raw numbers) ---------------------------------------

def format_size(n: int | float | None, *, precision: int = 1) -> str:
    """IEC size: ``format_size(1536) == '1.5 KiB'``."""
    if n is None:
        return "-"
    n = float(n)
    for unit, f in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= f:
            return f"{n / f:.{precision}f} {unit}"
    return f"{int(n)} B"


def format_time(s: float | None) -> str:
    """Seconds for people: ``'12.3 ms'``, ``'1.52 s'``, ``'3.1 min'``."""
    if s is None or (isinstance(s, float) and math.isinf(s)):
        return "-"
    if s >= 120:
        return f"{s / 60:.1f} min"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} us"


def format_flop_rate(r: float) -> str:
    for unit, f in (("TFLOP/s", 1e12), ("GFLOP/s", 1e9), ("MFLOP/s", 1e6)):
        if r >= f:
            return f"{r / f:.3g} {unit}"
    return f"{r:.3g} FLOP/s"


def format_bandwidth(r: float) -> str:
    for unit, f in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if r >= f:
            return f"{r / f:.3g} {unit}"
    return f"{r:.3g} B/s"


def format_energy(j: float | None, *, wh: bool = False) -> str:
    """Energy for people: ``'412 mJ'``, ``'397 J'``, ``'12.3 kJ'``, ``'4.1 MJ'``; with ``wh``
    also ``' (3.4 Wh)'`` from 1 kJ."""
    if j is None:
        return "-"
    if 0 < j < 1:
        return f"{j * 1000:.3g} mJ"
    if j < 1000:
        return f"{j:.3g} J"
    s = f"{j / 1000:.3g} kJ" if j < 1e6 else f"{j / 1e6:.3g} MJ"
    return s + (f" ({j / 3600:.3g} Wh)" if wh else "")


def format_overhead(x: float | None) -> str:
    """A signed change as a percentage, e.g. the recompute overhead: ``'+9.5%'``."""
    return "-" if x is None else f"{x * 100:+.1f}%"


def format_percent(fraction: float | None) -> str:
    """A share of a capacity: ``'3.7%'``, ``'0.0866%'``, ``'9,522%'``."""
    if fraction is None:
        return "-"
    p = fraction * 100
    return f"{p:,.0f}%" if p >= 1000 else f"{p:.3g}%"
