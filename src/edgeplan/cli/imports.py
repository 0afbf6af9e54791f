"""``edgeplan import``: produce a model file (format 1) by measuring a framework model.

PyTorch is imported only when ``edgeplan import torch`` runs (``pip install 'edgeplan[torch]'``),
onnx only when ``edgeplan import onnx`` runs (``pip install 'edgeplan[onnx]'``). Errors are
``edgeplan.errors.InputError`` (exit code 2).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ..formats._files import write_atomic
from ..formats.model_file import WRITABLE_OPTIMIZERS
from ..training import modes_for, parse_modes, parse_train
from ._app import CONTEXT, CommandGroup
from ._options import TORCH_DTYPES as _DTYPES
from ._options import TORCH_INPUT_DTYPES as _INPUT_DTYPES


@click.group("import", context_settings=CONTEXT, cls=CommandGroup)
def import_group() -> None:
    """Measure a model in a framework and write an edgeplan model file (format 1).

    \b
    Example:
      edgeplan import torch edgeplan.importers.zoo:resnet18 \\
          --input-shape 3x224x224 --batch 8 -o resnet18.yaml
    """


def _command_line(spec: str, input_shape: str | None, batch: int, dtype: str,
                  input_dtype: str | None, input_high: int | None, args: tuple[str, ...],
                  name: str | None, description: str | None, optimizer: str, timing: bool,
                  tmp: bool, seed: int, output: str, graph: dict) -> str:
    """The canonical command that reproduces the file (recorded in its header)."""
    parts = ["edgeplan", "import", "torch", spec]
    if input_shape is not None:
        parts += ["--input-shape", input_shape]
    for i in graph["inputs"]:
        parts += ["--input", i]
    parts += ["--batch", str(batch)]
    if graph["loss"]:
        parts += ["--loss", graph["loss"]]
    if graph["granularity"] != "auto":
        parts += ["--granularity", graph["granularity"]]
    if graph["carry"] != "small":
        parts += ["--carry", graph["carry"]]
    for leaf in graph["leaves"]:
        parts += ["--leaf", leaf]
    if graph["capture"]:
        parts.append("--capture")
    if dtype != "float32":
        parts += ["--dtype", dtype]
    if graph["amp"]:
        parts += ["--amp", graph["amp"]]
    if input_dtype:
        parts += ["--input-dtype", input_dtype]
    if input_high is not None:
        parts += ["--input-high", str(input_high)]
    for a in args:
        parts += ["--arg", a]
    if graph["modes"]:  # as the flag is written: lora:8, not the file's lora-r8
        parts += ["--modes", ",".join(m.replace("lora-r", "lora:") for m in graph["modes"])]
    if graph["train"]:
        parts += ["--train", graph["train"]]
    if graph["lora_targets"]:
        parts += ["--lora-targets", ",".join(graph["lora_targets"])]
    if graph["lora_alpha"] is not None:
        parts += ["--lora-alpha", f"{graph['lora_alpha']:g}"]
    parts += _file_options(name, description, optimizer)
    if timing:
        parts.append("--time")
    if not tmp:
        parts.append("--no-tmp")
    if seed != 0:
        parts += ["--seed", str(seed)]
    parts += ["-o", output]
    return " ".join(shlex.quote(p) for p in parts)


def _file_options(name: str | None, description: str | None, optimizer: str) -> list[str]:
    """The options both importers record about the file they write (non-defaults only)."""
    parts = []
    if name:
        parts += ["--name", name]
    if description:
        parts += ["--description", description]
    if optimizer != "momentum":
        parts += ["--optimizer", optimizer]
    return parts


def _emit(output: str, text: str) -> None:
    """The model file to stdout (``-o -``) or, atomically, to a file."""
    if output == "-":
        click.echo(text, nl=False)
    else:
        write_atomic(Path(output), text)


def _echo_table(columns: tuple[tuple[str, int], ...], rows: list[tuple[str, ...]]) -> None:
    """The per-stage summary on stderr: the stage name, then right-aligned columns."""
    w = max(len(r[0]) for r in rows)
    click.echo("  ".join([f"{'stage':<{w}}"] + [f"{h:>{n}}" for h, n in columns]), err=True)
    for r in rows:
        click.echo("  ".join([f"{r[0]:<{w}}"] + [f"{v:>{n}}" for v, (_, n) in
                                                  zip(r[1:], columns)]), err=True)


@import_group.command("torch")
@click.argument("spec", metavar="MODULE:CALLABLE")
@click.option("--input-shape", default=None, metavar="DIMS",
              help="Per-sample input shape, e.g. 3x224x224 (images) or 128 (token ids).")
@click.option("--input", "inputs", multiple=True, metavar="NAME=DIMS[:DTYPE]",
              help="A named forward argument instead of --input-shape (repeatable), e.g. "
                   "--input input_ids=128:int64 --input attention_mask=128:int64 (masks are "
                   "all ones).")
@click.option("--batch", type=click.IntRange(min=1), required=True, help="Batch size.")
@click.option("--dtype", type=click.Choice(_DTYPES), default="float32", show_default=True,
              help="Parameter and activation dtype.")
@click.option("--amp", type=click.Choice(("bf16", "fp16")), default=None,
              help="Measure mixed-precision training: every forward under torch.autocast with "
                   "this dtype, fp32 parameters and gradients; the file's precision is this.")
@click.option("--input-dtype", type=click.Choice(_INPUT_DTYPES), default=None,
              help="dtype of the input batch (default: --dtype); int64 for token ids.")
@click.option("--input-high", type=click.IntRange(min=1), default=None,
              help="Integer inputs are drawn from [0, N) (default: the first stage's embedding "
                   "size).")
@click.option("--arg", "args", multiple=True, metavar="KEY=VALUE",
              help="Keyword argument for the builder (repeatable), e.g. --arg steps=32.")
@click.option("--name", default=None, help="Model name in the file (default: the callable's name).")
@click.option("--description", default=None, help="Description line (default: generated).")
@click.option("--optimizer", type=click.Choice(WRITABLE_OPTIMIZERS), default="momentum",
              show_default=True,
              help="Optimizer written to the file (sets optimizer-state memory).")
@click.option("--time", "timing", is_flag=True,
              help="Also measure host forward/backward times (median of repeats): "
                   "fwd_time/bwd_time.")
@click.option("--tmp/--no-tmp", "tmp", default=True, show_default=True,
              help="Measure fwd_tmp/bwd_tmp from allocator events (else write 0).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--loss", default=None, metavar="cross-entropy|mse|sum|MODULE:CALLABLE",
              help="The model returns logits (a tensor, a dict with 'logits', or a tuple): add "
                   "this loss as the chain's last stage (a callable takes the output).")
@click.option("--capture", "capture_graph", is_flag=True,
              help="Capture the graph (torch.fx) even for an nn.Sequential (default: only for "
                   "other modules).")
@click.option("--granularity", default="auto", show_default=True, metavar="auto|finest|N",
              help="Captured graphs: a stage per weighted op's segment, every candidate cut, "
                   "or about N stages of balanced FLOPs.")
@click.option("--carry", type=click.Choice(("none", "small", "all")), default="small",
              show_default=True,
              help="Captured graphs: which other live tensors a cut may carry (small: together "
                   "at most a quarter of the main one, e.g. an attention mask; all: also long "
                   "skips, counted in every stage they cross).")
@click.option("--leaf", "leaves", multiple=True, metavar="NAME",
              help="Keep this submodule as one node (repeatable): the way around control "
                   "flow that torch.fx cannot trace.")
@click.option("--modes", "modes", default=None, metavar="frozen,bias,lora:R",
              help="Also measure every stage in these training modes (comma list) and write "
                   "them under the stage's modes: (docs/finetune.md).")
@click.option("--train", default=None, metavar="SELECTION",
              help="The file's default --train selection (e.g. last:3 or lora:8,last:1); the "
                   "modes it needs are measured.")
@click.option("--lora-targets", default=None, metavar="NAMES",
              help="Linear layers that get LoRA adapters: comma list of names or dotted tails, "
                   "wildcards allowed (e.g. query,value or attn.*; default: every nn.Linear).")
@click.option("--lora-alpha", type=click.FloatRange(min=0, min_open=True), default=None,
              help="LoRA scaling alpha (the update is scaled by alpha/R; default: R).")
@click.option("-o", "--output", default="-", show_default=True, metavar="FILE",
              help="Model file to write ('-' = stdout).")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
def torch_cmd(spec: str, input_shape: str | None, inputs: tuple[str, ...], batch: int,
              dtype: str, amp: str | None, input_dtype: str | None, input_high: int | None,
              args: tuple[str, ...], name: str | None, description: str | None,
              optimizer: str, timing: bool, tmp: bool, seed: int, loss: str | None,
              capture_graph: bool, granularity: str, carry: str, leaves: tuple[str, ...],
              modes: str | None, train: str | None, lora_targets: str | None,
              lora_alpha: float | None, output: str, quiet: bool) -> None:
    """Measure MODULE:CALLABLE stage by stage on a random batch and write a model file.

    Any nn.Module: its forward is captured with torch.fx and cut where one activation is live
    (residual blocks stay whole; skip values are carried or the cut is not taken); an
    nn.Sequential's top-level children are the stages as they are. Give --loss for a model
    that returns logits.

    Per stage: out and saved bytes (autograd saved-tensor hooks), forward and backward FLOPs
    (torch.utils.flop_counter), transient bytes (allocator events), parameter bytes. See
    docs/importing.md.

    \b
    Example:
      edgeplan import torch edgeplan.importers.zoo:resnet18 \\
          --input-shape 3x224x224 --batch 8 -o resnet18.yaml
    """
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise InputError("PyTorch is not installed; the torch importer needs it",
                         hint="pip install 'edgeplan[torch]'")
    from ..importers import torch as ti
    from ..torchrun.user_model import parse_inputs, parse_kwargs, parse_shape

    if (input_shape is None) == (not inputs):
        raise click.UsageError("give --input-shape DIMS, or --input NAME=DIMS[:DTYPE] for each "
                               "forward argument")
    shape = parse_shape(input_shape) if input_shape is not None else None
    named = parse_inputs(inputs) if inputs else None
    kwargs = parse_kwargs(args)
    progress = None
    if not quiet and sys.stderr.isatty():  # progress on a terminal only
        def progress(i: int, n: int, stage: str) -> None:
            click.echo(f"\r  measuring stage {i}/{n} {stage:<24}", err=True, nl=False)
    gran: str | int = int(granularity) if granularity.isdigit() else granularity
    mode_names = parse_modes(modes)
    if train is not None:
        train = parse_train(train).text
    targets = tuple(t.strip() for t in (lora_targets or "").split(",") if t.strip())
    wants_lora = any(m.startswith("lora") for m in mode_names + modes_for(train))
    if (targets or lora_alpha is not None) and not wants_lora:
        raise click.UsageError("--lora-targets and --lora-alpha need a LoRA mode (--modes "
                               "lora:R or --train ...,lora:R)")
    result = ti.import_torch(spec, input_shape=shape, batch=batch, dtype=dtype,
                             input_dtype=input_dtype, input_high=input_high, kwargs=kwargs,
                             name=name, description=description, measure_tmp=tmp, timing=timing,
                             seed=seed, progress=progress, inputs=named, loss=loss,
                             granularity=gran, carry=carry, leaves=leaves,
                             capture_graph=capture_graph or None, modes=mode_names,
                             lora_targets=targets, lora_alpha=lora_alpha, train=train,
                             amp=amp)
    graph = {"inputs": inputs, "loss": loss, "granularity": granularity, "carry": carry,
             "leaves": leaves, "capture": capture_graph, "modes": mode_names, "train": train,
             "lora_targets": targets, "lora_alpha": lora_alpha, "amp": amp}
    cmd = _command_line(spec, None if shape is None else "x".join(str(d) for d in shape), batch,
                        dtype, input_dtype, input_high, args, name, description, optimizer,
                        timing, tmp, seed, output, graph)
    text = ti.to_yaml(result, command=cmd, optimizer=optimizer)
    _emit(output, text)
    if not quiet:
        click.echo("\r" + " " * 60 + "\r", err=True, nl=False)
        _echo_table((("out", 11), ("saved", 11), ("fwd_tmp", 11), ("bwd_tmp", 11),
                     ("fwd FLOP", 14), ("params", 12)), ti.summary_rows(result))
        dest = "stdout" if output == "-" else output
        if result.capture is not None:
            for line in _capture_lines(result):
                click.echo(line, err=True)
        for line in ti.mode_lines(result):
            click.echo(line, err=True)
        click.echo(f"{result.name}: {len(result.stages)} stages, {result.param_count:,} "
                   f"parameters, input {result.input_bytes:,} B, sum of saved "
                   f"{result.total_saved_bytes:,} B -> {dest}", err=True)
    sys.stdout.flush()


def _capture_lines(result: Any) -> list[str]:
    """What graph capture found: candidate cuts, the cuts used, what crosses each."""
    c = result.capture
    out = [f"captured with torch.fx: {c['candidates']} candidate cuts, {len(c['cuts'])} used "
           f"(granularity {c['granularity']}, carry {c['carry']})"]
    names = [s.name for s in result.stages]
    for k, cut in enumerate(c["cuts"]):
        extra = f" + carried {', '.join(cut.carried)}" if cut.carried else ""
        out.append(f"  {names[k]} | {names[k + 1]}: {cut.main}{extra}")
    return out


def _onnx_command_line(path: str, batch: int | None, dims: tuple[str, ...], stages: str,
                       tuple_cuts: bool, name: str | None, description: str | None,
                       optimizer: str, output: str, amp: str | None) -> str:
    """The canonical ``edgeplan import onnx`` command that reproduces the file."""
    parts = ["edgeplan", "import", "onnx", path]
    if batch is not None:
        parts += ["--batch", str(batch)]
    for d in dims:
        parts += ["--dim", d]
    if stages != "auto":
        parts += ["--stages", stages]
    if tuple_cuts:
        parts.append("--tuple-cuts")
    if amp:
        parts += ["--amp", amp]
    parts += _file_options(name, description, optimizer)
    parts += ["-o", output]
    return " ".join(shlex.quote(p) for p in parts)


@import_group.command("onnx")
@click.argument("path", metavar="MODEL.onnx")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Batch size for a symbolic batch dimension (default: the graph's fixed "
                   "batch, else 1).")
@click.option("--dim", "dims", multiple=True, metavar="NAME=SIZE",
              help="Size of another symbolic input dimension (repeatable), e.g. --dim "
                   "seq_len=128.")
@click.option("--stages", default="auto", show_default=True, metavar="auto|nodes|N",
              help="auto: a stage per weighted op's segment; nodes: one stage per articulation "
                   "segment; N: about N stages balancing FLOPs.")
@click.option("--tuple-cuts", is_flag=True,
              help="Also cut where several tensors are live, all made since the previous cut "
                   "(an unrolled RNN's (h, c), parallel branches); out is their sum.")
@click.option("--amp", type=click.Choice(("bf16", "fp16")), default=None,
              help="Mixed precision: the tensors' types as torch.autocast (CPU lists) would "
                   "make them, computed from the graph; parameters stay fp32.")
@click.option("--name", default=None, help="Model name in the file (default: the file's stem).")
@click.option("--description", default=None, help="Description line (default: generated).")
@click.option("--optimizer", type=click.Choice(WRITABLE_OPTIMIZERS), default="momentum",
              show_default=True,
              help="Optimizer written to the file (sets optimizer-state memory).")
@click.option("-o", "--output", default="-", show_default=True, metavar="FILE",
              help="Model file to write ('-' = stdout).")
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr (warnings still show).")
def onnx_cmd(path: str, batch: int | None, dims: tuple[str, ...], stages: str, tuple_cuts: bool,
             amp: str | None, name: str | None, description: str | None, optimizer: str,
             output: str, quiet: bool) -> None:
    """Estimate an ONNX graph as a chain and write a model file; nothing is run.

    Shapes come from ONNX shape inference at the batch; the graph is cut where exactly one
    activation tensor is live (never inside a residual block; --tuple-cuts: or several made since
    the previous cut); FLOPs and saved bytes come from
    per-op rules; a cross-entropy `loss` stage is added. Ops without a cost rule are reported
    (stderr, the file's derivation and a comment on their stage). See docs/importing.md.

    \b
    Example:
      edgeplan import onnx resnet18.onnx --batch 8 -o resnet18.yaml
    """
    from ..importers import onnx as oi

    dim_map = oi.parse_dims(dims)
    stage_mode = oi.parse_stages(stages)
    result = oi.import_onnx(path, batch=batch, dims=dim_map, stages=stage_mode,
                            tuple_cuts=tuple_cuts, name=name, description=description, amp=amp)
    cmd = _onnx_command_line(path, batch, dims, str(stage_mode), tuple_cuts, name, description,
                             optimizer, output, amp)
    text = oi.to_yaml(result, command=cmd, optimizer=optimizer)
    _emit(output, text)
    if not quiet:
        _echo_table((("nodes", 5), ("out", 11), ("saved", 11), ("fwd FLOP", 14), ("params", 12)),
                    oi.summary_rows(result))
        dest = "stdout" if output == "-" else output
        click.echo(f"{result.name}: {len(result.stages)} stages ({result.segment_count} "
                   f"articulation segments), {result.param_count:,} parameters, input "
                   f"{result.input_bytes:,} B, sum of saved {result.total_saved_bytes:,} B "
                   f"-> {dest}", err=True)
    if result.uncosted:
        click.echo(f"edgeplan: warning: {len(result.uncosted)} op(s) could not be costed "
                   f"({oi.uncosted_summary(result)}); their FLOPs are not counted - see the "
                   "file's derivation", err=True)
    sys.stdout.flush()


__all__ = ["import_group"]
