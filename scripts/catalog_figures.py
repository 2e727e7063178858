"""Figures and published-catalogue cross-checks of a StarFlow value-added catalogue (`starflow catalog` output).

    python scripts/catalog_figures.py OUTPUT_DIR --input INPUT.parquet [--figures DIR]

Reads OUTPUT_DIR/StarFlow_summary.parquet and the DR19 astraAllStarASPCAP file it was computed from (row-matched: same
rows, same order; teff, logg, c_h and n_h are taken from it),
writes PNGs and validation.json to DIR (default OUTPUT_DIR/figures), and prints one line per file written.
Reference data (--data-dir, default data/reference in the repository; provenance in its READMEs):
  derived/apokasc3_apoor_gold_joined.csv          APOKASC seismic ages (v7.0.5) and APOKASC-3 masses, by APOGEE_ID
  anders2023_xgboost_inputs/Hasselquist2020_CN_ages.csv   Hasselquist+2020 [C/N] ages, by APOGEE id (ID)
Stars "passing density" are those without the LOW_DENSITY bit (1) of their model's bitmask.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models" / "train"))
import data  # noqa: E402  the training pipeline's own split, so the held-out flags cannot drift from it
from paths import HASSELQUIST, JOINED, REFERENCE  # noqa: E402

SUMMARY = "StarFlow_summary.parquet"
KEYS = ("sdss_id", "sdss4_apogee_id")
INPUT_COLUMNS = [*KEYS, "teff", "logg", "c_h", "n_h"]
LOW_DENSITY = 1
# The paper's recommended cut (3e9) sits at the 5th percentile of its training stars' density; our models calibrate their
# threshold the same way but on another scale, so the paper's cuts map to ours by this ratio.
PAPER_THRESHOLD = 3e9
PAPER_CUTS = (1e8, 3e9, 1e10)
X_MAX = 20.0  # Gyr, x axis of the Hasselquist figure
DPI = 120


def fail(msg: str):
    sys.exit(f"catalog_figures: {msg}")


def read_row_matched(output_dir: Path, input_path: Path) -> tuple[pd.DataFrame, float]:
    """Summary columns next to the input's labels, after checking the two tables are row-matched; and the age model's
    density threshold, from the catalogue's metadata (the one its LOW_DENSITY bits were set with)."""
    path = output_dir / SUMMARY
    if not path.exists():
        fail(f"{path} not found")
    cat = pq.read_table(path)
    models = json.loads((cat.schema.metadata or {}).get(b"models", b"[]"))
    thresholds = [m["density_threshold"] for m in models if m.get("name") == "age"]
    if not thresholds:
        fail(f"{path} has no age model in its 'models' metadata")
    inp = pq.read_table(input_path, columns=INPUT_COLUMNS)
    if cat.num_rows != inp.num_rows:
        fail(f"{path} has {cat.num_rows} rows but {input_path} has {inp.num_rows}: not row-matched")
    for key in KEYS:
        a, b = cat[key].cast(inp[key].type), inp[key]  # e.g. string_view vs string
        same = pc.or_(pc.and_(a.is_null(), b.is_null()), pc.fill_null(pc.equal(a, b), False))
        if not pc.all(same).as_py():
            i = int(np.flatnonzero(~same.to_numpy(zero_copy_only=False))[0])
            fail(f"{key} differs at row {i} ({a[i].as_py()!r} in the catalogue, {b[i].as_py()!r} in the input): "
                 "the catalogue is not row-matched to the input")
    df = cat.to_pandas()
    for col in INPUT_COLUMNS[len(KEYS):]:
        df[col] = inp[col].to_numpy(zero_copy_only=False).astype(float)
    df["c_n"] = df["c_h"] - df["n_h"]
    df["age_ok"] = df["age"].notna() & (df["bitmask"] & LOW_DENSITY == 0)
    df["mass_ok"] = df["mass"].notna() & (df["mass_bitmask"] & LOW_DENSITY == 0)
    return df, thresholds[0]


def robust_sigma(x) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def save(fig, path: Path, what: str):
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    print(f"wrote {path}: {what}")


