"""Build tests/data/gaussian/: a "flow" whose density is known in closed form, for the engine's exact tests.

log_prob(x) = log N(x; 0, I_6) for standardized rows x (6-D standard normal), so for any star the age posterior is
the Gaussian N(target mean, target std) on the grid, whatever the draws, and the training density is
S * (2 pi)^(-5/2) * exp(-|z|^2 / 2) averaged over the draws' standardized labels z.
Run: python3 tests/data/make_gaussian_model.py   (needs the onnx package; output is committed)
"""
import hashlib
import json
import math
import os

import onnx
from onnx import TensorProto, helper

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gaussian")
os.makedirs(here, exist_ok=True)

x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])
y = helper.make_tensor_value_info("log_prob", TensorProto.FLOAT, ["N"])
nodes = [
    helper.make_node("Mul", ["x", "x"], ["sq"]),
    helper.make_node("ReduceSum", ["sq", "axes"], ["ss"], keepdims=0),
    helper.make_node("Mul", ["ss", "minus_half"], ["half"]),
    helper.make_node("Add", ["half", "log_norm"], ["log_prob"]),
]
init = [
    helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    helper.make_tensor("minus_half", TensorProto.FLOAT, [], [-0.5]),
    helper.make_tensor("log_norm", TensorProto.FLOAT, [], [-3.0 * math.log(2 * math.pi)]),
]
graph = helper.make_graph(nodes, "gaussian6", [x], [y], init)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="starflow-tests")
model.ir_version = 8
onnx.checker.check_model(model)
path = os.path.join(here, "model.onnx")
onnx.save(model, path)
sha = hashlib.sha256(open(path, "rb").read()).hexdigest()

grid_step = 14.0 / 249.0
def dim(name, unit, mean, std, lo, hi):
    return {"name": name, "unit": unit, "mean": mean, "std": std, "train_min": lo, "train_max": hi}
manifest = {
    "format_version": 1,
    "name": "age",
    "version": "0.0.1-test",
    "description": "Closed-form test model: standard normal density in standardized space",
    "onnx": {"file": "model.onnx", "sha256": sha, "input": "x", "output": "log_prob", "opset": 17},
    "labels": [
        dim("teff", "K", 4700.0, 300.0, 3500.0, 5500.0),
        dim("logg", "dex", 2.5, 0.5, 0.5, 4.0),
        dim("fe_h", "dex", 0.0, 0.2, -1.0, 0.6),
        dim("c_fe", "dex", 0.0, 0.1, -0.5, 0.5),
        dim("n_fe", "dex", 0.2, 0.1, -0.3, 0.8),
    ],
    # Target mean on grid point 100 (of 0..249), so the maximum is exactly there.
    "target": {**dim("age", "Gyr", 100 * grid_step, 1.0, 0.0, 14.0), "transform": "linear",
               "grid": {"start": 0.0, "stop": 14.0, "num": 250}},
    "default_draws": 50,
    "density": {"scale": 1.0e9, "threshold": 1.0e6, "threshold_quantile": 0.05},
    "provenance": {"command": "python3 tests/data/make_gaussian_model.py"},
}
with open(os.path.join(here, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=2)
    f.write("\n")
print(path, sha)
