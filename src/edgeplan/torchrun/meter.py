"""The one stage measurer: each stage of a PyTorch chain, alone (docs/chain-model.md §1).

Used by the importer (``edgeplan.importers.torch``) and by the executor's measurements
(``torchrun.measure``). The stages run one after the other on a real input batch (CPU and
``float32`` by default),
each on the previous stage's output, **detached**: every stage is measured alone, the way the chain
model prices it. Per stage ``i`` (``a_{i-1}`` -> ``a_i``):

``out`` (``x_i``)
    Bytes of the distinct storages of the output tensors. Storages that alias the input batch
    ``a_0`` are not counted (``a_0`` is resident for the whole iteration, docs/chain-model.md
    §2); this matters only for stages that pass the input through (the unrolled LSTM).
``saved`` (``s_i``)
    A recording forward of the stage alone runs under
    ``torch.autograd.graph.saved_tensors_hooks``; every tensor autograd packs is recorded by its
    storage (``untyped_storage().data_ptr()``, ``nbytes()``), each storage once. Storages of
    parameters and buffers (fixed memory), of the stage input (``a_{i-1}``, held by the previous
    stage) and of ``a_0`` are excluded. The output's storages are then added where not already
    counted, so ``saved`` includes ``a_i``: ``saved = max(saved_measured + out_not_counted, out)``.
``fwd_flops`` / ``bwd_flops``
    ``torch.utils.flop_counter.FlopCounterMode`` around the recording forward, and around
    ``torch.autograd.backward`` of the outputs seeded with ones. The backward count includes the
    weight-gradient FLOPs. The counter knows matmul, convolution and attention kernels only;
    elementwise ops, normalisation, pooling and softmax count 0. Where this torch's counter
    over-counts the weight gradient of grouped convolutions (``groups`` times; torch <= 2.13),
    that one term is divided by ``groups`` (``_grouped_conv_backward_fix``).
``fwd_work`` / ``bwd_work``
    Per op family, the operations, FLOPs (the same formulas: the families add up to
    ``fwd_flops`` / ``bwd_flops``) and bytes read and written of the same two passes, counted
    by ``torchrun.opwork.WorkCounter`` (``edgeplan.work``); a calibrated device prices them.
``fwd_tmp`` / ``bwd_tmp`` (``f_i``, ``b_i``)
    Allocation events of PyTorch's CPU allocator (``torch.profiler``, ``profile_memory=True``).
    ``fwd_tmp = max(peak of the recording forward - saved, peak of a no-grad forward - out, 0)``
    (docs/chain-model.md §3 charges ``s_i + f_i`` to ``Fall`` and ``x_i + f_i`` to ``Fn``);
    ``bwd_tmp = max(peak of the backward - bytes of the input gradient, 0)`` with the allocations
    that end up as parameter gradients left out (they are fixed memory). Peaks are relative to
    the memory live when the pass starts. Memory allocated outside PyTorch's allocator (e.g.
    oneDNN scratch) is not seen. With ``measure_tmp=False`` both are 0.
``params``
    ``sum(p.numel() * p.element_size())`` over the stage's parameters; a parameter shared by
    several stages (tied embeddings, an unrolled recurrent cell) is counted once, in the first
    stage that has it.
``fwd_time`` / ``bwd_time`` (optional, ``timing=True``)
    Host wall-clock medians of repeated recording forwards and backwards (at least 3 repeats and
    0.2 s per stage after one warm-up).

The input batch ``a_0`` never needs a gradient (it is data), so stage 1's backward computes no
input gradient, as in real training; every later stage's floating-point inputs get
``requires_grad=True``.

With ``autocast`` (``torch.bfloat16`` or ``torch.float16``) every forward runs under
``torch.autocast`` on the input's device, mixed-precision training as ``torch.amp`` does it: the
parameters stay as they are (fp32 master weights), matmuls and convolutions compute and return
16-bit tensors, the 16-bit copies of the weights autograd keeps count as saved (they are not
the parameters' storage), and the backward runs outside the autocast region, as PyTorch
recommends.
"""


from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # silence the profiler's start/stop lines

import torch

from ..errors import InputError
from ..work import FamilyWork, Work
from ._tensors import detach_all, leaves, storage_key

