"""Exhaustive search with a storage tier: the test oracle of the offload DP (tiny chains only)."""

from __future__ import annotations

from ...chain import Chain
from ...device import StorageTier
from ...errors import LimitError
from ...schedule import Schedule
from ..exact import exact_cost

MAX_EXACT_OFFLOAD_STAGES = 6


def exact_offload_cost(chain: Chain, budget_bytes: int, tier: StorageTier, *,
                       storage_bytes: int | None = None) -> tuple[float, Schedule] | None:
    """Least synchronous makespan of any valid schedule with ``W``/``R``/``free_s`` ops
    (the exhaustive search of ``solvers.exact`` with a storage tier), or None if nothing fits."""
    if chain.length > MAX_EXACT_OFFLOAD_STAGES:
        raise LimitError(f"exact offload search is limited to {MAX_EXACT_OFFLOAD_STAGES} stages")
    return exact_cost(chain, budget_bytes, tier=tier, storage_bytes=storage_bytes)
