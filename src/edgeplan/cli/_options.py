"""Option types and the option decorators several commands share.

A quantity option parses with one of ``edgeplan.units``' parsers (the only parser of
quantities); a bad value is a usage error (exit 2) with the parser's message. Shared options are
declared once here, so ``solve``, ``compare`` and ``check`` cannot drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .. import units
from ..errors import InputError

F = TypeVar("F", bound=Callable[..., Any])
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
TORCH_DTYPES = ("float32", "float16", "bfloat16", "float64")
TORCH_INPUT_DTYPES = TORCH_DTYPES + ("int64", "int32", "uint8", "bool")


def unit_callback(parse: Callable[[Any], Any], *,
                  positive: bool = False) -> Callable[[Any, Any, Any], Any]:
    """A click option callback that parses a quantity with ``parse``."""
    def cb(_ctx: Any, _param: Any, value: Any) -> Any:
        if value is None:
            return None
        try:
            v = parse(value)
        except InputError as e:
            raise click.BadParameter(e.message) from None
        if positive and v <= 0:
            raise click.BadParameter(f"expected a positive value, got {value!r}")
        return v
    return cb


def login_shell() -> str:
    """The name of the user's shell from ``$SHELL`` (empty when unset)."""
    return os.path.basename(os.environ.get("SHELL", "")).strip()


def comma_list(text: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [] if not text else [p.strip() for p in text.split(",") if p.strip()]


def slots_option(help: str = "Memory slots of the DP (resolution of the memory axis) "
                             "[default: 500].") -> Callable[[F], F]:
    return click.option("--slots", type=click.IntRange(1, 100_000), default=None, help=help)


def batch_option(help: str) -> Callable[[F], F]:
    return click.option("--batch", type=click.IntRange(1, 10**7), default=None, help=help)


def precision_option(help: str) -> Callable[[F], F]:
    return click.option("--precision", type=click.Choice(PRECISIONS), default=None, help=help)


def memory_option(help: str) -> Callable[[F], F]:
    return click.option("--memory", "-m", callback=unit_callback(units.parse_size),
                        metavar="SIZE", help=help)


def train_option(help: str = "What trains: all (default), last:K (the last K stages with "
                 "parameters), from:NAME, bias (biases only), lora:R (LoRA adapters of rank "
                 "R, measured by `import torch --modes`); combine with commas, e.g. "
                 "lora:8,last:1. Frozen leading stages run forward only "
                 "(docs/finetune.md).") -> Callable[[F], F]:
    return click.option("--train", default=None, metavar="WHAT", help=help)


def optimizer_option(help: str = "Optimizer, for its state memory (and the step's temporaries; "
                     "-fused: created with fused=True, none): sgd, momentum, adam, adamw, "
                     "adam-fused, adamw-fused, adam8bit [default: the model file's]."
                     ) -> Callable[[F], F]:
    from ..training import OPTIMIZER_STATE
    return click.option("--optimizer", type=click.Choice(tuple(OPTIMIZER_STATE)), default=None,
                        help=help)


def master_weights_option(f: F) -> F:
    return click.option("--master-weights", is_flag=True,
                        help="The file's 16-bit parameters train with an fp32 master copy "
                             "(and the optimizer state on it), as in mixed-precision recipes "
                             "that keep the model in fp16/bf16.")(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="One JSON document on stdout.")(f)


def plot_option(help: str) -> Callable[[F], F]:
    return click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
                        metavar="FILE", help=help)
