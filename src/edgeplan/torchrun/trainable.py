"""What trains in a PyTorch model: frozen, bias-only and LoRA stages (docs/finetune.md).

The torch importer measures every stage once per training mode (``--modes``) by setting the
stage's parameters' ``requires_grad`` the way the mode trains and measuring it again with the
same meter (``torchrun.meter``): autograd then saves, allocates and computes exactly what the
mode needs, so the per-mode numbers come from the same hooks and counters as the trained ones.

``frozen``
    no parameter requires grad; the stage input still does (a frozen stage inside the trained
    part runs its backward for the input gradient, docs/chain-model.md §8).
``bias``
    only parameters named ``bias`` require grad (BitFit, Ben Zaken et al. ACL 2022; the
    bias-only update of TinyTL, Cai et al. NeurIPS 2020), normalisation biases included.
``lora-rR``
    every targeted ``nn.Linear`` is wrapped in a :class:`LoRALinear` of rank R (Hu et al., ICLR
    2022): the base weight and bias are frozen, ``lora_A`` (R x in) and ``lora_B`` (out x R)
    are added and train; every other parameter of the stage is frozen.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..errors import InputError, UnknownNameError
from ..training import BIAS, FROZEN, TRAIN, lora_rank
from .meter import StageMeasure, measure_stages

__all__ = ["LoRALinear", "apply_modes", "linear_names", "lora_adapters", "measure_modes",
           "mode_grads", "stage_mode_numbers", "trainable_flags"]


class LoRALinear(nn.Module):
    """``y = base(x) + (alpha / r) * B A x`` (Hu et al. 2022, eq. 3 with the alpha/r scaling).

    ``base`` is the wrapped ``nn.Linear``, frozen. ``A`` starts Kaiming-uniform and ``B`` at
    zero (as PEFT does), so the wrapped layer starts equal to the base layer.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None):
        super().__init__()
        if rank < 1:
            raise InputError(f"expected a LoRA rank >= 1, got {rank}", param="lora")
        self.base = base
        self.rank = rank
        self.scaling = (alpha if alpha is not None else rank) / rank
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, dtype=w.dtype,
                                               device=w.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, dtype=w.dtype,
                                               device=w.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        for p in base.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lora = torch.nn.functional.linear(torch.nn.functional.linear(x, self.lora_A),
                                          self.lora_B)
        return self.base(x) + lora * self.scaling

    def extra_repr(self) -> str:
        return f"rank={self.rank}, scaling={self.scaling:g}"


def _matches(qualname: str, patterns: Sequence[str] | None) -> bool:
    """A pattern matches a module's dotted name, its last component or a dotted tail
    (``q`` matches ``blocks.0.attn.q``; ``attn.*`` matches ``blocks.0.attn.q``); shell
    wildcards allowed. No patterns: every linear layer."""
    if not patterns:
        return True
    parts = qualname.split(".")
    tails = [".".join(parts[k:]) for k in range(len(parts))]
    return any(fnmatch.fnmatchcase(t, pat) for pat in patterns for t in tails)


def _linears(root: nn.Module) -> Iterator[tuple[str, nn.Module, str, nn.Linear]]:
    """(qualified name, parent, attribute, layer) of every ``nn.Linear`` not inside a LoRA
    wrapper."""
    for pname, parent in root.named_modules():
        if isinstance(parent, LoRALinear):
            continue
        for attr, child in parent.named_children():
            if isinstance(child, nn.Linear):
                yield (f"{pname}.{attr}" if pname else attr), parent, attr, child


def _targeted(sname: str, module: nn.Module, targets: Sequence[str] | None
              ) -> list[tuple[str, nn.Module, str, nn.Linear]]:
    """(``stage.qualified.name``, parent, attribute, layer) of every linear layer inside stage
    ``sname`` that ``targets`` select (by its name in the stage or with the stage's prefix)."""
    return [(f"{sname}.{qual}", parent, attr, lin) for qual, parent, attr, lin in _linears(module)
            if _matches(qual, targets) or _matches(f"{sname}.{qual}", targets)]


def linear_names(stages: Iterable[tuple[str, nn.Module]]) -> list[str]:
    """``stage.qualified.name`` of every linear layer of the chain."""
    out: list[str] = []
    for s, m in stages:
        out += [s] if isinstance(m, nn.Linear) else [f"{s}.{q}" for q, *_ in _linears(m)]
    return out


