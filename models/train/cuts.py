#!/usr/bin/env python3
"""The evidence behind the recommended quality cuts (starflow_good): writes models/CUTS.md.

    python models/train/cuts.py [--starflow PATH] [--models models] [--data data/reference]

For the v2 models' VALIDATION stars (the split that chose v2's settings; never the test split), with their engine-like
APOGEE DR17 inputs, the engine's estimates (starflow_estimate, as report.py gets them) are compared with the
asteroseismic truth per cut ('recommended', 'paper', 'strict': the bits each drops, as udfs/src/functions/starflow_good.rs
defines them) and per flag: how many stars, 1-sigma coverage of the 16-84% interval, median relative deviation and
bias of the posterior median, median relative uncertainty.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import calibration as C  # noqa: E402
import data as D  # noqa: E402
import report as REP  # noqa: E402

# (name, bits a kept star must not have): udfs/src/functions/starflow_good.rs
CUTS = [("recommended", 1 | 2 | 4 | 8 | 32), ("paper", 1 | 4), ("strict", ~0)]
BITS = [(1, "LOW_DENSITY"), (2, "GRID_EDGE"), (8, "OUT_OF_RANGE"), (16, "MULTIMODAL"), (32, "CN_ATYPICAL"),
        (64, "LABEL_MARGINALISED")]
RELEASE = "dr17"


def row(label, est, truth, e_truth, grid, keep):
    sub = {k: v[keep] for k, v in est.items()}
    m = C.metrics(truth[keep], e_truth[keep], sub, grid)
    if m["n"] < 3:
        return f"| {label} | {m['n']} | | | | |"
    return (f"| {label} | {m['n']} | {REP.pct(m['coverage_1sigma'])} | {REP.pct(m['mrd'])} | {REP.pct(m['bias'])} | "
            f"{REP.pct(m['rel_unc'])} |")


def section(args, prep, name):
    man_dir = os.path.join(args.models, name)
    model = REP.R.Model.from_manifest(REP.json.load(open(os.path.join(man_dir, "manifest.json"))))
    df = D.model_data(prep, name).split("validation").reset_index(drop=True)
    v, e = D.eval_inputs(df)
    est = REP.starflow_estimates(args, name, len(model.grid), v, e, RELEASE)
    truth, e_truth = D.truth_of(name, df)
    has = np.isfinite(est["value"])
    bits = est["bitmask"]
    lines = [f"### {name} (validation stars: {len(df)}, with an estimate: {int(has.sum())})", "",
             "| stars | n | 1-sigma coverage | MRD | median bias | median rel. unc. |", "|---|---|---|---|---|---|",
             row("all with an estimate", est, truth, e_truth, model.grid, has)]
    for cut, drop in CUTS:
        lines.append(row(f"`starflow_good(bitmask, '{cut}')`", est, truth, e_truth, model.grid, has & ((bits & drop) == 0)))
    for bit, flag in BITS:
        lines.append(row(f"{flag} ({bit}) set", est, truth, e_truth, model.grid, has & ((bits & bit) != 0)))
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starflow", default=REP.DEFAULT_STARFLOW, help="starflow binary (default: %(default)s)")
    ap.add_argument("--models", default=REP.DEFAULT_MODELS, help="models directory (default: the bundled models/)")
    ap.add_argument("--data", default=None, help="folder of the reference tables (default: data/reference)")
    args = ap.parse_args(argv)
    args.models = os.path.abspath(args.models)
    args.implementation = "starflow"
    by = REP.produced_by(args)
    prep = D.prepare(args.data)
    out = ["# Quality cuts: the evidence (validation split)", "",
           f"Produced by `python models/train/cuts.py` through the starflow engine ({by['starflow_version']}, repository "
           f"commit {by['commit']}), "
           f"DR17 inputs (label release {RELEASE}), default seed and draws. Coverage: the asteroseismic value inside "
           "the posterior's 16-84% interval (target ~68%); MRD and bias: of the posterior median against it; rel. unc.: "
           "half the 16-84% width over the median. Cuts as `starflow_good` defines them; rows with fewer than 3 stars "
           "are left blank. A star may carry several flags.", ""]
    for name in ("age", "mass"):
        out += section(args, prep, name) + [""]
    path = os.path.join(args.models, "CUTS.md")
    with open(path, "w") as f:
        f.write("\n".join(out))
    print("written:", path)


if __name__ == "__main__":
    main()
