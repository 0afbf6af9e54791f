"""Contiguous partitions: how both importers (ONNX, PyTorch graph capture) group segments into
stages."""

from __future__ import annotations

__all__ = ["balance", "one_heavy_per_group"]


def balance(weights: list[int], n: int) -> list[int]:
    """Split ``weights`` into ``min(n, len)`` consecutive groups minimising the largest sum;
    returns the group sizes."""
    m = len(weights)
    n = max(1, min(n, m))
    if n == m:
        return [1] * m

    def greedy(cap: int) -> list[int]:
        sizes: list[int] = []
        s = cnt = 0
        for w in weights:
            if cnt and s + w > cap:
                sizes.append(cnt)
                s = cnt = 0
            s += w
            cnt += 1
        sizes.append(cnt)
        return sizes

    lo, hi = max(weights), sum(weights)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(greedy(mid)) <= n:
            hi = mid
        else:
            lo = mid + 1
    sizes = greedy(lo)
    while len(sizes) < n:  # split the heaviest multi-item group: never raises the maximum
        best, bw = -1, -1
        pos = 0
        for j, sz in enumerate(sizes):
            w = sum(weights[pos:pos + sz])
            if sz > 1 and w > bw:
                best, bw = j, w
            pos += sz
        start = sum(sizes[:best])
        items = weights[start:start + sizes[best]]
        acc, cut = 0, 1
        for j in range(1, len(items)):
            acc += items[j - 1]
            cut = j
            if 2 * acc >= bw:
                break
        sizes[best:best + 1] = [cut, sizes[best] - cut]
    return sizes


def one_heavy_per_group(heavy: list[bool], weights: list[int] | None = None,
                        max_groups: int | None = None) -> list[int]:
    """Group sizes such that each group holds one heavy segment (a weighted op) and the light
    segments after it; with ``max_groups``, groups are then merged by ``balance`` on
    ``weights`` (default: one per segment) down to that many."""
    sizes: list[int] = []
    cur, cur_heavy = 0, False
    for h in heavy:
        if h and cur_heavy:
            sizes.append(cur)
            cur, cur_heavy = 0, False
        cur += 1
        cur_heavy = cur_heavy or h
    sizes.append(cur)
    if max_groups is not None and len(sizes) > max_groups:
        w, pos = [], 0
        for sz in sizes:
            w.append(sum(weights[pos:pos + sz]) if weights else sz)
            pos += sz
        groups = balance(w if any(w) else [1] * len(w), max_groups)
        merged, pos = [], 0
        for gsz in groups:
            merged.append(sum(sizes[pos:pos + gsz]))
            pos += gsz
        sizes = merged
    return sizes
