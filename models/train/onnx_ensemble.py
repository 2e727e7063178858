"""One ONNX graph for an ensemble of flows: the mixture density log(mean_k exp(log_prob_k(x))).

A mixture of normalized densities is a normalized density, so everything downstream (posterior, training density,
flags) treats the ensemble as one flow: same input `x` float32[N, 6], same output `log_prob` float32[N]. Each member
is the rewritten graph of onnx_halves.py, its names prefixed `m<k>/`; they share the input. The log-sum-exp subtracts
the row's largest member log-density first, so it neither overflows nor loses a member whose density underflows.
A member whose float32 log-density is not finite (overflow far outside the data, where the engine counts a single
flow's density as zero) contributes zero density: it is replaced by FLOOR before the sum.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


FLOOR = -3.0e38  # a finite float32 log-density whose exp is 0


def _prefixed(graph: onnx.GraphProto, prefix: str):
    """The graph's nodes and initializers with every name but the input `x` prefixed."""
    rename = lambda name: name if name in ("", "x") else prefix + name  # noqa: E731
    nodes = []
    for n in graph.node:
        m = onnx.NodeProto()
        m.CopyFrom(n)
        m.name = prefix + n.name
        m.ClearField("input")
        m.ClearField("output")
        m.input.extend(rename(i) for i in n.input)
        m.output.extend(rename(o) for o in n.output)
        nodes.append(m)
    inits = []
    for t in graph.initializer:
        u = onnx.TensorProto()
        u.CopyFrom(t)
        u.name = rename(t.name)
        inits.append(u)
    return nodes, inits


def merge(members: list) -> onnx.ModelProto:
    """The mixture of the member models (onnx_halves.rewrite outputs, output `log_prob`); one member is returned as is."""
    if len(members) == 1:
        return members[0]
    nodes, inits = [], []
    outputs = []
    for k, member in enumerate(members):
        n, i = _prefixed(member.graph, f"m{k}/")
        nodes += n
        inits += i
        outputs.append(f"m{k}/log_prob")
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "ens/axis1"))
    inits.append(numpy_helper.from_array(np.array(math.log(len(members)), dtype=np.float32), "ens/log_k"))
    columns = []
    for k, out in enumerate(outputs):
        nodes.append(helper.make_node("Unsqueeze", [out, "ens/axis1"], [f"ens/col{k}"], name=f"ens/col{k}"))
        columns.append(f"ens/col{k}")
    step = lambda op, ins, out, **a: nodes.append(helper.make_node(op, ins, [out], name=out, **a))  # noqa: E731
    inits.append(numpy_helper.from_array(np.array(FLOOR, dtype=np.float32), "ens/floor"))
    step("Concat", columns, "ens/raw", axis=1)                       # [N, K]
    step("IsNaN", ["ens/raw"], "ens/nan")
    step("IsInf", ["ens/raw"], "ens/inf")
    step("Or", ["ens/nan", "ens/inf"], "ens/bad")
    step("Where", ["ens/bad", "ens/floor", "ens/raw"], "ens/all")
    step("ReduceMax", ["ens/all"], "ens/max", axes=[1], keepdims=1)  # opset 17: axes attribute
    step("Sub", ["ens/all", "ens/max"], "ens/shifted")
    step("Exp", ["ens/shifted"], "ens/exp")
    step("ReduceSum", ["ens/exp", "ens/axis1"], "ens/sum", keepdims=1)
    step("Log", ["ens/sum"], "ens/log_sum")
    step("Add", ["ens/log_sum", "ens/max"], "ens/lse")
    step("Sub", ["ens/lse", "ens/log_k"], "ens/mixture")
    step("Squeeze", ["ens/mixture", "ens/axis1"], "log_prob")
    graph = helper.make_graph(
        nodes, f"starflow_log_prob_ensemble_{len(members)}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("log_prob", TensorProto.FLOAT, ["N"])],
        inits,
    )
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="starflow models/train",
                            ir_version=members[0].ir_version)
    onnx.checker.check_model(out)
    return out
