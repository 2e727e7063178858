"""Build tests/data/broken_onnx/: valid ONNX files that starflow must refuse when it loads a model (tests/models_refused.rs).

- width5.onnx: log_prob of a 5-D standard normal, input float32[N, 5] (the flow's input is 6 wide: 5 labels + target).
- nan_log_prob.onnx: the right signature, float32[N, 6] -> float32[N], but log_prob = log(-1 - |x|^2), NaN everywhere.
The test copies tests/data/gaussian/manifest.json beside each. No manifest here: a models directory holding this one
serves nothing from it.
Run: python3 tests/data/make_broken_models.py   (needs the onnx package; output is committed)
"""
import os

import onnx
from onnx import TensorProto, helper

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "broken_onnx")
os.makedirs(here, exist_ok=True)


def save(name, width, nodes, init):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])
    y = helper.make_tensor_value_info("log_prob", TensorProto.FLOAT, ["N"])
    graph = helper.make_graph(nodes, name, [x], [y], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="starflow-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(here, name + ".onnx"))


axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
save(
    "width5",
    5,
    [
        helper.make_node("Mul", ["x", "x"], ["sq"]),
        helper.make_node("ReduceSum", ["sq", "axes"], ["ss"], keepdims=0),
        helper.make_node("Mul", ["ss", "minus_half"], ["log_prob"]),
    ],
    [axes, helper.make_tensor("minus_half", TensorProto.FLOAT, [], [-0.5])],
)
save(
    "nan_log_prob",
    6,
    [
        helper.make_node("Mul", ["x", "x"], ["sq"]),
        helper.make_node("ReduceSum", ["sq", "axes"], ["ss"], keepdims=0),
        helper.make_node("Sub", ["minus_one", "ss"], ["negative"]),
        helper.make_node("Log", ["negative"], ["log_prob"]),
    ],
    [axes, helper.make_tensor("minus_one", TensorProto.FLOAT, [], [-1.0])],
)
print("wrote", here)
