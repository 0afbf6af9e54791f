"""Contiguous partitions: the stage balancer both importers use (ONNX, PyTorch graph capture)."""

from __future__ import annotations

__all__ = ["balance"]


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
