#!/usr/bin/env python3
"""Recreate the StarFlow age and mass models end to end from the repository's reference data (data/reference).

    python models/train/pipeline.py [--method v2|paper] [--out models] [--max-minutes 25] [--quick] [--only age|mass]

data preparation -> augmentation (by method) -> training (one flow, or an ensemble of flows) -> ONNX export
(+ onnxruntime parity) -> release calibration -> manifest -> density threshold -> fixtures -> report.
Method v2 (default) writes models/age and models/mass; method paper writes models/age_paper and models/mass_paper.
See models/train/README.md and docs/METHOD.md for every choice.
"""
from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import data as D  # noqa: E402
from paths import REFERENCE, sha256_file  # noqa: E402
import flow as F  # noqa: E402
import reference as R  # noqa: E402
import releases as RL  # noqa: E402
import train as T  # noqa: E402

SEED = 20251123
DRAWS = 50
GRID = {"age": {"start": 0.0, "stop": 14.0, "num": 250}, "mass": {"start": 0.0, "stop": 3.0, "num": 250}}
MODEL_SEED = {"age": 1, "mass": 2}
VERIFY_BATCHES = (1, 7, 4096, 100000)
FORMAT_VERSION = 2
MODEL_VERSION = {"v2": "2.0.0", "paper": "1.0.0"}
# method v2's choices, made on the validation split (models/train/study.py, REPORT.md "How v2 was chosen")
V2 = {"jitter": 0.1, "members": 1, "hidden": F.HIDDEN, "blocks": F.N_BLOCKS}


def model_dir_name(name, method):
    return name if method == "v2" else f"{name}_paper"


def log(*a):
    print(f"[{_dt.datetime.now().strftime('%H:%M:%S')}]", *a, flush=True)


def lib_versions():
    import normflows
    import onnx
    import onnxruntime
    import pandas
    return {"python": platform.python_version(), "torch": torch.__version__, "normflows": normflows.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__,
            "pandas": pandas.__version__}


def torch_log_prob(module, dtype=torch.float64, chunk=1 << 17):
    """numpy [N,6] -> numpy [N] through a torch module/function (no grad, chunked)."""
    def fn(x):
        x = np.asarray(x)
        out = np.empty(len(x), dtype=np.float64)
        with torch.no_grad():
            for i in range(0, len(x), chunk):
                t = torch.from_numpy(np.ascontiguousarray(x[i:i + chunk])).to(dtype)
                out[i:i + chunk] = module(t).double().numpy()
        return out
    return fn


CN_GRID = {"c": 20, "n": 20, "target": 10}  # 4,010 flow rows per star; flags agree with a 48x48x32 plane (study)
MARGINAL_POINTS = 24


def calibrate_joint_uses(model_name, manifest, model, tr, lp64):
    """v2: the C-N plane's axes and CN_ATYPICAL threshold, and the missing-label axes and density thresholds
    (reference_cn.py rules 11-12), from the training stars' DR17 inputs."""
    import reference_cn as CN
    lab = manifest["labels"]
    tgt = manifest["target"]
    cn = {"c": CN.widened_axis(lab[3]["train_min"], lab[3]["train_max"], CN_GRID["c"]),
          "n": CN.widened_axis(lab[4]["train_min"], lab[4]["train_max"], CN_GRID["n"]),
          "target": CN.widened_axis(tgt["train_min"], tgt["train_max"], CN_GRID["target"]),
          "threshold": 0.0, "threshold_quantile": 0.975}
    v, e = D.eval_inputs(tr)
    t0 = time.time()
    levels = []
    for x, err in zip(v, e):
        x_used, _, _ = model.draw_plan(x, err, RL.TRAINING_RELEASE)
        levels.append(CN.cn_plane(model, cn, x_used, lp64).level)
    levels = np.array([1.0 if lv is None else lv for lv in levels])
    cn["threshold"] = float(np.quantile(levels, cn["threshold_quantile"]))
    log(f"{model_name}: C-N levels of {len(levels)} training stars: median {np.median(levels):.3f}, CN_ATYPICAL above "
        f"{cn['threshold']:.4f} ({time.time() - t0:.0f} s)")
    manifest["cn"] = cn
    marginal = {}
    for label in CN.MARGINALISABLE:
        i = D.LABELS.index(label)
        spec = CN.widened_axis(lab[i]["train_min"], lab[i]["train_max"], MARGINAL_POINTS)
        spec["threshold"] = 0.0
        hidden = v.copy()
        hidden[:, i] = np.nan
        t0 = time.time()
        dens = [CN.marginalised(model, {label: spec}, x, err, lp64, RL.TRAINING_RELEASE).training_density
                for x, err in zip(hidden, e)]
        spec["threshold"] = float(np.quantile([0.0 if d is None else d for d in dens], 0.05))
        log(f"{model_name}: without {label}: density threshold {spec['threshold']:.4g} ({time.time() - t0:.0f} s)")
        marginal[label] = spec
    manifest["marginal"] = marginal


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, allow_nan=False)
        f.write("\n")


