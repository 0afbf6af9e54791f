"""The dataflow graph of an inferred model: tensor kinds, aliasing, uses, and the cut points
where exactly one activation (or, with tuples, a set made since the last cut) is live.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from ...errors import InputError
from ._nodes import META_OPS, VIEW_OPS, is_float, label
from .shapes import Types


def _subgraph_inputs(node: Any) -> list[str]:
    """Outer-scope tensors read by the subgraphs of If/Loop/Scan (implicit inputs)."""
    out: list[str] = []

    def walk(g: Any, outer_defined: set[str]) -> None:
        defined = set(outer_defined)
        defined |= {i.name for i in g.input} | {i.name for i in g.initializer}
        for n in g.node:
            for i in n.input:
                if i and i not in defined:
                    out.append(i)
            for a in n.attribute:
                for sg in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    walk(sg, defined)
            defined |= {o for o in n.output if o}

    for a in node.attribute:
        for sg in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            walk(sg, set())
    return list(dict.fromkeys(out))


@dataclass
class Graph:
    nodes: list[Any]                 # topological order
    ins: list[list[str]]             # per node: tensors read (explicit + implicit)
    kind: dict[str, str]             # tensor -> input | param | const | meta | act
    grad: dict[str, bool]            # tensor requires grad
    producer: dict[str, int]
    last_use: dict[str, int]
    alias: dict[str, str]            # tensor -> storage root
    types: Types
    graph_inputs: list[str]
    graph_outputs: list[str]
    buffers: set[str]                # batch-norm running statistics


def analyse(model: Any, types: Types, src: str) -> Graph:
    g = model.graph
    init_names = [i.name for i in g.initializer] + [s.values.name for s in g.sparse_initializer]
    inits = set(init_names)
    graph_inputs = [vi.name for vi in g.input if vi.name not in inits]
    nodes = list(g.node)
    ins = [[i for i in n.input if i] + _subgraph_inputs(n) for n in nodes]
    # stable topological sort (Kahn, smallest original index first)
    producer_orig: dict[str, int] = {}
    for k, n in enumerate(nodes):
        for o in n.output:
            if o:
                if o in producer_orig or o in inits or o in graph_inputs:
                    raise InputError(f"tensor {o!r} is defined twice (node {label(n)})",
                                     source=src)
                producer_orig[o] = k
    available = set(graph_inputs) | inits
    deps: list[set[int]] = []
    for k, n in enumerate(nodes):
        d = set()
        for i in ins[k]:
            if i in producer_orig:
                d.add(producer_orig[i])
            elif i not in available:
                raise InputError(f"node {label(n)} reads {i!r}, which no node, input or "
                                 "initializer defines", source=src)
        deps.append(d)
    users: list[list[int]] = [[] for _ in nodes]
    indeg = [0] * len(nodes)
    for k, d in enumerate(deps):
        for j in d:
            users[j].append(k)
        indeg[k] = len(d)
    heap = [k for k in range(len(nodes)) if indeg[k] == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        k = heapq.heappop(heap)
        order.append(k)
        for u in users[k]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(heap, u)
    if len(order) != len(nodes):
        raise InputError("the graph has a cycle", source=src)
    nodes = [nodes[k] for k in order]
    ins = [ins[k] for k in order]

    kind: dict[str, str] = {}
    grad: dict[str, bool] = {}
    buffers: set[str] = set()
    for n in nodes:
        if n.op_type == "BatchNormalization" and n.domain in ("", "ai.onnx"):
            buffers |= {i for i in list(n.input)[3:5] if i in inits}
    for name in init_names:
        kind[name] = "param" if is_float(types.elem(name)) and name not in buffers else "const"
        grad[name] = kind[name] == "param"
    for name in graph_inputs:
        kind[name] = "input"
        grad[name] = False
    producer: dict[str, int] = {}
    last_use: dict[str, int] = {}
    alias: dict[str, str] = {}
    for k, (n, reads) in enumerate(zip(nodes, ins)):
        in_kinds = {kind.get(i, "const") for i in reads}
        if n.op_type in META_OPS or (in_kinds and in_kinds <= {"const", "param", "meta"}
                                     and "meta" in in_kinds):
            out_kind = "meta"
        elif not in_kinds & {"input", "act"}:
            out_kind = "const"
        else:
            out_kind = "act"
        any_grad = any(grad.get(i, False) for i in reads) and n.op_type not in META_OPS
        explicit = [i for i in n.input if i]
        for o in n.output:
            if not o:
                continue
            producer[o] = k
            kind[o] = out_kind
            grad[o] = any_grad and is_float(types.elem(o))
            if n.op_type in VIEW_OPS and n.domain in ("", "ai.onnx") and explicit:
                alias[o] = alias.get(explicit[0], explicit[0])
        for i in reads:
            last_use[i] = k
    end = len(nodes)
    for o in g.output:
        last_use[o.name] = end
    return Graph(nodes=nodes, ins=ins, kind=kind, grad=grad, producer=producer,
                  last_use=last_use, alias=alias, types=types, graph_inputs=graph_inputs,
                  graph_outputs=[o.name for o in g.output], buffers=buffers)


def find_cuts(G: Graph, tuples: bool = False) -> list[tuple[int, tuple[str, ...]]]:
    """Cut points ``(k, tensors)`` between node k and node k+1 of the topological order.

    A candidate is a position where exactly one activation tensor is live (an articulation
    point), or, with ``tuples``, several: the recurrent state ``(h, c)`` of an unrolled RNN,
    parallel branches. Every live tensor must have a known size. Consecutive cuts must leave
    each stage reading only what the stage before produced: every tensor live at a cut was
    produced after the previous cut (so a residual block's input, live until its ``Add``,
    forbids every cut inside the block). Among compatible sets of candidates the one with the
    most cuts is taken, then the fewest bytes crossing them, then the earliest."""
    import bisect
    n = len(G.nodes)
    starts: list[list[str]] = [[] for _ in range(n + 1)]
    ends: list[list[str]] = [[] for _ in range(n + 1)]
    for t, kd in G.kind.items():
        if kd != "act" or t not in G.producer:
            continue
        p, u = G.producer[t], G.last_use.get(t, -1)
        if u <= p:
            continue  # dead, or never used after its own node
        starts[p].append(t)
        ends[u].append(t)
    cand: list[tuple[int, int, int, tuple[str, ...]]] = []  # k, earliest producer, bytes, ts
    live: dict[str, int] = {}
    for k in range(n - 1):
        for t in ends[k]:
            live.pop(t, None)
        for t in starts[k]:
            live[t] = G.producer[t]
        if not live or (len(live) > 1 and not tuples):
            continue
        sizes = [G.types.nbytes(t) for t in live]
        if any(b is None for b in sizes):
            continue
        cand.append((k, min(live.values()), sum(sizes),  # type: ignore[arg-type]
                     tuple(sorted(live, key=lambda t: (live[t], t)))))
    if not cand:
        return []
    # longest chain of compatible candidates (k_prev < earliest producer of the next)
    ks = [c[0] for c in cand]
    score: list[tuple[int, int]] = []
    parent: list[int] = []
    prefix: list[int] = []  # prefix[m]: index of the best chain among cand[:m+1]
    for i, (_k, e, b, _) in enumerate(cand):
        m = bisect.bisect_left(ks, e)  # candidates cand[:m] end before e
        if m > 0:
            j = prefix[m - 1]
            score.append((score[j][0] + 1, score[j][1] - b))
            parent.append(j)
        else:
            score.append((1, -b))
            parent.append(-1)
        if not prefix or score[i] > score[prefix[-1]]:
            prefix.append(i)
        else:
            prefix.append(prefix[-1])
    i = prefix[-1]
    chosen: list[int] = []
    while i >= 0:
        chosen.append(i)
        i = parent[i]
    return [(cand[i][0], cand[i][3]) for i in reversed(chosen)]
