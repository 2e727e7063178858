"""The C-N plane and missing labels in the model report (docs/METHOD.md sec. 9-10; paper sec. 4.4, 6.2, Figs. 3, 12).

Computed by the Python reference (reference.py, reference_cn.py) on the shipped v2 model.onnx through onnxruntime, in
label release dr17 (the stars' own DR17 inputs, as the CN_ATYPICAL threshold was calibrated); the engine's parity with
it is tested on the fixtures (models/<name>/fixtures/posteriors.json: cn_level, cn_planes, marginalised).

* CN_ATYPICAL: fraction flagged among the training, validation and test stars; accuracy of flagged vs unflagged stars
  against the asteroseismic values (validation and test stars: the flag was calibrated on training stars only).
* Predicted vs measured [C/N] (Fig. 12 analogue): the predicted [C/N] is the mean of [C/Fe] - [N/Fe] over the star's
  C-N posterior (target marginalised), the measured one the star's own.
* Two example C-N planes (Fig. 3 analogue): the validation/test star with the most typical and the most atypical (C, N).
* Missing labels: the test stars with each of log g, [C/Fe], [N/Fe] hidden in turn (rule 12) against the full labels.
"""
from __future__ import annotations

import os

import numpy as np

import calibration as C
import data as D
import reference as R
import reference_cn as CN
import releases as RL

RELEASE = RL.TRAINING_RELEASE  # dr17: the stars' own inputs


def levels_of(model, cn, v, e, log_prob):
    """Level and C-N posterior of each star (None where the star has no plane)."""
    levels, planes = [], []
    for x, err in zip(v, e):
        if R.bad_input(x, err):
            levels.append(None)
            planes.append(None)
            continue
        plane = CN.cn_plane(model, cn, model.draw_plan(x, err, RELEASE)[0], log_prob)
        levels.append(plane.level)
        planes.append(plane.posterior)
    return np.array([np.nan if lv is None else lv for lv in levels]), planes


def predicted_cn(cn, plane):
    """Posterior mean of [C/N] = [C/Fe] - [N/Fe] over a C-N plane (c slowest)."""
    c, n = CN.axis(cn["c"]), CN.axis(cn["n"])
    cc, nn = np.meshgrid(c, n, indexing="ij")
    return float(np.sum(plane * (cc - nn).ravel()))


def accuracy(truth, e_truth, est, grid, mask):
    sub = {k: a[mask] for k, a in est.items()}
    return C.metrics(truth[mask], e_truth[mask], sub, grid)


def evaluate(name, model, manifest, prep, estimates_of, log_prob):
    """The section's numbers for one v2 model. `estimates_of(v, e)`: per-star estimate columns (calibration.columns)."""
    cn, marginal = manifest.get("cn"), manifest.get("marginal")
    if not cn:
        return None
    md = D.model_data(prep, name)
    out = {"threshold": cn["threshold"], "threshold_quantile": cn["threshold_quantile"], "sets": {}, "planes": {}}
    for split in ("train", "validation", "test"):
        df = md.split(split).reset_index(drop=True)
        v, e = D.eval_inputs(df)
        levels, planes = levels_of(model, cn, v, e, log_prob)
        flagged = np.isfinite(levels) & (levels > cn["threshold"])
        entry = {"n": int(len(v)), "n_flagged": int(flagged.sum()), "fraction_flagged": float(flagged.mean())}
        if split != "train":
            est = estimates_of(v, e)
            t, et = D.truth_of(name, df)
            ok = np.isfinite(est["value"]) & ((est["bitmask"] & R.LOW_DENSITY) == 0)
            entry["n_flagged_low_density"] = int((flagged & ((est["bitmask"] & R.LOW_DENSITY) != 0)).sum())
            entry["flagged"] = accuracy(t, et, est, model.grid, ok & flagged)
            entry["unflagged"] = accuracy(t, et, est, model.grid, ok & ~flagged)
            has = np.array([p is not None for p in planes])
            entry["cn_measured"] = (v[has, 3] - v[has, 4]).tolist()
            entry["cn_predicted"] = [predicted_cn(cn, p) for p in np.array(planes, dtype=object)[has]]
            entry["cn_flagged"] = flagged[has].tolist()
            out["planes"][split] = {"levels": levels, "planes": planes, "v": v}
            if split == "test":
                test_estimates = est
        out["sets"][split] = entry
    # the most typical and the most atypical star among validation and test stars, for the figure
    cands = [(lv, split, k) for split in ("validation", "test")
             for k, lv in enumerate(out["planes"][split]["levels"]) if np.isfinite(lv)]
    lo, hi = min(cands), max(cands)
    out["examples"] = [{"level": float(lv), "split": split, "labels": out["planes"][split]["v"][k].tolist(),
                        "posterior": out["planes"][split]["planes"][k]} for lv, split, k in (lo, hi)]
    del out["planes"]
    out["hidden"] = hide_each_label(name, md, model, marginal, test_estimates, log_prob)
    return out


def hide_each_label(name, md, model, marginal, full, log_prob):
    """Test stars with full labels (`full`: their estimates) vs one label hidden in turn (rule 12): coverage, Z std,
    MRD."""
    df = md.split("test").reset_index(drop=True)
    v, e = D.eval_inputs(df)
    t, et = D.truth_of(name, df)
    rows = {"full labels": full}
    for label in CN.MARGINALISABLE:
        i = D.LABELS.index(label)
        res = []
        for x, err in zip(v, e):
            hidden = list(x)
            hidden[i] = None
            res.append(CN.marginalised(model, marginal, hidden, err, log_prob, RELEASE))
        rows[f"{label} hidden"] = C.columns(res, len(model.grid))
    out = {}
    for key, est in rows.items():
        ok = np.isfinite(est["value"]) & ((est["bitmask"] & R.LOW_DENSITY) == 0)
        out[key] = accuracy(t, et, est, model.grid, ok)
        out[key]["n_stars"] = int(len(t))
    return out


