"""Calibration metrics of posteriors against asteroseismic values (report.py, study.py).

Per star: the posterior on its grid, the VAC's ML value with its signed 1-sigma offsets, and the posterior median
with its 16th/84th percentiles; the truth (asteroseismic value) with its error.

* coverage: fraction of truths inside an interval: the ML interval [value + e_n, value + e_p] (the paper's), the
  percentile interval [p16, p84], and the 2-sigma percentile interval [p2.3, p97.7];
* Z-score (paper sec. 5.2): (estimate - truth) / sqrt(sigma_truth^2 + sigma_est^2), sigma_est the posterior's
  half-width on the side facing the truth; its standard deviation should be 1. Given for the ML and the median. The
  truth error counts once here and not in the coverage, as in the paper; both are given without it too;
* PIT: the posterior CDF at the truth. For a calibrated posterior of the asteroseismic value it is uniform;
  the calibration curve is the fraction of truths inside the central interval holding a given probability;
* MRD = median |estimate - truth| / truth, median relative bias, median relative uncertainty (half the 1-sigma width
  over the estimate).
"""
from __future__ import annotations

import numpy as np

PHI_M1 = 0.15865525393145707
PHI_M2 = 0.022750131948179195
LEVELS = np.linspace(0.05, 0.95, 19)


def cdf_at(post: np.ndarray, grid: np.ndarray, x: float) -> float:
    """The posterior's CDF at x, as reference.inverse_cdf inverts it (mass of point j spread over [grid_j-1, grid_j])."""
    cdf = np.cumsum(post)
    cdf = cdf / cdf[-1]
    if x <= grid[0]:
        return float(cdf[0]) if x == grid[0] else 0.0
    if x >= grid[-1]:
        return 1.0
    j = int(np.searchsorted(grid, x))
    return float(cdf[j - 1] + (x - grid[j - 1]) / (grid[j] - grid[j - 1]) * (cdf[j] - cdf[j - 1]))


def quantile(post: np.ndarray, grid: np.ndarray, q: float) -> float:
    cdf = np.cumsum(post)
    cdf = cdf / cdf[-1]
    j = int(np.argmax(cdf >= q))
    if j == 0:
        return float(grid[0])
    return float(grid[j - 1] + (q - cdf[j - 1]) / (cdf[j] - cdf[j - 1]) * (grid[j] - grid[j - 1]))


def metrics(truth, e_truth, est, grid) -> dict:
    """Metrics over the stars with an estimate. `est`: dict of arrays value, e_p, e_n, median, p16, p84, posterior."""
    ok = np.isfinite(est["value"]) & np.isfinite(truth)
    if ok.sum() == 0:
        return {"n": 0}
    t, et = truth[ok], e_truth[ok]
    y, ep, en = est["value"][ok], est["e_p"][ok], est["e_n"][ok]
    med, p16, p84 = est["median"][ok], est["p16"][ok], est["p84"][ok]
    post = est["posterior"][ok]
    p02 = np.array([quantile(p, grid, PHI_M2) for p in post])
    p98 = np.array([quantile(p, grid, 1 - PHI_M2) for p in post])
    pit = np.array([cdf_at(p, grid, x) for p, x in zip(post, t)])

    def z(est_value, lo, hi, with_truth=True):
        side = np.where(t >= est_value, hi - est_value, est_value - lo)
        return (est_value - t) / np.sqrt((et ** 2 if with_truth else 0.0) + side ** 2)

    rel = lambda v: (v - t) / t  # noqa: E731
    z_ml, z_med = z(y, y + en, y + ep), z(med, p16, p84)
    return {
        "n": int(ok.sum()),
        "coverage_1sigma_ml": float(np.mean((t >= y + en) & (t <= y + ep))),
        "coverage_1sigma": float(np.mean((t >= p16) & (t <= p84))),
        "coverage_2sigma": float(np.mean((t >= p02) & (t <= p98))),
        "z_std_ml": float(np.std(z_ml)),
        "z_std": float(np.std(z_med)),
        "z_mean": float(np.mean(z_med)),
        "z_std_without_truth_error": float(np.std(z(med, p16, p84, with_truth=False))),
        "mrd_ml": float(np.median(np.abs(rel(y)))),
        "mrd": float(np.median(np.abs(rel(med)))),
        "bias_ml": float(np.median(rel(y))),
        "bias": float(np.median(rel(med))),
        "rel_unc_ml": float(np.median(0.5 * (ep - en) / y)),
        "rel_unc": float(np.median(0.5 * (p84 - p16) / med)),
        "rel_unc_truth": float(np.median(et / t)),
        "pit_histogram": np.histogram(pit, bins=10, range=(0, 1))[0].tolist(),
        "calibration_curve": {"levels": LEVELS.tolist(),
                              "observed": [float(np.mean(np.abs(pit - 0.5) <= lv / 2)) for lv in LEVELS]},
        "compression_slope": float(np.polyfit(t, med, 1)[0]) if len(t) > 2 else None,
    }


def binned(x, truth, e_truth, est, grid, edges) -> list:
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (x >= lo) & (x < hi)
        sub = {k: v[m] for k, v in est.items()}
        r = metrics(truth[m], e_truth[m], sub, grid) if m.sum() >= 3 else {"n": int(m.sum())}
        r["bin"] = [lo, hi]
        out.append(r)
    return out


def columns(results, grid_size):
    """reference.Result list -> per-star arrays, as the engine returns them (NaN where there is no number)."""
    def col(k):
        return np.array([np.nan if getattr(r, k) is None else getattr(r, k) for r in results], dtype=np.float64)
    out = {k: col(k) for k in ("value", "e_p", "e_n", "median", "p16", "p84")}
    out["density"] = col("training_density")
    out["bitmask"] = np.array([r.bitmask for r in results], dtype=np.int64)
    out["posterior"] = np.array([np.full(grid_size, np.nan) if r.posterior is None else r.posterior for r in results])
    return out
