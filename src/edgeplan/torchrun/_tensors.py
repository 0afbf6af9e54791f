"""Small tensor helpers shared by the executor and the measurements: pytree leaves, storage keys,
state snapshots (RNG, buffers, gradients)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map

from ..errors import InputError


def leaves(obj: Any) -> list[torch.Tensor]:
    """The tensors of a pytree (a tensor, or tuples/lists/dicts of them), in flatten order."""
    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


def detach_all(obj: Any) -> Any:
    return tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, obj)


INPUT_DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "bool")


def make_input(shape: tuple[int, ...], batch: int, dtype: str = "float32", *,
               high: int | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
    """A random input batch ``(batch, *shape)``: normal floats, or integers in ``[0, high)``."""
    if dtype not in INPUT_DTYPES:
        raise InputError(f"expected one of {', '.join(INPUT_DTYPES)}, got {dtype!r}",
                         param="input_dtype")
    td = getattr(torch, dtype)
    full = (batch, *shape)
    if td.is_floating_point:
        return torch.randn(full, dtype=td).to(device)
    if td == torch.bool:
        return (torch.rand(full) < 0.5).to(device)
    return torch.randint(0, max(1, int(high or 2)), full, dtype=td).to(device)


def first_embedding_size(stages: list[tuple[str, torch.nn.Module]]) -> int | None:
    """Vocabulary size of the first stage's first ``nn.Embedding`` (the range of token ids),
    None when the first stage has none."""
    for sub in stages[0][1].modules():
        if isinstance(sub, torch.nn.Embedding):
            return int(sub.num_embeddings)
    return None


def storage_key(t: torch.Tensor) -> tuple[int, int]:
    """``(storage pointer, storage bytes)``, the unit of storage-level accounting.

    Views share their base's storage and count once; a zero-sized or opaque storage falls back to
    the tensor's identity and its own size (the same convention as the torch importer).
    """
    try:
        s = t.untyped_storage()
        ptr, n = int(s.data_ptr()), int(s.nbytes())
        if ptr == 0:
            return (-id(t), n)
        return (ptr, n)
    except (RuntimeError, NotImplementedError):  # opaque / sparse tensors
        return (-id(t), int(t.numel() * t.element_size()))


def storage_bytes(tensors: Iterable[torch.Tensor | None], exclude: set[int] = frozenset()) -> int:
    """Bytes of the distinct storages of ``tensors`` (each storage once), leaving out the
    storages whose pointer is in ``exclude``."""
    seen: dict[int, int] = {}
    for t in tensors:
        if t is None:
            continue
        k, n = storage_key(t)
        if k in exclude:
            continue
        if n > seen.get(k, -1):
            seen[k] = n
    return sum(seen.values())


def fixed_storage_keys(modules: Iterable[torch.nn.Module]) -> set[int]:
    """Storage pointers of parameters and buffers: fixed memory, never activations."""
    keys: set[int] = set()
    for m in modules:
        for p in m.parameters():
            keys.add(storage_key(p)[0])
        for b in m.buffers():
            keys.add(storage_key(b)[0])
    return keys


# --- RNG ------------------------------------------------------------------------------------------

def cuda_in_use() -> bool:
    return bool(torch.cuda.is_available() and torch.cuda.is_initialized())


def get_rng() -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """CPU RNG state and, when CUDA is initialised, the state of every CUDA device."""
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if cuda_in_use() else None
    return cpu, cuda


def set_rng(state: tuple[torch.Tensor, list[torch.Tensor] | None]) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None and cuda_in_use():
        torch.cuda.set_rng_state_all(cuda)


# --- batch-norm statistics -----------------------------------------------------------------------

_STAT_NAMES = ("running_mean", "running_var", "num_batches_tracked")


def _norm_modules(module: torch.nn.Module) -> list[torch.nn.Module]:
    from torch.nn.modules.batchnorm import _NormBase
    return [m for m in module.modules()
            if isinstance(m, _NormBase) and m.training and m.track_running_stats]


@contextmanager
def frozen_running_stats(module: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Run a forward of ``module`` without touching the running statistics of its batch-norm
    (and instance-norm) layers: each statistic buffer is replaced by a clone for the duration and
    the original object is put back afterwards.

    Swapping (rather than copying the old values back) matters: autograd saves ``running_mean``
    and ``running_var`` for the batch-norm backward, and an in-place restore would bump their
    version counter and make the later backward fail. Yields the clones (their storages are not
    activations; the executor leaves them out of its accounting).
    """
    swapped: list[tuple[torch.nn.Module, str, torch.Tensor]] = []
    clones: list[torch.Tensor] = []
    for m in _norm_modules(module):
        for name in _STAT_NAMES:
            b = m._buffers.get(name)
            if b is None:
                continue
            c = b.clone()
            swapped.append((m, name, b))
            clones.append(c)
            m._buffers[name] = c
    try:
        yield clones
    finally:
        for m, name, b in swapped:
            m._buffers[name] = b


# --- whole-model state (measurements must not disturb a model) ------------------------------------

@contextmanager
def preserved_state(modules: Iterable[torch.nn.Module]) -> Iterator[None]:
    """Restore buffers (values), parameter gradients and the RNG state on exit.

    Used around the measurement passes (chain sizes, stage times), which run training-mode
    forwards and backwards on the real modules. Gradients are set to None on entry: autograd
    accumulates into an existing ``.grad`` in place, which would change the caller's tensors.
    """
    mods = list(modules)
    rng = get_rng()
    bufs: list[tuple[torch.Tensor, torch.Tensor]] = []
    grads: list[tuple[torch.nn.Parameter, torch.Tensor | None]] = []
    seen: set[int] = set()
    for m in mods:
        for b in m.buffers():
            if id(b) not in seen:
                seen.add(id(b))
                bufs.append((b, b.detach().clone()))
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                grads.append((p, p.grad))
    for p, _ in grads:
        p.grad = None
    try:
        yield
    finally:
        with torch.no_grad():
            for b, v in bufs:
                b.copy_(v)
        for p, g in grads:
            p.grad = g
        set_rng(rng)
