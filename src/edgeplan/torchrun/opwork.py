"""Count a pass's work per op family (``edgeplan.work``) with a ``TorchDispatchMode``.

Every ATen operation that reaches the dispatcher below autograd (and below autocast, so a
mixed-precision pass is seen in its real dtypes) is sorted into a family:

* FLOPs come from ``torch.utils.flop_counter``'s formulas with edgeplan's additions
  (``meter.flop_mapping``: the grouped-convolution backward fix, CPU attention), so the
  families' FLOPs add up to what ``FlopCounterMode`` reports for the same pass;
* bytes are those of every tensor argument and result (read and written), each
  ``min(numel * element_size, storage bytes)`` so an expanded (broadcast) tensor counts the data
  it has; an in-place operation counts its tensor twice (read, then written);
* views, ``detach``, ``alias`` and bare allocations (``empty*``) move no data and are not
  counted;
* of those bytes, the ones of an operation whose fresh results (not the in-place or ``out=``
  ones: memory it was given) take ``LARGE_RESULT_BYTES`` or more are also counted as
  ``large_bytes`` (fresh memory from the kernel: ``edgeplan.work``).

``timed=True`` also records every operation with its wall time (``rows``; give ``sync``, e.g.
``torch.cuda.synchronize``, on an asynchronous device so that the time is the kernel's, not its
launch's): ``calibrate`` fits the families' constants to such rows.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..work import LARGE_RESULT_BYTES, FamilyWork, Work
from ._tensors import storage_key
from .meter import flop_mapping

__all__ = ["WorkCounter", "family_of"]

_aten = torch.ops.aten


def _packets(*names: str) -> frozenset[Any]:
    """The ATen op packets of ``names`` and of their in-place forms (``bernoulli_``)."""
    every = [n for name in names for n in (name, name + "_")]
    return frozenset(getattr(_aten, n) for n in every if hasattr(_aten, n))


_CONV = _packets("convolution", "_convolution", "convolution_backward", "convolution_overrideable",
                 "convolution_backward_overrideable", "_slow_conv2d_forward",
                 "_slow_conv2d_backward", "mkldnn_convolution", "cudnn_convolution",
                 "thnn_conv2d")
_NORM = _packets("native_batch_norm", "_native_batch_norm_legit",
                 "_native_batch_norm_legit_no_training", "_native_batch_norm_legit_functional",
                 "native_batch_norm_backward", "_batch_norm_with_update",
                 "_batch_norm_no_update", "batch_norm_backward", "native_layer_norm",
                 "native_layer_norm_backward", "native_group_norm", "native_group_norm_backward",
                 "_fused_rms_norm", "_fused_rms_norm_backward")
_POOL = _packets("max_pool2d_with_indices", "max_pool2d_with_indices_backward",
                 "max_pool3d_with_indices", "max_pool3d_with_indices_backward", "avg_pool2d",
                 "avg_pool2d_backward", "avg_pool3d", "avg_pool3d_backward",
                 "_adaptive_avg_pool2d", "_adaptive_avg_pool2d_backward",
                 "_adaptive_avg_pool3d", "_adaptive_avg_pool3d_backward", "adaptive_max_pool2d",
                 "adaptive_max_pool2d_backward", "adaptive_max_pool3d",
                 "adaptive_max_pool3d_backward", "max_pool1d", "avg_pool1d")
_GATHER = _packets("embedding", "embedding_dense_backward", "embedding_backward",
                   "_embedding_bag", "_embedding_bag_backward", "index_select", "gather",
                   "scatter", "scatter_add", "scatter_reduce", "index_add", "index",
                   "index_put", "_index_put_impl", "index_copy", "take", "masked_scatter")
_RANDOM = _packets("bernoulli", "native_dropout", "_fused_dropout", "rand", "randn",
                   "rand_like", "randn_like", "uniform", "normal", "randint", "randint_like",
                   "randperm", "multinomial", "exponential")
_SOFTMAX = _packets("_softmax", "_log_softmax", "_softmax_backward_data",
                    "_log_softmax_backward_data", "_safe_softmax", "special_log_softmax")
_FREE = _packets("detach", "alias", "lift_fresh", "empty", "empty_like", "empty_strided",
                 "_local_scalar_dense", "set_", "resize_", "sym_size", "sym_stride")


def _conv_groups(pkt: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, int]:
    """(groups, input channels per group) of a convolution op, from its weight's shape."""
    groups = 1
    if pkt is _aten.convolution_backward:
        groups = int(args[9]) if len(args) > 9 else int(kwargs.get("groups", 1))
        weight = args[2] if len(args) > 2 else None
    elif pkt in (_aten.convolution, _aten._convolution):
        groups = int(args[8]) if len(args) > 8 else int(kwargs.get("groups", 1))
        weight = args[1] if len(args) > 1 else None
    else:
        weight = args[1] if len(args) > 1 else None
    per = int(weight.shape[1]) if isinstance(weight, torch.Tensor) and weight.dim() > 1 else 0
    return groups, per