__all__ = ["AMP_DTYPES", "AllocTrace", "StageMeasure", "alloc_events_supported", "amp_dtype",
           "autocast_on",
           "grouped_conv_fix_active", "measure_stages"]


@dataclass
class StageMeasure:
    """What was measured for one stage (bytes, FLOP, seconds)."""

    name: str
    out_bytes: int
    saved_bytes: int
    fwd_flops: int
    bwd_flops: int
    fwd_tmp_bytes: int = 0
    bwd_tmp_bytes: int = 0
    param_bytes: int = 0
    param_count: int = 0
    trainable_bytes: int = 0           # of param_bytes, the parameters that require grad
    largest_param_bytes: int = 0       # the largest of those tensors (the optimizer step's)
    fwd_time_s: float | None = None
    bwd_time_s: float | None = None
    fwd_work: Work | None = None       # per op family (``torchrun.opwork``)
    bwd_work: Work | None = None
    # diagnostics (not written to the model file)
    saved_hook_bytes: int = 0          # packed storages, before the output is added
    alloc_net_fwd: int | None = None   # allocator: bytes still held after the recording forward
    alloc_peak_fwd: int | None = None  # allocator: peak during the recording forward
    alloc_peak_nograd: int | None = None
    alloc_peak_bwd: int | None = None  # allocator: peak during backward, parameter grads left out
    input_grad_bytes: int = 0


def _storage_map(tensors: list[Any]) -> dict[int, int]:
    out: dict[int, int] = {}
    for t in tensors:
        k, n = storage_key(t)
        out[k] = max(out.get(k, 0), n)
    return out


class _quiet_stderr:
    """Silence file descriptor 2 (Kineto prints a line at every profiler start and stop)."""

    def __enter__(self) -> None:
        self.saved = None
        try:
            sys.stderr.flush()
            self.saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:  # pragma: no cover - no fd 2 (embedded interpreters)
            self.saved = None

    def __exit__(self, *exc: Any) -> None:
        if self.saved is not None:
            os.dup2(self.saved, 2)
            os.close(self.saved)


