"""edgeplan: plan neural-network training on edge devices.

Does a model fit a device's memory, what does activation checkpointing (recomputation) cost to
make it fit, and which schedule to run. The library never prints or exits; ``edgeplan.cli`` is
a thin command line over it.
"""

__version__ = "0.1.0"

from .chain import Chain, Stage, make_chain
from .errors import (
                     EdgeplanError,
                     InfeasibleError,
                     InputError,
                     ModelError,
                     ScheduleError,
                     UnitError,
                     UnknownNameError,
)
from .schedule import Op, OpKind, Schedule
from .simulator import Trace, simulate

__all__ = ["__version__", "Chain", "Stage", "make_chain", "EdgeplanError", "InfeasibleError",
           "InputError", "ModelError", "ScheduleError", "UnitError", "UnknownNameError", "Op",
           "OpKind", "Schedule", "Trace", "simulate"]
