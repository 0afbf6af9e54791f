"""``edgeplan run``: execute a plan's schedule on the real PyTorch model and compare.

Registered into the main command line with ``main.add_command(run_cmd)``. PyTorch is imported
only when the command runs. Exit codes: 0 the measured activation peak is within the budget and
within the tolerance of the prediction; 1 it exceeds the plan's budget or the prediction by more
than the tolerance; 2 bad input (plan file, model, options, a stage-count mismatch).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .errors import InputError

_DTYPES = ("float32", "float16", "bfloat16", "float64")
_INPUT_DTYPES = _DTYPES + ("int64", "int32", "uint8", "bool")
_PRECISION_DTYPE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def load_plan(path: str) -> dict[str, Any]:
    """Read a plan written by ``edgeplan solve ... -o plan.json`` and return the parts ``run``
    needs: ``schedule``, ``budget_bytes``, ``batch``, ``stages``, ``peak_bytes``, ``cost_s``,
    ``model_path``, ``precision``, ``model`` (name)."""
    from .schedule import Schedule

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read the plan: {e.strerror or e}", source=path) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not JSON: {e.msg} at line {e.lineno}", source=path) from None
    if not isinstance(doc, dict) or "edgeplan_json" not in doc:
        raise InputError("not an edgeplan JSON document (write one with `edgeplan solve MODEL "
                         "... -o plan.json`)", source=path)
    if doc.get("command") != "solve":
        raise InputError(f"expected a plan from `edgeplan solve`, got a {doc.get('command')!r} "
                         "document", source=path)
    data = doc.get("data") if isinstance(doc.get("data"), dict) else {}
    inputs = doc.get("inputs") if isinstance(doc.get("inputs"), dict) else {}
    result = data.get("result") if isinstance(data.get("result"), dict) else None
    if result is None:
        raise InputError("the plan has no result", source=path, where="data.result")
    items = result.get("schedule")
    if items is None:
        raise InputError("the plan has no schedule (no schedule fits its budget)", source=path,
                         where="data.result.schedule")
    schedule = Schedule.from_list(items, source=path)
    budget = data.get("budget_bytes")
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)):
        raise InputError(f"expected a whole number of bytes, got {budget!r}", source=path,
                         where="data.budget_bytes")
    model = inputs.get("model") if isinstance(inputs.get("model"), dict) else {}
    batch = model.get("batch")
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
        raise InputError(f"expected a batch size, got {batch!r}", source=path,
                         where="inputs.model.batch")
    stages = model.get("stages")
    if stages is None and isinstance(data.get("chain"), dict):
        stages = data["chain"].get("stages")
    return {"schedule": schedule, "budget_bytes": budget, "batch": batch, "stages": stages,
            "peak_bytes": result.get("peak_bytes"), "cost_s": result.get("cost_s"),
            "model_path": model.get("path"), "model": model.get("name"),
            "precision": inputs.get("precision")}


def read_model_input(path: str | Path) -> dict | None:
    """``{"shape": (3, 32, 32), "dtype": "float32" | None, "dtype_params": "float32" | None}``
    from a model file's ``input: {shape, dtype}`` and ``precision`` (for ``--verify``-style
    callers that know only the model file); None when the file does not record a shape."""
    try:
        import yaml
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - optional information
        return None
    inp = raw.get("input") if isinstance(raw, dict) else None
    if not isinstance(inp, dict) or not isinstance(inp.get("shape"), list):
        return None
    try:
        shape = tuple(int(d) for d in inp["shape"])
    except (TypeError, ValueError):
        return None
    dt = inp.get("dtype") if inp.get("dtype") in _INPUT_DTYPES else None
    return {"shape": shape, "dtype": dt,
            "dtype_params": _PRECISION_DTYPE.get(raw.get("precision"))}


def _model_file(plan: dict, plan_path: str) -> tuple[Any, dict | None]:
    """(chain scaled to the plan's batch, raw ``input`` mapping) of the plan's model file, when
    it can be found (as recorded, or next to the plan); (None, None) otherwise."""
    mp = plan.get("model_path")
    if not mp:
        return None, None
    cands = [Path(mp), Path(plan_path).parent / Path(mp).name]
    path = next((c for c in cands if c.is_file()), None)
    if path is None:
        return None, None
    from .chain import Chain, Stage
    from .loaders import load_model
    try:
        spec = load_model(path)
    except Exception:  # noqa: BLE001 - the model file is optional here
        return None, read_model_input(path)
    if plan.get("batch") and plan["batch"] != spec.batch:
        spec = spec.scaled_to_batch(plan["batch"])
    chain = Chain(name=spec.name, input_bytes=spec.input_bytes, stages=tuple(
        Stage(name=s.name, fwd_time_s=0.0, bwd_time_s=0.0, out_bytes=s.out_bytes,
              saved_bytes=s.saved_bytes, fwd_tmp_bytes=s.fwd_tmp_bytes,
              bwd_tmp_bytes=s.bwd_tmp_bytes, param_bytes=s.param_bytes)
        for s in spec.stages))
    return chain, read_model_input(path)


def _fmt_bytes(n: int | None) -> str:
    from . import units
    return "-" if n is None else units.format_size(n)


def _fmt_s(t: float | None) -> str:
    if t is None:
        return "-"
    return f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.3f} s"


def _table(v: Any, plan: dict, show_ops: bool):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    head = Text(f"{v.model}: {v.stages} stages, batch {v.batch}, {v.dtype}, {v.device}; "
                f"{len(v.schedule)} ops, {v.step.recomputed_forwards} recomputed forwards")
    t = Table()
    t.add_column("")
    t.add_column("predicted", justify="right")
    t.add_column("measured", justify="right")
    t.add_column("measured / predicted", justify="right")
    t.add_row("activation peak", _fmt_bytes(v.predicted_peak_bytes),
              _fmt_bytes(v.measured_peak_bytes), f"{v.peak_ratio:.4f}")
    tr = v.time_ratio
    t.add_row(f"step time (host, {v.threads} thr)",
              _fmt_s(v.predicted_time_s), _fmt_s(v.measured_time_s),
              "-" if tr is None else f"{tr:.3f}")
    parts: list[Any] = [head, t]
    lines = []
    if v.plan_peak_bytes is not None or plan.get("peak_bytes") is not None:
        pk = plan.get("peak_bytes") if plan.get("peak_bytes") is not None else v.plan_peak_bytes
        lines.append(f"plan's peak (model file, temporaries included): {_fmt_bytes(pk)}")
    if v.budget_bytes is not None:
        lines.append(f"plan's activation budget: {_fmt_bytes(v.budget_bytes)} "
                     f"({'within' if v.within_budget else 'EXCEEDED'})")
    if v.step.cuda_peak_bytes is not None:
        lines.append(f"CUDA max allocated during the step: {_fmt_bytes(v.step.cuda_peak_bytes)} "
                     f"(started at {_fmt_bytes(v.step.cuda_start_bytes)})")
    lines.append("per-op bytes match the simulator exactly" if v.exact else
                 "per-op bytes differ from the simulator (see --ops)")
    verdict = ("ok: within the budget and within "
               f"{v.tolerance:.0%} of the predicted peak") if v.ok else (
        "FAILED: " + ("over the budget" if v.within_budget is False else
                      f"more than {v.tolerance:.0%} above the predicted peak"))
    lines.append(verdict)
    time_ok = v.time_ok
    if time_ok is not None:
        from .torchrun.verify import TIME_RATIO_RANGE
        rng = f"[{TIME_RATIO_RANGE[0]:g}, {TIME_RATIO_RANGE[1]:g}]"
        r = f"{tr:.2f}" if tr >= 0.1 else f"{tr:.2g}"
        lines.append(f"step time: measured / predicted {r}, within {rng}" if time_ok else
                     f"TIME PREDICTION OFF: measured / predicted {r}, outside {rng} "
                     "(not part of the verdict, which is on memory; see the note)")
    parts.append(Text("\n".join(lines)))
    if show_ops:
        o = Table(title="per op (live activation bytes)", title_justify="left")
        for c in ("#", "op", "predicted transient", "measured transient", "predicted after",
                  "measured after", "time"):
            o.add_column(c, justify="right" if c not in ("op",) else "left")
        for r in v.op_rows():
            o.add_row(str(r["index"]), f"{r['op']} {r['stage']}",
                      f"{r['predicted_transient_bytes']:,}", f"{r['measured_transient_bytes']:,}",
                      f"{r['predicted_after_bytes']:,}", f"{r['measured_after_bytes']:,}",
                      _fmt_s(r["time_s"]))
        parts.append(o)
    return Group(*parts)


@click.command("run", context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def run_cmd(spec: str, plan_path: str, input_shape: str | None, batch: int | None,
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
    from . import cli as _cli
    from .report import jsondoc

    if as_json:
        _cli._json_command["name"] = "run"
    plan = load_plan(plan_path)
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise InputError("PyTorch is not installed; `edgeplan run` needs it",
                         hint="pip install 'edgeplan[torch]'") from None
    from .importers.torch_import import parse_kwargs, parse_shape
    from .torchrun import build_model, stage_list, verify_plan

    chain, file_input = _model_file(plan, plan_path)
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
                        copy_model=False, name=plan.get("model") or spec.rpartition(":")[2])
    finally:
        if torch.get_num_threads() != threads_before:
            torch.set_num_threads(threads_before)
    code = v.exit_code
    if as_json:
        d = v.to_dict(ops=True)
        d["time"]["plan_cost_s"] = plan.get("cost_s")  # the plan's (device) estimate
        d["plan"] = {"path": plan_path, "budget_bytes": plan.get("budget_bytes"),
                     "peak_bytes": plan.get("peak_bytes"), "cost_s": plan.get("cost_s"),
                     "batch": plan.get("batch")}
        click.echo(jsondoc.dumps(jsondoc.envelope(
            "run", status="ok" if code == 0 else "failed", exit_code=code,
            inputs={"model": spec, "plan": plan_path, "batch": b, "input_shape": list(shape),
                    "dtype": v.dtype, "device": device, "tolerance": tolerance,
                    "threads": threads},
            data=d)))
    else:
        _cli._stdout().print(_table(v, plan, show_ops))
    err = _cli._stderr()
    for note in v.notes[1:]:
        err.print(f"note: {note}")
    sys.stdout.flush()
    return code


__all__ = ["run_cmd", "load_plan", "read_model_input"]