class AllocTrace:
    """CPU-allocator events (pointer, +/- bytes) in time order, via torch.profiler.

    Python's cyclic garbage collector is paused while it traces: a collection inside the
    traced code frees tensors of earlier work (another model, a previous test), which the trace
    would count as the traced code's (a stage's net allocation came out -508 bytes once)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.events: list[tuple[int, int]] = []
        self._prof = None
        self._gc = False

    def __enter__(self) -> AllocTrace:
        if self.enabled:
            from torch.profiler import ProfilerActivity, profile
            self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
            with _quiet_stderr():
                self._prof.__enter__()
            self._gc = gc.isenabled()
            gc.disable()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._prof is None:
            return
        try:
            with _quiet_stderr():
                self._prof.__exit__(*exc)
        finally:
            if self._gc:
                gc.enable()
        if exc[0] is not None:
            return
        from torch._C._profiler import _EventType
        found: list[tuple[int, int, int, int]] = []
        stack = list(self._prof.profiler.kineto_results.experimental_event_tree())
        order = 0
        while stack:
            e = stack.pop()
            if e.tag == _EventType.Allocation:
                f = e.extra_fields
                if str(f.device).startswith("cpu"):
                    found.append((int(e.start_time_ns), order, int(f.ptr), int(f.alloc_size)))
                    order += 1
            stack.extend(e.children)
        found.sort(key=lambda r: (r[0], r[1]))
        self.events = [(p, n) for _, _, p, n in found]

    def peak(self, exclude_final: set[int] | None = None) -> tuple[int, int]:
        """(peak, net) of the running allocation total, relative to the start.

        ``exclude_final``: pointers whose *last, never freed* allocation is left out (the
        parameter gradients, which are fixed memory).
        """
        skip: set[int] = set()
        if exclude_final:
            last: dict[int, int] = {}
            for k, (p, _n) in enumerate(self.events):
                if p in exclude_final:
                    last[p] = k
            for k in last.values():
                if self.events[k][1] > 0:
                    skip.add(k)
        run = peak = 0
        for k, (_, n) in enumerate(self.events):
            if k in skip:
                continue
            run += n
            peak = max(peak, run)
        return peak, run


_PROBE: dict[str, bool] = {}
_PROBE_MAP: dict[str, Any] = {}


def alloc_events_supported() -> bool:
    """Whether this torch reports CPU-allocator events with pointers (probed once)."""
    if "ok" not in _PROBE:
        try:
            with AllocTrace(True) as tr:
                t = torch.empty(4096, dtype=torch.uint8)
                ptr = t.untyped_storage().data_ptr()
                del t
            _PROBE["ok"] = any(p == ptr and n == 4096 for p, n in tr.events)
        except Exception:  # noqa: BLE001 - any failure means "not available"
            _PROBE["ok"] = False
    return _PROBE["ok"]


def _grouped_conv_backward_fix() -> dict[Any, Any]:
    """A FlopCounterMode ``custom_mapping`` that corrects grouped-convolution backward counts.

    Through at least torch 2.13, ``torch.utils.flop_counter``'s ``convolution_backward`` formula
    counts the weight-gradient term of a grouped convolution ``groups`` times too high (the
    transposed shapes lose the group division; pytorch/pytorch PR #183405 divides by groups).
    Depthwise convolutions (MobileNet) then show a backward ~20x their forward. The fix keeps
    torch's own formula and only divides that one term by ``groups``; it is installed only when
    a probe shows this torch overcounts, so a fixed torch is used as is.
    """
    if "conv_fix" in _PROBE_MAP:
        return _PROBE_MAP["conv_fix"]
    from torch.utils import flop_counter as fcm
    aten = torch.ops.aten
    mapping: dict[Any, Any] = {}
    try:
        with torch.random.fork_rng(devices=[]):  # leave the caller's random stream alone
            conv = torch.nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
            x = torch.randn(1, 4, 5, 5, requires_grad=True)
            with fcm.FlopCounterMode(display=False) as fc:
                conv(x).sum().backward()
        # forward 1800, grad input 1800, grad weight 1800 (buggy: 4 x 1800)
        overcounts = fc.get_total_flops() != 3 * 1800
        upstream = fcm.flop_registry.get(aten.convolution_backward)
        if overcounts and upstream is not None:
            def t(shape: Any) -> list[int]:
                return [shape[1], shape[0]] + list(shape[2:])

            def fixed(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
                flops = upstream(*args, out_val=out_val, **kwargs)
                groups = int(args[9]) if len(args) > 9 else int(kwargs.get("groups", 1))
                mask = args[10] if len(args) > 10 else kwargs.get("output_mask")
                if groups > 1 and mask is not None and mask[1] and out_val is not None:
                    g_out, inp = args[0].shape, args[1].shape
                    gw = out_val[1].shape
                    transposed = bool(args[7])
                    if transposed:
                        term = fcm.conv_flop_count(t(g_out), t(inp), t(gw), transposed=False)
                    else:
                        term = fcm.conv_flop_count(t(inp), t(g_out), t(gw), transposed=False)
                    flops -= term - term // groups
                return flops
            fixed._get_raw = True  # type: ignore[attr-defined]
            mapping[aten.convolution_backward] = fixed
    except Exception:  # noqa: BLE001 - keep torch's own counts if the probe cannot run
        mapping = {}
    _PROBE_MAP["conv_fix"] = mapping
    return mapping


def _has_grouped_conv(stages: list[tuple[str, Any]]) -> bool:
    conv = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    return any(isinstance(m, conv) and m.groups > 1 for _, st in stages for m in st.modules())


def grouped_conv_fix_active(stages: list[tuple[str, Any]]) -> bool:
    """The grouped-convolution backward FLOP correction applies to these stages."""
    return bool(_grouped_conv_backward_fix()) and _has_grouped_conv(stages)


def _cpu_attention_flops() -> dict[Any, Any]:
    """FLOP formulas for the CPU kernels of ``scaled_dot_product_attention``, which
    ``torch.utils.flop_counter`` (through at least torch 2.13) does not know: it counts an
    attention layer on the CPU as 0 FLOPs. Torch's own formulas for the other attention kernels
    (``sdpa_flop_count``, ``sdpa_backward_flop_count``) are applied to the same shapes."""
    from torch.utils import flop_counter as fcm
    aten = torch.ops.aten
    fwd_op = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    bwd_op = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if fwd_op is None or bwd_op is None or fwd_op in fcm.flop_registry or \
            not hasattr(fcm, "sdpa_flop_count"):
        return {}

    def fwd(query: Any, key: Any, value: Any, *args: Any, out_val: Any = None,
            **kwargs: Any) -> int:
        return int(fcm.sdpa_flop_count(query.shape, key.shape, value.shape))

    def bwd(grad_out: Any, query: Any, key: Any, value: Any, *args: Any, out_val: Any = None,
            **kwargs: Any) -> int:
        return int(fcm.sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape,
                                                value.shape))
    fwd._get_raw = True  # type: ignore[attr-defined]
    bwd._get_raw = True  # type: ignore[attr-defined]
    return {fwd_op: fwd, bwd_op: bwd}


def flop_mapping() -> dict[Any, Any]:
    """edgeplan's additions to ``torch.utils.flop_counter``'s formulas (raw: called with the
    op's real arguments and ``out_val``): the grouped-convolution backward fix and the CPU
    attention kernels."""
    if "mapping" not in _PROBE_MAP:
        _PROBE_MAP["mapping"] = {**_grouped_conv_backward_fix(), **_cpu_attention_flops()}
    return _PROBE_MAP["mapping"]


def _flop_counter() -> Any:
    from torch.utils.flop_counter import FlopCounterMode
    return FlopCounterMode(display=False, custom_mapping=flop_mapping())


def _prepare(prev: Any, a0_keys: set[int], clone: bool = False) -> tuple[Any, list[Any]]:
    """The stage input: the previous output detached (sharing storage); floating tensors that do
    not alias ``a_0`` require grad. Returns (input, gradient leaves).

    ``clone=True`` (for stages that modify their input in place, which autograd refuses on a
    leaf) hands the stage a copy of each gradient leaf instead; the copy counts as the input.
    """
    from torch.utils._pytree import tree_map
    grad_leaves: list[Any] = []

    def f(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        d = t.detach()
        if d.is_floating_point() and storage_key(d)[0] not in a0_keys:
            d.requires_grad_(True)
            grad_leaves.append(d)
            if clone:
                return d.clone()
        return d
    return tree_map(f, prev), grad_leaves


def _inplace_on_leaf(err: BaseException) -> bool:
    cause = err.__cause__
    return isinstance(cause, RuntimeError) and "leaf Variable" in str(cause) and \
        "in-place" in str(cause)


def _run_stage(name: str, module: Any, inp: Any) -> Any:
    try:
        return module(inp)
    except Exception as e:
        raise InputError(f"running the stage failed: {type(e).__name__}: {e}", where=name) from e


#: ``--amp`` / ``amp=`` names and the autocast dtypes they measure under
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(amp: str | None) -> Any:
    """The autocast dtype of ``amp`` (``bf16``, ``fp16``), None for None."""
    if amp is None:
        return None
    if amp not in AMP_DTYPES:
        raise InputError(f"expected one of {', '.join(AMP_DTYPES)}, got {amp!r}", param="amp")
    return AMP_DTYPES[amp]


def autocast_on(dtype: Any, x: Any = None) -> AbstractContextManager[Any]:
    """``torch.autocast`` for ``dtype`` (nothing for None) on the device of the tensors in
    ``x`` (the CPU when there are none)."""
    if dtype is None:
        return nullcontext()
    xs = leaves(x) if x is not None else []
    return torch.autocast(xs[0].device.type if xs else "cpu", dtype=dtype)


def measure_stages(stages: list[tuple[str, Any]], x0: Any, *, measure_tmp: bool = True,
                   timing: bool = False,
                   progress: Callable[[int, int, str], None] | None = None,
                   autocast: Any = None) -> list[StageMeasure]:
    """Measure each stage on the output of the previous one (see the module docstring);
    ``autocast``: a 16-bit dtype for mixed precision."""
    from torch.autograd.graph import saved_tensors_hooks

    from .opwork import WorkCounter
    flop_mapping()  # probe now, not inside a measured pass
    if measure_tmp and not alloc_events_supported():
        measure_tmp = False

    fixed_keys: set[int] = set()  # parameters and buffers: fixed memory, never "saved"
    for _, m in stages:
        for p in m.parameters():
            fixed_keys.add(storage_key(p)[0])
        for b in m.buffers():
            fixed_keys.add(storage_key(b)[0])
    a0_keys = set(_storage_map(leaves(x0)))
    counted_params: set[int] = set()
    results: list[StageMeasure] = []
    prev = x0
    for idx, (name, module) in enumerate(stages):
        if progress:
            progress(idx + 1, len(stages), name)
        # parameters: each shared parameter once, in the first stage that has it
        pbytes = pcount = tbytes = largest = 0
        stage_params = list(module.parameters())
        for p in stage_params:
            if id(p) not in counted_params:
                counted_params.add(id(p))
                pbytes += p.numel() * p.element_size()
                pcount += p.numel()
                if p.requires_grad:
                    tbytes += p.numel() * p.element_size()
                    largest = max(largest, p.numel() * p.element_size())

        # 1. recording forward: saved tensors, FLOPs, allocator peak
        packed: dict[int, int] = {}

        def pack(t: Any, packed: dict[int, int] = packed) -> Any:
            k, n = storage_key(t)
            packed[k] = max(packed.get(k, 0), n)
            return t

        def unpack(t: Any) -> Any:
            return t

        clone = False
        while True:
            inp, in_leaves = _prepare(prev, a0_keys, clone)
            in_keys = set(_storage_map(leaves(inp) + in_leaves))
            excluded = fixed_keys | in_keys | a0_keys
            packed.clear()
            try:
                with AllocTrace(measure_tmp) as tr_fwd, saved_tensors_hooks(pack, unpack), \
                        torch.enable_grad(), _flop_counter() as fc, WorkCounter() as wc_f, \
                        autocast_on(autocast, inp):
                    out = _run_stage(name, module, inp)
                break
            except InputError as e:
                if clone or not _inplace_on_leaf(e):
                    raise
                clone = True  # the stage modifies its input in place: give it a copy
        fwd_flops = int(fc.get_total_flops())
        out_leaves = leaves(out)
        if not out_leaves:
            raise InputError("the stage returned no tensor", where=name)
        out_map = {k: n for k, n in _storage_map(out_leaves).items() if k not in a0_keys}
        out_bytes = sum(out_map.values())
        saved_map = {k: n for k, n in packed.items() if k not in excluded}
        saved_hook = sum(saved_map.values())
        for k, n in out_map.items():
            saved_map[k] = max(saved_map.get(k, 0), n)
        saved_bytes = max(sum(saved_map.values()), out_bytes)
        peak_fwd, net_fwd = tr_fwd.peak() if measure_tmp else (None, None)

        # 2. backward seeded with ones: FLOPs, allocator peak, input-gradient size
        grad_outs = [t for t in out_leaves if t.requires_grad]
        bwd_flops = 0
        bwd_work = Work()
        peak_bwd = None
        in_grad_bytes = 0
        if grad_outs:
            seeds = [torch.ones_like(t) for t in grad_outs]
            for p in stage_params:
                p.grad = None
            with AllocTrace(measure_tmp) as tr_bwd, _flop_counter() as fcb, \
                    WorkCounter() as wc_b:
                try:
                    torch.autograd.backward(grad_outs, seeds)
                except Exception as e:
                    raise InputError(f"backward of the stage failed: {type(e).__name__}: {e}",
                                     where=name) from e
            bwd_flops = int(fcb.get_total_flops())
            bwd_work = wc_b.work()
            in_grads = [t.grad for t in in_leaves if t.grad is not None]
            in_grad_bytes = sum(_storage_map(in_grads).values())
            if measure_tmp:
                pgrad_ptrs = {storage_key(p.grad)[0] for p in stage_params if p.grad is not None}
                peak_bwd, _ = tr_bwd.peak(exclude_final=pgrad_ptrs)
            for p in stage_params:
                p.grad = None
            for t in in_leaves:
                t.grad = None
            del seeds
        del grad_outs

        # 3. no-grad forward: allocator peak for Fn (done last: it cannot disturb the others)
        peak_ng = None
        if measure_tmp:
            inp_ng = _prepare(prev, a0_keys, clone)[0]
            with AllocTrace(True) as tr_ng, torch.no_grad(), autocast_on(autocast, inp_ng):
                out_ng = _run_stage(name, module, inp_ng)
            peak_ng, _ = tr_ng.peak()
            del out_ng, inp_ng

        fwd_tmp = bwd_tmp = 0
        if measure_tmp:
            fwd_tmp = max(0, peak_fwd - saved_bytes, peak_ng - out_bytes)
            if peak_bwd is not None:
                bwd_tmp = max(0, peak_bwd - in_grad_bytes)

        # 4. optional host timing
        fwd_t = bwd_t = None
        if timing:
            fwd_t, bwd_t = _time_stage(name, module, prev, a0_keys, clone, autocast=autocast)

        results.append(StageMeasure(
            name=name, out_bytes=int(out_bytes), saved_bytes=int(saved_bytes),
            fwd_flops=fwd_flops, bwd_flops=bwd_flops, fwd_tmp_bytes=int(fwd_tmp),
            bwd_tmp_bytes=int(bwd_tmp), param_bytes=int(pbytes), param_count=int(pcount),
            trainable_bytes=int(tbytes), largest_param_bytes=int(largest),
            fwd_time_s=fwd_t, bwd_time_s=bwd_t,
            fwd_work=wc_f.work(), bwd_work=bwd_work, saved_hook_bytes=int(saved_hook),
            alloc_net_fwd=net_fwd, alloc_peak_fwd=peak_fwd, alloc_peak_nograd=peak_ng,
            alloc_peak_bwd=peak_bwd, input_grad_bytes=int(in_grad_bytes)))
        # the next stage starts from this output, detached (its graph is gone)
        prev = detach_all(out)
        del out, out_leaves, inp, in_leaves
    _shared_gradients(stages, results, measure_tmp)
    return results


def _shared_gradients(stages: list[tuple[str, Any]], results: list[StageMeasure],
                      measure_tmp: bool) -> None:
    """Add to a stage's backward what a parameter shared by several stages costs it.

    In a training step the backward of the *last* stage that uses a parameter (it runs first)
    allocates its ``.grad``; the backward of every earlier stage that uses it makes a new
    gradient of the parameter's size and adds it to ``.grad`` in place (autograd's
    ``AccumulateGrad``: an ``add_`` that reads both and writes ``.grad``, three times the
    parameter's bytes, into memory that is not fresh). Each stage measured alone (with fresh
    gradients) sees neither, so both are added here, to every stage that uses the parameter
    except the last one: the transient to ``bwd_tmp`` (when temporaries are measured) and the
    add to the backward's element-wise work. (The unrolled LSTM's cell, 16 stages; a language
    model's embedding tied to its output layer, whose accumulation moves three times the
    vocabulary matrix: docs/run.md.)"""
    users: dict[int, list[int]] = {}
    sizes: dict[int, int] = {}
    for k, (_, module) in enumerate(stages):
        for p in module.parameters():
            if p.requires_grad:
                users.setdefault(id(p), []).append(k)
                sizes[id(p)] = p.numel() * p.element_size()
    extra = [0] * len(stages)
    count = [0] * len(stages)
    for pid, ks in users.items():
        for k in sorted(set(ks))[:-1]:
            extra[k] += sizes[pid]
            count[k] += 1
    for k, add in enumerate(extra):
        if add:
            if measure_tmp:
                results[k].bwd_tmp_bytes += add
            acc = Work.of({"elementwise": FamilyWork(count[k], 0.0, 3 * add)})
            results[k].bwd_work = (results[k].bwd_work or Work()) + acc


def _time_stage(name: str, module: Any, prev: Any, a0_keys: set[int], clone: bool = False,
                min_reps: int = 3, min_total_s: float = 0.2,
                max_reps: int = 50, autocast: Any = None) -> tuple[float, float]:
    fwd: list[float] = []
    bwd: list[float] = []
    total = 0.0
    k = -1  # the first run is a warm-up
    while k < max_reps and (k < min_reps or total < min_total_s):
        inp = _prepare(prev, a0_keys, clone)[0]
        t0 = time.perf_counter()
        with torch.enable_grad(), autocast_on(autocast, inp):
            out = _run_stage(name, module, inp)
        t1 = time.perf_counter()
        gouts = [t for t in leaves(out) if t.requires_grad]
        t2 = t3 = time.perf_counter()
        if gouts:
            seeds = [torch.ones_like(t) for t in gouts]
            t2 = time.perf_counter()
            torch.autograd.backward(gouts, seeds)
            t3 = time.perf_counter()
        for p in module.parameters():
            p.grad = None
        if k >= 0:
            fwd.append(t1 - t0)
            bwd.append(t3 - t2)
            total += (t1 - t0) + (t3 - t2)
        k += 1
        del out, gouts, inp
    return statistics.median(fwd), statistics.median(bwd)