def kiel(df: pd.DataFrame, threshold: float, path: Path):
    """Paper Fig. 4: Kiel diagram coloured by the age model's training density."""
    # lowest densities drawn last, so the few stars outside the training space stay visible
    d = df[df["training_density"] > 0].sort_values("training_density", ascending=False)
    norm = LogNorm(d["training_density"].min(), d["training_density"].max())
    ok = d["training_density"] >= threshold
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), sharex=True, sharey=True, layout="constrained")
    sc = axes[0].scatter(d["teff"], d["logg"], c=d["training_density"], norm=norm, s=2, lw=0)
    axes[0].set_title(f"all stars with a density (n = {len(d):,})", fontsize=10)
    axes[1].scatter(d.loc[ok, "teff"], d.loc[ok, "logg"], c=d.loc[ok, "training_density"], norm=norm, s=2, lw=0)
    axes[1].scatter(d.loc[~ok, "teff"], d.loc[~ok, "logg"], s=2, c="0.6", lw=0)
    axes[1].set_title(f"at or above the threshold: n = {ok.sum():,} (grey: {(~ok).sum():,} below)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("Teff [K]")
        ax.invert_xaxis()
        ax.invert_yaxis()
    axes[0].set_ylabel("log g [dex]")
    cb = fig.colorbar(sc, ax=axes, label="training density (age model, our units)")
    cb.ax.axhline(threshold, color="red", lw=2)
    cb.ax.text(-0.1, threshold, "threshold", color="red", fontsize=8, va="center", ha="right",
               transform=cb.ax.get_yaxis_transform())
    fig.suptitle(f"Kiel diagram coloured by training density; threshold {threshold:.3g} "
                 "(5th percentile of training stars, the paper's 3e9)", fontsize=10)
    save(fig, path, f"Kiel diagram, {len(d)} stars, {ok.sum()} at or above the density threshold")


def age_histograms(df: pd.DataFrame, threshold: float, path: Path):
    """Paper Fig. 11: ages and relative age uncertainties at three density cuts given in the paper's units."""
    paper = df["training_density"] * PAPER_THRESHOLD / threshold
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 8), layout="constrained")
    age_bins = np.linspace(0, 14, 29)
    unc_bins = np.linspace(0, 1.5, 31)
    for cut in PAPER_CUTS:
        s = df[df["age"].notna() & (paper > cut)]
        top.hist(s["age"], bins=age_bins, histtype="step", lw=1.8, label=f"density > {cut:.0e}: n = {len(s):,}")
        rel = 0.5 * (s["e_p_age"] - s["e_n_age"]) / s["age"]
        bottom.hist(rel[s["age"] > 0], bins=unc_bins, histtype="step", lw=1.8, label=f"density > {cut:.0e}")
    top.set_xlabel("age [Gyr]")
    top.set_ylabel("stars")
    top.legend(title="paper units", fontsize=8)
    bottom.set_xlabel("relative age uncertainty 0.5 (e_p_age - e_n_age) / age")
    bottom.set_ylabel("stars")
    bottom.legend(title="paper units", fontsize=8)
    fig.suptitle(f"StarFlow ages at three training-density cuts (n = {df['age'].notna().sum():,} stars with an age)\n"
                 f"density in the paper's units = ours x 3e9 / {threshold:.3g} (our threshold)", fontsize=10)
    save(fig, path, "age and age-uncertainty histograms at density > 1e8, 3e9, 1e10 (paper units)")


def running_median(x, y, edges, min_n=15):
    centres, med, lo, hi = [], [], [], []
    for a, b in zip(edges[:-1], edges[1:]):
        v = y[(x >= a) & (x < b)]
        if len(v) >= min_n:
            centres.append(0.5 * (a + b))
            med.append(np.median(v))
            lo.append(np.percentile(v, 16))
            hi.append(np.percentile(v, 84))
    return map(np.array, (centres, med, lo, hi))


def cn_age(df: pd.DataFrame, path: Path):
    s = df[df["age_ok"] & np.isfinite(df["c_n"])]
    fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
    ax.scatter(s["c_n"], s["age"], s=3, c="0.55", alpha=0.5, lw=0, label="stars")
    edges = np.arange(np.floor(s["c_n"].min() * 20) / 20, s["c_n"].max() + 0.05, 0.05)
    x, med, lo, hi = running_median(s["c_n"].to_numpy(), s["age"].to_numpy(), edges)
    ax.fill_between(x, lo, hi, color="C0", alpha=0.25, label="16th-84th percentile")
    ax.plot(x, med, "C0-o", ms=4, label="running median (0.05 dex bins, >= 15 stars)")
    ax.set_xlabel("[C/N] = [C/H] - [N/H] [dex]")
    ax.set_ylabel("StarFlow age [Gyr]")
    ax.set_ylim(0, 14)
    ax.legend(fontsize=8)
    ax.set_title(f"[C/N] vs age, stars passing the density threshold (n = {len(s):,})")
    save(fig, path, f"[C/N]-age relation, {len(s)} stars")


def interval_stats(value, e_p, e_n, ref) -> dict:
    """Median relative deviation |value - ref| / ref and the fraction of ref inside [value + e_n, value + e_p]."""
    return {"n": int(len(ref)),
            "mrd": float(np.median(np.abs(value - ref) / ref)),
            "median_rel_bias": float(np.median((value - ref) / ref)),
            "inside_1sigma": float(np.mean((ref >= value + e_n) & (ref <= value + e_p)))}


