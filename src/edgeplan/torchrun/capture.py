"""Any ``nn.Module`` as a chain: graph capture with ``torch.fx``, cut points, stage modules.

Capture
    ``torch.fx.symbolic_trace`` (PyTorch's own tracer; see docs/importing.md for why FX and not
    ``torch.export``) turns ``model.forward`` into a graph of ``call_module`` /
    ``call_function`` / ``call_method`` nodes that keeps the model's own submodules and
    parameters, so stages built from it train the user's parameters. Forward arguments not given
    in the example input are traced as constants (``None``); submodules named with
    ``leaf=`` stay one node (their inside is not traced: the way around data-dependent control
    flow). A module that cannot be traced raises ``InputError`` naming the construct.
Shapes
    ``torch.fx.passes.shape_prop.ShapeProp`` runs the graph once on the example input and records
    each value's tensor type and size.
Cuts
    After node ``k`` (in execution order) the *live* values are those made at or before ``k``
    and used after it. Graph inputs (the batch, ``a_0`` of docs/chain-model.md §1) and
    parameters are resident anyway; non-tensor values (sizes, flags) cost nothing. The cut after
    ``k`` is a candidate when the live activations are one tensor (``main``) plus *carried*
    tensors allowed by ``carry``: ``"none"`` (no other tensor), ``"small"`` (the others together
    at most ``SMALL_CARRY`` of ``main``'s bytes: an attention mask, a position table;
    default), ``"all"`` (any: a U-Net's long skips are then passed through every stage between
    their producer and their consumer and counted in each stage's output -- conservative: the
    chain model counts a passed-through tensor again in every ``a_i`` it is part of).
Stages
    The nodes between two chosen cuts form a stage: an ``nn.Module`` that takes the tuple of the
    values live at its input cut and returns the tuple live at its output cut (the last stage
    returns what ``forward`` returns). ``granularity="auto"`` merges candidate segments until
    each stage holds a weighted op (a module with parameters, a matmul, a convolution); an
    integer balances the forward FLOPs into about that many stages.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import InputError
from ..partition import balance, one_heavy_per_group
from .trainable import LoRALinear

__all__ = ["CapturedChain", "Cut", "capture", "CARRY_MODES", "SMALL_CARRY"]

CARRY_MODES = ("none", "small", "all")
#: ``carry="small"``: the carried tensors together at most this share of the main tensor's bytes.
SMALL_CARRY = 0.25
#: ``granularity="auto"`` never makes more stages than this (it balances down to it).
AUTO_MAX_STAGES = 64

_HEAVY_FUNCTIONS = {
    torch.matmul, torch.mm, torch.bmm, torch.baddbmm, torch.addmm, torch.einsum,
    torch.conv1d, torch.conv2d, torch.conv3d, torch.nn.functional.linear,
    torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d,
    torch.nn.functional.scaled_dot_product_attention, operator.matmul,
}


@dataclass(frozen=True)
class Cut:
    """A chosen cut: the tensor that crosses it (``main``), the tensors carried with it, and the
    graph inputs and non-tensor values passed along (no activation memory)."""

    after: str                    # the node after which the graph is cut
    main: str
    carried: tuple[str, ...] = ()
    passed: tuple[str, ...] = ()  # graph inputs and non-tensors that cross the cut
    main_bytes: int = 0
    carried_bytes: int = 0


@dataclass
class CapturedChain:
    """A traced model cut into a chain of stage modules."""

    model: nn.Module
    graph: fx.Graph
    stages: list[tuple[str, nn.Module]]
    cuts: list[Cut]
    candidates: int                        # candidate cuts found (before grouping)
    input_names: list[str]                 # forward arguments that became graph inputs
    carry: str
    notes: list[str] = field(default_factory=list)


class _Tracer(fx.Tracer):
    def __init__(self, leaves: set[str]):
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        # a LoRA-wrapped linear layer stays one node, as the nn.Linear it wraps was: a model
        # fine-tuned with adapters is cut where the plain model was
        return (qualname in self.leaves or isinstance(m, LoRALinear)
                or super().is_leaf_module(m, qualname))


def bind_inputs(model: nn.Module,
                example: Any) -> tuple[list[str], tuple[Any, ...], dict[str, Any]]:
    """(graph input names, their values, concrete args) for ``model.forward`` called with
    ``example`` (a tensor, a tuple of positional arguments or a dict of keyword arguments)."""
    import inspect

    sig = inspect.signature(model.forward)
    if isinstance(example, dict):
        bound = sig.bind_partial(**example)
    elif isinstance(example, tuple):
        bound = sig.bind_partial(*example)
    else:
        bound = sig.bind_partial(example)
    names, values, concrete = [], [], {}
    for name, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            if name in bound.arguments:
                raise InputError(f"forward(*{name}) / (**{name}) cannot be traced with "
                                 "arguments in it; give the arguments by name",
                                 param="example_input")
            continue
        if name in bound.arguments:
            names.append(name)
            values.append(bound.arguments[name])
        else:
            concrete[name] = p.default if p.default is not p.empty else None
    return names, tuple(values), concrete


def _trace(model: nn.Module, concrete: dict[str, Any], leaves: Iterable[str]) -> fx.Graph:
    known = {n for n, _ in model.named_modules()}
    leaf_set = set(leaves)
    missing = sorted(leaf_set - known)
    if missing:
        import difflib
        close = difflib.get_close_matches(missing[0], sorted(known), n=1)
        raise InputError(f"no submodule {missing[0]!r} to keep as one stage"
                         + (f" (did you mean {close[0]!r}?)" if close else ""), param="leaf")
    tracer = _Tracer(leaf_set)
    try:
        return tracer.trace(model, concrete_args=concrete or None)
    except Exception as e:  # noqa: BLE001 - every tracing failure becomes one clear line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = _user_frame(e)
        raise InputError(
            f"torch.fx could not capture the model ({type(e).__name__}: {msg}){where}",
            param="model",
            hint="mark the submodule that contains it as one stage with --leaf NAME (its "
                 "inside is then not traced), or make its control flow independent of tensor "
                 "values") from None


def _user_frame(e: BaseException) -> str:
    """`` at file.py:LINE`` of the innermost frame outside torch, for the error message."""
    import traceback

    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if "/torch/" not in f.filename.replace("\\", "/")]
    if not frames:
        return ""
    f = frames[-1]
    return f" at {f.filename.rsplit('/', 1)[-1]}:{f.lineno} ({(f.line or '').strip()[:60]})"


def _tensor_bytes(node: fx.Node) -> int | None:
    """Bytes of a node's value when it is a tensor (or a flat tuple of tensors), else None."""
    meta = node.meta.get("tensor_meta")
    if meta is None:
        return None
    # TensorMetadata is itself a NamedTuple: a tuple of them is a multi-tensor value
    metas = [meta] if hasattr(meta, "shape") else list(meta)
    total = 0
    for m in metas:
        if not hasattr(m, "shape"):
            return None
        n = 1
        for d in m.shape:
            n *= int(d)
        total += n * torch.empty((), dtype=m.dtype).element_size()
    return total