def f32(v):
    """Python float of the float32 nearest v (exactly representable in float32)."""
    return float(np.float32(v))


def run_model(name, prep, args, out_root):
    t_model = time.time()
    method = args.method
    md = D.model_data(prep, name)
    model_name = model_dir_name(name, method)
    out_dir = os.path.join(out_root, model_name)
    os.makedirs(os.path.join(out_dir, "fixtures"), exist_ok=True)

    # ---- training: one flow, or an ensemble sharing one standardization ------------------------------------------
    base = T.TrainConfig(method=method, jitter=args.jitter, hidden=args.hidden, blocks=args.blocks,
                         seed=SEED + MODEL_SEED[name], lr=args.lr, lr_patience=args.lr_patience,
                         max_minutes=args.max_minutes)
    canon = T.augmentation(md.split("train"), md, base, base.seed * 10 + 1)
    mean, std = canon.mean(axis=0), canon.std(axis=0)
    del canon
    flows, infos = [], []
    for k in range(args.members):
        cfg = T.TrainConfig(**{**base.to_dict(), "seed": base.seed + 100 * k})
        flow, info = T.train(model_name + (f"[{k}]" if args.members > 1 else ""), md, cfg, log=log,
                             standardization=(mean, std))
        flows.append(flow)
        infos.append(info)
    ensemble = F.EnsembleLogProb(flows).eval()

    # ---- ONNX export + parity -----------------------------------------------------------------------------------
    pool = infos[0]["pool"]
    with torch.no_grad():
        for flow in flows:  # the batch-free wrapper is normflows' own log_prob (flow.py)
            x = torch.from_numpy(pool[:4096].astype(np.float64))
            wrapped = F.LogProb(copy.deepcopy(flow).double())(x)
            assert torch.equal(wrapped, copy.deepcopy(flow).double().log_prob(x)), "LogProb differs from normflows"
    onnx_path = os.path.join(out_dir, "model.onnx")
    F.export_onnx(flows, onnx_path, opset=17)
    parity = F.verify_onnx(copy.deepcopy(ensemble), onnx_path, pool, VERIFY_BATCHES, seed=SEED)
    log(f"{model_name}: onnxruntime vs PyTorch max relative diff per batch size: {parity}")
    assert max(parity.values()) < 1e-3, parity

    # ---- manifest constants ---------------------------------------------------------------------------------------
    tr = md.split("train")
    v_tr, _ = D.values_errors(tr, md)
    labels = []
    for i, (lab, unit) in enumerate(zip(D.LABELS, D.LABEL_UNITS)):
        labels.append({"name": lab, "unit": unit, "mean": float(mean[i]), "std": float(std[i]),
                       "train_min": float(v_tr[:, i].min()), "train_max": float(v_tr[:, i].max())})
    if name == "age":
        target = {"name": "age", "unit": "Gyr", "transform": "linear"}
    else:
        target = {"name": "mass", "unit": "Msun", "transform": "log10"}
    tvals = v_tr[:, 5]  # age in Gyr, or log10 M
    target.update({"mean": float(mean[5]), "std": float(std[5]), "train_min": float(tvals.min()),
                   "train_max": float(tvals.max()), "grid": GRID[name]})
    epochs = sum(i["epochs"] for i in infos)
    S = float(epochs * T.BATCH)
    what = "age" if name == "age" else "log10 mass"
    members = f"mixture of {args.members} RealNVPs" if args.members > 1 else "RealNVP"
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": model_name,
        "version": MODEL_VERSION[method],
        "method": method,
        "description": f"StarFlow {name} model, method {method}: {members} over (Teff, logg, [Fe/H], [C/Fe], [N/Fe], "
                       f"{what})",
        "onnx": {"file": "model.onnx", "sha256": sha256_file(onnx_path), "input": "x", "output": "log_prob",
                 "opset": 17},
        "labels": labels,
        "target": target,
        "default_draws": DRAWS,
        "density": {"scale": S, "threshold": 0.0, "threshold_quantile": 0.05},
    }
    rels = None
    if method == "v2":
        train_ok = (prep.df["split"] == "train").to_numpy()
        rels = RL.calibrate(prep.df, prep.logg_cal, args.data or str(REFERENCE), train_ok)
        manifest["inference"] = {"sigma_train": D.sigma_train(tr, prep.logg_cal),
                                 "default_release": RL.DEFAULT_RELEASE,
                                 "releases": {k: r.to_manifest() for k, r in rels.items()}}

    # ---- density threshold: 5th percentile of the training stars' training_density -----------------------------------
    ens64 = copy.deepcopy(ensemble).double().eval()
    lp64 = torch_log_prob(ens64)
    model = R.Model.from_manifest(manifest)
    v_ev, e_ev = D.eval_inputs(tr)
    t0 = time.time()
    res_tr, _ = R.posterior_many(model, v_ev, e_ev, lp64, seed=SEED * 100 + MODEL_SEED[name] * 1_000_000,
                                 release=RL.TRAINING_RELEASE)
    dens = np.array([r.training_density if r.training_density is not None else 0.0 for r in res_tr])
    thr = float(np.quantile(dens, 0.05))
    log(f"{model_name}: training_density over {len(dens)} training stars: 5th pct {thr:.4g}, median "
        f"{np.median(dens):.4g} ({time.time() - t0:.0f} s)")
    manifest["density"]["threshold"] = thr
    # the training stars' density distribution, for a scale-free density: the fraction of training stars below a star
    manifest["density"]["training_percentiles"] = [float(q) for q in np.percentile(dens, np.arange(101))]
    model.threshold = thr
    if method == "v2":
        calibrate_joint_uses(model_name, manifest, model, tr, lp64)

    # ---- provenance ------------------------------------------------------------------------------------------------
    te = md.split("test")
    losses = {k: float(np.mean([i["losses"][k] for i in infos])) for k in ("train", "validation", "test")}
    manifest["provenance"] = {
        "data_files": prep.data_files,
        "seed": infos[0]["seed"],
        "member_seeds": [i["seed"] for i in infos],
        "split_seed": D.SPLIT_SEED,
        "epochs": epochs,
        "epochs_per_member": [i["epochs"] for i in infos],
        "samples_per_epoch": T.BATCH,
        "best_epoch": [i["best_epoch"] for i in infos] if len(infos) > 1 else infos[0]["best_epoch"],
        "stopped_because": infos[0]["stopped_because"],
        "epoch_definition": f"one Adam step on one batch of 2^16 rows taken in turn from a shuffled fixed augmented "
                            f"training set ({T.N_AUG} copies per training star; reshuffled when exhausted)",
        "training": {k: v for k, v in base.to_dict().items() if k not in ("seed", "threads")},
        "augmentation": ("each star's six values drawn from Gaussians of its reported errors (paper)" if method == "paper"
                         else f"labels as measured + {args.jitter} x their errors as a smoothing jitter; log g "
                              "(seismic + DR17 offset) + the full spectroscopic scatter"),
        "losses": losses,
        "losses_per_member": [{k: i["losses"][k] for k in ("train", "validation", "test")} for i in infos],
        "onnx_graph": "the exported LogProb graph rewritten by models/train/onnx_halves.py (same weights, halves kept "
                      "as separate tensors: no Slice/Concat copies)" + (
                          "; members combined by models/train/onnx_ensemble.py (log-mean-exp)" if len(infos) > 1 else ""),
        "loss_definition": "mean negative log-likelihood in standardized space over the augmented train / validation / "
                           "test sets of the best-validation-epoch model (per member; `losses` is their mean); early "
                           "stopping monitors a fixed 2^16-row subset of the augmented validation set",
        "n_stars": {"train": int(len(tr)), "validation": int(len(md.split("validation"))), "test": int(len(te))},
        "training_wall_time_s": round(sum(i["train_time_s"] for i in infos), 1),
        "model_wall_time_s": None,
        "threads": infos[0]["threads"],
        "onnx_max_rel_diff": parity,
        "density_threshold_stars": int(len(dens)),
        "density_threshold_release": RL.TRAINING_RELEASE,
        "logg": {"treatment": "train on seismic logg + offset(logg_seis) with spectroscopic scatter sigma_spec; see "
                              "models/train/README.md",
                 "offset": f"{prep.logg_cal.a:.5f} + {prep.logg_cal.b:.5f} * (logg_seis - {D.LOGG_PIVOT})",
                 "sigma_spec": prep.logg_cal.sigma_spec},
        "test_star_ids": [str(s) for s in te["star_id"]],
        "quick": bool(args.quick),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "libraries": lib_versions(),
        "command": " ".join(["python models/train/pipeline.py"] + args.argv_recorded),
    }
    if rels is not None:
        manifest["provenance"]["release_calibration"] = {k: r.details for k, r in rels.items()}

    # ---- fixtures --------------------------------------------------------------------------------------------------
    write_log_prob_fixture(name, md, ens64, mean, std, out_dir)
    write_posterior_fixture(name, md, prep, model, lp64, out_dir, manifest)

    manifest["provenance"]["model_wall_time_s"] = round(time.time() - t_model, 1)
    write_json(os.path.join(out_dir, "manifest.json"), manifest)
    os.makedirs(os.path.join(out_root, "report"), exist_ok=True)
    np.savez_compressed(os.path.join(out_root, "report", f"{model_name}_history.npz"),
                        **{f"{part}_{k}": np.array(i["history"]["train" if part == "train" else "validation_monitor"],
                                                   np.float32)
                           for k, i in enumerate(infos) for part in ("train", "val")})
    log(f"{model_name}: wrote {out_dir}")
    return manifest


