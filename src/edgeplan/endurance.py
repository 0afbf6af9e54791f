"""How long a flash storage tier lasts when training offloads activations to it.

Offloading writes every offloaded checkpoint once per training iteration: at a few iterations a
second that is terabytes a week. Flash wears out: a card or drive is rated either by **TBW**
(terabytes written, host writes, as SSD vendors publish) or by **P/E cycles** (program/erase
cycles per cell: every byte of the capacity can be rewritten about that many times). SD cards
rarely publish either; :data:`DEFAULT_ASSUMPTION` states the numbers used when none is given.

``endurance_estimate`` turns bytes written per iteration and an iteration rate into bytes per
day and days until the rated endurance is used up:

* with ``tbw_bytes``: ``days = tbw_bytes / host_bytes_per_day`` (a TBW rating is in host writes
  and already includes the vendor's write-amplification assumption);
* with ``pe_cycles`` x ``capacity_bytes``: ``days = capacity x P/E / (host_bytes_per_day x
  write_amplification)`` (flash-level writes are host writes times the write amplification).

Both are estimates of wear only; a card can fail earlier (or later) for other reasons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# A typical microSD card when nothing is known: published endurance figures for consumer
# microSD are rare; TLC NAND is commonly quoted at 300-1000 P/E cycles and the card's
# controller adds write amplification. These are assumptions, not measurements.
DEFAULT_CAPACITY_BYTES = 32 * 10**9
DEFAULT_PE_CYCLES = 500
DEFAULT_WRITE_AMPLIFICATION = 2.0
DEFAULT_ASSUMPTION = (
    "assumed: a 32 GB microSD card rated ~500 P/E cycles (TLC-class NAND) with write "
    "amplification 2, i.e. ~8 TB of host writes before the rated wear; SD cards rarely publish "
    "TBW or P/E figures, so measure or use the card's datasheet (pass tbw_bytes or pe_cycles "
    "and capacity_bytes)")

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, kw_only=True)
class EnduranceEstimate:
    bytes_written_per_iter: int
    iterations_per_day: float
    bytes_per_day: float          # host writes per day
    flash_bytes_per_day: float    # host writes x write amplification (P/E ratings), else = host
    rated_bytes: float            # host bytes until the rated endurance is used up
    days_to_rated: float          # inf when nothing is written
    assumption: str

    @property
    def years_to_rated(self) -> float:
        return self.days_to_rated / 365.25

    def to_dict(self) -> dict:
        return {"bytes_written_per_iter": self.bytes_written_per_iter,
                "iterations_per_day": self.iterations_per_day,
                "bytes_per_day": self.bytes_per_day,
                "flash_bytes_per_day": self.flash_bytes_per_day,
                "rated_host_bytes": self.rated_bytes,
                "days_to_rated": None if math.isinf(self.days_to_rated) else self.days_to_rated,
                "years_to_rated": None if math.isinf(self.days_to_rated) else self.years_to_rated,
                "assumption": self.assumption}


def endurance_estimate(bytes_written_per_iter: int, *, iter_per_s: float | None = None,
                       iterations_per_day: float | None = None, tbw_bytes: float | None = None,
                       pe_cycles: float | None = None, capacity_bytes: int | None = None,
                       write_amplification: float | None = None,
                       duty_cycle: float = 1.0) -> EnduranceEstimate:
    """Bytes per day and days until the storage's rated endurance is reached.

    Give the rate as ``iter_per_s`` (training runs ``duty_cycle`` of the day, default all day;
    e.g. ``1 / makespan_s``) or ``iterations_per_day``. Give the rating as ``tbw_bytes`` or as
    ``pe_cycles`` and ``capacity_bytes`` (missing ones default to :data:`DEFAULT_ASSUMPTION`'s
    numbers, and the ``assumption`` string says so).

    >>> e = endurance_estimate(100 * 10**6, iterations_per_day=10_000)
    >>> round(e.bytes_per_day / 1e12, 3), round(e.days_to_rated, 1)
    (1.0, 8.0)
    """
    if bytes_written_per_iter < 0:
        raise ValueError("bytes_written_per_iter must be >= 0")
    if (iter_per_s is None) == (iterations_per_day is None):
        raise ValueError("give exactly one of iter_per_s and iterations_per_day")
    if not 0 < duty_cycle <= 1:
        raise ValueError("duty_cycle must be in (0, 1]")
    if iterations_per_day is None:
        assert iter_per_s is not None
        if iter_per_s < 0:
            raise ValueError("iter_per_s must be >= 0")
        iterations_per_day = iter_per_s * SECONDS_PER_DAY * duty_cycle
        rate = f"{iter_per_s:g} iterations/s for {duty_cycle * 24:g} h a day"
    else:
        if iterations_per_day < 0:
            raise ValueError("iterations_per_day must be >= 0")
        rate = f"{iterations_per_day:g} iterations a day"
    host = float(bytes_written_per_iter) * iterations_per_day
    parts: list[str] = []
    if tbw_bytes is not None:
        if tbw_bytes <= 0:
            raise ValueError("tbw_bytes must be > 0")
        waf = 1.0 if write_amplification is None else float(write_amplification)
        rated_host = float(tbw_bytes)
        flash = host * waf
        parts.append(f"rated {tbw_bytes / 1e12:g} TB written (TBW, host writes; the vendor's "
                     "rating already includes its write-amplification assumption)")
    else:
        assumed = []
        cap = capacity_bytes
        if cap is None:
            cap = DEFAULT_CAPACITY_BYTES
            assumed.append(f"capacity {cap / 1e9:g} GB")
        pe = pe_cycles
        if pe is None:
            pe = DEFAULT_PE_CYCLES
            assumed.append(f"~{pe:g} P/E cycles")
        waf = write_amplification
        if waf is None:
            waf = DEFAULT_WRITE_AMPLIFICATION
            assumed.append(f"write amplification {waf:g}")
        if cap <= 0 or pe <= 0 or waf < 1:
            raise ValueError("capacity and P/E cycles must be > 0, write amplification >= 1")
        rated_host = cap * pe / waf
        flash = host * waf
        parts.append(f"{cap / 1e9:g} GB x {pe:g} P/E cycles / write amplification {waf:g} = "
                     f"{rated_host / 1e12:.3g} TB of host writes")
        if assumed:
            parts.append("ASSUMED (not published for most SD cards; measure or use the "
                         "datasheet): " + ", ".join(assumed))
    days = math.inf if host <= 0 else rated_host / host
    assumption = "; ".join([f"{bytes_written_per_iter} bytes written per iteration, {rate}"]
                           + parts)
    return EnduranceEstimate(bytes_written_per_iter=int(bytes_written_per_iter),
                             iterations_per_day=float(iterations_per_day), bytes_per_day=host,
                             flash_bytes_per_day=flash, rated_bytes=rated_host,
                             days_to_rated=days, assumption=assumption)