def figures(name, cn, res, out_dir, plt):
    """Fig. 12 and Fig. 3 analogues; returns {key: path}."""
    figs = {}
    fig, ax = plt.subplots(figsize=(5.2, 5))
    for split, marker in (("validation", "o"), ("test", "s")):
        s = res["sets"][split]
        m, p, f = np.array(s["cn_measured"]), np.array(s["cn_predicted"]), np.array(s["cn_flagged"], dtype=bool)
        ax.scatter(m[~f], p[~f], s=6, marker=marker, color="0.5", alpha=0.5, label=f"{split}, typical")
        ax.scatter(m[f], p[f], s=14, marker=marker, color="C3", label=f"{split}, CN_ATYPICAL")
    lim = [min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlabel("measured [C/N] (DR17)")
    ax.set_ylabel("predicted [C/N] (mean over the C-N posterior)")
    ax.set_title(f"{name} flow: predicted vs measured [C/N]")
    ax.legend(fontsize=7)
    figs["cn_predicted"] = os.path.join(out_dir, f"{name}_cn_predicted.png")
    fig.tight_layout()
    fig.savefig(figs["cn_predicted"], dpi=110)
    plt.close(fig)
    c, n = CN.axis(cn["c"]), CN.axis(cn["n"])
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.2))
    for ax, ex, title in zip(axes, res["examples"], ("most typical", "most atypical")):
        post = np.asarray(ex["posterior"]).reshape(len(c), len(n))
        ax.pcolormesh(n, c, post, shading="nearest", cmap="Greys")
        ax.plot(ex["labels"][4], ex["labels"][3], "r*", ms=12)
        # zoom on the posterior's support and the measured point (the axes span the whole training range)
        ci, ni = np.nonzero(post > 1e-3 * post.max())
        step_c, step_n = c[1] - c[0], n[1] - n[0]
        ax.set_xlim(min(n[ni].min(), ex["labels"][4]) - 2 * step_n, max(n[ni].max(), ex["labels"][4]) + 2 * step_n)
        ax.set_ylim(min(c[ci].min(), ex["labels"][3]) - 2 * step_c, max(c[ci].max(), ex["labels"][3]) + 2 * step_c)
        ax.set_xlabel("[N/Fe]")
        ax.set_ylabel("[C/Fe]")
        ax.set_title(f"{title}: level {ex['level']:.3f} ({ex['split']} star)")
    figs["cn_planes"] = os.path.join(out_dir, f"{name}_cn_planes.png")
    fig.tight_layout()
    fig.savefig(figs["cn_planes"], dpi=110)
    plt.close(fig)
    return figs


def markdown(name, res, figs, pct, fmt):
    """Markdown lines of the section for one model."""
    L = [f"### {name}: the C-N plane and missing labels (v2)", ""]
    s = res["sets"]
    L.append(f"CN_ATYPICAL (bit 32) is set when the measured (C, N) lies outside the densest {pct(res['threshold'])} "
             f"of the star's C-N posterior (the {res['threshold_quantile']} quantile of the training stars' levels). "
             f"Flagged: training {s['train']['n_flagged']} of {s['train']['n']} ({pct(s['train']['fraction_flagged'])}), "
             f"validation {s['validation']['n_flagged']} of {s['validation']['n']} "
             f"({pct(s['validation']['fraction_flagged'])}), test {s['test']['n_flagged']} of {s['test']['n']} "
             f"({pct(s['test']['fraction_flagged'])}).")
    L.append("")
    L.append(f"An improbable (C, N) also lowers the joint density: of the flagged validation and test stars, "
             f"{s['validation']['n_flagged_low_density'] + s['test']['n_flagged_low_density']} of "
             f"{s['validation']['n_flagged'] + s['test']['n_flagged']} are LOW_DENSITY too. Accuracy against the "
             "asteroseismic values (the flag was calibrated on training stars only; flagged samples are small):")
    L.append("")
    L.append("| stars passing density | n | MRD | bias | 1-sigma cov. | Z std |")
    L.append("|---|---|---|---|---|---|")
    for split in ("validation", "test"):
        for key in ("unflagged", "flagged"):
            m = s[split][key]
            L.append(f"| {split}, {key} | {m.get('n', 0)} | {pct(m.get('mrd'))} | {pct(m.get('bias'))} | "
                     f"{pct(m.get('coverage_1sigma'))} | {fmt(m.get('z_std'))} |")
    L.append("")
    L.append("Test stars with one label hidden (marginalised over its training range, bit 64 LABEL_MARGINALISED) "
             "against the same stars with all labels:")
    L.append("")
    L.append("| labels | n | 1-sigma cov. | 2-sigma cov. | Z std | MRD | bias | rel. unc. |")
    L.append("|---|---|---|---|---|---|---|---|")
    for key, m in res["hidden"].items():
        L.append(f"| {key} | {m.get('n', 0)} / {m['n_stars']} | {pct(m.get('coverage_1sigma'))} | "
                 f"{pct(m.get('coverage_2sigma'))} | {fmt(m.get('z_std'))} | {pct(m.get('mrd'))} | "
                 f"{pct(m.get('bias'))} | {pct(m.get('rel_unc'))} |")
    L.append("")
    for key, title in (("cn_predicted", "predicted vs measured [C/N]"), ("cn_planes", "two C-N planes")):
        L.append(f"![{name}: {title}](report/{os.path.basename(figs[key])})")
        L.append("")
    return L
