"""Device profiles and the memory accounting of docs/chain-model.md §2.

Total training memory = fixed part + activation part. The fixed part is the device's reserved
memory (OS, runtime), the parameters, the gradients and optimizer state of the parameters that
train (``optimizers.OPTIMIZER_STATE``: SGD 0x, momentum 1x, Adam/AdamW 2x, 8-bit Adam about 0.5x).
The activation budget is what remains.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import InputError
from .optimizers import optimizer_state_bytes
from .work import FamilyCost

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
DEVICE_KINDS = ("gpu", "cpu", "mcu")


@dataclass(frozen=True, kw_only=True)
class StorageTier:
    name: str
    read_bytes_per_s: float
    write_bytes_per_s: float
    read_latency_s: float = 0.0
    write_latency_s: float = 0.0
    capacity_bytes: int | None = None

    def write_time_s(self, nbytes: int) -> float:
        return self.write_latency_s + nbytes / self.write_bytes_per_s

    def read_time_s(self, nbytes: int) -> float:
        return self.read_latency_s + nbytes / self.read_bytes_per_s


@dataclass(frozen=True, kw_only=True)
class DeviceProfile:
    name: str
    title: str
    kind: str
    total_bytes: int
    reserved_bytes: int
    precision: str
    peak_flops: dict[str, float]
    sustained_flops: dict[str, float]
    training_power_w: float
    idle_power_w: float | None = None
    bandwidth_bytes_per_s: float | None = None
    storage: tuple[StorageTier, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)
    notes: str = ""
    path: str = ""
    # calibrated per op family (``edgeplan.work``): precision -> family -> cost
    families: dict[str, dict[str, FamilyCost]] = field(default_factory=dict)

    def family_costs(self, precision: str | None = None) -> dict[str, FamilyCost] | None:
        """The calibrated op-family costs at ``precision`` (None: not calibrated for it, so
        stage times come from FLOPs at the sustained rate)."""
        return self.families.get(precision or self.precision)

    @property
    def usable_bytes(self) -> int:
        """Memory available to training: total minus reserved."""
        return self.total_bytes - self.reserved_bytes

    def flop_rate(self, precision: str | None = None) -> float:
        """Sustained FLOP/s used to turn FLOPs into seconds (docs/chain-model.md §7)."""
        p = precision or self.precision
        if p not in self.sustained_flops:
            have = ", ".join(sorted(self.sustained_flops)) or "none"
            raise InputError(f"device {self.name!r} has no sustained FLOP/s for {p} "
                             f"(it has: {have})", source=self.path or self.name,
                             where=f"compute.sustained.{p}",
                             hint=f"time it at another precision, e.g. --precision "
                                  f"{have.split(',')[0]}, or measure the device with "
                                  "`edgeplan calibrate`")
        return self.sustained_flops[p]


@dataclass(frozen=True, kw_only=True)
class MemoryBudget:
    """The breakdown of docs/chain-model.md §2, in bytes."""

    usable_bytes: int          # device memory available to training (total - reserved, or --memory)
    reserved_bytes: int        # the device's reserve (0 when --memory overrides)
    param_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    optimizer: str
    master_bytes: int = 0      # fp32 master copy of 16-bit trainable parameters

    @property
    def fixed_bytes(self) -> int:
        return self.param_bytes + self.grad_bytes + self.optimizer_bytes + self.master_bytes

    @property
    def activation_bytes(self) -> int:
        """What the schedule may use for activations (may be negative: nothing fits)."""
        return self.usable_bytes - self.fixed_bytes

    def to_dict(self) -> dict:
        return {"usable_bytes": self.usable_bytes, "reserved_bytes": self.reserved_bytes,
                "param_bytes": self.param_bytes, "grad_bytes": self.grad_bytes,
                "optimizer_bytes": self.optimizer_bytes, "optimizer": self.optimizer,
                "master_bytes": self.master_bytes,
                "fixed_bytes": self.fixed_bytes, "activation_budget_bytes": self.activation_bytes}


def memory_budget(*, param_bytes: int, optimizer: str, device: DeviceProfile | None = None,
                  memory_bytes: int | None = None,
                  trainable_bytes: int | None = None, master_factor: int = 0) -> MemoryBudget:
    """Activation budget for a model with ``param_bytes`` of parameters on ``device``.

    ``memory_bytes`` (``--memory``) replaces the device's usable memory (total - reserved).
    Gradients and optimizer state count for ``trainable_bytes`` (default: every parameter).
    ``master_factor``: a 16-bit recipe keeps an fp32 master copy of the trainable parameters
    (``master_factor`` = 2 bytes of master per byte of fp16/bf16 parameter; Micikevicius et
    al., "Mixed Precision Training", ICLR 2018), and the optimizer's state is kept on it.
    """
    trainable = param_bytes if trainable_bytes is None else trainable_bytes
    master = master_factor * trainable
    state = optimizer_state_bytes(optimizer, master or trainable)
    if memory_bytes is not None:
        usable, reserved = memory_bytes, 0
    elif device is not None:
        usable, reserved = device.usable_bytes, device.reserved_bytes
    else:
        raise ValueError("memory_budget needs a device or memory_bytes")
    return MemoryBudget(usable_bytes=usable, reserved_bytes=reserved, param_bytes=param_bytes,
                        grad_bytes=trainable, optimizer_bytes=state, optimizer=optimizer,
                        master_bytes=master)
