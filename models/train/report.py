#!/usr/bin/env python3
"""Held-out report for the StarFlow models: writes models/REPORT.md, models/report/*.png and metrics.json.

    python models/train/report.py [--implementation starflow|reference] [--models models] [--data data/reference]

Calibration and accuracy of both methods' models (v2: models/age, models/mass; paper: models/age_paper,
models/mass_paper), on:
  * the TEST stars (5% of stars, never used for training, early stopping or any choice), with their engine-like
    APOGEE DR17 inputs (label release dr17);
  * MADE: stars that MADE measured in DR14 and that are not training stars, with their DR14 labels (label release
    dr14; test-split and validation-split stars reported apart, since the validation stars helped choose v2).
The data preparation and split are recomputed from data.py (fixed seeds; no torch). The posteriors come from:
  * starflow (default): the engine itself. The stars' inputs (float64) go to a Parquet file that `starflow sql`
    evaluates with starflow_estimate(...). As a cross-check the Python reference (reference.py + onnxruntime) is run
    on the engine's own draws (tests/data/engine_draws.py) and the largest differences are reported.
  * reference: reference.py evaluating the shipped model.onnx through onnxruntime with numpy draws (fixed seed).
The validation study that chose v2 (study.py -> models/report/study_<model>.json) is summarised when present.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "data"))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import calibration as C  # noqa: E402
import data as D  # noqa: E402
from paths import REFERENCE  # noqa: E402
import engine_draws  # noqa: E402
import reference as R  # noqa: E402
import report_cn  # noqa: E402
import releases as RL  # noqa: E402

DEFAULT_MODELS = os.path.normpath(os.path.join(HERE, ".."))
DEFAULT_STARFLOW = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/starflow-target")),
                                "debug", "starflow")
REPORT_SEED = 424242
PAPER = {"coverage_1sigma": 0.72, "z_std": 0.86, "median_rel_unc": 0.28}
TARGETS = {"age": {"z_std": (0.9, 1.1), "coverage_1sigma": (0.63, 0.73), "coverage_2sigma": (0.92, 0.98),
                   "abs_bias": 0.05, "mrd": 0.17, "rel_unc": 0.30},
           "mass": {"z_std": (0.9, 1.1), "coverage_1sigma": (0.63, 0.73), "mrd": 0.05}}
LOGG_BINS = [1.0, 1.8, 2.2, 2.5, 2.8, 3.0, 3.5]
FEH_BINS = [-0.45, -0.3, -0.15, 0.0, 0.15, 0.3, 0.45]
TRUTH_BINS = {"age": [0, 2, 4, 6, 8, 10, 14], "mass": [0.9, 1.0, 1.1, 1.2, 1.35, 1.5, 1.8]}
UNIT = {"age": "Gyr", "mass": "Msun"}
METHODS = {"v2": "", "paper": "_paper"}  # model directory suffix
SENSITIVITY = [("teff", 50.0, "+50 K in Teff"), ("logg", 0.1, "+0.1 dex in log g"), ("fe_h", 0.05, "+0.05 dex in [Fe/H]"),
               ("c_fe", 0.05, "+0.05 dex in [C/Fe]"), ("n_fe", 0.05, "+0.05 dex in [N/Fe]")]
FIELDS = ("value", "e_p", "e_n", "median", "p16", "p84", "density", "bitmask")


def ort_log_prob(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def fn(x, chunk=1 << 16):
        x = np.asarray(x, dtype=np.float32)
        out = np.empty(len(x), dtype=np.float64)
        for i in range(0, len(x), chunk):
            out[i:i + chunk] = sess.run(["log_prob"], {"x": x[i:i + chunk]})[0]
        return out
    return fn


def reference_estimates(model_dir, model, v, e, release, seed, draws=None):
    """reference.py with onnxruntime; numpy draws from `seed` unless `draws` (one [D, 5] array per star) are given."""
    res, _ = R.posterior_many(model, v, e, ort_log_prob(os.path.join(model_dir, "model.onnx")), seed=seed,
                              draws_list=draws, release=release)
    return C.columns(res, len(model.grid))


def starflow_estimates(args, model_name, grid_size, v, e, release, seed=engine_draws.DEFAULT_SEED, draws=None):
    """The engine's estimates for labels v [n, 5] and errors e [n, 5] (float64, written as they are to Parquet)."""
    table = {"id": np.arange(len(v))}
    for i, label in enumerate(D.LABELS):
        table[label], table["e_" + label] = v[:, i], e[:, i]
    star = ", ".join(f"{label}, e_{label}" for label in D.LABELS)
    fields = ", ".join(f"r['{f}'] AS {f}" for f in ("value", "e_p", "e_n", "median", "p16", "p84"))
    with tempfile.TemporaryDirectory() as tmp:
        stars, out = os.path.join(tmp, "stars.parquet"), os.path.join(tmp, "estimates.parquet")
        pq.write_table(pa.table(table), stars)
        settings = f"SET starflow.draws = {draws}; " if draws else ""
        sql = (f"SET starflow.seed = {seed}; {settings}SET starflow.label_release = '{release}'; "
               f"SELECT id, {fields}, r['training_density'] AS density, r['bitmask'] AS bitmask, "
               f"r['posterior'] AS posterior FROM (SELECT id, starflow_estimate('{model_name}', {star}) AS r "
               f"FROM '{stars}')")
        # run in the repository: the binary finds ONNX Runtime in its .ort/ (udfs/src/locate.rs), wherever we were started
        subprocess.run([args.starflow, "--quiet", "--models", args.models, "--format-out", "parquet", "-o", out, "sql",
                        sql], check=True, cwd=REPO)
        t = pq.read_table(out).to_pandas().sort_values("id")
    assert (t["id"].to_numpy() == table["id"]).all(), "starflow lost or duplicated stars"
    est = {k: t[k].to_numpy(np.float64) for k in FIELDS if k != "bitmask"}
    est["bitmask"] = t["bitmask"].to_numpy(np.int64)
    est["posterior"] = np.array([np.full(grid_size, np.nan) if p is None else p for p in t["posterior"]])
    return est


