"""Python reference implementation of the StarFlow posterior math (docs/METHOD.md), for the Rust port to match.

Standalone: needs only numpy and a `log_prob` callable mapping a float array [N, 6] of STANDARDIZED rows
(teff, logg, fe_h, c_fe, n_fe, target) to the flow's natural-log density in standardized space, [N].
The manifest (models/<name>/manifest.json) supplies the constants; see `Model.from_manifest`.

Per star (labels x[5], errors e[5]):

1. BAD_INPUT: if any label or error is NaN/inf/None, or any error <= 0 -> bitmask = BAD_INPUT (4), every output None.
2. OUT_OF_RANGE (8): any label x_i < train_min_i or x_i > train_max_i (the labels themselves, not the draws).
3. Draws: D (= 50) rows x_d ~ N(x, e) independently per label (the fixtures store them; the engine uses its own
   counter-based RNG, see SCIENCE.md "Determinism").
4. Grid: G (= 250) points, grid = linspace(start, stop, num) (age: 0..14 Gyr; mass: 0..3 Msun).
   Flow target value y_g: age -> t_g; mass (transform log10) -> log10(M_g) for M_g > 0. Rows (x_d, y_g) are standardized
   with the manifest means/stds and p_dg = exp(log_prob(row)) if log_prob(row) is finite, else p_dg = 0
   (NaN/inf log_prob only occurs through float overflow far outside the training data, e.g. the mass grid's
   M = 0.012 Msun is ~30 standard deviations below the mean of log10 M; float32 and float64 overflow at different
   places, so this rule is what keeps the engine (float32 ONNX) and the reference (float64) in agreement).
   Mass: p_dg *= 1 / (M_g ln 10) (Jacobian from log10 M to M); the grid point M_g <= 0 has p_dg = 0 (never evaluated).
5. Per draw: s_d = sum_g p_dg. A draw is KEPT for the posterior if s_d is finite and > 0; q_dg = p_dg / s_d.
   If no draw is kept: no estimate (value/e_p/e_n/posterior None); training_density is still reported (see 7).
6. post_g = mean over kept draws of q_dg (flat prior inside the grid, zero outside = nothing to do).
   value = grid[argmax_g post_g] (first index on exact ties, as numpy.argmax).
   CDF: c_g = cumsum(post)_g / sum(post) (so c_{G-1} == 1 exactly). c0 = c_{i_max}.
   Inverse CDF F^-1(t) for t in [0, 1]: j = first index with c_j >= t; if j == 0 -> grid[0];
   else grid[j-1] + (t - c_{j-1}) / (c_j - c_{j-1}) * (grid[j] - grid[j-1])   (c_{j-1} < t <= c_j, so no 0/0).
   lower = F^-1(min(max(c0 - 0.34, TAIL_MASS), c0)), upper = F^-1(max(min(c0 + 0.34, 1 - TAIL_MASS), c0));
   e_p = upper - value (>= 0),
   e_n = lower - value (<= 0). TAIL_MASS = 1e-9: where the 0.34 window runs past the end of the posterior (the mode holds
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

    @staticmethod
    def from_manifest(man: dict) -> "Model":
        labs = man["labels"]
        t = man["target"]
        g = t["grid"]
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


@dataclass
class Result:
    value: Optional[float]
    e_p: Optional[float]
    e_n: Optional[float]
    training_density: Optional[float]
    bitmask: int
    posterior: Optional[np.ndarray]
    n_kept: int = 0


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
    """D x 5 Gaussian draws (numpy Generator; the engine uses its own deterministic RNG)."""
    x = np.asarray(labels, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
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
    q = p[kept] / s[kept][:, None]
    post = q.mean(axis=0)
    g = model.grid
    i, value, lower, upper = interval(post, g)
    if i == 0 or i == len(g) - 1:
        bits |= GRID_EDGE
    if is_multimodal(post):
        bits |= MULTIMODAL
    return Result(value, upper - value, lower - value, dens, bits, post, int(kept.sum()))


def posterior(model: Model, labels, errors, draws: np.ndarray, log_prob) -> Result:
    """Full SCIENCE.md computation for one star with given draws [D, 5]."""
    if bad_input(labels, errors):
        return Result(None, None, None, None, BAD_INPUT, None, 0)
    x = np.asarray(labels, dtype=np.float64)
    oor = bool(np.any(x < model.train_min) or np.any(x > model.train_max))
    res = summarize(model, p_matrix(model, np.asarray(draws, dtype=np.float64), log_prob))
    if oor:
        res.bitmask |= OUT_OF_RANGE
    return res


def posterior_many(model: Model, labels: np.ndarray, errors: np.ndarray, log_prob, seed: int,
                   draws_list: Optional[Sequence[np.ndarray]] = None, chunk_stars: int = 64):
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
        d = draws_list[k] if draws_list is not None else make_draws(labels[k], errors[k], model.draws,
                                                                    np.random.default_rng(seed + k))
        all_draws[k] = np.asarray(d, dtype=np.float64)
        good.append(k)
    for c in range(0, len(good), chunk_stars):
        ks = good[c:c + chunk_stars]
        D = model.draws
        stacked = np.concatenate([all_draws[k] for k in ks], axis=0)
        p = p_matrix(model, stacked, log_prob)
        off = 0
        for k in ks:
            nd = all_draws[k].shape[0]
            res = summarize(model, p[off:off + nd])
            off += nd
            x = np.asarray(labels[k], dtype=np.float64)
            if np.any(x < model.train_min) or np.any(x > model.train_max):
                res.bitmask |= OUT_OF_RANGE
            results[k] = res
        del D
    return results, all_draws
