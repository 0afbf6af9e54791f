"""Memory slots (docs/chain-model.md §4): sizes round up, the budget rounds down.

A schedule that fits the budget counted in slots therefore fits in bytes; with sizes that are exact
multiples of the slot size the result is exact. The slot size is reported with every result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chain import Chain

DEFAULT_SLOTS = 500


@dataclass(frozen=True, kw_only=True)
class Discretization:
    unit_bytes: int   # bytes per slot
    slots: int        # slots requested (the resolution of the memory axis)

    def up(self, nbytes: int) -> int:
        return -(-int(nbytes) // self.unit_bytes)

    def down(self, nbytes: int) -> int:
        return int(nbytes) // self.unit_bytes

    def to_dict(self) -> dict:
        return {"unit_bytes": self.unit_bytes, "slots": self.slots}


def choose(range_bytes: int, slots: int = DEFAULT_SLOTS) -> Discretization:
    """Slot size so that ``range_bytes`` spans about ``slots`` slots (at least 1 byte)."""
    if slots < 1:
        raise ValueError("slots must be >= 1")
    unit = max(1, -(-int(range_bytes) // slots))
    return Discretization(unit_bytes=unit, slots=slots)


@dataclass(frozen=True)
class SlotChain:
    """Integer slot sizes for the kernel, index 0..L as in ``ChainArrays``."""

    x: np.ndarray
    s: np.ndarray
    d: np.ndarray
    f: np.ndarray
    b: np.ndarray
    tf: np.ndarray
    tb: np.ndarray

    @property
    def length(self) -> int:
        return len(self.x) - 1


def slot_chain(chain: Chain, disc: Discretization) -> SlotChain:
    a = chain.arrays()
    u = disc.unit_bytes

    def up(v: np.ndarray) -> np.ndarray:
        return (-(-v // u)).astype(np.int64)

    return SlotChain(up(a.x), up(a.s), up(a.d), up(a.f), up(a.b), a.tf.copy(), a.tb.copy())