def write_log_prob_fixture(name, md, lp_module64, mean, std, out_dir):
    rng = np.random.default_rng(SEED + 31 * MODEL_SEED[name])
    te = md.split("test")
    v, e = D.values_errors(te, md)
    real = D.augment(v, e, 1, SEED + 32 * MODEL_SEED[name])
    real = real[rng.choice(len(real), size=min(200, len(real)), replace=False)]
    rows = np.concatenate([(real - mean) / std,
                           rng.standard_normal((60, 6)),
                           rng.standard_normal((30, 6)) * 3.0,
                           np.zeros((1, 6)),
                           np.array([[4.0, -4.0, 3.0, -3.0, 2.0, -2.0], [-6.0, 6.0, -5.0, 5.0, -4.0, 4.0]])])
    rows32 = rows.astype(np.float32)
    with torch.no_grad():
        lp = lp_module64(torch.from_numpy(rows32.astype(np.float64))).numpy()
    # keep rows whose log_prob is finite and > -1000: far outside the data the float32 ONNX model overflows (NaN/-inf)
    # where float64 still gives a (meaningless) finite number, so such rows cannot be parity-tested
    keep = np.isfinite(lp) & (lp > -1000.0)
    rows32, lp = rows32[keep], lp[keep]
    assert len(lp) >= 250, len(lp)
    import onnxruntime as ort
    sess = ort.InferenceSession(os.path.join(out_dir, "model.onnx"), providers=["CPUExecutionProvider"])
    y32 = sess.run(["log_prob"], {"x": rows32})[0].astype(np.float64)
    diff = float(np.max(np.abs(y32 - lp)))
    log(f"{name}: log_prob fixture: {len(lp)} rows; onnxruntime float32 vs float64 max abs diff {diff:.3g}")
    write_json(os.path.join(out_dir, "fixtures", "log_prob.json"),
               {"description": f"{name} model: standardized float32 rows and the PyTorch log_prob in float64",
                "onnxruntime_float32_max_abs_diff": diff,
                "rows": [[float(x) for x in r] for r in rows32], "log_prob": [float(x) for x in lp]})


