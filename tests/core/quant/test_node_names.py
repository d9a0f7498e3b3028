"""Node names the quantizer addresses nodes by are unique, even when a made-up name is one a
later node already carries (graphs with appended ops: "two nodes with same node name")."""

from __future__ import annotations

from onnx import TensorProto, helper

from app.core.quant.graph_rules import name_nodes


def test_made_up_names_never_repeat_an_existing_name():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="Relu_1"),
        helper.make_node("Relu", ["a"], ["b"]),  # unnamed at index 1: "Relu_1" is taken
        helper.make_node("Relu", ["b"], ["c"], name="Relu_1"),  # a duplicate
        helper.make_node("Relu", ["c"], ["d"], name="Relu_2"),  # taken before index 2 renames
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("d", TensorProto.FLOAT, [1])],
    )
    names = [n.name for n in name_nodes(helper.make_model(graph)).graph.node]
    assert len(set(names)) == len(names), names
    assert names[0] == "Relu_1" and names[3] == "Relu_2"  # existing unique names kept