def held_out(data_dir: Path) -> pd.DataFrame:
    """APOGEE_ID -> whether each model never trained on the star: its test split, or removed by the training cuts."""
    df = data.prepare(str(data_dir)).df
    df = df[df["APOGEE_ID"].notna()].set_index("APOGEE_ID")
    return pd.DataFrame({"age_held_out": (df["split"] == "test") | ~df["in_age"],
                         "mass_held_out": (df["split"] == "test") | ~df["in_mass"]})


def seismic(df: pd.DataFrame, ref: pd.DataFrame, data_dir: Path, path: Path) -> dict:
    """Age and mass vs the asteroseismic values (APOKASC v7.0.5 ages, APOKASC-3 masses)."""
    j = df.join(ref, on="sdss4_apogee_id", how="inner").join(held_out(data_dir), on="sdss4_apogee_id")
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.6), layout="constrained")
    result = {}
    for ax, (q, seis, unit, hi) in zip(axes, [("age", "AGE_APOKASC705_JT", "Gyr", 16), ("mass", "MASS", "Msun", 2.6)]):
        s = j[j[f"{q}_ok"] & j[seis].notna()]
        held = s[f"{q}_held_out"].fillna(True).astype(bool)
        h = s[held]
        stats = {"all": interval_stats(s[q], s[f"e_p_{q}"], s[f"e_n_{q}"], s[seis])}
        if len(h):
            stats["not_trained_on"] = interval_stats(h[q], h[f"e_p_{q}"], h[f"e_n_{q}"], h[seis])
        result[q] = stats
        ax.scatter(s.loc[~held, seis], s.loc[~held, q], s=3, c="0.55", alpha=0.5, lw=0, label="training stars")
        ax.scatter(h[seis], h[q], s=8, c="C3", lw=0, label="not trained on (test split or cut)")
        ax.plot([0, hi], [0, hi], "k-", lw=1, label="one-to-one")
        ax.set_xlim(0, hi)
        ax.set_ylim(0, hi)
        ax.set_xlabel(f"asteroseismic {q} [{unit}]")
        ax.set_ylabel(f"StarFlow {q} [{unit}]")
        lines = [f"{k.replace('_', ' ')}: n = {v['n']:,}, MRD = {v['mrd']:.1%}, inside 1 sigma = {v['inside_1sigma']:.1%}"
                 for k, v in stats.items()]
        ax.text(0.03, 0.97, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=8,
                bbox=dict(fc="white", alpha=0.8, lw=0))
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title(f"{q}: n = {len(s):,} stars passing density with a seismic {q}", fontsize=10)
    fig.suptitle("StarFlow vs asteroseismic values (ages: APOKASC v7.0.5; masses: APOKASC-3)")
    save(fig, path, f"age and mass vs seismic, {result['age']['all']['n']} and {result['mass']['all']['n']} stars")
    return result


def offsets(value, ref) -> dict:
    d = value - ref
    return {"median_offset_gyr": float(np.median(d)), "robust_scatter_gyr": robust_sigma(d),
            "median_rel_offset": float(np.median(d / ref)), "robust_rel_scatter": robust_sigma(d / ref)}