def engine_draws_for(model, v, e, release):
    """The engine's own draws of each star (its draw plan, then its counter-based RNG)."""
    out = []
    for x, err in zip(v, e):
        if R.bad_input(x, err):
            out.append(None)
            continue
        xv, sig, n = model.draw_plan(x, err, release)
        out.append(np.array([xv]) if n == 1 else
                   np.array(engine_draws.sample_labels(engine_draws.DEFAULT_SEED, list(xv), list(sig), n)))
    return out


def estimate(args, model_name, model, v, e, release, seed, draws=None, engine_seed=engine_draws.DEFAULT_SEED):
    """Per-star estimates from the chosen implementation (`seed`: the reference's numpy draws; `engine_seed`: the
    engine's starflow.seed; `draws`: starflow.draws, default the model's)."""
    if args.implementation == "starflow":
        return starflow_estimates(args, model_name, len(model.grid), v, e, release, engine_seed, draws)
    if draws:
        model = R.Model(**{**model.__dict__, "draws": draws})
    return reference_estimates(os.path.join(args.models, model_name), model, v, e, release, seed)


def cross_check(args, model_name, model, v, e, release, est):
    """Largest differences between the engine's estimates and reference.py on the engine's own draws and inputs."""
    ref = reference_estimates(os.path.join(args.models, model_name), model, v, e, release, 0,
                              engine_draws_for(model, v, e, release))

    def max_abs(k):
        return float(np.nanmax(np.abs(est[k] - ref[k])))
    return {"n": int(len(v)), "grid_step": float(model.grid[1] - model.grid[0]),
            **{f"max_abs_{k}": max_abs(k) for k in ("value", "e_p", "e_n", "median", "p16", "p84", "posterior")},
            "max_rel_density": float(np.nanmax(np.abs(est["density"] / ref["density"] - 1))),
            "n_differing_bitmask_or_estimate": int(((est["bitmask"] != ref["bitmask"]) |
                                                    (np.isnan(est["value"]) != np.isnan(ref["value"]))).sum())}


def evaluation_sets(prep, md, name, data_dir):
    """{set name: (table of the stars, labels [n,5], errors [n,5], label release)}."""
    te = md.split("test").reset_index(drop=True)
    v, e = D.eval_inputs(te)
    sets = {"test": (te, v, e, "dr17")}
    made = RL.made_matches(prep.df, data_dir)
    for split in ("test", "validation"):
        part = md.split(split).set_index("KIC")
        m = made[made["KIC"].isin(part.index)].reset_index(drop=True)
        rows = part.loc[m["KIC"]].reset_index()
        sets[f"made_dr14_{split}"] = (rows, m[RL.LABELS].to_numpy(np.float64),
                                      m[["e_" + x for x in RL.LABELS]].to_numpy(np.float64), "dr14")
    return sets


def passing(est, model):
    return np.isfinite(est["value"]) & ((est["bitmask"] & R.LOW_DENSITY) == 0)