@contextmanager
def lora_adapters(stages: Sequence[tuple[str, nn.Module]], rank: int,
                  targets: Sequence[str] | None = None, alpha: float | None = None
                  ) -> Iterator[tuple[list[tuple[str, nn.Module]], dict[str, list[str]]]]:
    """Wrap the targeted linear layers of the stages in :class:`LoRALinear` for the duration.

    Yields the stages (a stage that is itself a targeted linear layer is replaced by its
    wrapper) and, per stage name, the wrapped layers' names. A layer used by several stages
    gets one wrapper. Raises ``InputError`` (naming the layers there are) when nothing matches.
    """
    made: dict[int, LoRALinear] = {}
    undo: list[tuple[nn.Module, str, nn.Module]] = []
    per_stage: dict[str, list[str]] = {}
    new_stages: list[tuple[str, nn.Module]] = []
    flags = [(p, p.requires_grad) for _, m in stages for p in m.parameters()]

    def wrap(lin: nn.Linear) -> LoRALinear:
        if id(lin) not in made:
            made[id(lin)] = LoRALinear(lin, rank, alpha)
        return made[id(lin)]

    try:
        for sname, module in stages:
            found: list[str] = []
            if isinstance(module, nn.Linear):
                if _matches(sname, targets):
                    module = wrap(module)
                    found.append(sname)
            else:
                for name, parent, attr, lin in _targeted(sname, module, targets):
                    setattr(parent, attr, wrap(lin))
                    undo.append((parent, attr, lin))
                    found.append(name)
            per_stage[sname] = found
            new_stages.append((sname, module))
        if not any(per_stage.values()):
            have = linear_names(stages)
            if not have:
                raise InputError("the model has no nn.Linear layer to put LoRA adapters on",
                                 param="lora_targets")
            leaf_names = sorted({n.rsplit(".", 1)[-1] for n in have})
            raise UnknownNameError.for_name(
                "LoRA target", ",".join(targets or ()), leaf_names, param="lora_targets",
                otherwise=f"the linear layers are named {', '.join(leaf_names[:12])}")
        yield new_stages, per_stage
    finally:
        for parent, attr, lin in reversed(undo):
            setattr(parent, attr, lin)
        for p, flag in flags:  # the wrappers froze their base layers: as they were before
            p.requires_grad_(flag)


def trainable_flags(module: nn.Module, mode: str) -> dict[str, bool]:
    """``requires_grad`` per parameter name of ``module`` in ``mode`` (module docstring)."""
    rank = lora_rank(mode)
    out = {}
    for name, _ in module.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if mode == TRAIN:
            out[name] = True
        elif mode == FROZEN:
            out[name] = False
        elif mode == BIAS:
            out[name] = leaf == "bias"
        elif rank is not None:
            out[name] = leaf in ("lora_A", "lora_B")
        else:
            raise InputError(f"unknown training mode {mode!r}", param="modes")
    return out


@contextmanager
def mode_grads(stages: Sequence[tuple[str, nn.Module]], mode: str) -> Iterator[None]:
    """Set every stage parameter's ``requires_grad`` for ``mode``; restored afterwards."""
    before: list[tuple[Any, bool]] = []
    try:
        for _, module in stages:
            flags = trainable_flags(module, mode)
            for name, p in module.named_parameters():
                before.append((p, p.requires_grad))
                p.requires_grad_(flags[name])
        yield
    finally:
        for p, flag in reversed(before):
            p.requires_grad_(flag)


def measure_modes(stages: Sequence[tuple[str, nn.Module]], x0: Any, modes: Sequence[str],
                  targets: Sequence[str] | None = None, alpha: float | None = None, *,
                  measure_tmp: bool = True, timing: bool = False,
                  progress: Callable[[int, int, str], None] | None = None,
                  autocast: Any = None
                  ) -> tuple[dict[str, list[StageMeasure]], dict[str, list[str]]]:
    """Every stage measured again in each mode by the one meter (``torchrun.meter``), the
    model put back as it was after each; returns (mode -> measures, stage -> the layers LoRA
    wrapped)."""
    out: dict[str, list[StageMeasure]] = {}
    wrapped_layers: dict[str, list[str]] = {}
    for mode in modes:
        def prog(i: int, n: int, stage: str, mode: str = mode) -> None:
            if progress:
                progress(i, n, f"{stage} ({mode})")
        rank = lora_rank(mode)
        if rank is None:
            with mode_grads(stages, mode):
                out[mode] = measure_stages(list(stages), x0, measure_tmp=measure_tmp,
                                           timing=timing, progress=prog, autocast=autocast)
            continue
        with lora_adapters(stages, rank, targets, alpha) as (wrapped, names), \
                mode_grads(wrapped, mode):
            out[mode] = measure_stages(wrapped, x0, measure_tmp=measure_tmp, timing=timing,
                                       progress=prog, autocast=autocast)
        wrapped_layers = names
    return out, wrapped_layers