def hasselquist(df: pd.DataFrame, ref: pd.DataFrame, data_dir: Path, path: Path) -> dict:
    """Cross-check against the Hasselquist+2020 [C/N] ages of the stars in common."""
    h = pd.read_csv(data_dir / HASSELQUIST)
    # A star observed in several DR16 fields has one row per field: average its log ages.
    h = h.groupby("ID")[["logAge", "e_logAge"]].mean()
    j = df[df["sdss4_apogee_id"].notna()].join(h, on="sdss4_apogee_id", how="inner")
    s = j[j["age_ok"]].join(ref, on="sdss4_apogee_id")
    theirs = 10 ** (s["logAge"] - 9)
    est = j[j["age"].notna()]
    low = est[~est["age_ok"]]
    result = {"n_in_common": int(len(j)), "n_compared": int(len(s)), **offsets(s["age"], theirs),
              "including_low_density": {"n": int(len(est)), **offsets(est["age"], 10 ** (est["logAge"] - 9))}}
    # Both catalogues against the seismic ages of the same stars: how much of the scatter either one brings.
    seis = s["AGE_APOKASC705_JT"].notna()
    result["same_stars_vs_seismic"] = {"n": int(seis.sum()),
                                       "starflow": offsets(s.loc[seis, "age"], s.loc[seis, "AGE_APOKASC705_JT"]),
                                       "hasselquist": offsets(theirs[seis], s.loc[seis, "AGE_APOKASC705_JT"])}
    fig, ax = plt.subplots(figsize=(6.5, 6), layout="constrained")
    ax.scatter(10 ** (low["logAge"] - 9), low["age"], s=8, c="0.7", lw=0, label="below the density threshold")
    xerr = [theirs - 10 ** (s["logAge"] - s["e_logAge"] - 9), 10 ** (s["logAge"] + s["e_logAge"] - 9) - theirs]
    ax.errorbar(theirs, s["age"], xerr=xerr, yerr=[-s["e_n_age"], s["e_p_age"]], fmt="o", ms=3, c="C0",
                ecolor="0.8", elinewidth=0.5, label="passing density")
    # [C/N] ages extrapolate far beyond the age of the Universe for some stars; they count in the numbers, not the axes
    ax.plot([0, X_MAX], [0, X_MAX], "k-", lw=1, label="one-to-one")
    ax.set_xlim(0, X_MAX)
    ax.set_ylim(0, 14.5)
    beyond = int((10 ** (j["logAge"] - 9) > X_MAX).sum())
    ax.legend(title=f"{beyond} stars beyond {X_MAX:.0f} Gyr not shown" if beyond else None, loc="lower right",
              fontsize=8, title_fontsize=8)
    ax.set_xlabel("Hasselquist+2020 [C/N] age [Gyr]")
    ax.set_ylabel("StarFlow age [Gyr]")
    sv = result["same_stars_vs_seismic"]
    ax.text(0.03, 0.97, f"StarFlow - Hasselquist: median {result['median_offset_gyr']:+.2f} Gyr, "
                        f"robust scatter {result['robust_scatter_gyr']:.2f} Gyr\n"
                        f"relative: median {result['median_rel_offset']:+.1%}, "
                        f"robust scatter {result['robust_rel_scatter']:.1%}\n"
                        f"vs seismic ages ({sv['n']} of them), relative median / robust scatter:\n"
                        f"  StarFlow {sv['starflow']['median_rel_offset']:+.1%} / "
                        f"{sv['starflow']['robust_rel_scatter']:.1%}, "
                        f"Hasselquist {sv['hasselquist']['median_rel_offset']:+.1%} / "
                        f"{sv['hasselquist']['robust_rel_scatter']:.1%}",
            transform=ax.transAxes, va="top", fontsize=8, bbox=dict(fc="white", lw=0), zorder=5)
    ax.set_title(f"vs Hasselquist+2020: n = {len(s):,} of {len(j):,} stars in common pass density", fontsize=10)
    save(fig, path, f"cross-check vs Hasselquist+2020, {len(s)} of {len(j)} stars in common")
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output_dir", type=Path, help="directory holding StarFlow_summary.parquet")
    ap.add_argument("--input", type=Path, required=True, help="the catalogue the VAC was computed from")
    ap.add_argument("--figures", type=Path, help="where to write the PNGs and validation.json (OUTPUT_DIR/figures)")
    ap.add_argument("--data-dir", type=Path, default=REFERENCE,
                    help="folder of the reference tables (default: data/reference in the repository)")
    args = ap.parse_args()
    figures = args.figures or args.output_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    missing = [t for t in (JOINED, HASSELQUIST) if not (args.data_dir / t).is_file()]
    if missing:
        fail(f"{', '.join(missing)} not found under {args.data_dir} (--data-dir: a folder laid out like data/reference)")
    df, threshold = read_row_matched(args.output_dir, args.input)
    kiel(df, threshold, figures / "kiel_density.png")
    age_histograms(df, threshold, figures / "age_density_cuts.png")
    cn_age(df, figures / "cn_age.png")
    validation = {
        "n_stars": int(len(df)),
        "n_age": int(df["age"].notna().sum()),
        "n_age_passing_density": int(df["age_ok"].sum()),
        "n_mass_passing_density": int(df["mass_ok"].sum()),
        "age_density_threshold": threshold,
    }
    ref = pd.read_csv(args.data_dir / JOINED, usecols=["APOGEE_ID", "AGE_APOKASC705_JT", "MASS"])
    ref = ref[ref["APOGEE_ID"].notna()].set_index("APOGEE_ID")
    validation["seismic"] = seismic(df, ref, args.data_dir, figures / "seismic.png")
    validation["hasselquist2020"] = hasselquist(df, ref, args.data_dir, figures / "hasselquist2020.png")
    out = figures / "validation.json"
    out.write_text(json.dumps(validation, indent=1) + "\n")
    print(f"wrote {out}: {json.dumps(validation['hasselquist2020'])}")


if __name__ == "__main__":
    main()