FIXTURE_RELEASES = {"dr17": None, "dr19": 12, "dr14": 6}  # release -> how many stars (None: the main sample)


def write_posterior_fixture(name, md, prep, model, lp64, out_dir, manifest):
    """~50 real stars: mostly test stars of this model, plus naturally occurring flagged ones; for v2 also some stars
    in the dr19 and dr14 label releases (offsets and systematic draws), their C-N levels and CN_ATYPICAL bits, the
    C-N planes of a few stars, and stars with one label hidden (marginalised)."""
    import reference_cn as CN
    cn, marginal = manifest.get("cn"), manifest.get("marginal")
    df = prep.df
    test_all = df[df["split"] == "test"]
    v, e = D.eval_inputs(test_all)
    seed0 = SEED * 100 + MODEL_SEED[name] * 1_000_000 + 500_000
    in_model = test_all[f"in_{name}"].to_numpy()
    stars = []
    for release, count in FIXTURE_RELEASES.items():
        if model.method == "paper" and release != "dr17":
            continue
        res, draws = R.posterior_many(model, v, e, lp64, seed=seed0, release=release)
        levels = CN.flag_cn(model, cn, res, v, e, lp64, release) if cn else [None] * len(res)
        rng = np.random.default_rng(SEED + 77 * MODEL_SEED[name] + len(stars))
        if count is None:
            chosen = list(rng.choice(np.nonzero(in_model)[0], size=min(40, int(in_model.sum())), replace=False))
            # naturally occurring special cases (test split only): flagged bits, and stars outside this model's cuts
            for bit in (R.OUT_OF_RANGE, R.LOW_DENSITY, R.GRID_EDGE, R.MULTIMODAL):
                cand = [k for k in range(len(res)) if res[k].bitmask & bit and k not in chosen]
                chosen += cand[:3]
            chosen += [k for k in np.nonzero(~in_model)[0] if k not in chosen][:3]
        else:
            chosen = list(rng.choice(np.nonzero(in_model)[0], size=count, replace=False))
        for k in sorted(set(int(k) for k in chosen)):
            r = res[k]
            row = test_all.iloc[k]
            truth = row["age"] if name == "age" else row["mass"]
            stars.append({
                "id": str(row["star_id"]), "kic": int(row["KIC"]), "split": "test",
                f"in_{name}_training_cuts": bool(in_model[k]), "logg_source": str(row["eval_logg_source"]),
                "release": release,
                "labels": [float(x) for x in v[k]], "errors": [float(x) for x in e[k]],
                "draws": [[float(x) for x in d] for d in draws[k]],
                "posterior": None if r.posterior is None else [float(x) for x in r.posterior],
                "value": r.value, "e_p": r.e_p, "e_n": r.e_n, "median": r.median, "p16": r.p16, "p84": r.p84,
                "training_density": r.training_density, "bitmask": int(r.bitmask), "cn_level": levels[k],
                "truth": float(truth) if np.isfinite(truth) else None,
            })
    planes, hidden = [], []
    if cn:
        for s in stars[:3]:
            x_used, _, _ = model.draw_plan(s["labels"], s["errors"], s["release"])
            plane = CN.cn_plane(model, cn, x_used, lp64)
            planes.append({"id": s["id"], "release": s["release"], "labels": s["labels"], "errors": s["errors"],
                           "posterior": None if plane.posterior is None else [float(p) for p in plane.posterior],
                           "level": plane.level})
        for label in CN.MARGINALISABLE:
            i = D.LABELS.index(label)
            for s in stars[:2]:
                labels = list(s["labels"])
                labels[i] = None
                r = CN.marginalised(model, marginal, labels, s["errors"], lp64, "dr17")
                hidden.append({"id": s["id"], "release": "dr17", "labels": labels, "errors": s["errors"],
                               "hidden": label, "posterior": None if r.posterior is None else
                               [float(x) for x in r.posterior], "value": r.value, "e_p": r.e_p, "e_n": r.e_n,
                               "median": r.median, "p16": r.p16, "p84": r.p84,
                               "training_density": r.training_density, "bitmask": int(r.bitmask)})
    bits = {b: sum(1 for s in stars if s["bitmask"] & b) for b in (1, 2, 8, 16, 32)}
    one = sum(1 for s in stars if len(s["draws"]) == 1)
    log(f"{name}: posterior fixture with {len(stars)} stars ({one} with one row); bit counts {bits}")
    write_json(os.path.join(out_dir, "fixtures", "posteriors.json"),
               {"description": f"{name} model (method {model.method}): posteriors by models/train/reference.py with "
                               "the float64 PyTorch flow and the stored draws (raw units: the values the flow was "
                               "evaluated at; one row when the star needs no draws). labels/errors are the "
                               "engine-like inputs (spectroscopic logg, see models/train/README.md); `release` is "
                               "the label release they were evaluated in.",
                "method": model.method, "draws": DRAWS, "grid": GRID[name], "transform": model.transform,
                "density": {"scale": model.scale, "threshold": model.threshold}, "stars": stars,
                "cn_planes": planes, "marginalised": hidden})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.normpath(os.path.join(HERE, "..")), help="output models directory")
    ap.add_argument("--max-minutes", type=float, default=25.0, help="training wall-time cap per model")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2-minute training cap per model")
    ap.add_argument("--only", choices=["age", "mass"], help="train only one model")
    ap.add_argument("--data", default=None, help="folder of the reference tables (default: data/reference in the repository)")
    ap.add_argument("--method", choices=D.METHODS, default="v2",
                    help="v2 (default; models/age, models/mass) or paper (models/age_paper, models/mass_paper)")
    ap.add_argument("--members", type=int, default=None,
                    help=f"flows per model, exported as their mixture (default: v2 {V2['members']}, paper 1)")
    ap.add_argument("--jitter", type=float, default=V2["jitter"],
                    help="v2: training augmentation sigma as a fraction of the reported errors (not log g)")
    ap.add_argument("--hidden", type=int, default=V2["hidden"], help="units per hidden layer of the conditioners")
    ap.add_argument("--blocks", type=int, default=V2["blocks"], help="coupling blocks")
    ap.add_argument("--lr", type=float, default=T.TrainConfig.lr, help="Adam learning rate")
    ap.add_argument("--lr-patience", type=int, default=T.TrainConfig.lr_patience,
                    help="halve the lr after this many epochs without validation improvement (0: constant lr)")
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--report-implementation", choices=["starflow", "reference"], default="starflow",
                    help="what computes the report's posteriors (report.py --implementation)")
    raw = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(raw)
    args.argv = raw
    # the output location does not change the content: leave --out out of the recorded command
    rec, skip = [], False
    for a in raw:
        if skip:
            skip = False
            continue
        if a == "--out":
            skip = True
            continue
        if a.startswith("--out="):
            continue
        rec.append(a)
    args.argv_recorded = rec
    if args.quick:
        args.max_minutes = min(args.max_minutes, 2.0)
    if args.members is None:
        args.members = V2["members"] if args.method == "v2" else 1
    if args.method == "paper" and (args.members, args.hidden, args.blocks) != (1, F.HIDDEN, F.N_BLOCKS):
        ap.error("--method paper is the paper's architecture: one flow, hidden 16, 6 blocks")
    import report
    if not (args.no_report or args.report_implementation == "reference" or os.access(report.DEFAULT_STARFLOW, os.X_OK)):
        ap.error(f"no starflow binary at {report.DEFAULT_STARFLOW} for the report: build it (cargo build), or pass "
                 "--report-implementation reference or --no-report")
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    t0 = time.time()
    prep = D.prepare(args.data)
    os.makedirs(os.path.join(args.out, "report"), exist_ok=True)
    log("data:", prep.cut_counts)
    log("logg calibration:", {k: v for k, v in prep.logg_cal.to_dict().items() if k != "binned"})
    write_json(os.path.join(args.out, "report", "data_preparation.json"),
               {"cut_counts": prep.cut_counts, "logg_calibration": prep.logg_cal.to_dict(),
                "age_error_model": prep.age_model.to_dict(),
                "rel_age_err": {s: {"median": float(g["rel_age_err"].median()), "min": float(g["rel_age_err"].min()),
                                    "max": float(g["rel_age_err"].max())}
                                for s, g in prep.df.groupby("EVOL_STATE")},
                "split_counts": {s: int((prep.df["split"] == s).sum()) for s in ("train", "validation", "test")}})
    names = [args.only] if args.only else ["age", "mass"]
    for name in names:
        run_model(name, prep, args, args.out)
    log(f"models done in {time.time() - t0:.0f} s")
    if not args.no_report:
        report.main(["--models", args.out, "--implementation", args.report_implementation]
                    + (["--data", args.data] if args.data else []))
    total = time.time() - t0
    write_json(os.path.join(args.out, "report", "run_summary.json"),
               {"command": " ".join(["python models/train/pipeline.py"] + args.argv_recorded),
                "models": [model_dir_name(n, args.method) for n in names], "pipeline_wall_time_s": round(total, 1),
                "finished": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
    log(f"pipeline done in {total:.0f} s")


if __name__ == "__main__":
    main()
