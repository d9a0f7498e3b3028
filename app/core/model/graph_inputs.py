"""A graph's data inputs (not its weights) and the edits that put a node in front of one: what
`checks` judges and the adapted copies (`batch_axis`, `gray_input`) change."""

from __future__ import annotations

import onnx


def data_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The graph inputs that are not weights (old exporters list initializers as inputs too)."""
    weights = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in weights]


def shape_of(vi: onnx.ValueInfoProto) -> list[int | str]:
    """Its dimensions as a user reads them: sizes, names of free ones, '?' for unnamed."""
    return [d.dim_value or d.dim_param or "?" for d in vi.type.tensor_type.shape.dim]


def rename_reads(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Every read of `old` in `graph` and its subgraphs (outer-scope reads) becomes `new`."""
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                rename_reads(attr.g, old, new)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    rename_reads(g, old, new)
