"""Optimizers and the bytes of state they keep per trainable parameter (docs/finetune.md)."""

from __future__ import annotations

from fractions import Fraction

from .errors import UnknownNameError

#: Optimizer state, in bytes per byte of fp32 trainable parameter (docs/finetune.md, sources):
#: SGD keeps none; momentum one buffer; Adam and AdamW two (exp_avg, exp_avg_sq of
#: torch.optim.Adam/AdamW: decoupled weight decay adds no state, Loshchilov and Hutter 2019);
#: 8-bit Adam two uint8 states plus one fp32 absmax per 2048-element block per state
#: (Dettmers et al., "8-bit Optimizers via Block-wise Quantization", ICLR 2022): (2 + 8/2048)
#: bytes per 4-byte parameter. bitsandbytes keeps 32-bit state for tensors under 4096 elements
#: (min_8bit_size); edgeplan counts every tensor at 8 bits (a lower bound for tiny layers).
OPTIMIZER_STATE: dict[str, Fraction] = {
    "sgd": Fraction(0),
    "momentum": Fraction(1),
    "adam": Fraction(2),
    "adamw": Fraction(2),
    # the same state, stepped with fused=True: no step temporaries (step_transient_bytes)
    "adam-fused": Fraction(2),
    "adamw-fused": Fraction(2),
    "adam8bit": Fraction(2 * 2048 + 8, 4 * 2048),
}


def optimizer_state_bytes(optimizer: str, trainable_bytes: int) -> int:
    """Bytes of optimizer state for ``trainable_bytes`` of fp32 trainable parameters
    (rounded up)."""
    if optimizer not in OPTIMIZER_STATE:
        raise UnknownNameError.for_name("optimizer", optimizer, OPTIMIZER_STATE,
                                        param="optimizer")
    f = OPTIMIZER_STATE[optimizer] * trainable_bytes
    return -(-f.numerator // f.denominator)


def step_transient_bytes(optimizer: str, trainable_bytes: int, largest_bytes: int,
                         device_kind: str) -> int:
    """Bytes ``torch.optim``'s step allocates for its temporaries, after the backward (measured
    with PyTorch's allocator, torch 2.13; tests/test_optimizers.py checks it): SGD and
    momentum update in place (0); Adam and AdamW in their for-loop implementation (torch's
    default off CUDA) two temporaries the size of the tensor being updated (``2 x
    largest_bytes``), in their foreach implementation (the default on CUDA) one copy of every
    trainable parameter (``trainable_bytes``), fused (``fused=True``) none. 8-bit Adam
    (bitsandbytes) is not measured: 0. ``largest_bytes``: the largest trainable tensor, or an
    upper bound of it."""
    if optimizer not in OPTIMIZER_STATE:
        raise UnknownNameError.for_name("optimizer", optimizer, OPTIMIZER_STATE,
                                        param="optimizer")
    if optimizer not in ("adam", "adamw"):
        return 0
    return trainable_bytes if device_kind == "gpu" else 2 * largest_bytes