def evaluate_model(args, prep, name, method):
    model_name = name + METHODS[method]
    man = json.load(open(os.path.join(args.models, model_name, "manifest.json")))
    model = R.Model.from_manifest(man)
    md = D.model_data(prep, name)
    ids = man["provenance"].get("test_star_ids")
    if ids is not None:
        assert list(md.split("test")["star_id"].astype(str)) == ids, "test stars differ from the manifest's"
    out = {"manifest": man, "model": model, "sets": {}}
    seed = REPORT_SEED + (0 if name == "age" else 10_000_000)
    for set_name, (df, v, e, release) in evaluation_sets(prep, md, name, args.data_dir).items():
        est = estimate(args, model_name, model, v, e, release, seed)
        t, et = D.truth_of(name, df)
        ok = passing(est, model)
        sub = {k: a[ok] for k, a in est.items()}
        entry = {"df": df, "v": v, "est": est, "truth": t, "e_truth": et, "passing": ok, "release": release,
                 "metrics": C.metrics(t[ok], et[ok], sub, model.grid),
                 "metrics_all": C.metrics(t, et, est, model.grid),
                 "n_stars": int(len(t)), "n_no_estimate": int((~np.isfinite(est["value"])).sum())}
        if set_name == "test":
            entry["one_row"] = None if method == "paper" else float(np.mean(
                [model.draw_plan(x, err, release)[2] == 1 for x, err in zip(v, e) if not R.bad_input(x, err)]))
            entry["by_truth"] = C.binned(t[ok], t[ok], et[ok], sub, model.grid, TRUTH_BINS[name])
            entry["mrd_by_logg"] = C.binned(v[ok, 1], t[ok], et[ok], sub, model.grid, LOGG_BINS)
            entry["mrd_by_feh"] = C.binned(v[ok, 2], t[ok], et[ok], sub, model.grid, FEH_BINS)
            entry["bit_counts"] = {nm: int(((est["bitmask"] & b) != 0).sum()) for nm, b in
                                   (("LOW_DENSITY", 1), ("GRID_EDGE", 2), ("BAD_INPUT", 4), ("OUT_OF_RANGE", 8),
                                    ("MULTIMODAL", 16))}
            if args.implementation == "starflow":
                entry["cross_check"] = cross_check(args, model_name, model, v, e, release, est)
            if method == "v2":
                entry["sensitivity"] = sensitivity(args, model_name, model, v, e, est, ok, seed)
                entry["monte_carlo"] = monte_carlo(args, model_name, model, v, e, seed)
        out["sets"][set_name] = entry
    if method == "v2":
        out["cn"] = report_cn.evaluate(
            name, model, man, prep, lambda v, e: estimate(args, model_name, model, v, e, report_cn.RELEASE, seed),
            ort_log_prob(os.path.join(args.models, model_name, "model.onnx")))
    return out


def sensitivity(args, model_name, model, v, e, base, ok, seed):
    """Median shift of the posterior median of the test stars (passing density) for a shift of one input label."""
    out = []
    for label, delta, text in SENSITIVITY:
        i = D.LABELS.index(label)
        shifted = v.copy()
        shifted[:, i] += delta
        est = estimate(args, model_name, model, shifted, e, "dr17", seed)
        d = est["median"][ok] - base["median"][ok]
        out.append({"label": label, "delta": delta, "text": text, "median_shift": float(np.nanmedian(d)),
                    "median_rel_shift": float(np.nanmedian(d / base["median"][ok])),
                    "p16_p84_shift": [float(np.nanpercentile(d, 16)), float(np.nanpercentile(d, 84))]})
    return out


MC_RELEASE = "dr19"  # every star is drawn there (the unknown-release prior), so the scatter shows


def monte_carlo(args, model_name, model, v, e, seed):
    """Seed-to-seed scatter of the test stars' numbers with D and 4D draws (release dr19, where all stars are drawn)."""
    out = []
    for draws in (model.draws, 4 * model.draws):
        a = estimate(args, model_name, model, v, e, MC_RELEASE, seed, draws, engine_seed=1)
        b = estimate(args, model_name, model, v, e, MC_RELEASE, seed + 1, draws, engine_seed=2)
        d = np.abs(a["median"] - b["median"])
        w = 0.5 * (a["p84"] - a["p16"])
        out.append({"draws": draws, "median_abs_shift": float(np.nanmedian(d)),
                    "p95_abs_shift": float(np.nanpercentile(d, 95)),
                    "median_shift_over_width": float(np.nanmedian(d / w)),
                    "ml_changed": float(np.nanmean(a["value"] != b["value"])),
                    "bitmask_changed": int((a["bitmask"] != b["bitmask"]).sum()), "n": int(len(v))})
    return out


# ---- figures -----------------------------------------------------------------------------------------------------