def _is_heavy(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        mod = modules.get(str(node.target))
        return mod is not None and any(True for _ in mod.parameters())
    if node.op == "call_function":
        return node.target in _HEAVY_FUNCTIONS
    if node.op == "call_method":
        return node.target in ("matmul", "bmm", "mm", "baddbmm")
    return False


@dataclass
class _Candidate:
    pos: int          # index in the compute-node order; the cut is after it
    live: list[fx.Node]
    main: fx.Node
    carried: list[fx.Node]
    passed: list[fx.Node]
    main_bytes: int
    carried_bytes: int


def _candidates(order: list[fx.Node], carry: str) -> list[_Candidate]:
    pos = {n: i for i, n in enumerate(order)}
    last_use: dict[fx.Node, int] = {}
    for n in order:
        for a in n.all_input_nodes:
            last_use[a] = max(last_use.get(a, -1), pos[n])
    out: list[_Candidate] = []
    live: set[fx.Node] = {n for n in order if n.op == "placeholder"}
    for k, n in enumerate(order[:-1]):  # never after the output node
        if n.op not in ("placeholder", "get_attr", "output"):
            live.add(n)
        live = {v for v in live if last_use.get(v, -1) > k}
        if n.op in ("placeholder", "get_attr") or order[k + 1].op == "placeholder":
            continue
        acts = [v for v in live if v.op not in ("placeholder", "get_attr")
                and _tensor_bytes(v) is not None]
        free = [v for v in live if v not in acts and v.op != "get_attr"]
        if not acts:
            continue
        acts.sort(key=lambda v: (-(_tensor_bytes(v) or 0), pos[v]))
        main, extra = acts[0], acts[1:]
        mb = _tensor_bytes(main) or 0
        eb = sum(_tensor_bytes(v) or 0 for v in extra)
        if extra and (carry == "none" or (carry == "small" and eb > SMALL_CARRY * mb)):
            continue
        out.append(_Candidate(pos=k, live=sorted(live, key=pos.__getitem__), main=main,
                              carried=sorted(extra, key=pos.__getitem__),
                              passed=sorted(free, key=pos.__getitem__), main_bytes=mb,
                              carried_bytes=eb))
    return out


def _stage_graph(order: list[fx.Node], lo: int, hi: int, inputs: list[fx.Node],
                 outputs: list[fx.Node] | None) -> fx.Graph:
    """The graph of nodes ``order[lo:hi]`` taking ``inputs`` (one tuple argument) and returning
    ``outputs`` as a tuple (None: the original output node's value)."""
    g = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    packed = g.placeholder("carried")
    for j, v in enumerate(inputs):
        env[v] = g.call_function(operator.getitem, (packed, j))
    out_node = None
    for n in order[lo:hi]:
        if n.op == "output":
            out_node = n
            continue
        if n.op == "placeholder":
            continue
        for a in n.all_input_nodes:  # parameters / buffers are fetched again where used
            if a not in env and a.op == "get_attr":
                env[a] = g.get_attr(str(a.target))
        env[n] = g.node_copy(n, lambda a: env[a])
    if outputs is None:
        assert out_node is not None
        for a in out_node.all_input_nodes:
            if a not in env and a.op == "get_attr":
                env[a] = g.get_attr(str(a.target))
        g.output(fx.node.map_arg(out_node.args[0], lambda a: env[a]))
    else:
        g.output(tuple(env[v] for v in outputs))
    g.lint()
    return g


class Stage(nn.Module):
    """One stage of a captured chain: ``forward(carried_tuple) -> carried_tuple``."""

    def __init__(self, root: nn.Module, graph: fx.Graph, name: str):
        super().__init__()
        # fx.GraphModule shares the root's submodules and parameters (it does not copy them)
        self.gm = fx.GraphModule(root, graph, class_name=name)

    def forward(self, carried: Any) -> Any:
        return self.gm(carried)


def capture(model: nn.Module, example: Any, *, granularity: str | int = "auto",
            carry: str = "small", leaves: Iterable[str] = (),
            weight: Callable[[nn.Module, Any], float] | None = None) -> CapturedChain:
    """Trace ``model`` on ``example`` and cut it into a chain of stage modules.

    Parameters
    ----------
    model
        Any ``nn.Module`` whose ``forward`` torch.fx can trace (residuals, dict inputs and
        outputs are fine; data-dependent Python control flow is not: keep such a submodule
        whole with ``leaves``).
    example
        An input batch as ``model`` takes it: a tensor, a tuple of positional arguments or a
        dict of keyword arguments.
    granularity
        ``"auto"``: one stage per weighted op's segment (at most ``AUTO_MAX_STAGES``);
        ``"finest"``: one stage per candidate segment; an integer ``N``: about ``N`` stages of
        balanced forward FLOPs.
    carry
        Which extra live tensors a cut may carry: ``"none"``, ``"small"`` (default), ``"all"``.
    leaves
        Qualified names of submodules kept as one node.
    weight
        ``weight(stage_module, stage_input) -> float`` for integer granularity (default: the
        forward FLOPs counted by ``torch.utils.flop_counter``).

    Raises
    ------
    InputError
        The model cannot be traced (the message names the construct and suggests ``--leaf``),
        no cut exists, or an option is out of range.
    """
    if carry not in CARRY_MODES:
        raise InputError(f"expected one of {', '.join(CARRY_MODES)}, got {carry!r}",
                         param="carry")
    names, args, concrete = bind_inputs(model, example)
    if not names:
        raise InputError("the example input gives forward no argument", param="example_input")
    graph = _trace(model, concrete, leaves)
    gm = fx.GraphModule(model, graph)
    flat_args = tuple(args)
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(*flat_args)
    except Exception as e:  # noqa: BLE001 - the traced graph does not run on the example
        raise InputError(f"the captured graph does not run on the example input: "
                         f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                         param="model") from None
    graph = gm.graph  # ShapeProp annotated these nodes
    order = list(graph.nodes)
    modules = dict(model.named_modules())
    cands = _candidates(order, carry)
    notes: list[str] = []
    if not cands:
        notes.append("no cut point: the whole model is one stage")
    # fine segments: nodes between consecutive candidate cuts
    bounds = [c.pos + 1 for c in cands]  # the stage after cut c starts at order[c.pos + 1]
    seg_starts = [0] + bounds
    seg_ends = bounds + [len(order)]
    heavy = [any(_is_heavy(n, modules) for n in order[a:b]) for a, b in zip(seg_starts,
                                                                            seg_ends)]
    if granularity == "finest":
        groups = [1] * len(seg_starts)
    elif granularity == "auto":
        groups = one_heavy_per_group(heavy, max_groups=AUTO_MAX_STAGES)
    else:
        try:
            n_stages = int(granularity)
        except (TypeError, ValueError):
            raise InputError(f"expected auto, finest or a number of stages, got "
                             f"{granularity!r}", param="granularity") from None
        if n_stages < 1:
            raise InputError(f"expected a number of stages >= 1, got {n_stages}",
                             param="granularity")
        fine = _build(model, order, cands, [1] * len(seg_starts))
        weights = _segment_weights(fine, flat_args, weight)
        groups = balance([max(1, int(w)) for w in weights], n_stages)
    stages, cuts = _build(model, order, cands, groups), []
    chosen = []
    pos = 0
    for g in groups[:-1]:
        pos += g
        chosen.append(cands[pos - 1])
    cuts = [Cut(after=c.main.name if c.pos < 0 else order[c.pos].name, main=c.main.name,
                carried=tuple(v.name for v in c.carried),
                passed=tuple(v.name for v in c.passed), main_bytes=c.main_bytes,
                carried_bytes=c.carried_bytes) for c in chosen]
    return CapturedChain(model=model, graph=graph, stages=stages, cuts=cuts,
                         candidates=len(cands), input_names=names, carry=carry, notes=notes)


def _build(model: nn.Module, order: list[fx.Node], cands: list[_Candidate],
           groups: list[int]) -> list[tuple[str, nn.Module]]:
    """Stage modules for ``groups`` (numbers of fine segments per stage)."""
    placeholders = [n for n in order if n.op == "placeholder"]
    cut_after: list[_Candidate] = []
    pos = 0
    for g in groups[:-1]:
        pos += g
        cut_after.append(cands[pos - 1])
    starts = [0] + [c.pos + 1 for c in cut_after]
    ends = [c.pos + 1 for c in cut_after] + [len(order)]
    ins: list[list[fx.Node]] = [placeholders] + [c.live for c in cut_after]
    outs: list[list[fx.Node] | None] = [c.live for c in cut_after] + [None]
    stages = []
    used: dict[str, int] = {}
    for j, (lo, hi) in enumerate(zip(starts, ends)):
        g = _stage_graph(order, lo, hi, ins[j], outs[j])
        name = _stage_name(order[lo:hi], j, used)
        stages.append((name, Stage(model, g, f"Stage_{j + 1}")))
    return stages


def _stage_name(nodes: list[fx.Node], index: int, used: dict[str, int]) -> str:
    """A readable stage name: the common module path of its nodes (``layer1.0``), else
    ``stage<N>``; unique."""
    paths = []
    for n in nodes:
        if n.op == "call_module":
            paths.append(str(n.target).split("."))
        else:
            stack = n.meta.get("nn_module_stack")
            if stack:
                paths.append(list(stack)[-1].split(".") if isinstance(stack, dict) else [])
    common: list[str] = []
    if paths:
        for parts in zip(*paths):
            if len(set(parts)) != 1:
                break
            common.append(parts[0])
    base = ".".join(common)
    if not base:
        mods = [str(n.target) for n in nodes if n.op == "call_module"]
        base = f"{mods[0]}..{mods[-1]}" if len(mods) > 1 else (mods[0] if mods else "")
    base = base or f"stage{index + 1}"
    k = used.get(base, 0)
    used[base] = k + 1
    return base if k == 0 else f"{base}_{k + 1}"


def _segment_weights(stages: list[tuple[str, nn.Module]], args: tuple[Any, ...],
                     weight: Callable[[nn.Module, Any], float] | None) -> list[float]:
    """Forward FLOPs of each stage on the example (one no-grad pass through the chain)."""
    from torch.utils._pytree import tree_map
    from torch.utils.flop_counter import FlopCounterMode

    def detached(v: Any) -> Any:
        return tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, v)

    out: list[float] = []
    x: Any = tuple(args)
    # with grad enabled, as the importer counts: FlopCounterMode's module tracking expects it
    with torch.enable_grad():
        for _, st in stages:
            if weight is not None:
                out.append(float(weight(st, x)))
                x = detached(st(x))
                continue
            with FlopCounterMode(display=False) as fc:
                x = detached(st(x))
            out.append(float(fc.get_total_flops()))
    return out

