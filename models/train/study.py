#!/usr/bin/env python3
"""How method v2 was chosen: training variants compared on the VALIDATION split only (never the test split).

    python models/train/study.py [--runs NAME ...] [--only age|mass] [--work DIR]

Each run trains one flow (or reuses its saved weights from --work) and evaluates it on the validation stars:
  * dr17:     the validation stars' engine-like DR17 inputs (label_release dr17);
  * degraded: the same stars with every reported error doubled and the labels given the matching extra noise
              (sqrt(3) x error): checks that the excess draws widen the posteriors by the right amount;
  * dr14:     validation stars that MADE measured in DR14, with their DR14 labels (label_release dr14).
Ensembles are the mixture of saved members (no training of their own). Results go to
models/report/study_<model>.json, which report.py turns into the "How v2 was chosen" section of models/REPORT.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import calibration as C  # noqa: E402
import data as D  # noqa: E402
from paths import REFERENCE  # noqa: E402
import flow as F  # noqa: E402
import reference as R  # noqa: E402
import releases as RL  # noqa: E402
import train as T  # noqa: E402

REPORT_DIR = os.path.normpath(os.path.join(HERE, "..", "report"))
DEFAULT_WORK = os.path.expanduser("~/.cache/starflow-study")
SEED = 20251123
MODEL_SEED = {"age": 1, "mass": 2}
GRID = {"age": {"start": 0.0, "stop": 14.0, "num": 250}, "mass": {"start": 0.0, "stop": 3.0, "num": 250}}
EVAL_SEED = 777

# name -> (config overrides, member seeds); a run with several members is the mixture of those single runs.
# "weighting" is not a training option: the run evaluates the same trained flow with the other rule 6 of reference.py.
RUNS = {
    "v2": ({"method": "v2", "jitter": 0.1}, [0]),
    "v2_conditional": ({"method": "v2", "jitter": 0.1, "weighting": "conditional"}, [0]),
    "paper": ({"method": "paper"}, [0]),
    "v2_seed1": ({"method": "v2", "jitter": 0.1}, [1]),
    "v2_seed2": ({"method": "v2", "jitter": 0.1}, [2]),
    "v2_seed3": ({"method": "v2", "jitter": 0.1}, [3]),
    "v2_seed4": ({"method": "v2", "jitter": 0.1}, [4]),
    "v2_ensemble5": ({"method": "v2", "jitter": 0.1}, [0, 1, 2, 3, 4]),
    "v2_jitter0.3": ({"method": "v2", "jitter": 0.3}, [0]),
    "v2_jitter0.03": ({"method": "v2", "jitter": 0.03}, [0]),
    "v2_patience300": ({"method": "v2", "jitter": 0.1, "patience": 300}, [0]),
    "v2_h32_b8": ({"method": "v2", "jitter": 0.1, "hidden": 32, "blocks": 8}, [0]),
    "v2_h64_b10": ({"method": "v2", "jitter": 0.1, "hidden": 64, "blocks": 10}, [0]),
}


def member_key(overrides, member):
    keys = sorted(overrides.items())
    return "_".join(f"{k}{v}" for k, v in keys) + f"_m{member}"


def torch_log_prob(module, chunk=1 << 17):
    """numpy [N, 6] -> numpy [N] through a torch module in float32 (as the engine's ONNX Runtime)."""
    def fn(x):
        x = np.asarray(x)
        out = np.empty(len(x), dtype=np.float64)
        with torch.no_grad():
            for i in range(0, len(x), chunk):
                out[i:i + chunk] = module(torch.from_numpy(np.ascontiguousarray(x[i:i + chunk], np.float32))).numpy()
        return out
    return fn


def trained_member(name, md, overrides, member, args, standardization):
    """A member's flow and info, from --work if it was trained before."""
    cfg = T.TrainConfig(**{**overrides, "seed": SEED + MODEL_SEED[name] + 100 * member, "threads": 1,
                           "max_minutes": args.max_minutes})
    path = os.path.join(args.work, f"{name}_{member_key(overrides, member)}.pt")
    if os.path.exists(path):
        saved = torch.load(path, weights_only=False)
        flow = F.build_flow(cfg.seed, cfg.hidden, cfg.blocks)
        flow.load_state_dict(saved["state"])
        return flow.eval(), saved["info"]
    flow, info = T.train(name, md, cfg, log=lambda *a: print(*a, flush=True), full_losses=False,
                         standardization=standardization)
    info = {k: v for k, v in info.items() if k not in ("pool", "history")}
    torch.save({"state": flow.state_dict(), "info": info}, path)
    return flow, info


def model_for(name, md, prep, mean, std, method, rels, sig_train, weighting=None):
    """A reference.Model with this run's constants (density threshold filled in later)."""
    tr = md.split("train")
    v_tr, _ = D.values_errors(tr, md)
    labels = [{"mean": float(mean[i]), "std": float(std[i]), "train_min": float(v_tr[:, i].min()),
               "train_max": float(v_tr[:, i].max())} for i in range(5)]
    man = {"name": name, "labels": labels,
           "target": {"mean": float(mean[5]), "std": float(std[5]), "transform": "linear" if name == "age" else "log10",
                      "grid": GRID[name]},
           "default_draws": 50, "density": {"scale": 1.0, "threshold": 0.0}, "method": method}
    if method == "v2":
        man["inference"] = {"sigma_train": sig_train, "default_release": RL.DEFAULT_RELEASE,
                            "releases": {k: r.to_manifest() for k, r in rels.items()}}
    model = R.Model.from_manifest(man)
    if weighting:
        model.weighting = weighting
    return model


def estimates(model, log_prob, v, e, release, seed):
    res, _ = R.posterior_many(model, v, e, log_prob, seed=seed, release=release)
    col = lambda k: np.array([np.nan if getattr(r, k) is None else getattr(r, k) for r in res])  # noqa: E731
    out = {k: col(k) for k in ("value", "e_p", "e_n", "median", "p16", "p84", "training_density")}
    out["bitmask"] = np.array([r.bitmask for r in res])
    out["posterior"] = np.array([np.full(len(model.grid), np.nan) if r.posterior is None else r.posterior
                                 for r in res])
    out["n_draws"] = np.array([0 if r.posterior is None else r.n_kept for r in res])
    return out


def evaluate(name, md, prep, model, log_prob, made):
    """Metrics on the validation split in the three settings (module docstring)."""
    va = md.split("validation").reset_index(drop=True)
    tr = md.split("train")
    t, et = D.truth_of(name, va)
    # density threshold: 5th percentile over the training stars (engine-like DR17 inputs), as the pipeline does
    v_tr, e_tr = D.eval_inputs(tr)
    dens = estimates(model, log_prob, v_tr, e_tr, "dr17", EVAL_SEED + 1)["training_density"]
    threshold = float(np.quantile(np.nan_to_num(dens, nan=0.0), 0.05))
    out = {"density_threshold": threshold}
    v, e = D.eval_inputs(va)
    rng = np.random.default_rng(EVAL_SEED + 2)
    settings = {
        "dr17": (v, e, "dr17", t, et),
        "degraded": (v + np.sqrt(3.0) * e * rng.standard_normal(e.shape), 2.0 * e, "dr17", t, et),
    }
    m = made[made["KIC"].isin(va["KIC"])].reset_index(drop=True)
    if len(m):
        vm = va.set_index("KIC").loc[m["KIC"]]
        settings["dr14"] = (m[RL.LABELS].to_numpy(np.float64), m[["e_" + x for x in RL.LABELS]].to_numpy(np.float64),
                            "dr14", *D.truth_of(name, vm))
    for key, (vv, ee, release, tt, ett) in settings.items():
        est = estimates(model, log_prob, vv, ee, release, EVAL_SEED + 3)
        passing = np.nan_to_num(est["training_density"], nan=0.0) >= threshold
        sub = {k: a[passing] for k, a in est.items()}
        r = C.metrics(tt[passing], ett[passing], sub, model.grid)
        r["n_all"] = int(len(tt))
        r["one_pass_fraction"] = float(np.mean(est["n_draws"] == 1))
        out[key] = r
    return out


def speed(name, args, runs=("v2", "v2_h32_b8", "v2_h64_b10"), rows=250, calls=400):
    """ONNX Runtime time of one star's 250-row call (the engine's unit of work) per architecture, side by side in one
    process (1 intra-op thread, as the engine): the cost of capacity."""
    import tempfile

    import onnxruntime as ort
    x = np.random.default_rng(0).standard_normal((rows, 6)).astype(np.float32)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {}
        for run in runs:
            overrides, members = RUNS[run]
            path = os.path.join(args.work, f"{name}_{member_key(overrides, members[0])}.pt")
            if not os.path.exists(path):
                continue
            cfg = T.TrainConfig(**{k: v for k, v in overrides.items() if k != "weighting"})
            flow = F.build_flow(0, cfg.hidden, cfg.blocks)
            flow.load_state_dict(torch.load(path, weights_only=False)["state"])
            onnx_path = os.path.join(tmp, f"{run}.onnx")
            F.export_onnx(flow.eval(), onnx_path)
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            sessions[run] = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        for _ in range(3):  # interleaved rounds: the machine's load hits every architecture alike
            for run, sess in sessions.items():
                for _ in range(20):
                    sess.run(None, {"x": x})
                t0 = time.perf_counter()
                for _ in range(calls):
                    sess.run(None, {"x": x})
                dt = (time.perf_counter() - t0) / calls
                out[run] = min(out.get(run, float("inf")), dt)
    base = out.get("v2")
    return {run: {"ms_per_star_call": 1e3 * dt, "relative": dt / base if base else None} for run, dt in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--only", choices=["age", "mass"])
    ap.add_argument("--work", default=DEFAULT_WORK, help="where trained members are kept (default: %(default)s)")
    ap.add_argument("--data", default=None, help="data directory (default: the repository's)")
    ap.add_argument("--max-minutes", type=float, default=15.0, help="training wall-time cap per member")
    ap.add_argument("--speed", action="store_true", help="only time the capacity runs' flows in ONNX Runtime")
    args = ap.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    torch.set_num_threads(1)
    prep = D.prepare(args.data)
    data_dir = args.data or str(REFERENCE)
    train_ok = (prep.df["split"] == "train").to_numpy()
    rels = RL.calibrate(prep.df, prep.logg_cal, data_dir, train_ok)
    made = RL.made_matches(prep.df, data_dir)
    for name in ([args.only] if args.only else ["age", "mass"]):
        out = os.path.join(REPORT_DIR, f"study_{name}.json")
        results = json.load(open(out)) if os.path.exists(out) else {}
        if args.speed:
            results["_speed"] = speed(name, args)
            print(f"== {name} speed: {results['_speed']}", flush=True)
            with open(out, "w") as f:
                json.dump(results, f, indent=1, default=float)
                f.write("\n")
            continue
        md = D.model_data(prep, name)
        sig_train = D.sigma_train(md.split("train"), prep.logg_cal)
        for run in args.runs:
            overrides, members = RUNS[run]
            overrides = dict(overrides)
            weighting = overrides.pop("weighting", None)
            t0 = time.time()
            base = T.TrainConfig(**{**overrides, "seed": SEED + MODEL_SEED[name]})
            canon = T.augmentation(md.split("train"), md, base, base.seed * 10 + 1)
            standardization = (canon.mean(axis=0), canon.std(axis=0))
            del canon
            flows, infos = zip(*[trained_member(name, md, overrides, k, args, standardization) for k in members])
            module = F.EnsembleLogProb(list(flows)).float().eval()
            model = model_for(name, md, prep, *standardization, overrides["method"], rels, sig_train, weighting)
            ev = evaluate(name, md, prep, model, torch_log_prob(module), made)
            ev.update({"config": {**overrides, **({"weighting": weighting} if weighting else {})}, "members": members,
                       "validation_nll_members": [i["losses"]["validation"] for i in infos],
                       "epochs": [i["epochs"] for i in infos], "best_epoch": [i["best_epoch"] for i in infos],
                       "train_time_s": [round(i["train_time_s"], 1) for i in infos],
                       "eval_wall_s": round(time.time() - t0, 1)})
            results[run] = ev
            d = ev["dr17"]
            print(f"== {name} {run}: dr17 cov {d['coverage_1sigma']:.3f} (ml {d['coverage_1sigma_ml']:.3f}) "
                  f"2s {d['coverage_2sigma']:.3f} z {d['z_std']:.2f} (ml {d['z_std_ml']:.2f}) mrd {d['mrd']:.3f} "
                  f"bias {d['bias']:+.3f} relunc {d['rel_unc']:.3f} 1pass {d['one_pass_fraction']:.2f} | degraded cov "
                  f"{ev['degraded']['coverage_1sigma']:.3f} z {ev['degraded']['z_std']:.2f} | dr14 "
                  f"cov {ev.get('dr14', {}).get('coverage_1sigma', float('nan')):.3f} "
                  f"z {ev.get('dr14', {}).get('z_std', float('nan')):.2f} n {ev.get('dr14', {}).get('n', 0)} | "
                  f"val nll {ev['validation_nll_members']}", flush=True)
            with open(out, "w") as f:
                json.dump(results, f, indent=1, default=float)
                f.write("\n")


if __name__ == "__main__":
    main()