def fig_calibration(name, evs, out):
    """PIT histogram and calibration curve, v2 and paper, test stars and MADE DR14 test+validation stars."""
    fig, axs = plt.subplots(1, 2, figsize=(10.5, 4))
    for method, ls in (("v2", "-"), ("paper", "--")):
        for set_name, color in (("test", "C0"), ("made_dr14_validation", "C1")):
            m = evs[method]["sets"][set_name]["metrics"]
            if not m.get("n"):
                continue
            label = f"{method}, {set_name.replace('_', ' ')} (n={m['n']})"
            h = np.array(m["pit_histogram"], dtype=float)
            axs[0].step(np.linspace(0, 1, 11), np.r_[h, h[-1]] / h.sum() * 10, where="post", ls=ls, color=color,
                        label=label)
            cc = m["calibration_curve"]
            axs[1].plot(cc["levels"], cc["observed"], ls=ls, color=color, marker=".", label=label)
    axs[0].axhline(1, color="k", lw=0.8)
    axs[0].set_xlabel("PIT: posterior CDF at the asteroseismic value")
    axs[0].set_ylabel("density (1 = calibrated)")
    axs[1].plot([0, 1], [0, 1], "k-", lw=0.8)
    axs[1].set_xlabel("posterior probability of the central interval")
    axs[1].set_ylabel("fraction of asteroseismic values inside")
    axs[1].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{name}: calibration (stars passing density)")
    fig.tight_layout()
    p = os.path.join(out, f"{name}_calibration.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def fig_estimate_vs_truth(name, evs, out):
    """Posterior median vs asteroseismic value (paper Fig. 5), with binned medians: the compression toward the middle."""
    fig, axs = plt.subplots(1, 2, figsize=(11, 5), sharey=True)
    lim = [0, 14] if name == "age" else [0.8, 2.0]
    for ax, method in zip(axs, ("v2", "paper")):
        s = evs[method]["sets"]["test"]
        ok, t, est = s["passing"], s["truth"], s["est"]
        ax.errorbar(t[ok], est["median"][ok], yerr=[est["median"][ok] - est["p16"][ok], est["p84"][ok] - est["median"][ok]],
                    fmt="none", ecolor="0.85", lw=0.6, zorder=1)
        sc = ax.scatter(t[ok], est["median"][ok], c=s["v"][ok, 2], cmap="viridis", s=12, vmin=-0.45, vmax=0.45, zorder=2)
        edges = np.array(TRUTH_BINS[name], dtype=float)
        mids, meds = [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            m = ok & (t >= lo) & (t < hi)
            if m.sum() >= 5:
                mids.append(np.median(t[m]))
                meds.append(np.median(est["median"][m]))
        ax.plot(mids, meds, "ko-", lw=1.5, zorder=3, label="binned median")
        ax.plot(lim, lim, "r-", lw=1)
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_xlabel(f"asteroseismic {name} [{UNIT[name]}]")
        ax.set_title(f"method {method}: posterior median, 16-84% (n={int(ok.sum())})")
        ax.legend(loc="upper left")
    axs[0].set_ylabel(f"StarFlow {name} [{UNIT[name]}]")
    fig.colorbar(sc, ax=axs, label="[Fe/H]")
    p = os.path.join(out, f"{name}_vs_seismic.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def fig_bins(name, evs, out):
    """Coverage, Z-score std and MRD per asteroseismic bin (v2 vs paper)."""
    fig, axs = plt.subplots(1, 3, figsize=(13, 3.8))
    for method, color in (("v2", "C0"), ("paper", "C3")):
        bins = evs[method]["sets"]["test"]["by_truth"]
        x = [0.5 * (b["bin"][0] + b["bin"][1]) for b in bins]
        for ax, key in zip(axs, ("coverage_1sigma", "z_std", "mrd")):
            ax.plot(x, [b.get(key, np.nan) for b in bins], "o-", color=color, label=method)
    for ax, key, ref in zip(axs, ("1-sigma coverage (16-84%)", "Z-score std", "MRD (median)"), (0.68, 1.0, None)):
        if ref:
            ax.axhline(ref, color="k", lw=0.8)
        ax.set_xlabel(f"asteroseismic {name} [{UNIT[name]}]")
        ax.set_ylabel(key)
    axs[0].legend()
    fig.suptitle(f"{name}: calibration per asteroseismic bin (test stars passing density)")
    fig.tight_layout()
    p = os.path.join(out, f"{name}_bins.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def fig_loss(name, man, out):
    hp = os.path.join(out, f"{name}_history.npz")
    if not os.path.exists(hp):
        return None
    h = np.load(hp)
    fig, ax = plt.subplots(figsize=(6, 4))
    for k in range(len([f for f in h.files if f.startswith("val_")])):
        ax.plot(np.arange(1, len(h[f"train_{k}"]) + 1), h[f"train_{k}"], lw=0.4, alpha=0.5, color="C0",
                label="train batch" if k == 0 else None)
        ax.plot(np.arange(1, len(h[f"val_{k}"]) + 1), h[f"val_{k}"], lw=1, color="C1",
                label="validation (monitor subset)" if k == 0 else None)
    lo = np.nanpercentile(h["val_0"], 1) - 0.3
    ax.set_ylim(lo, lo + 3)
    ax.set_xscale("log")
    ax.set_xlabel("epoch (one batch of 2^16 samples)")
    ax.set_ylabel("NLL (standardized space)")
    ax.legend()
    ax.set_title(f"{name}: training ({man['method']})")
    fig.tight_layout()
    p = os.path.join(out, f"{name}_loss.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


# ---- text --------------------------------------------------------------------------------------------------------

def pct(x):
    return "-" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def fmt(x, d=2):
    return "-" if x is None or not np.isfinite(x) else f"{x:.{d}f}"


def produced_by(args):
    """Which implementation made the report, at which commit, and the command that regenerates it."""
    def run(*cmd):
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    command = "python models/train/report.py"
    if args.implementation != "starflow":
        command += f" --implementation {args.implementation}"
    if os.path.abspath(args.models) != DEFAULT_MODELS:
        command += f" --models {args.models}"
    try:
        commit = run("git", "-C", REPO, "rev-parse", "--short=12", "HEAD")
        if run("git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"):
            commit += " with uncommitted changes"
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (no git repository)"
    out = {"implementation": args.implementation, "commit": commit, "command": command}
    if args.implementation == "starflow":
        if not os.access(args.starflow, os.X_OK):
            sys.exit(f"report.py: no starflow binary at {args.starflow}: build it (cargo build), pass --starflow PATH, "
                     "or use --implementation reference")
        out["starflow_version"] = run(args.starflow, "--version")
        out["seed"] = engine_draws.DEFAULT_SEED
    return out


ROWS = [  # (label, metric key, formatter, paper value)
    ("stars passing density / all", None, None, "-"),
    ("1-sigma coverage, 16-84% interval", "coverage_1sigma", pct, "-"),
    ("1-sigma coverage, ML interval (paper's)", "coverage_1sigma_ml", pct, "~72%"),
    ("2-sigma coverage, 2.3-97.7% interval", "coverage_2sigma", pct, "-"),
    ("Z-score std, median (paper's formula)", "z_std", fmt, "0.86"),
    ("Z-score std, ML (paper's formula)", "z_std_ml", fmt, "0.86"),
    ("Z-score std without the seismic error", "z_std_without_truth_error", fmt, "-"),
    ("MRD, median", "mrd", pct, "11-23%"),
    ("MRD, ML", "mrd_ml", pct, "11-23%"),
    ("median relative bias, median", "bias", pct, "-"),
    ("median relative bias, ML", "bias_ml", pct, "-"),
    ("median relative uncertainty, (p84-p16)/2/median", "rel_unc", pct, "~28%"),
    ("median relative uncertainty, ML interval", "rel_unc_ml", pct, "~28%"),
    ("median relative asteroseismic uncertainty", "rel_unc_truth", pct, "~12%"),
    ("slope of median vs asteroseismic (compression)", "compression_slope", fmt, "-"),
]


def table(columns):
    """Markdown rows of ROWS for [(header, set entry)]."""
    L = ["| quantity | paper | " + " | ".join(h for h, _ in columns) + " |", "|---|---|" + "---|" * len(columns)]
    for label, key, f, paper in ROWS:
        if key is None:
            cells = [f"{s['metrics'].get('n', 0)} / {s['n_stars']}" for _, s in columns]
        else:
            cells = [f(s["metrics"].get(key)) if s["metrics"].get("n") else "-" for _, s in columns]
        L.append(f"| {label} | {paper} | " + " | ".join(cells) + " |")
    return L


def study_section(models_dir):
    L = []
    for name in ("age", "mass"):
        path = os.path.join(models_dir, "report", f"study_{name}.json")
        if not os.path.exists(path):
            continue
        st = json.load(open(path))
        L.append(f"**{name}** (validation stars passing density; the same seed and architecture unless named):")
        L.append("")
        L.append("| run | val. NLL | 1-sigma cov. | 2-sigma cov. | Z std | MRD | bias | rel. unc. | one row | "
                 "degraded: cov. / Z | MADE DR14: cov. / Z (n) |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for run, r in st.items():
            if run.startswith("_"):
                continue
            d, g, m = r["dr17"], r["degraded"], r.get("dr14", {})
            nll = np.mean(r["validation_nll_members"])
            L.append(f"| {run} | {nll:.4f} | {pct(d['coverage_1sigma'])} | {pct(d['coverage_2sigma'])} | "
                     f"{fmt(d['z_std'])} | {pct(d['mrd'])} | {pct(d['bias'])} | {pct(d['rel_unc'])} | "
                     f"{pct(d['one_pass_fraction'])} | {pct(g['coverage_1sigma'])} / {fmt(g['z_std'])} | "
                     f"{pct(m.get('coverage_1sigma'))} / {fmt(m.get('z_std'))} ({m.get('n', 0)}) |")
        L.append("")
        if "_speed" in st:
            L.append("ONNX Runtime time of one star's 250-row call, relative to the paper's architecture (`study.py "
                     "--speed`, interleaved in one process): " + ", ".join(
                         f"{run} {v['ms_per_star_call']:.2f} ms ({v['relative']:.1f}x)" for run, v in st["_speed"].items())
                     + ".")
            L.append("")
    return L


def write_markdown(args, M, evs, figs, prep):
    L = []
    A = L.append
    by = M["produced_by"]
    A("# StarFlow models: calibration and accuracy on held-out stars")
    A("")
    if by["implementation"] == "starflow":
        A(f"Produced by the **starflow engine** ({by['starflow_version']}, repository commit {by['commit']}): "
          "`models/train/report.py` writes each evaluation set's inputs (float64) to a Parquet file and `starflow sql` "
          "evaluates them with `starflow_estimate(model, ...)` on the shipped `models/<name>/model.onnx` (ONNX Runtime, "
          f"float32), `starflow.seed` = {by['seed']}, `starflow.label_release` as given per set. The Python reference "
          "(`models/train/reference.py`) recomputes the test stars from the engine's own draws; the largest "
          "differences are under each model.")
    else:
        A(f"Produced by the **Python reference implementation** (`models/train/reference.py`, repository commit "
          f"{by['commit']}) evaluating the shipped `model.onnx` files through onnxruntime (float32), numpy draws with "
          "a fixed seed; not by the starflow engine.")
    A("")
    A(f"Regenerate without retraining: `{by['command']}` (the data preparation and split are recomputed from "
      "`models/train/data.py`). The method is described in [`docs/METHOD.md`](../docs/METHOD.md).")
    A("")
    A("Evaluation sets (only stars never used for training):")
    A("")
    A("- **test**: the 5% test split (chosen by star with a fixed seed; never used for training, early stopping, the "
      "density threshold or any choice), engine-like APOGEE DR17 inputs: DR17 Teff, [Fe/H], [C/Fe], [N/Fe] with "
      "their errors, and the DR17 spectroscopic log g where the star has one (else a simulated one), label release "
      "`dr17`.")
    A("- **MADE DR14**: the same kind of stars as measured in APOGEE DR14 (MADE, Das & Sanders 2019), label release "
      "`dr14` (offsets and error scales estimated on training stars only): test-split stars, and validation-split "
      "stars (which the choice of v2 looked at, so not fully independent).")
    A("")
    A("Truths: APOKASC v7.0.5 ages with errors derived from the seismic masses (median ~14%), APOKASC-3 seismic masses "
      "(~4%). Coverage counts truths inside our interval (their own error not counted); the Z-score "
      "(estimate - truth) / sqrt(sigma_truth^2 + sigma_ours^2) counts it once, as the paper (sec. 5.2). Our posteriors "
      "are of the asteroseismic value (the flow learned the asteroseismic labels with their noise), so a calibrated "
      "model has 68% coverage and a Z-score std somewhat below 1 (0.9-0.95 for ages, whose seismic errors are half "
      "our widths); the Z-score without the seismic error is given too. Stars passing density: LOW_DENSITY clear.")
    A("")
    for name in ("age", "mass"):
        if name not in evs:
            continue
        ev = evs[name]
        v2, pp = ev["v2"], ev["paper"]
        man = v2["manifest"]
        pv = man["provenance"]
        A(f"## {name}")
        A("")
        A(f"Model `{man['name']}` {man['version']} ({man['description']}): {pv['n_stars']['train']} / "
          f"{pv['n_stars']['validation']} / {pv['n_stars']['test']} stars train/validation/test, "
          f"{pv['epochs']} epochs of 2^16 samples in all, {pv['training_wall_time_s']:.0f} s of training"
          f"{' (QUICK smoke run)' if pv.get('quick') else ''}; NLL train/validation/test = "
          f"{pv['losses']['train']:.4f} / {pv['losses']['validation']:.4f} / {pv['losses']['test']:.4f}; density "
          f"threshold {man['density']['threshold']:.4g}. Paper-method model `{pp['manifest']['name']}` "
          f"{pp['manifest']['version']} beside it.")
        A("")
        cols = [("v2 test", v2["sets"]["test"]), ("paper test", pp["sets"]["test"]),
                ("v2 MADE DR14 test", v2["sets"]["made_dr14_test"]),
                ("v2 MADE DR14 validation", v2["sets"]["made_dr14_validation"]),
                ("paper MADE DR14 validation", pp["sets"]["made_dr14_validation"])]
        L.extend(table(cols))
        A("")
        t = v2["sets"]["test"]
        A(f"v2 test stars: {t['n_stars']}, without estimate {t['n_no_estimate']}; flags "
          + ", ".join(f"{k} {c}" for k, c in t["bit_counts"].items())
          + f". Stars evaluated with one flow row set (no draws: every label's error within the training noise): "
            f"{pct(t['one_row'])}.")
        A("")
        if "cross_check" in t:
            c = t["cross_check"]
            A(f"Engine vs reference ({c['n']} v2 test stars, reference.py with onnxruntime on the engine's draws): max "
              f"|difference| value {c['max_abs_value']:.3g}, median {c['max_abs_median']:.3g}, p16 {c['max_abs_p16']:.3g}, "
              f"p84 {c['max_abs_p84']:.3g}, e_p {c['max_abs_e_p']:.3g}, e_n {c['max_abs_e_n']:.3g} {UNIT[name]} (grid step "
              f"{c['grid_step']:.3g}); density {c['max_rel_density']:.2g} relative; posterior "
              f"{c['max_abs_posterior']:.2g}; stars whose bitmask or estimate/no-estimate differ: "
              f"{c['n_differing_bitmask_or_estimate']}.")
            A("")
        A("Per asteroseismic bin (v2, test stars passing density):")
        A("")
        A(f"| {name} bin [{UNIT[name]}] | n | 1-sigma cov. | 2-sigma cov. | Z std | MRD | bias | rel. unc. |")
        A("|---|---|---|---|---|---|---|---|")
        for b in t["by_truth"]:
            A(f"| {b['bin'][0]}-{b['bin'][1]} | {b['n']} | {pct(b.get('coverage_1sigma'))} | "
              f"{pct(b.get('coverage_2sigma'))} | {fmt(b.get('z_std'))} | {pct(b.get('mrd'))} | {pct(b.get('bias'))} | "
              f"{pct(b.get('rel_unc'))} |")
        A("")
        A("| log g bin | n | MRD | [Fe/H] bin | n | MRD |")
        A("|---|---|---|---|---|---|")
        for a, b in zip(t["mrd_by_logg"], t["mrd_by_feh"]):
            A(f"| {a['bin'][0]}-{a['bin'][1]} | {a['n']} | {pct(a.get('mrd'))} | {b['bin'][0]}-{b['bin'][1]} | "
              f"{b['n']} | {pct(b.get('mrd'))} |")
        A("")
        A("Sensitivity (v2; median over the test stars passing density of the shift of the posterior median when "
          "one input label is shifted, release dr17):")
        A("")
        A(f"| input shift | median shift [{UNIT[name]}] | relative | 16th-84th percentile of the shift |")
        A("|---|---|---|---|")
        for s in t["sensitivity"]:
            A(f"| {s['text']} | {s['median_shift']:+.3f} | {100 * s['median_rel_shift']:+.1f}% | "
              f"{s['p16_p84_shift'][0]:+.3f} .. {s['p16_p84_shift'][1]:+.3f} |")
        A("")
        A(f"Monte-Carlo scatter (v2, test stars in label release {MC_RELEASE}, where every star is drawn): the same "
          "stars with two seeds.")
        A("")
        A(f"| draws | median abs. shift of the median [{UNIT[name]}] | 95th percentile | median shift / 1-sigma "
          "half-width | ML changed | bitmasks changed |")
        A("|---|---|---|---|---|---|")
        for m in t["monte_carlo"]:
            A(f"| {m['draws']} | {m['median_abs_shift']:.3f} | {m['p95_abs_shift']:.3f} | "
              f"{m['median_shift_over_width']:.3f} | {pct(m['ml_changed'])} | {m['bitmask_changed']} of {m['n']} |")
        A("")
        if v2.get("cn"):
            L.extend(report_cn.markdown(name, v2["cn"], figs[name], pct, fmt))
        for key, title in (("calibration", "PIT histogram and calibration curve"),
                           ("vs_seismic", "posterior median vs asteroseismic value, binned (compression)"),
                           ("bins", "coverage, Z-score std and MRD per asteroseismic bin"),
                           ("loss", "training and validation loss")):
            if figs[name].get(key):
                A(f"![{name}: {title}](report/{os.path.basename(figs[name][key])})")
                A("")
    A("## How v2 was chosen (validation split only)")
    A("")
    A("`python models/train/study.py` trains the variants below and scores them on the validation stars (never the "
      "test stars): `dr17` their DR17 inputs; `degraded` the same stars with every error doubled and the labels "
      "given the matching extra noise (does the excess-draw rule widen posteriors by the right amount?); `MADE DR14` "
      "validation stars with DR14 labels in label release dr14. `one row`: stars needing no draws. v2 differs from "
      "`v2_conditional` only in the posterior's weighting of draws (reference.py rule 6).")
    A("")
    L.extend(study_section(args.models))
    A("## Why the numbers differ from the paper's")
    A("")
    A("- **Training sample.** The paper trains on 15,641 APOKASC-3 + APO-K2 stars over -1.2 < [Fe/H] < 0.45, "
      "alpha-rich and alpha-poor, log g down to ~1. We have the 6,603-star APOKASC-3 alpha-poor Gold subset only "
      "(0.9 < M < 1.8 Msun, |[Fe/H]| < 0.45): a narrower, more homogeneous sample.")
    A("- **Labels.** Ages are APOKASC internal v7.0.5 (Tayar), not the final APOKASC-3 ages, with errors derived from "
      "the seismic mass error (median ~14%; the paper's ~12% are reported). log g: offset-corrected seismic log g "
      f"with the measured spectroscopic scatter (sigma = {prep.logg_cal.sigma_spec:.3f} dex, {prep.logg_cal.n} stars "
      "with both), evaluated on DR17 spectroscopic log g where available.")
    A("- **Split by star.** The paper splits augmented samples, so copies of a test star are in its training set; "
      "we split by star, so these are out-of-sample numbers.")
    A("- **Density scale.** S = epochs x 2^16 is ~1e8 here (the paper: ~80,000 epochs), so training_density is on "
      "another scale than the paper's 3e9 cut; the threshold is calibrated the same way (5th percentile of the "
      "training stars).")
    A("- **Method.** The paper's recipe (`paper` columns) blurs every label twice (training augmentation with the "
      "reported errors, then draws from them again at inference) and reports the mode of a right-skewed posterior: "
      "wide intervals (coverage ~80%) and ages biased low. v2 (docs/METHOD.md) counts each label's noise once and "
      "reports the median and percentiles beside the ML.")
    A("- **Compression.** Estimates are pulled toward the middle of the age range (slope of median vs asteroseismic "
      "< 1 in the tables): the information in [C/N] is weak for old stars (the paper's Fig. 5 plateau above 8 Gyr). "
      "Calibrated posteriors are wide there rather than wrong; judge by coverage per bin, not by the slope.")
    A("- **Test-set size.** ~330 stars (MADE test: ~40): binned numbers with n < 20 are noisy; a second training seed "
      "moves validation coverage by a few points (study table).")
    A("")
    with open(os.path.join(args.models, "REPORT.md"), "w") as f:
        f.write("\n".join(L))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--implementation", choices=["starflow", "reference"], default="starflow",
                    help="what computes the posteriors: the starflow engine (default) or reference.py")
    ap.add_argument("--starflow", default=DEFAULT_STARFLOW, help="starflow binary (default: %(default)s)")
    ap.add_argument("--models", default=DEFAULT_MODELS, help="models directory (default: the bundled models/)")
    ap.add_argument("--data", default=None, help="folder of the reference tables (default: data/reference in the repository)")
    args = ap.parse_args(argv)
    args.models = os.path.abspath(args.models)
    args.data_dir = args.data or str(REFERENCE)
    by = produced_by(args)  # before writing anything: the commit state is that of the inputs
    out = os.path.join(args.models, "report")
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    prep = D.prepare(args.data)
    M = {"produced_by": by}
    evs, figs = {}, {}
    for name in ("age", "mass"):
        if not all(os.path.exists(os.path.join(args.models, name + s, "manifest.json")) for s in METHODS.values()):
            continue
        evs[name] = {method: evaluate_model(args, prep, name, method) for method in METHODS}
        M[name] = {method: {set_name: {k: v for k, v in s.items()
                                       if k not in ("df", "v", "est", "truth", "e_truth", "passing")}
                            for set_name, s in evs[name][method]["sets"].items()}
                   for method in METHODS}
        figs[name] = {"calibration": fig_calibration(name, evs[name], out),
                      "vs_seismic": fig_estimate_vs_truth(name, evs[name], out),
                      "bins": fig_bins(name, evs[name], out),
                      "loss": fig_loss(name, evs[name]["v2"]["manifest"], out)}
        cn = evs[name]["v2"].get("cn")
        if cn:
            M[name]["v2"]["cn"] = {k: v for k, v in cn.items() if k != "examples"}
            figs[name].update(report_cn.figures(name, evs[name]["v2"]["manifest"]["cn"], cn, out, plt))
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(M, f, indent=1, default=float)
        f.write("\n")
    write_markdown(args, M, evs, figs, prep)
    print(f"report written by {args.implementation} in {time.time() - t0:.0f} s:", os.path.join(args.models, "REPORT.md"))


if __name__ == "__main__":
    main()
