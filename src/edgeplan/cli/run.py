"""``edgeplan run``: execute a plan's schedule on the real PyTorch model and compare.

PyTorch is imported only when the command runs. Exit codes: 0 the measured activation peak is
within the budget and within the tolerance of the prediction; 1 it exceeds the plan's budget or
the prediction by more than the tolerance; 2 bad input (plan file, model, options, a stage-count
mismatch).
"""

from __future__ import annotations

import sys

import click

from ..errors import InputError
from ._app import Output, command
from ._options import TORCH_DTYPES as _DTYPES
from ._options import TORCH_INPUT_DTYPES as _INPUT_DTYPES
from ._options import json_option


@command("run")
@click.argument("spec", metavar="MODULE:CALLABLE")
@click.option("--plan", "plan_path", required=True, type=click.Path(dir_okay=False),
              help="Plan written by `edgeplan solve MODEL ... -o plan.json`.")
@click.option("--input-shape", default=None, metavar="DIMS",
              help="Per-sample input shape, e.g. 3x32x32 (default: the plan's model file).")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Batch size (default: the plan's).")
@click.option("--dtype", type=click.Choice(_DTYPES), default=None,
              help="Parameter and activation dtype (default: the model file's precision, else "
                   "float32).")
@click.option("--input-dtype", type=click.Choice(_INPUT_DTYPES), default=None,
              help="dtype of the input batch (default: the model file's, else --dtype).")
@click.option("--input-high", type=click.IntRange(min=1), default=None,
              help="Integer inputs are drawn from [0, N) (default: the first stage's embedding "
                   "size).")
@click.option("--arg", "args", multiple=True, metavar="KEY=VALUE",
              help="Keyword argument for the builder (repeatable).")
@click.option("--device", default="cpu", show_default=True,
              help="Torch device to run on (cpu, cuda, cuda:1).")
@click.option("--tolerance", type=click.FloatRange(0, 10), default=0.10, show_default=True,
              help="Allowed excess of the measured activation peak over the prediction.")
@click.option("--repeats", type=click.IntRange(0, 1000), default=5, show_default=True,
              help="Extra steps timed for the wall time, and store-all steps timed for the "
                   "stage times, in alternation (the fastest of each counts).")
@click.option("--time/--no-time", "timing", default=True, show_default=True,
              help="Measure per-stage host times for the predicted step time.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="PyTorch intra-op threads for the run (torch.set_num_threads; default: "
                   "PyTorch's, one per core). 1 makes host times far steadier on a busy "
                   "machine.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--ops", "show_ops", is_flag=True, help="Also print every op's bytes.")
@json_option
@click.pass_obj
def run_cmd(out: Output, spec: str, plan_path: str, input_shape: str | None, batch: int | None,
            dtype: str | None, input_dtype: str | None, input_high: int | None,
            args: tuple[str, ...], device: str, tolerance: float, repeats: int, timing: bool,
            threads: int | None, seed: int, show_ops: bool, as_json: bool) -> int:
    """Execute the plan's schedule for one training step of MODULE:CALLABLE (an nn.Sequential
    whose top-level children are the plan's stages, the last returning the loss) and compare the
    measured activation peak and step time with the prediction.

    Measured: bytes of the distinct storages the executor keeps alive (input, activations,
    autograd's saved tensors, gradients; parameters and buffers left out), at every op.
    Predicted: the simulator on the chain measured from the same model (temporaries not
    counted). See docs/run.md.

    Exit 0 within the budget and the tolerance; 1 over the plan's budget or more than the
    tolerance above the prediction; 2 bad input.

    \b
    Example:
      edgeplan import torch examples/train_with_edgeplan.py:small_cnn_with_loss \\
          --input-shape 3x32x32 --batch 16 --time -o cnn.yaml
      edgeplan solve cnn.yaml --memory 12MiB -o plan.json
      edgeplan run examples/train_with_edgeplan.py:small_cnn_with_loss --plan plan.json
    """
    from ..formats.plan_file import load_plan, plan_model
    from ..report.run_report import run_doc, run_renderable

    if as_json:
        out.promise_json("run")
    plan = load_plan(plan_path)
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise InputError("PyTorch is not installed; `edgeplan run` needs it",
                         hint="pip install 'edgeplan[torch]'") from None
    from ..torchrun import build_model, stage_list, verify_plan
    from ..torchrun.user_model import parse_kwargs, parse_shape

    chain, file_input = plan_model(plan, plan_path)
    if input_shape is not None:
        shape = parse_shape(input_shape)
    elif file_input:
        shape = file_input["shape"]
    else:
        raise InputError("give --input-shape (the plan's model file, which records it, was not "
                         "found)", source="--input-shape")
    if dtype is None:
        # the dtype the model file was measured in (not the solve's FLOP-rate precision)
        dtype = (file_input or {}).get("dtype_params") or "float32"
    if input_dtype is None and file_input and file_input.get("dtype"):
        input_dtype = file_input["dtype"]
    b = batch or plan.get("batch")
    if b is None:
        raise InputError("give --batch (the plan records none)", source="--batch")
    kwargs = parse_kwargs(args)
    model = build_model(spec, kwargs, seed=seed)
    n = len(stage_list(model))
    L = max(op.stage for op in plan["schedule"].ops) if len(plan["schedule"]) else 0
    for what, k in (("schedule", L), ("plan", plan.get("stages"))):
        if k is not None and k != n:
            raise InputError(f"the {what} is for {k} stages but {spec} has {n}",
                             source=plan_path)
    if chain is not None and chain.length != n:
        chain = None
    if batch is not None and plan.get("batch") not in (None, batch):
        chain = None  # the model file's numbers are for another batch
    threads_before = torch.get_num_threads()
    if threads is not None and threads != threads_before:
        torch.set_num_threads(threads)
    try:
        v = verify_plan(model, plan["schedule"], chain, input_shape=shape, batch=b, dtype=dtype,
                        input_dtype=input_dtype, input_high=input_high, device=device,
                        budget_bytes=plan.get("budget_bytes"), tolerance=tolerance,
                        repeats=repeats, time_reps=max(1, repeats), timing=timing, seed=seed,
                        copy_model=False, name=plan.get("model") or spec.rpartition(":")[2],
                        modes=plan.get("modes"), lora=(file_input or {}).get("lora"),
                        amp=(file_input or {}).get("amp"), optimizer=plan.get("optimizer"))
    finally:
        if torch.get_num_threads() != threads_before:
            torch.set_num_threads(threads_before)
    code = v.exit_code
    if as_json:
        out.json(run_doc(v, plan, code, inputs={
            "model": spec, "plan": plan_path, "batch": b, "input_shape": list(shape),
            "dtype": v.dtype, "device": device, "tolerance": tolerance, "threads": threads}))
    else:
        out.stdout.print(run_renderable(v, plan, show_ops))
    out.notes(v.notes[1:])
    sys.stdout.flush()
    return code


__all__ = ["run_cmd"]
