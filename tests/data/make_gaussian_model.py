"""Build tests/data/gaussian/ and tests/data/gaussian_v2/: "flows" whose density is known in closed form, for the
engine's exact tests (udfs/tests/closed_form.rs).

gaussian/ (model 'age', method paper): log_prob(x) = log N(x; 0, I_6) for standardized rows x (6-D standard normal), so
for any star the age posterior is the Gaussian N(target mean, target std) on the grid, whatever the draws, and the
training density is S * (2 pi)^(-5/2) * exp(-|z|^2 / 2) averaged over the draws' standardized labels z.

gaussian_v2/ (model 'age_v2', method v2): log_prob(x) = log N(x; 0, C), C the identity except corr(teff, target) =
RHO = 0.8 (standardized), so the age depends on Teff: for a star of one row at standardized Teff z, the posterior is
N(mu + RHO z, 1 - RHO^2) in standardized age (sd 0.6 Gyr); drawn with an excess sigma s (standardized) in Teff, the
joint weighting's posterior tends to N(mu + RHO z / (1 + s^2), 1 - RHO^2 / (1 + s^2)) as the draws grow (the paper's
conditional weighting would give N(mu + RHO z, 1 - RHO^2 + RHO^2 s^2)). The training density at one row is
S (2 pi)^(-5/2) exp(-|z|^2 / 2) as for gaussian/ (the labels' marginal is the standard normal). Its releases:
  dr17: no offsets, reported errors as they are, no systematics;
  dr19 (default): as dr17 plus sigma_sys = 300 K (one standard deviation) in Teff: a star with e_teff = 50 K (= its
        sigma_train) is drawn with an excess of exactly 300 K (50^2 + 300^2 - 50^2), every other label stays;
  dr14: offsets of half a standard deviation in every label (+150 K, +0.25, +0.1, +0.05, +0.05 dex), error_scale 2 in
        Teff (e_teff = 50 K -> excess sqrt(100^2 - 50^2) = 86.6 K), nothing else.
sigma_train = (50 K, 0.05, 0.02, 0.01, 0.01 dex): a star with errors at or below these is one row under dr17.
Run: python tests/data/make_gaussian_model.py   (needs the onnx package, e.g. the training venv; output is committed)
"""
import hashlib
import json
import math
import os

import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
RHO = 0.8
GRID_STEP = 14.0 / 249.0


def onnx_model(path, precision, log_norm):
    """log_prob(x) = -x^T P x / 2 + log_norm, P a 6x6 precision matrix."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])
    y = helper.make_tensor_value_info("log_prob", TensorProto.FLOAT, ["N"])
    nodes = [
        helper.make_node("MatMul", ["x", "precision"], ["px"]),
        helper.make_node("Mul", ["x", "px"], ["sq"]),
        helper.make_node("ReduceSum", ["sq", "axes"], ["ss"], keepdims=0),
        helper.make_node("Mul", ["ss", "minus_half"], ["half"]),
        helper.make_node("Add", ["half", "log_norm"], ["log_prob"]),
    ]
    init = [
        helper.make_tensor("precision", TensorProto.FLOAT, [6, 6], [v for row in precision for v in row]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("minus_half", TensorProto.FLOAT, [], [-0.5]),
        helper.make_tensor("log_norm", TensorProto.FLOAT, [], [log_norm]),
    ]
    graph = helper.make_graph(nodes, "gaussian6", [x], [y], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="starflow-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def dim(name, unit, mean, std, lo, hi):
    return {"name": name, "unit": unit, "mean": mean, "std": std, "train_min": lo, "train_max": hi}


def write(dirname, name, description, precision, log_norm, method, inference=None):
    out = os.path.join(HERE, dirname)
    os.makedirs(out, exist_ok=True)
    sha = onnx_model(os.path.join(out, "model.onnx"), precision, log_norm)
    manifest = {
        "format_version": 2,
        "name": name,
        "version": "0.0.2-test",
        "method": method,
        "description": description,
        "onnx": {"file": "model.onnx", "sha256": sha, "input": "x", "output": "log_prob", "opset": 17},
        "labels": [
            dim("teff", "K", 4700.0, 300.0, 3500.0, 5500.0),
            dim("logg", "dex", 2.5, 0.5, 0.5, 4.0),
            dim("fe_h", "dex", 0.0, 0.2, -1.0, 0.6),
            dim("c_fe", "dex", 0.0, 0.1, -0.5, 0.5),
            dim("n_fe", "dex", 0.2, 0.1, -0.3, 0.8),
        ],
        # Target mean on grid point 100 (of 0..249), so the maximum of an uncorrelated posterior is exactly there.
        "target": {**dim("age", "Gyr", 100 * GRID_STEP, 1.0, 0.0, 14.0), "transform": "linear",
                   "grid": {"start": 0.0, "stop": 14.0, "num": 250}},
        "default_draws": 50,
        "density": {"scale": 1.0e9, "threshold": 1.0e6, "threshold_quantile": 0.05},
    }
    if inference is not None:
        manifest["inference"] = inference
    manifest["provenance"] = {"command": "python tests/data/make_gaussian_model.py"}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(out, sha)


def release(offset, error_scale, sigma_sys, source):
    return {"offset": offset, "error_scale": error_scale, "sigma_sys": sigma_sys, "measured": [True] * 5,
            "n_stars": 0, "source": source}


identity = [[1.0 if i == j else 0.0 for j in range(6)] for i in range(6)]
write("gaussian", "age", "Closed-form test model: standard normal density in standardized space", identity,
      -3.0 * math.log(2 * math.pi), "paper")

correlated = [row[:] for row in identity]
correlated[0][0] = correlated[5][5] = 1.0 / (1.0 - RHO ** 2)
correlated[0][5] = correlated[5][0] = -RHO / (1.0 - RHO ** 2)
write("gaussian_v2", "age_v2",
      f"Closed-form test model, method v2: normal density in standardized space, corr(teff, age) = {RHO}",
      correlated, -3.0 * math.log(2 * math.pi) - 0.5 * math.log(1.0 - RHO ** 2), "v2",
      {"sigma_train": [50.0, 0.05, 0.02, 0.01, 0.01], "default_release": "dr19",
       "releases": {
           "dr17": release([0.0] * 5, [1.0] * 5, [0.0] * 5, "test: the training release"),
           "dr19": release([0.0] * 5, [1.0] * 5, [300.0, 0.0, 0.0, 0.0, 0.0], "test: 300 K systematic in Teff"),
           "dr14": release([150.0, 0.25, 0.1, 0.05, 0.05], [2.0, 1.0, 1.0, 1.0, 1.0], [0.0] * 5,
                           "test: half-sigma offsets, Teff errors underestimated 2x"),
       }})
