"""Measure a PyTorch model as an edgeplan chain (docs/chain-model.md §1, model format 1).

An ``nn.Sequential`` (or a list of modules) is a chain already: its top-level children are the
stages and the last one returns the loss. Any other ``nn.Module`` is captured with torch.fx and
cut where one activation is live (``torchrun.capture``), and ``loss=`` adds the loss stage.
Every stage is then measured alone by the one stage measurer, ``torchrun.meter.measure_stages``,
whose docstring says how each number (``out``, ``saved``, FLOPs, transients, parameters, times)
is obtained; ``derivation_text`` writes the same into the model file.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import InputError
from ..formats.model_file import (
    ImportedMode,
    ImportedModel,
    ImportedStage,
    flops_txt,
    iec,
    write_model,
)
from ..torchrun._tensors import first_embedding_size, make_input
from ..torchrun.meter import (
    StageMeasure,
    alloc_events_supported,
    amp_dtype,
    grouped_conv_fix_active,
    measure_stages,
)
from ..torchrun.trainable import measure_modes, stage_mode_numbers
from ..torchrun.user_model import resolve
from ..training import FROZEN, lora_rank, modes_for, parse_modes, parse_train

DTYPES = ("float32", "float16", "bfloat16", "float64")
INPUT_DTYPES = DTYPES + ("int64", "int32", "uint8", "bool")
PRECISION_KEY = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


# --- results ------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    name: str
    description: str
    batch: int
    input_shape: tuple[int, ...] | None  # per sample (None: several named inputs)
    input_dtype: str
    input_bytes: int
    dtype: str
    stages: list[StageMeasure]
    param_count: int
    param_bytes: int
    torch_version: str
    measured_tmp: bool
    timed: bool
    date: str
    notes: list[str] = field(default_factory=list)
    conv_fix: bool = False  # the grouped-convolution backward FLOP correction was active
    seed: int = 0
    capture: dict | None = None      # graph capture: candidates, cuts, carry, granularity, loss
    input_names: str | None = None   # several named inputs: "name DIMS dtype, ..."
    # per training mode (file name -> the stages measured in it), docs/finetune.md
    modes: dict[str, list[StageMeasure]] = field(default_factory=dict)
    stage_modes: tuple[dict[str, dict[str, Any]], ...] = ()  # per stage: mode -> ModeSpec keys
    lora: dict | None = None         # targets, alpha, the wrapped layers per stage
    train: str | None = None         # the file's train: selection
    amp: str | None = None           # mixed precision measured under torch.autocast

    @property
    def total_saved_bytes(self) -> int:
        return sum(s.saved_bytes for s in self.stages)

    @property
    def lora_layer_count(self) -> int:
        """How many linear layers the LoRA modes wrapped."""
        return 0 if self.lora is None else sum(len(v) for v in self.lora["layers"].values())


def import_torch(spec: str, *, input_shape: tuple[int, ...] | None = None, batch: int,
                 dtype: str = "float32", input_dtype: str | None = None,
                 input_high: int | None = None, kwargs: dict[str, Any] | None = None,
                 name: str | None = None, description: str | None = None,
                 measure_tmp: bool = True, timing: bool = False, seed: int = 0,
                 progress: Callable[[int, int, str], None] | None = None,
                 inputs: dict[str, tuple[tuple[int, ...], str]] | None = None,
                 loss: str | None = None, granularity: str | int = "auto",
                 carry: str = "small", leaves: tuple[str, ...] = (),
                 capture_graph: bool | None = None, modes: tuple[str, ...] = (),
                 lora_targets: tuple[str, ...] = (), lora_alpha: float | None = None,
                 train: str | None = None, amp: str | None = None) -> ImportResult:
    """Resolve ``MODULE:CALLABLE``, build the model, make its chain and measure it.

    An ``nn.Sequential`` (or a list of modules) is a chain already: its top-level children are
    the stages, and the loss is inside the last one. Any other ``nn.Module`` (or any model with
    ``capture_graph=True``) is captured with torch.fx and cut into stages
    (``torchrun.capture``: ``granularity``, ``carry``, ``leaves``); ``loss`` (cross-entropy,
    mse, sum, or ``MODULE:CALLABLE`` taking the output) then adds the loss stage. ``inputs``
    names the forward arguments (per-sample shape, dtype) of a model that takes several.

    ``modes`` (``frozen``, ``bias``, ``lora-rR``; ``training.parse_modes``) measures every stage
    again in each training mode (``torchrun.trainable``); LoRA adapters go on the linear layers
    matching ``lora_targets`` (default: all). ``train`` is recorded as the file's selection and
    adds the modes it needs. ``amp`` (``bf16``, ``fp16``) measures mixed-precision training:
    every forward under ``torch.autocast`` with fp32 parameters (``torchrun.meter``); the file's
    precision is then ``amp``'s.
    """
    from ..torchrun.user_model import instantiate, sequential_stages

    if dtype not in DTYPES:
        raise InputError(f"expected one of {', '.join(DTYPES)}, got {dtype!r}", param="dtype")
    if input_dtype is None:
        input_dtype = dtype
    if input_dtype not in INPUT_DTYPES:
        raise InputError(f"expected one of {', '.join(INPUT_DTYPES)}, got {input_dtype!r}",
                         param="input_dtype")
    if batch < 1:
        raise InputError(f"expected a batch >= 1, got {batch}", param="batch")
    cast = amp_dtype(amp)
    if amp is not None and dtype != "float32":
        raise InputError(f"mixed precision keeps fp32 parameters: --amp {amp} needs --dtype "
                         f"float32, got {dtype}", param="amp")
    if (input_shape is None) == (not inputs):
        raise InputError("give the input shape, or named inputs (one of them)",
                         param="input_shape")
    for n, (_, dt) in (inputs or {}).items():
        if dt not in INPUT_DTYPES:
            raise InputError(f"{n}: expected one of {', '.join(INPUT_DTYPES)}, got {dt!r}",
                             param="input")
    obj, attr = resolve(spec)
    torch.manual_seed(seed)
    model = instantiate(obj, kwargs)
    td = getattr(torch, dtype)
    if isinstance(model, nn.Module):
        model.to(dtype=td)
        model.train()
    seq = None if capture_graph or loss is not None or inputs else sequential_stages(model)
    torch.manual_seed(seed)
    if inputs:
        high = input_high or first_embedding_size([("model", model)])
        x_named = {n: make_input(shape, batch, dt, high=2 if "mask" in n.lower() else high)
                   for n, (shape, dt) in inputs.items()}
        for n in x_named:
            if "mask" in n.lower():
                x_named[n] = torch.ones_like(x_named[n])
        example: Any = x_named
        x0: Any = tuple(x_named.values())
    else:
        assert input_shape is not None
        if input_high is None and not getattr(torch, input_dtype).is_floating_point:
            input_high = first_embedding_size(seq or [("model", model)])
        x0 = make_input(input_shape, batch, input_dtype, high=input_high)
        example = x0
    notes: list[str] = []
    capture_info = None
    if seq is not None:
        stages = seq
    else:
        from ..torchrun.capture import capture
        from ..torchrun.dropin import LOSSES, with_loss

        if not isinstance(model, nn.Module):
            raise InputError("graph capture needs an nn.Module", source="MODULE:CALLABLE")
        cap = capture(model, example, granularity=granularity, carry=carry, leaves=leaves)
        x0 = tuple(x_named.values()) if inputs else (x0,)
        loss_fn: Any = resolve(loss)[0] if loss is not None and loss not in LOSSES else loss
        stages = with_loss(cap, x0, loss_fn)
        if loss is None:
            notes.append("no --loss: the last stage's output is treated as the loss (give "
                         "--loss for a model that returns logits)")
        capture_info = {"candidates": cap.candidates, "carry": carry,
                        "granularity": str(granularity), "leaves": list(leaves),
                        "cuts": cap.cuts, "loss": loss, "inputs": cap.input_names}
        notes += cap.notes
    if measure_tmp and not alloc_events_supported():
        measure_tmp = False
        notes.append("this torch build reports no allocator events: fwd_tmp/bwd_tmp written as 0")
    input_bytes = sum(t.numel() * t.element_size() for t in
                      (x0 if isinstance(x0, tuple) else (x0,)))
    results = measure_stages(stages, x0, measure_tmp=measure_tmp, timing=timing, progress=progress,
                             autocast=cast)
    if train is not None:
        train = parse_train(train).text
    modes = parse_modes(tuple(modes) + modes_for(train))
    by_mode, wrapped = measure_modes(stages, x0, modes, lora_targets or None, lora_alpha,
                                     measure_tmp=measure_tmp, timing=timing, progress=progress,
                                     autocast=cast)
    lora_info = None if not wrapped else {"targets": list(lora_targets), "alpha": lora_alpha,
                                          "layers": wrapped}
    pcount = sum(s.param_count for s in results)
    pbytes = sum(s.param_bytes for s in results)
    shape_txt = ("x".join(str(d) for d in input_shape) if input_shape is not None else
                 ", ".join(f"{n} {'x'.join(map(str, sh))} {dt}"
                           for n, (sh, dt) in (inputs or {}).items()))
    if description is None:
        doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
        head = doc[0].strip().rstrip(".") if doc and callable(obj) and not isinstance(
            obj, torch.nn.Module) else (name or attr)
        in_txt = shape_txt if input_dtype == dtype or inputs else f"{shape_txt} {input_dtype}"
        if kwargs:
            head += " (" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")"
        count = f"{pcount / 1e6:.2f} M" if pcount >= 100_000 else f"{pcount:,}"
        description = (f"{head}; {count} parameters; batch {batch}, input {in_txt}; {dtype}"
                       + (f", mixed precision {amp} (torch.autocast)" if amp else ""))
    first = next(iter((inputs or {}).values()), None)
    return ImportResult(
        name=name or attr, description=description, batch=batch,
        input_shape=tuple(input_shape) if input_shape is not None else None,
        input_dtype=input_dtype if first is None else first[1], input_bytes=int(input_bytes),
        dtype=dtype, stages=results, param_count=int(pcount), param_bytes=int(pbytes),
        torch_version=str(torch.__version__), measured_tmp=measure_tmp, timed=timing,
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"), notes=notes, seed=seed,
        conv_fix=grouped_conv_fix_active(stages), capture=capture_info,
        input_names=None if not inputs else shape_txt, modes=by_mode,
        stage_modes=tuple(stage_mode_numbers(stages, results, by_mode, wrapped)),
        lora=lora_info, train=train if train != "all" else None, amp=amp)


# --- writing model format 1 ---------------------------------------------------------------------



def derivation_text(r: ImportResult, width: int = 92) -> str:
    """The ``derivation:`` text: how every number in the file was obtained."""
    import textwrap

    def para(text: str, bullet: bool = False) -> list[str]:
        if bullet:
            return textwrap.wrap(text, width, initial_indent="- ", subsequent_indent="  ")
        return textwrap.wrap(text, width)

    out = para(
        f"Measured by `edgeplan import torch` on {r.date} with torch {r.torch_version}, on the "
        f"CPU, parameters in {r.dtype}, model in train() mode (dropout and batch-norm statistics "
        f"active), one random input batch (seed {r.seed})"
        + (f", every forward under torch.autocast('cpu', dtype="
           f"{str(amp_dtype(r.amp)).removeprefix('torch.')}) (mixed "
           "precision: fp32 parameters and gradients, 16-bit matmul and convolution outputs; "
           "the 16-bit weight copies autograd keeps count as saved; backward outside autocast)"
           if r.amp else "")
        + ". The stages ran in order, each alone "
        "on the previous stage's output, detached; floating-point stage inputs required grad "
        "except the input batch a_0 (data: no input gradient is computed, as in real training).")
    if r.capture is not None:
        c = r.capture
        cuts = c["cuts"]
        carried = sorted({v for cut in cuts for v in cut.carried})
        out += para(
            f"Stages: the model's forward was captured with torch.fx (symbolic_trace; inputs "
            f"{', '.join(c['inputs'])}) and cut where one activation tensor is live "
            f"(carry={c['carry']}: "
            + {"none": "no other tensor may cross a cut",
               "small": "other live tensors may cross a cut when together at most a quarter "
                        "of the main one, and are then part of the stage output",
               "all": "any live tensors may cross a cut, and are then part of every stage "
                      "output they pass"}[c["carry"]]
            + f"); {c['candidates']} candidate cuts, {len(cuts)} used "
            f"(granularity {c['granularity']})"
            + (f"; kept whole: {', '.join(c['leaves'])}" if c["leaves"] else "")
            + (f"; carried across cuts: {', '.join(carried)}" if carried else "")
            + (f". The last stage is the loss ({c['loss']}) on the model's output." if c["loss"]
               else "."))
    out += para(
        "out: bytes of the distinct storages of the stage's output tensors (storages that alias "
        "a_0 are not counted: a_0 is resident for the whole iteration).", True)
    out += para(
        "saved: storages packed by autograd (torch.autograd.graph.saved_tensors_hooks) during a "
        "recording forward of the stage alone, each storage once (untyped_storage data_ptr and "
        "nbytes), excluding parameters, buffers and the stage input a_{i-1} (held by the "
        "previous stage); the output's storages are then added where not already packed, so "
        "saved includes a_i: saved = max(saved_measured + out_not_counted, out).", True)
    flops = ("fwd_flops / bwd_flops: torch.utils.flop_counter.FlopCounterMode around the "
             "recording forward and around backward() of the outputs seeded with ones. The "
             "backward count includes weight-gradient FLOPs. Only matmul / convolution / "
             "attention kernels are counted; elementwise ops, normalisation, pooling, softmax, "
             "embedding lookups and the loss count 0.")
    if r.conv_fix:
        flops += (" This torch's counter counts the weight gradient of grouped convolutions "
                  "`groups` times too high; that term was divided by groups (torch's formula "
                  "otherwise kept).")
    out += para(flops, True)
    out += para(
        "work: per pass (the same recording forward and backward) and op family (matmul, conv, "
        "depthwise, norm, pool, gather, random, softmax, elementwise), [operations, FLOPs, "
        "bytes]: a torch.utils._python_dispatch.TorchDispatchMode below autograd and autocast "
        "sees every ATen operation; FLOPs by the formulas above (the families add up to "
        "fwd_flops / bwd_flops), bytes those of every tensor argument and result (views, "
        "detach and bare allocations move none). A device profile from `edgeplan calibrate` "
        "prices it per family (docs/chain-model.md §7).", True)
    if r.measured_tmp:
        out += para(
            "fwd_tmp / bwd_tmp: PyTorch CPU-allocator events (torch.profiler, "
            "profile_memory=True); fwd_tmp = max(peak of the recording forward - saved, peak of "
            "a no-grad forward - out, 0); bwd_tmp = max(peak of the backward - bytes of the "
            "input gradient, 0), with the allocations that become parameter gradients left out "
            "(fixed memory). Peaks are relative to the memory live when the pass starts; scratch "
            "memory allocated outside PyTorch's allocator (oneDNN, BLAS) is not seen, and a "
            "device's kernels may differ.", True)
    else:
        out += para("fwd_tmp / bwd_tmp: not measured (written as 0).", True)
    out += para(
        "params: bytes of the stage's parameters (numel x element size); a parameter shared by "
        "several stages is counted once, in the first stage that has it.", True)
    if r.timed:
        out += para(
            "fwd_time / bwd_time: host wall-clock medians (>= 3 repeats and >= 0.2 s per stage, "
            "after a warm-up) on the machine that ran the import; they describe that machine, "
            "not an edge device, and win over FLOPs when planning.", True)
    if r.modes:
        out += para(_modes_text(r), True)
    for n in r.notes:
        out += para(f"note: {n}", True)
    return "\n".join(out)


def _modes_text(r: ImportResult) -> str:
    what = {FROZEN: "frozen (no parameter requires grad)",
            "bias": "bias (only parameters named bias require grad: BitFit)"}
    names = []
    for mode in r.modes:
        rank = lora_rank(mode)
        if rank is None:
            names.append(what[mode])
            continue
        assert r.lora is not None
        n = r.lora_layer_count
        targets = ", ".join(r.lora["targets"]) or "every linear layer"
        alpha = r.lora["alpha"] if r.lora["alpha"] is not None else rank
        names.append(f"{mode} ({n} nn.Linear layers matching {targets} wrapped as W x + "
                     f"(alpha/r) B A x with alpha {alpha:g}: W and every other parameter "
                     f"frozen, A ({rank} x in) and B (out x {rank}) added and trained)")
    return ("modes: every stage with parameters was measured again in each training mode by "
            "the same hooks and counters, with its parameters' requires_grad set as the mode "
            "trains: " + "; ".join(names) + ". The stage input still requires grad (a frozen "
            "stage inside the trained part runs its backward for the input gradient), so "
            "saved, the transients and bwd_flops are what autograd keeps and computes for that "
            "mode. trainable: bytes of the parameters that require grad; added: bytes of the "
            "adapters; the other keys are written where they differ from the stage's own.")


def imported_model(r: ImportResult) -> ImportedModel:
    """The measurement as ``formats.model_file`` writes it."""
    return ImportedModel(
        name=r.name, description=r.description, derivation=derivation_text(r),
        provenance=(f"torch {r.torch_version}, {r.date}; {r.param_count:,} parameters "
                    f"({iec(r.param_bytes)}); {len(r.stages)} stages; sum of saved "
                    f"{iec(r.total_saved_bytes)}"),
        batch=r.batch, input_bytes=r.input_bytes, input_shape=r.input_shape,
        input_dtype=r.input_dtype if r.input_shape is not None else None,
        input_comment=r.input_names, precision=r.amp or PRECISION_KEY.get(r.dtype),
        amp=r.amp, train=r.train,
        lora=None if r.lora is None else (tuple(r.lora["targets"]), r.lora["alpha"]),
        stages=tuple(ImportedStage(
            name=s.name, fwd_flops=s.fwd_flops, bwd_flops=s.bwd_flops,
            fwd_time_s=s.fwd_time_s, bwd_time_s=s.bwd_time_s, out_bytes=s.out_bytes,
            saved_bytes=s.saved_bytes, fwd_tmp_bytes=s.fwd_tmp_bytes,
            bwd_tmp_bytes=s.bwd_tmp_bytes, param_bytes=s.param_bytes, param_count=s.param_count,
            largest_param_bytes=s.largest_param_bytes, fwd_work=s.fwd_work, bwd_work=s.bwd_work,
            modes=tuple((mode, ImportedMode(**nums)) for mode, nums in
                        (r.stage_modes[k].items() if r.stage_modes else ())))
            for k, s in enumerate(r.stages)))


def to_yaml(r: ImportResult, *, command: str | None = None, optimizer: str = "momentum") -> str:
    """Model format 1 text with exact integer bytes and FLOPs (readable values in comments)."""
    return write_model(imported_model(r), command=command, optimizer=optimizer)


def mode_lines(r: ImportResult) -> list[str]:
    """One summary line per measured mode: what trains, what it saves and computes."""
    out = []
    for mode, ms in r.modes.items():
        train = sum(m.trainable_bytes for m in ms)
        added = sum(m.param_bytes for m in ms) - r.param_bytes
        saved = sum(m.saved_bytes for m in ms)
        bwd = sum(m.bwd_flops for m in ms)
        full_bwd = sum(s.bwd_flops for s in r.stages)
        extra = ""
        if lora_rank(mode) is not None and r.lora is not None:
            extra = f", {r.lora_layer_count} linear layers wrapped, adapters {iec(added)}"
        out.append(f"mode {mode}: trains {iec(train)}{extra}; every stage in this mode saves "
                   f"{iec(saved)} (trained: {iec(r.total_saved_bytes)}), backward "
                   f"{flops_txt(bwd)} (trained: {flops_txt(full_bwd)})")
    return out


def summary_rows(r: ImportResult) -> list[tuple[str, ...]]:
    """Rows for a human summary: name, out, saved, fwd_tmp, bwd_tmp, fwd FLOP, params."""
    return [(s.name, iec(s.out_bytes), iec(s.saved_bytes), iec(s.fwd_tmp_bytes),
             iec(s.bwd_tmp_bytes), flops_txt(s.fwd_flops), f"{s.param_count:,}")
            for s in r.stages]


__all__ = ["StageMeasure", "ImportResult", "import_torch", "measure_stages", "to_yaml",
           "imported_model", "derivation_text", "summary_rows", "mode_lines", "DTYPES",
           "INPUT_DTYPES"]
