"""Python reference implementation of the StarFlow posterior math (docs/METHOD.md), for the Rust port to match.

Standalone: needs only numpy and a `log_prob` callable mapping a float array [N, 6] of STANDARDIZED rows
(teff, logg, fe_h, c_fe, n_fe, target) to the flow's natural-log density in standardized space, [N].
The manifest (models/<name>/manifest.json) supplies the constants; see `Model.from_manifest`.

Per star (labels x[5], errors e[5]):

1. BAD_INPUT: if any label or error is NaN/inf/None, or any error <= 0 -> bitmask = BAD_INPUT (4), every output None.
2. OUT_OF_RANGE (8): any label x_i < train_min_i or x_i > train_max_i (the labels themselves, not the draws).
3. Draws, by the model's method (manifest `method`):
   paper: D (= default_draws, 50) rows x_d ~ N(x, e) independently per label.
   v2:    the labels are first moved onto the training release's scale, x' = x - offset_R, with the release R of the
          inputs (SQL setting starflow.label_release, else the manifest's default_release); OUT_OF_RANGE (2.) looks
          at x'. Per label, sigma_excess^2 = max((error_scale_R e)^2 + sigma_sys_R^2 - sigma_train^2, 0) (manifest
          `inference`); a sigma_excess below EXCESS_TOL x sigma_train counts as 0 (so that rounding in the
          constants never decides whether a star is drawn). If every sigma_excess is 0: ONE draw, x' itself (no
          random numbers). Else D rows x_d ~ N(x', sigma_excess) (labels with sigma_excess = 0 stay at x').
   The fixtures store the draws; the engine uses its own counter-based RNG keyed by the drawn-around values and
   sigmas (docs/METHOD.md "Determinism").
4. Grid: G (= 250) points, grid = linspace(start, stop, num) (age: 0..14 Gyr; mass: 0..3 Msun).
   Flow target value y_g: age -> t_g; mass (transform log10) -> log10(M_g) for M_g > 0. Rows (x_d, y_g) are standardized
   with the manifest means/stds and p_dg = exp(log_prob(row)) if log_prob(row) is finite, else p_dg = 0
   (NaN/inf log_prob only occurs through float overflow far outside the training data, e.g. the mass grid's
   M = 0.012 Msun is ~30 standard deviations below the mean of log10 M; float32 and float64 overflow at different
   places, so this rule is what keeps the engine (float32 ONNX) and the reference (float64) in agreement).
   Mass: p_dg *= 1 / (M_g ln 10) (Jacobian from log10 M to M); the grid point M_g <= 0 has p_dg = 0 (never evaluated).
5. Per draw: s_d = sum_g p_dg. A draw is KEPT for the posterior if s_d is finite and > 0; q_dg = p_dg / s_d.
   If no draw is kept: no estimate (value/e_p/e_n/posterior None); training_density is still reported (see 7).
6. paper: post_g = mean over kept draws of q_dg (each draw's conditional normalized on its own: the paper's average
   of "age likelihoods").
   v2: post_g = sum over kept draws of p_dg / sum over kept draws and g of p_dg: the flow's JOINT density averaged
   over the excess draws, normalized once, i.e. p(t | x') = integral of p(t, x) N(x; x', sigma_excess) dx / norm.
   A draw in a region of label space the training data hardly cover weighs little (it is weighted by the flow's
   density of its labels), where the paper's rule gives every draw's conditional the same weight; with one draw
   the two are the same.
   Flat prior inside the grid, zero outside = nothing to do.
   value = grid[argmax_g post_g] (first index on exact ties, as numpy.argmax).
   CDF: c_g = cumsum(post)_g / sum(post) (so c_{G-1} == 1 exactly). c0 = c_{i_max}.
   Inverse CDF F^-1(t) for t in [0, 1]: j = first index with c_j >= t; if j == 0 -> grid[0];
   else grid[j-1] + (t - c_{j-1}) / (c_j - c_{j-1}) * (grid[j] - grid[j-1])   (c_{j-1} < t <= c_j, so no 0/0).
   lower = F^-1(min(max(c0 - 0.34, TAIL_MASS), c0)), upper = F^-1(max(min(c0 + 0.34, 1 - TAIL_MASS), c0));
   e_p = upper - value (>= 0),
   e_n = lower - value (<= 0). Percentiles: median = F^-1(0.5), p16 = F^-1(PHI_M1), p84 = F^-1(1 - PHI_M1) with
   PHI_M1 = Phi(-1) = 0.15865525393145707 (the standard normal's 1-sigma tail). TAIL_MASS = 1e-9: where the 0.34 window runs past the end of the posterior (the mode holds
   less than 0.34 of the mass on one side), SCIENCE.md's bound is "the value where CDF = 0" (or 1), which is an interval
   (everything below the first numerically non-zero grid point), not a value; taking the first grid value would report
   e.g. e_n_mass = -mass for a 1.1 +- 0.13 Msun star whose posterior is zero below 0.6 Msun. The bound is the edge of the
   posterior instead: where the CDF reaches 1e-9 (1 - 1e-9), i.e. where the posterior's mass becomes numerically non-zero
   (zero). An age posterior that really extends to 0 Gyr still gets lower = 0.
7. training_density = S * mean_{d in F} (sum_g p_dg) * dstd, where F = draws whose s_d is finite (draws with s_d == 0 count,
   as zero density; only non-finite sums are excluded) and dstd = grid step in standardized target units:
   age: (grid[1]-grid[0]) / std_target; mass: (grid[1]-grid[0]) / std_target, the Jacobian already being in p_dg
   (i.e. sum_g p_dg dM / (M_g ln10) / std(log10 M)). If F is empty, training_density = None.
   LOW_DENSITY (1): training_density is None or training_density < threshold.
8. GRID_EDGE (2): argmax index is 0 or G-1.
9. MULTIMODAL (16), on post_g (only when there is an estimate).
   Local maximum: index i with post_i > 0 and
     (i == 0     or post_i >  post_{i-1})   -- strictly higher than the left neighbour (endpoints count)
     (i == G-1   or post_i >= post_{i+1})   -- at least as high as the right neighbour
   (so a flat-topped peak counts once, at its left end). The global maximum i1 = argmax (first index) is always one.
   A second mode is a local maximum j != i1 with
     post_j >= 0.5 * post_{i1}                                   (at least half as high as the first), and
     min(post_k for k between i1 and j, inclusive) <= 0.9 * post_j  (a real dip: the posterior falls by >= 10% of
                                                                    post_j between the two peaks)
   MULTIMODAL iff a second mode exists. The dip condition is needed because the ReLU flow's posteriors carry tiny
   ripples/kinks: without it a flat top with a 0.1% dip, or a shoulder, would count as two modes.
10. bitmask = OR of the bits; CN_ATYPICAL (32) is reserved and never set here.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

LOW_DENSITY = 1
GRID_EDGE = 2
BAD_INPUT = 4
OUT_OF_RANGE = 8
MULTIMODAL = 16
CN_ATYPICAL = 32

HALF_SIGMA_MASS = 0.34
EXCESS_TOL = 1e-3              # v2: sigma_excess below this fraction of sigma_train counts as zero
PHI_M1 = 0.15865525393145707   # Phi(-1): p16 / p84 are the posterior's 1-sigma-equivalent percentiles
PHI_M2 = 0.022750131948179195  # Phi(-2): 2-sigma-equivalent percentiles (report only)
TAIL_MASS = 1e-9  # a clamped 1-sigma bound stops where the posterior's mass starts (ends), see 6. above


@dataclass
class Model:
    name: str
    mean: np.ndarray            # [6] standardization means (5 labels + target after transform)
    std: np.ndarray             # [6]
    train_min: np.ndarray       # [5] labels
    train_max: np.ndarray       # [5]
    transform: str              # "linear" or "log10"
    grid: np.ndarray            # [G] in target units (Gyr or Msun)
    scale: float                # S
    threshold: float            # density threshold
    draws: int = 50
    method: str = "paper"       # "paper" or "v2"
    sigma_train: Optional[np.ndarray] = None   # v2: training-label noise per label [5]
    releases: Optional[dict] = None            # v2: name -> {"offset", "error_scale", "sigma_sys"} (each [5])
    default_release: Optional[str] = None
    weighting: Optional[str] = None            # "conditional" (paper) or "joint" (v2); None: by method (rule 6)

    def __post_init__(self):
        if self.weighting is None:
            self.weighting = "conditional" if self.method == "paper" else "joint"

    @staticmethod
    def from_manifest(man: dict) -> "Model":
        labs = man["labels"]
        t = man["target"]
        g = t["grid"]
        inf = man.get("inference")
        return Model(
            name=man["name"],
            mean=np.array([l["mean"] for l in labs] + [t["mean"]], dtype=np.float64),
            std=np.array([l["std"] for l in labs] + [t["std"]], dtype=np.float64),
            train_min=np.array([l["train_min"] for l in labs], dtype=np.float64),
            train_max=np.array([l["train_max"] for l in labs], dtype=np.float64),
            transform=t["transform"],
            grid=np.linspace(g["start"], g["stop"], g["num"]),
            scale=float(man["density"]["scale"]),
            threshold=float(man["density"]["threshold"]),
            draws=int(man.get("default_draws", 50)),
            method=man.get("method", "paper"),
            sigma_train=None if inf is None else np.array(inf["sigma_train"], dtype=np.float64),
            releases=None if inf is None else {k: {f: np.array(v[f], dtype=np.float64)
                                                   for f in ("offset", "error_scale", "sigma_sys")}
                                               for k, v in inf["releases"].items()},
            default_release=None if inf is None else inf["default_release"],
        )

    @staticmethod
    def from_manifest_file(path: str) -> "Model":
        with open(path) as f:
            return Model.from_manifest(json.load(f))

    # ---- grid in flow units --------------------------------------------------------------------------------------
    def grid_flow_values(self):
        """(valid mask [G], flow target values [G] (NaN where invalid), jacobian [G])."""
        g = self.grid
        if self.transform == "linear":
            return np.ones(len(g), bool), g.copy(), np.ones(len(g))
        if self.transform == "log10":
            valid = g > 0
            y = np.full(len(g), np.nan)
            y[valid] = np.log10(g[valid])
            jac = np.zeros(len(g))
            jac[valid] = 1.0 / (g[valid] * math.log(10.0))
            return valid, y, jac
        raise ValueError(self.transform)

    def dstd(self) -> float:
        return float((self.grid[1] - self.grid[0]) / self.std[5])

    def draw_plan(self, labels, errors, release: Optional[str] = None):
        """(values to draw around [5], sigma per label [5], number of draws) for one usable star (rule 3)."""
        x = np.asarray(labels, dtype=np.float64)
        e = np.asarray(errors, dtype=np.float64)
        if self.method == "paper":
            return x, e, self.draws
        rel = self.releases[release or self.default_release]
        x = x - rel["offset"]
        ex = np.sqrt(np.maximum((rel["error_scale"] * e) ** 2 + rel["sigma_sys"] ** 2 - self.sigma_train ** 2, 0.0))
        ex = np.where(ex < EXCESS_TOL * self.sigma_train, 0.0, ex)
        return x, ex, (1 if np.all(ex == 0.0) else self.draws)


@dataclass
class Result:
    value: Optional[float]
    e_p: Optional[float]
    e_n: Optional[float]
    training_density: Optional[float]
    bitmask: int
    posterior: Optional[np.ndarray]
    n_kept: int = 0
    median: Optional[float] = None
    p16: Optional[float] = None
    p84: Optional[float] = None


def bad_input(labels, errors) -> bool:
    try:
        x = np.asarray(labels, dtype=np.float64)
        e = np.asarray(errors, dtype=np.float64)
    except (TypeError, ValueError):
        return True
    if x.shape != (5,) or e.shape != (5,):
        return True
    return (not np.all(np.isfinite(x))) or (not np.all(np.isfinite(e))) or bool(np.any(e <= 0))


def make_draws(labels, errors, n: int, rng: np.random.Generator) -> np.ndarray:
    """n x 5 Gaussian draws (numpy Generator; the engine uses its own deterministic RNG); one draw is the values."""
    x = np.asarray(labels, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
    if n == 1:
        return x[None, :].copy()
    return x[None, :] + e[None, :] * rng.standard_normal((n, 5))


def p_matrix(model: Model, draws: np.ndarray, log_prob: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """p_dg = exp(log_prob(standardized (x_d, y_g))) [* Jacobian for mass], shape [D, G]; invalid grid points are 0."""
    valid, y, jac = model.grid_flow_values()
    D = draws.shape[0]
    yv = y[valid]
    Gv = len(yv)
    rows = np.empty((D, Gv, 6), dtype=np.float64)
    rows[:, :, :5] = draws[:, None, :]
    rows[:, :, 5] = yv[None, :]
    rows = (rows - model.mean) / model.std
    lp = np.asarray(log_prob(rows.reshape(D * Gv, 6)), dtype=np.float64).reshape(D, Gv)
    # a non-finite log_prob (NaN/inf from float overflow far outside the data, e.g. M = 0.012 Msun is ~30 sigma
    # below the mean of log10 M) counts as zero density
    pv = np.where(np.isfinite(lp), np.exp(np.where(np.isfinite(lp), lp, 0.0)), 0.0)
    p = np.zeros((D, len(model.grid)), dtype=np.float64)
    p[:, valid] = pv * jac[valid][None, :]
    return p


def inverse_cdf(cdf: np.ndarray, grid: np.ndarray, t: float) -> float:
    j = int(np.argmax(cdf >= t))  # first index with cdf >= t (cdf[-1] == 1 >= t always)
    if j == 0:
        return float(grid[0])
    c0, c1 = cdf[j - 1], cdf[j]
    return float(grid[j - 1] + (t - c0) / (c1 - c0) * (grid[j] - grid[j - 1]))


def local_maxima(post: np.ndarray) -> np.ndarray:
    """Indices i with post[i] > 0, (i == 0 or post[i] > post[i-1]) and (i == G-1 or post[i] >= post[i+1])."""
    G = len(post)
    left = np.ones(G, bool)
    left[1:] = post[1:] > post[:-1]
    right = np.ones(G, bool)
    right[:-1] = post[:-1] >= post[1:]
    return np.nonzero(left & right & (post > 0))[0]


MM_HEIGHT = 0.5   # second mode at least this fraction of the highest
MM_DIP = 0.9      # valley between the two peaks at most this fraction of the second peak


def is_multimodal(post: np.ndarray) -> bool:
    idx = local_maxima(post)
    if len(idx) < 2:
        return False
    i1 = int(np.argmax(post))
    for j in idx:
        j = int(j)
        if j == i1 or post[j] < MM_HEIGHT * post[i1]:
            continue
        lo, hi = (i1, j) if i1 < j else (j, i1)
        if post[lo:hi + 1].min() <= MM_DIP * post[j]:
            return True
    return False


def percentiles(post: np.ndarray, grid: np.ndarray, qs=(0.5, PHI_M1, 1.0 - PHI_M1)):
    """Percentiles of a posterior on its grid (inverse CDF, rule 6)."""
    cdf = np.cumsum(post)
    cdf = cdf / cdf[-1]
    return [inverse_cdf(cdf, grid, q) for q in qs]


def interval(post: np.ndarray, grid: np.ndarray):
    """(argmax index, ML value, lower, upper) of a posterior on its grid (rule 6 above)."""
    i = int(np.argmax(post))
    cdf = np.cumsum(post)
    cdf = cdf / cdf[-1]
    c0 = float(cdf[i])
    # min/max with c0: a mode holding all the mass on one side (c0 == 1) keeps its bound at the mode
    lower = inverse_cdf(cdf, grid, min(max(c0 - HALF_SIGMA_MASS, TAIL_MASS), c0))
    upper = inverse_cdf(cdf, grid, max(min(c0 + HALF_SIGMA_MASS, 1.0 - TAIL_MASS), c0))
    return i, float(grid[i]), lower, upper


def summarize(model: Model, p: np.ndarray) -> Result:
    """Posterior, summary numbers, density and bits LOW_DENSITY/GRID_EDGE/MULTIMODAL from p_dg [D, G]."""
    s = p.sum(axis=1)
    finite = np.isfinite(s)
    kept = finite & (s > 0)
    bits = 0
    dens = None
    if finite.any():
        dens = float(model.scale * np.mean(s[finite]) * model.dstd())
    if dens is None or not (dens >= model.threshold):
        bits |= LOW_DENSITY
    if not kept.any():
        return Result(None, None, None, dens, bits, None, 0)
    if model.weighting == "conditional":
        post = (p[kept] / s[kept][:, None]).mean(axis=0)
    else:
        post = p[kept].sum(axis=0) / s[kept].sum()
    g = model.grid
    i, value, lower, upper = interval(post, g)
    if i == 0 or i == len(g) - 1:
        bits |= GRID_EDGE
    if is_multimodal(post):
        bits |= MULTIMODAL
    median, p16, p84 = percentiles(post, g)
    return Result(value, upper - value, lower - value, dens, bits, post, int(kept.sum()), median, p16, p84)


def posterior(model: Model, labels, errors, draws: np.ndarray, log_prob, release: Optional[str] = None) -> Result:
    """Full computation for one star with given draws [D, 5] (drawn around model.draw_plan's values)."""
    if bad_input(labels, errors):
        return Result(None, None, None, None, BAD_INPUT, None, 0)
    x, _, _ = model.draw_plan(labels, errors, release)
    oor = bool(np.any(x < model.train_min) or np.any(x > model.train_max))
    res = summarize(model, p_matrix(model, np.asarray(draws, dtype=np.float64), log_prob))
    if oor:
        res.bitmask |= OUT_OF_RANGE
    return res


def posterior_many(model: Model, labels: np.ndarray, errors: np.ndarray, log_prob, seed: int,
                   draws_list: Optional[Sequence[np.ndarray]] = None, chunk_rows: int = 1 << 20,
                   release: Optional[str] = None):
    """Posteriors for many stars. Draws per star from numpy Generator(seed + star index) unless given.

    Evaluates log_prob in chunks of stars (one call per chunk) for speed; the math is exactly posterior()'s.
    """
    n = len(labels)
    results: list = [None] * n
    all_draws: list = [None] * n
    good = []
    for k in range(n):
        if bad_input(labels[k], errors[k]):
            results[k] = Result(None, None, None, None, BAD_INPUT, None, 0)
            continue
        if draws_list is not None:
            d = draws_list[k]
        else:
            x, sig, nd = model.draw_plan(labels[k], errors[k], release)
            d = make_draws(x, sig, nd, np.random.default_rng(seed + k))
        all_draws[k] = np.asarray(d, dtype=np.float64)
        good.append(k)
    c = 0
    while c < len(good):
        ks, rows = [], 0
        while c < len(good) and (not ks or rows + len(all_draws[good[c]]) * len(model.grid) <= chunk_rows):
            ks.append(good[c])
            rows += len(all_draws[good[c]]) * len(model.grid)
            c += 1
        p = p_matrix(model, np.concatenate([all_draws[k] for k in ks], axis=0), log_prob)
        off = 0
        for k in ks:
            nd = all_draws[k].shape[0]
            res = summarize(model, p[off:off + nd])
            off += nd
            x, _, _ = model.draw_plan(labels[k], errors[k], release)
            if np.any(x < model.train_min) or np.any(x > model.train_max):
                res.bitmask |= OUT_OF_RANGE
            results[k] = res
    return results, all_draws
