"""Reference math of the joint flow's other uses (docs/METHOD.md sec. 9-10), continuing reference.py's rules.

Standalone besides reference.py and numpy; `log_prob` maps standardized rows [N, 6] to the flow's natural-log density.
Constants come from the manifest's `cn` and `marginal` objects (written by pipeline.py, docs/MODEL_FORMAT.md).

11. The [C/Fe]-[N/Fe] plane of a star (paper sec. 4.4, the "3-D route": C, N and the target all vary).
    Axes: c_k = linspace(cn.c), n_l = linspace(cn.n) (the training stars' range of each, widened by a tenth on each
    side); target points y_m = linspace(cn.target) in the flow's units (Gyr, or log10 M: the density is integrated over
    the variable it is a density of, so no Jacobian). The star's other labels: x' of rule 3 (v2: the release offset
    applied; no draws: the plane is that of the star's own values).
      m_kl = sum_m p(teff', logg', fe_h', c_k, n_l, y_m) * dy      (dy: the target step in standardized units)
    (non-finite log-densities count as zero, rule 4). posterior_kl = m_kl / sum m (row-major, c slowest), None when
    sum m is 0. The measured point's density: m_obs = sum_m p(x', y_m) * dy, with the star's own c', n'.
    **Level** of the measured (C, N) = the posterior mass of the cells denser than it:
      level = sum_{kl: m_kl > m_obs} m_kl / sum m,  in [0, 1]
    (0: the measured point is the densest; close to 1: almost all the plane's probability is more typical than it).
    CN_ATYPICAL (32) iff level > cn.threshold, where cn.threshold is the cn.threshold_quantile (0.975) quantile of
    the training stars' levels (their DR17 inputs, release dr17): 2.5% of training stars are flagged by design.
    Only for stars with both C and N measured (a marginalised C or N gives no level).

12. A missing label (v2 models): exactly one of log g, [C/Fe], [N/Fe] null or NaN (its error is then ignored), the
    other four usable (rule 1). The target posterior is marginalised over the missing label on u_j =
    linspace(marginal[label]) (training range widened by a tenth on each side):
      p_g = sum_j p(x' with label = u_j, y_g) * du   (du: the label step in standardized units; mass: x Jacobian)
    then rule 6 with this single "draw" (no excess draws for such stars: the missing label's whole range dominates).
    training_density = S * sum_g p_g * dt (rule 7 with p_g): a density over the four known labels, so LOW_DENSITY
    compares it with marginal[label].threshold (the 5th percentile of the training stars' four-label densities
    computed the same way). Bit LABEL_MARGINALISED (64) is set; OUT_OF_RANGE looks at the four known labels. Two or
    more missing labels, or a missing Teff or [Fe/H]: BAD_INPUT as before.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

import reference as R

LABEL_MARGINALISED = 64
MARGINALISABLE = ("logg", "c_fe", "n_fe")
LABELS = ("teff", "logg", "fe_h", "c_fe", "n_fe")
C, N = 3, 4


def axis(spec) -> np.ndarray:
    return np.linspace(spec["start"], spec["stop"], spec["num"])


def widened_axis(lo: float, hi: float, num: int) -> dict:
    """The training range widened by a tenth on each side (how pipeline.py writes the axes)."""
    pad = 0.1 * (hi - lo)
    return {"start": float(lo - pad), "stop": float(hi + pad), "num": int(num)}


def _density(lp: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(lp), np.exp(np.where(np.isfinite(lp), lp, 0.0)), 0.0)


@dataclass
class Plane:
    posterior: Optional[np.ndarray]   # [num_c * num_n], c slowest; None when the plane has no density
    level: Optional[float]


def cn_plane(model: R.Model, cn: dict, x_used: np.ndarray, log_prob) -> Plane:
    """Rule 11 for one star whose labels on the training scale are x_used [5]."""
    c, n, y = axis(cn["c"]), axis(cn["n"]), axis(cn["target"])
    dy = (y[1] - y[0]) / model.std[5]
    cc, nn, yy = np.meshgrid(c, n, y, indexing="ij")
    rows = np.empty((cc.size + len(y), 6))
    rows[:, :3] = x_used[:3]
    rows[:cc.size, C], rows[:cc.size, N], rows[:cc.size, 5] = cc.ravel(), nn.ravel(), yy.ravel()
    rows[cc.size:, C], rows[cc.size:, N], rows[cc.size:, 5] = x_used[C], x_used[N], y
    p = _density(np.asarray(log_prob((rows - model.mean) / model.std), dtype=np.float64))
    m = p[:cc.size].reshape(len(c) * len(n), len(y)).sum(axis=1) * dy
    m_obs = p[cc.size:].sum() * dy
    total = m.sum()
    if not (np.isfinite(total) and total > 0):
        return Plane(None, None)
    return Plane(m / total, float(m[m > m_obs].sum() / total))


def missing_label(labels) -> Optional[int]:
    """The index of the one marginalisable label that is null (rule 12), else None."""
    x = np.asarray([np.nan if v is None else v for v in labels], dtype=np.float64)
    missing = [i for i in range(5) if not np.isfinite(x[i])]
    if len(missing) == 1 and LABELS[missing[0]] in MARGINALISABLE:
        return missing[0]
    return None


def marginalised(model: R.Model, marginal: dict, labels, errors, log_prob, release: Optional[str] = None):
    """Rule 12 for one star missing label `i`: reference.Result with LABEL_MARGINALISED, or BAD_INPUT."""
    i = missing_label(labels)
    if i is None or model.method != "v2":
        return R.Result(None, None, None, None, R.BAD_INPUT, None, 0)
    known = [k for k in range(5) if k != i]
    x = np.array([0.0 if k == i else labels[k] for k in range(5)], dtype=np.float64)
    e = np.array([1.0 if k == i else errors[k] for k in range(5)], dtype=np.float64)
    if R.bad_input(x, e):
        return R.Result(None, None, None, None, R.BAD_INPUT, None, 0)
    x_used, _, _ = model.draw_plan(x, e, release)
    spec = marginal[LABELS[i]]
    u = axis(spec)
    du = (u[1] - u[0]) / model.std[i]
    draws = np.repeat(x_used[None, :], len(u), axis=0)
    draws[:, i] = u
    p = R.p_matrix(model, draws, log_prob).sum(axis=0, keepdims=True) * du  # one "draw": the label integrated out
    res = R.summarize(R.Model(**{**model.__dict__, "threshold": spec["threshold"]}), p)
    res.bitmask |= LABEL_MARGINALISED
    if np.any(x_used[known] < model.train_min[known]) or np.any(x_used[known] > model.train_max[known]):
        res.bitmask |= R.OUT_OF_RANGE
    return res


def flag_cn(model: R.Model, cn: dict, results, labels, errors, log_prob, release: Optional[str] = None) -> list:
    """Rule 11's level of each star with an estimate (None otherwise), setting CN_ATYPICAL in `results` in place."""
    levels = []
    for res, x, e in zip(results, labels, errors):
        if res.bitmask & R.BAD_INPUT or res.bitmask & LABEL_MARGINALISED:
            levels.append(None)
            continue
        x_used, _, _ = model.draw_plan(x, e, release)
        level = cn_plane(model, cn, x_used, log_prob).level
        if level is not None and level > cn["threshold"]:
            res.bitmask |= R.CN_ATYPICAL
        levels.append(level)
    return levels
