"""Run a plan: execute chain-model schedules as PyTorch training steps and measure them.

``edgeplan.torchrun`` imports PyTorch (``pip install 'edgeplan[torch]'``). The pieces:

* :class:`ChainExecutor` / :func:`run_step` -- one training step following a schedule exactly
  (``Fn``, ``Fall``, ``B``, ``free_a``, ``free_A`` of docs/chain-model.md §3), gradients equal
  to plain autograd, dropout masks and batch-norm statistics as in a plain step, live activation
  bytes measured by storage-level accounting at every op;
* :func:`measure_chain` -- the model's chain (sizes via the torch importer, host times of the
  executor's own ops, :class:`StageTimer`);
* :func:`verify_plan` -- predicted (simulator) vs measured peak and step time, with a verdict
  (on memory; a time ratio outside ``TIME_RATIO_RANGE`` is reported, not failed).

See docs/run.md.
"""

from __future__ import annotations

from .executor import (
                       ChainExecutor,
                       LossStage,
                       OpSample,
                       StepResult,
                       check_schedule,
                       run_step,
                       stage_list,
)
from .measure import (
                       MeasuredChain,
                       StageTimer,
                       measure_chain,
                       time_stages,
                       time_stages_isolated,
                       without_tmp,
)
from .verify import TIME_RATIO_RANGE, Verification, build_model, make_input, verify_plan

__all__ = ["ChainExecutor", "LossStage", "OpSample", "StepResult", "check_schedule", "run_step",
           "stage_list", "MeasuredChain", "StageTimer", "measure_chain", "time_stages",
           "time_stages_isolated", "without_tmp", "TIME_RATIO_RANGE", "Verification",
           "build_model", "make_input", "verify_plan"]