#: matrix products, and where their two matrix operands are in the arguments
_MM = {pkt: at for pkts, at in ((_packets("mm", "bmm"), 0), (_packets("addmm", "baddbmm"), 1))
       for pkt in pkts}


def _is_matvec(pkt: Any, args: tuple[Any, ...]) -> bool:
    """A matrix product ``(.., m, k) @ (.., k, n)`` with ``m``, ``n`` or ``k`` of 1: the BLAS
    runs it as a matrix-vector or outer product (``edgeplan.work``, family ``matvec``)."""
    at = _MM.get(pkt)
    if at is None or len(args) < at + 2:
        return False
    a, b = args[at], args[at + 1]
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or \
            a.dim() < 2 or b.dim() < 2:
        return False
    return 1 in (a.shape[-2], a.shape[-1], b.shape[-1])


def family_of(pkt: Any, args: tuple[Any, ...], kwargs: dict[str, Any], has_flops: bool) -> str:
    """The family (``edgeplan.work.FAMILIES``) of one operation."""
    if pkt in _CONV:
        groups, per_group = _conv_groups(pkt, args, kwargs)
        return "depthwise" if groups > 1 and per_group == 1 else "conv"
    if has_flops:
        return "matvec" if _is_matvec(pkt, args) else "matmul"
    if pkt in _NORM:
        return "norm"
    if pkt in _POOL:
        return "pool"
    if pkt in _GATHER:
        return "gather"
    if pkt in _RANDOM:
        return "random"
    if pkt in _SOFTMAX:
        return "softmax"
    return "elementwise"


def _nbytes(t: torch.Tensor) -> int:
    try:
        return min(t.numel() * t.element_size(), t.untyped_storage().nbytes())
    except (RuntimeError, NotImplementedError):  # e.g. tensors without storage
        return t.numel() * t.element_size()


class WorkCounter(TorchDispatchMode):
    """``with WorkCounter() as wc: ...`` then ``wc.work()`` (see the module docstring)."""

    def __init__(self, timed: bool = False, sync: Any = None) -> None:
        super().__init__()
        self._sync = sync  # timed on CUDA: synchronise before and after each op
        from torch.utils.flop_counter import flop_registry
        self._formulas = {**flop_registry, **flop_mapping()}
        self._acc: dict[str, list[float]] = {}
        self.timed = timed
        # op, family, flops, bytes, seconds, large bytes (0 or the op's bytes)
        self.rows: list[tuple[str, str, float, int, float, int]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if self.timed:
            if self._sync is not None:
                self._sync()
            t0 = time.perf_counter()
            out = func(*args, **kwargs)
            if self._sync is not None:
                self._sync()
            dt = time.perf_counter() - t0
        else:
            out = func(*args, **kwargs)
            dt = 0.0
        pkt = func.overloadpacket
        if func.is_view or pkt in _FREE:
            return out
        formula = self._formulas.get(pkt)
        flops = float(formula(*args, **kwargs, out_val=out)) if formula is not None else 0.0
        fam = family_of(pkt, args, kwargs, formula is not None)
        ins = tree_flatten((args, kwargs))[0]
        outs = tree_flatten(out)[0]
        in_t = [t for t in ins if isinstance(t, torch.Tensor)]
        out_t = [t for t in outs if isinstance(t, torch.Tensor)]
        moved = sum(_nbytes(t) for t in in_t + out_t)
        # fresh results only: an in-place (or out=) result is memory the op was given
        given = {storage_key(t)[0] for t in in_t}
        fresh = sum(_nbytes(t) for t in out_t if storage_key(t)[0] not in given)
        large = moved if fresh >= LARGE_RESULT_BYTES else 0
        acc = self._acc.setdefault(fam, [0, 0.0, 0, 0])
        acc[0] += 1
        acc[1] += flops
        acc[2] += moved
        acc[3] += large
        if self.timed:
            self.rows.append((str(pkt), fam, flops, moved, dt, large))
        return out

    def work(self) -> Work:
        return Work.of({f: FamilyWork(int(a[0]), float(a[1]), int(a[2]), int(a[3]))
                        for f, a in self._acc.items()})
