"""Put a graph's nodes in the order ONNX requires (each after the nodes that feed it).

Float16 converters (onnxconverter-common's and ONNX Runtime's `convert_float_to_float16`) insert
Cast nodes at the end of the node list, after the nodes that read them, so their output fails
onnx's checker ("Nodes in a graph must be topologically sorted") while ONNX Runtime, which sorts
for itself, still runs it (onnxconverter-common issues 240, 261, 272). onnx has no public sort,
and onnx-graphsurgeon or onnxslim would be a dependency for thirty lines, so it is written here:
Kahn's algorithm, stable (nodes keep their order where they may), subgraphs too. The app's own
FP16 variants (the same converter) are sorted by it as well.
"""

from __future__ import annotations

import heapq
from collections import defaultdict

import onnx

from app.core.errors import UserError


def _reads(node: onnx.NodeProto) -> set[str]:
    """Every name `node` reads, its subgraphs' reads from outer scopes included."""
    names = {n for n in node.input if n}
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for g in graphs:
            inner = {i.name for i in g.input} | {t.name for t in g.initializer}
            for sub in g.node:
                inner.update(sub.output)
            for sub in g.node:
                names |= _reads(sub) - inner
    return names


def _sort_graph(graph: onnx.GraphProto, outer: set[str]) -> bool:
    """Sort `graph`'s nodes in place (and its subgraphs'); whether anything moved. `outer`:
    names visible from enclosing graphs."""
    moved = False
    nodes = list(graph.node)
    known = set(outer) | {i.name for i in graph.input} | {t.name for t in graph.initializer}
    known |= {t.values.name for t in graph.sparse_initializer}
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    scope = known | set(producer)  # what a subgraph may read from this graph
    for node in nodes:
        for attr in node.attribute:
            graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for g in graphs:
                moved |= _sort_graph(g, scope)
    reads = [_reads(node) for node in nodes]
    waits_on: list[set[int]] = []
    feeds: dict[int, list[int]] = defaultdict(list)
    for i, names in enumerate(reads):
        before = {producer[n] for n in names if n in producer and n not in known}
        waits_on.append(before)
        for j in before:
            feeds[j].append(i)
    missing = sorted(n for names in reads for n in names if n not in producer and n not in known)
    if missing:
        raise UserError(f"node input '{missing[0]}' is produced by no node, input or weight")
    ready = [i for i, w in enumerate(waits_on) if not w]  # a heap: the earliest node first
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in feeds[i]:
            waits_on[j].discard(i)
            if not waits_on[j]:
                heapq.heappush(ready, j)
    if len(order) < len(nodes):
        placed = set(order)
        stuck = next(nodes[i] for i in range(len(nodes)) if i not in placed)
        raise UserError(f"the graph has a cycle through node '{stuck.name or stuck.op_type}'")
    if order != list(range(len(nodes))):
        del graph.node[:]
        graph.node.extend(nodes[i] for i in order)
        moved = True
    return moved


def sort_nodes(model: onnx.ModelProto) -> bool:
    """Put `model`'s nodes in dependency order, in place; whether any moved. `UserError` when no
    order exists (a cycle, or an input nothing produces)."""
    return _sort_graph(model.graph, set())
