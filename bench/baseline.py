"""One Python baseline of bench/run.py, run in its own process so that its peak RSS is its own.

    python bench/baseline.py {torch,ort} INPUTS.npz OUT.json --threads T [--models age,mass] [--chunk-stars K]

torch: the paper's stack, normflows' own NormalizingFlow.log_prob (architecture of models/train/flow.py) with the
       trained weights read from models/<name>/model.onnx (the training pipeline keeps no PyTorch checkpoint) and
       checked against it.
ort:   onnxruntime's Python API on models/<name>/model.onnx, T intra-op threads.
Both feed models/train/reference.py (the paper's method: models age_paper, mass_paper, passed by --models) with the
draws in INPUTS.npz; the timed part is
reference.posterior_many for all stars of one model, i.e. building rows, log_prob and the per-star summaries, with
log_prob called on K stars (K x 12,500 rows) at a time: reference.py's default 64, or e.g. 2 (25,000 rows, cache-sized).
Also timed: log_prob alone on K x 12,500 standard-normal rows (one call's worth), the kernel's own rate without any
posterior work around it.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "models", "train"))
import reference  # noqa: E402


def torch_log_prob(onnx_path, threads):
    import onnx
    import onnx.numpy_helper
    import onnxruntime as ort
    import torch

    import flow as flowlib

    torch.set_num_threads(threads)
    nf_flow = flowlib.build_flow(seed=0)
    w = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(onnx_path).graph.initializer}
    # The graph (models/train/onnx_halves.py) numbers the conditioners c0.. in log_prob's evaluation order, which is
    # the flow's reverse order, and splits each last layer into shift (even output rows) and scale (odd rows).
    state = {}
    for k in range(flowlib.N_BLOCKS):
        p, m = f"c{flowlib.N_BLOCKS - 1 - k}", f"maps.{k}.net"
        last_w, last_b = np.empty((6, 16), np.float32), np.empty(6, np.float32)
        last_w[0::2], last_w[1::2], last_b[0::2], last_b[1::2] = w[p + "_wt"], w[p + "_ws"], w[p + "_bt"], w[p + "_bs"]
        for layer, (weight, bias) in {0: (w[p + "_w0"], w[p + "_b0"]), 2: (w[p + "_w2"], w[p + "_b2"]),
                                      4: (last_w, last_b)}.items():
            state[f"{m}.{layer}.weight"], state[f"{m}.{layer}.bias"] = torch.tensor(weight), torch.tensor(bias)
    missing, unexpected = flowlib.LogProb(nf_flow).load_state_dict(state, strict=False)
    # the base stays the fixed standard normal: no loc/scale constants in the graph
    assert sorted(missing) == ["loc", "log_scale"] and not unexpected and not any(n.startswith(("loc_", "inv_scale_"))
                                                                                 for n in w), (missing, unexpected)
    nf_flow = nf_flow.float().eval()

    def log_prob(x):
        with torch.inference_mode():
            return nf_flow.log_prob(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()
    # the weights went in right: same function as the ONNX file (float32 rounding apart; rows where either overflows
    # are far outside the data and have zero density in the posterior anyway)
    x = np.random.default_rng(1).standard_normal((4096, 6)).astype(np.float32)
    ours, theirs = log_prob(x), ort.InferenceSession(onnx_path).run(None, {"x": x})[0]
    both = np.isfinite(ours) & np.isfinite(theirs)
    with np.errstate(invalid="ignore"):  # inf - inf where both overflow; relative, since far rows reach -1e14
        diff = float(np.max((np.abs(ours - theirs) / np.maximum(1.0, np.abs(theirs)))[both]))
    assert both.mean() > 0.99 and diff < 1e-4, f"PyTorch flow differs from {onnx_path}: {diff}, {both.mean()} finite"
    return log_prob, {"torch": torch.__version__, "normflows": __import__("normflows").__version__,
                      "torch_threads": torch.get_num_threads(), "max_rel_log_prob_diff_vs_onnx": diff}


def ort_log_prob(onnx_path, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    session = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])

    def log_prob(x):
        return session.run(None, {"x": np.asarray(x, dtype=np.float32)})[0]
    return log_prob, {"onnxruntime": ort.__version__, "intra_op_threads": threads}


def timed(f, *args):
    t0 = time.perf_counter()
    f(*args)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["torch", "ort"])
    ap.add_argument("inputs")
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="age_paper,mass_paper")
    ap.add_argument("--chunk-stars", type=int, default=64)
    a = ap.parse_args()
    data = np.load(a.inputs)
    labels, errors, draws = data["labels"], data["errors"], data["draws"]
    out = {"kind": a.kind, "stars": len(labels), "models": {}}
    for name in a.models.split(","):
        mdir = os.path.join(ROOT, "models", name)
        model = reference.Model.from_manifest_file(os.path.join(mdir, "manifest.json"))
        make = torch_log_prob if a.kind == "torch" else ort_log_prob
        log_prob, out["versions"] = make(os.path.join(mdir, "model.onnx"), a.threads)
        if "raw_evals_per_s" not in out:
            rows = a.chunk_stars * 50 * 250
            x = np.random.default_rng(0).standard_normal((rows, 6)).astype(np.float32)
            log_prob(x)  # warm-up: first-call allocations
            out["raw_evals_per_s"] = rows / min(timed(log_prob, x) for _ in range(max(3, 2_400_000 // rows)))
        t0, c0 = time.perf_counter(), time.process_time()
        results, _ = reference.posterior_many(model, labels, errors, log_prob, seed=0, draws_list=list(draws),
                                              chunk_rows=a.chunk_stars * draws.shape[1] * len(model.grid))
        out["models"][name] = {
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,  # all threads
            "value": [r.value for r in results], "e_p": [r.e_p for r in results], "e_n": [r.e_n for r in results],
            "training_density": [r.training_density for r in results], "bitmask": [r.bitmask for r in results],
        }
    with open(a.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
