"""edgeplan: plan neural-network training on edge devices.

Does a model fit a device's memory, what does activation checkpointing (recomputation) cost to
make it fit, and which schedule to run. The library never prints or exits; ``edgeplan.cli`` is
a thin command line over it (ARCHITECTURE.md).

The front doors::

    from edgeplan import load_model, find_device, make_plan
    plan = make_plan(load_model("examples/resnet18.yaml"), find_device("jetson-nano"))
    plan.feasible, plan.result.schedule, plan.result.frontier

``prepare`` + ``solve`` run any strategy of the registry on the same set-up; ``compare`` and
``check`` are the use cases behind ``edgeplan compare`` and ``edgeplan check``.
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

# The front doors are loaded on first use (PEP 562), so that ``import edgeplan.cli`` (every
# command's start-up) pays only for the modules the command needs (``gate``, the formats, ...
# are not all needed by every command: 0.26-0.29 s against 0.27-0.34 s on the development
# host). ``compare`` is imported at once: it is also a sub-module's name, and importing the
# sub-module would otherwise bind ``edgeplan.compare`` to the module, not the function.
_EXPORTS = {
    "Chain": "chain", "Stage": "chain", "make_chain": "chain",
    "EdgeplanError": "errors", "InfeasibleError": "errors", "InputError": "errors",
    "LimitError": "errors", "ModelError": "errors", "ScheduleError": "errors",
    "UnitError": "errors", "UnknownNameError": "errors",
    "find_device": "formats.device_file", "load_device": "formats.device_file",
    "load_model": "formats.model_file",
    "check": "gate",
    "OffloadRequest": "plan", "Plan": "plan", "make_plan": "plan",
    "Problem": "problem", "prepare": "problem", "solve": "problem",
    "Op": "schedule", "OpKind": "schedule", "Schedule": "schedule",
    "Trace": "simulator", "simulate": "simulator",
    "STRATEGIES": "solvers.registry", "get_strategy": "solvers.registry",
}
_RENAMED = {"solve": "solve_problem"}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeplan' has no attribute {name!r}")
    from importlib import import_module
    value = getattr(import_module(f".{module}", __name__), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from .chain import Chain, Stage, make_chain
    from .errors import (
        EdgeplanError,
        InfeasibleError,
        InputError,
        LimitError,
        ModelError,
        ScheduleError,
        UnitError,
        UnknownNameError,
    )
    from .formats.device_file import find_device, load_device
    from .formats.model_file import load_model
    from .gate import check
    from .plan import OffloadRequest, Plan, make_plan
    from .problem import Problem, prepare
    from .problem import solve_problem as solve
    from .schedule import Op, OpKind, Schedule
    from .simulator import Trace, simulate
    from .solvers.registry import STRATEGIES, get_strategy

from .compare import compare  # noqa: E402  (see above)

__all__ = ["__version__", "Chain", "Stage", "make_chain", "EdgeplanError", "InfeasibleError",
           "InputError", "LimitError", "ModelError", "ScheduleError", "UnitError",
           "UnknownNameError", "Op", "OpKind", "Schedule", "Trace", "simulate", "load_model",
           "find_device", "load_device", "Problem", "prepare", "solve", "Plan", "OffloadRequest",
           "make_plan", "compare", "check", "STRATEGIES", "get_strategy"]
