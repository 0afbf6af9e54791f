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

from .chain import Chain, Stage, make_chain
from .compare import compare
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

__all__ = ["__version__", "Chain", "Stage", "make_chain", "EdgeplanError", "InfeasibleError",
           "InputError", "LimitError", "ModelError", "ScheduleError", "UnitError",
           "UnknownNameError", "Op", "OpKind", "Schedule", "Trace", "simulate", "load_model",
           "find_device", "load_device", "Problem", "prepare", "solve", "Plan", "OffloadRequest",
           "make_plan", "compare", "check", "STRATEGIES", "get_strategy"]