def _diff(new: int, old: int) -> int | None:
    """A mode's number where it differs from the trained one (None: the same)."""
    return None if new == old else new


def stage_mode_numbers(stages: Sequence[tuple[str, nn.Module]], trained: Sequence[StageMeasure],
                       by_mode: dict[str, list[StageMeasure]],
                       wrapped: dict[str, list[str]]) -> list[dict[str, dict[str, Any]]]:
    """Per stage, ``{mode: numbers}`` as ``model.ModeSpec`` keywords: what trains, what is
    added, and every number that differs from the trained one (None where it does not). A
    stage without parameters has no modes; ``lora-rR`` only where a layer was wrapped."""
    out: list[dict[str, dict[str, Any]]] = []
    for k, (name, module) in enumerate(stages):
        modes: dict[str, dict[str, Any]] = {}
        if any(True for _ in module.parameters()):
            s = trained[k]
            for mode, measured in by_mode.items():
                if lora_rank(mode) is not None and not wrapped.get(name):
                    continue
                m = measured[k]
                modes[mode] = {
                    "trainable_bytes": m.trainable_bytes,
                    "added_bytes": max(0, m.param_bytes - s.param_bytes),
                    "saved_bytes": _diff(m.saved_bytes, s.saved_bytes),
                    "fwd_tmp_bytes": _diff(m.fwd_tmp_bytes, s.fwd_tmp_bytes),
                    "bwd_tmp_bytes": _diff(m.bwd_tmp_bytes, s.bwd_tmp_bytes),
                    "fwd_flops": _diff(m.fwd_flops, s.fwd_flops),
                    "bwd_flops": _diff(m.bwd_flops, s.bwd_flops),
                    "fwd_time_s": m.fwd_time_s, "bwd_time_s": m.bwd_time_s,
                    "fwd_work": None if m.fwd_work == s.fwd_work else m.fwd_work,
                    "bwd_work": None if m.bwd_work == s.bwd_work else m.bwd_work}
        out.append(modes)
    return out


def apply_modes(model: nn.Module, stages: list[tuple[str, nn.Module]],
                modes: Sequence[str], targets: Sequence[str] | None = None,
                alpha: float | None = None) -> list[str]:
    """Make ``model`` train as ``modes`` (one per stage) say, for good: LoRA adapters are put
    on the targeted linear layers of ``lora-rR`` stages (in the stage modules and at the same
    path in ``model``, which the captured stages share; a stage that is itself a targeted
    linear layer is replaced in ``stages`` by its wrapper), and every parameter's
    ``requires_grad`` is set (a parameter several stages use trains if one of them trains it).
    Returns the wrapped layers' names."""
    made: dict[int, LoRALinear] = {}
    names: list[str] = []
    by_path = {id(m): path for path, m in model.named_modules()}

    def wrap(lin: nn.Linear, rank: int) -> LoRALinear:
        if id(lin) not in made:
            made[id(lin)] = LoRALinear(lin, rank, alpha)
            path = by_path.get(id(lin))
            if path:  # the same layer in the user's model (captured stages share it)
                owner_path, _, owner_attr = path.rpartition(".")
                owner = model.get_submodule(owner_path) if owner_path else model
                setattr(owner, owner_attr, made[id(lin)])
        return made[id(lin)]

    for k, ((sname, module), mode) in enumerate(zip(stages, modes, strict=True)):
        rank = lora_rank(mode)
        if rank is None:
            continue
        if isinstance(module, nn.Linear):
            if _matches(sname, targets):
                stages[k] = (sname, wrap(module, rank))
                names.append(sname)
            continue
        for name, parent, attr, lin in _targeted(sname, module, targets):
            setattr(parent, attr, wrap(lin, rank))
            names.append(name)
    trains: dict[int, bool] = {}
    params: dict[int, nn.Parameter] = {}
    for (_, module), mode in zip(stages, modes, strict=True):
        flags = trainable_flags(module, mode)
        for name, p in module.named_parameters():
            params[id(p)] = p
            trains[id(p)] = trains.get(id(p), False) or flags[name]
    for pid, p in params.items():
        p.requires_grad_(trains[pid])
    return names
