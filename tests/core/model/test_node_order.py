"""Nodes put in dependency order: outer-scope reads of subgraphs count, ties keep file order,
and a graph with no order (a cycle, a name nothing writes) is refused with the reason."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from app.core.errors import UserError
from app.core.model.node_order import sort_nodes


def _branch(name: str, op: str) -> onnx.GraphProto:
    # reads `scaled`, written in the outer graph: an outer-scope dependency of the If node
    out = helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [2])
    return helper.make_graph([helper.make_node(op, ["scaled"], [f"{name}_out"])], name, [], [out])


def _model(nodes: list[onnx.NodeProto]) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph(nodes, "g", [x, cond], [y], [two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what ONNX Runtime reads, whatever the installed onnx writes
    return model


def _nodes() -> dict[str, onnx.NodeProto]:
    return {
        "scale": helper.make_node("Mul", ["x", "two"], ["scaled"], name="scale"),
        "if": helper.make_node(
            "If",
            ["cond"],
            ["picked"],
            name="if",
            then_branch=_branch("then", "Relu"),
            else_branch=_branch("else", "Neg"),
        ),
        "out": helper.make_node("Identity", ["picked"], ["y"], name="out"),
    }


def test_an_outer_scope_read_orders_the_if_after_its_producer() -> None:
    n = _nodes()
    model = _model([n["out"], n["if"], n["scale"]])  # every node before what it reads
    with pytest.raises(onnx.checker.ValidationError, match="topologically sorted"):
        onnx.checker.check_model(model)
    assert sort_nodes(model)
    assert [node.name for node in model.graph.node] == ["scale", "if", "out"]
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([1.0, -3.0], np.float32)
    (got,) = sess.run(None, {"x": x, "cond": np.array(False)})
    assert np.array_equal(got, -2 * x)
    assert not sort_nodes(model)  # already in order


def test_independent_nodes_keep_their_file_order() -> None:
    a = helper.make_node("Relu", ["x"], ["a"], name="a")
    b = helper.make_node("Neg", ["x"], ["b"], name="b")
    add = helper.make_node("Add", ["a", "b"], ["y"], name="add")
    model = _model([add, b, a])
    sort_nodes(model)
    assert [node.name for node in model.graph.node] == ["b", "a", "add"]


def test_a_cycle_or_an_unwritten_name_is_refused() -> None:
    loop = [
        helper.make_node("Relu", ["b"], ["a"], name="first"),
        helper.make_node("Neg", ["a"], ["b"], name="second"),
        helper.make_node("Identity", ["a"], ["y"], name="out"),
    ]
    with pytest.raises(UserError, match="cycle through node 'first'"):
        sort_nodes(_model(loop))
    orphan = [helper.make_node("Relu", ["nowhere"], ["y"], name="lost")]
    with pytest.raises(UserError, match="'nowhere' is produced by no node"):
        sort_nodes(_model(orphan))
