"""Data preparation for the StarFlow age and mass models.

Everything here is deterministic (fixed seeds) and documented in models/train/README.md:

* source table: data/reference/derived/apokasc3_apoor_gold_joined.csv (APOKASC-3 alpha-poor Gold RGB+RC, APOGEE DR17 labels)
* log g treatment: the model is applied to spectroscopic (ASPCAP) log g, but most training stars only have the (far more
  precise) seismic log g. From the 2,077 stars that have both we fit spec - seis = a + b * (logg_seis - LOGG_PIVOT) and the
  residual scatter; training uses a "spectroscopic-like" log g = seis + offset(seis) with that scatter as its error.
* age errors: APOKASC v7.0.5 ages have no errors; we derive them from the seismic mass error (and the [Fe/H] error)
  through the local age-mass(-metallicity) relation fitted on the data, per evolutionary state.
* cuts: ages > 14 Gyr dropped (age model); stars with relative age error > 25% dropped (both models, as in the paper).
* split: train / validation / test = 0.70 / 0.25 / 0.05 by star (KIC), one permutation of all 6,603 stars with a fixed
  seed, shared by both models (each model keeps the stars that pass its cuts).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from paths import JOINED, REFERENCE, recorded, sha256_file

LABELS = ["teff", "logg", "fe_h", "c_fe", "n_fe"]
LABEL_UNITS = ["K", "dex", "dex", "dex", "dex"]
LOGG_PIVOT = 2.5
SPLIT_SEED = 20251123
SPLIT_FRACTIONS = (0.70, 0.25, 0.05)
MAX_AGE_GYR = 14.0
MAX_REL_AGE_ERR = 0.25


@dataclass
class LoggCalibration:
    n: int
    a: float            # offset at LOGG_PIVOT
    b: float            # slope per dex of seismic logg
    a_err: float
    b_err: float
    mean_diff: float    # plain mean of spec - seis
    std_diff: float     # plain std of spec - seis
    resid_std: float    # std of residuals after the linear offset
    resid_mad_std: float
    sigma_spec: float   # error used in training (residual std minus seismic error in quadrature)
    median_reported_err: float
    binned: list = field(default_factory=list)

    def offset(self, logg_seis):
        return self.a + self.b * (np.asarray(logg_seis) - LOGG_PIVOT)

    def to_dict(self):
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def calibrate_logg(df: pd.DataFrame) -> LoggCalibration:
    both = df[df["W24_LOGG_SPEC"].notna()]
    seis = both["LOGG_SEIS"].to_numpy()
    spec = both["W24_LOGG_SPEC"].to_numpy()
    d = spec - seis
    X = np.column_stack([np.ones_like(seis), seis - LOGG_PIVOT])
    coef, *_ = np.linalg.lstsq(X, d, rcond=None)
    resid = d - X @ coef
    dof = len(d) - 2
    s2 = float(resid @ resid / dof)
    cov = s2 * np.linalg.inv(X.T @ X)
    resid_std = float(np.std(resid, ddof=2))
    mad_std = float(1.4826 * np.median(np.abs(resid - np.median(resid))))
    seis_err = both["LOGG_SEIS_ERR"].to_numpy()
    sigma_spec = float(np.sqrt(max(resid_std**2 - np.mean(seis_err**2), 1e-8)))
    binned = []
    edges = [1.3, 1.8, 2.2, 2.5, 2.8, 3.0, 3.3]
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (seis >= lo) & (seis < hi)
        if m.sum() > 2:
            binned.append({"logg_seis": [lo, hi], "n": int(m.sum()), "mean_diff": float(d[m].mean()),
                           "std_diff": float(d[m].std(ddof=1)),
                           "err_of_mean": float(d[m].std(ddof=1) / np.sqrt(m.sum()))})
    return LoggCalibration(n=int(len(d)), a=float(coef[0]), b=float(coef[1]), a_err=float(np.sqrt(cov[0, 0])),
                           b_err=float(np.sqrt(cov[1, 1])), mean_diff=float(d.mean()), std_diff=float(d.std(ddof=1)),
                           resid_std=resid_std, resid_mad_std=mad_std, sigma_spec=sigma_spec,
                           median_reported_err=float(np.median(both["W24_LOGG_SPEC_ERR"])), binned=binned)


@dataclass
class AgeErrorModel:
    """ln(age) = c0 + c1 x + c2 x^2 + c3 f + c4 x f, x = ln(M/Msun), f = [Fe/H]; fitted per evolutionary state."""
    coefs: dict  # state -> list of 5 floats
    n: dict
    resid_std: dict

    def dlnage(self, state, lnm, feh):
        c = np.array([self.coefs[s] for s in state])
        dlnm = c[:, 1] + 2 * c[:, 2] * lnm + c[:, 4] * feh
        dfeh = c[:, 3] + c[:, 4] * lnm
        return dlnm, dfeh

    def to_dict(self):
        return {"form": "ln(age/Gyr) = c0 + c1*ln(M) + c2*ln(M)^2 + c3*[Fe/H] + c4*ln(M)*[Fe/H], per EVOL_STATE",
                "coefs": self.coefs, "n": self.n, "resid_std_ln_age": self.resid_std}


def fit_age_error_model(df: pd.DataFrame) -> AgeErrorModel:
    coefs, n, rs = {}, {}, {}
    for state in sorted(df["EVOL_STATE"].unique()):
        s = df[(df["EVOL_STATE"] == state) & df["AGE_APOKASC705_JT"].notna() & (df["AGE_APOKASC705_JT"] <= MAX_AGE_GYR)]
        x = np.log(s["MASS"].to_numpy())
        f = s["FE_H"].to_numpy()
        y = np.log(s["AGE_APOKASC705_JT"].to_numpy())
        X = np.column_stack([np.ones_like(x), x, x * x, f, x * f])
        c, *_ = np.linalg.lstsq(X, y, rcond=None)
        coefs[state] = [float(v) for v in c]
        n[state] = int(len(y))
        rs[state] = float(np.std(y - X @ c, ddof=5))
    return AgeErrorModel(coefs, n, rs)


@dataclass
class Prepared:
    df: pd.DataFrame              # all stars with derived columns and split
    logg_cal: LoggCalibration
    age_model: AgeErrorModel
    data_files: list
    cut_counts: dict


def prepare(data_dir: str | None = None) -> Prepared:
    path = os.path.join(data_dir or REFERENCE, JOINED)
    df = pd.read_csv(path)
    df["KIC"] = df["KIC"].astype(np.int64)
    df = df.sort_values("KIC").reset_index(drop=True)
    cal = calibrate_logg(df)
    age_model = fit_age_error_model(df)

    # inputs as the model is trained on them
    df["teff"] = df["TEFF"]
    df["e_teff"] = df["TEFF_ERR"]
    df["logg"] = df["LOGG_SEIS"] + cal.offset(df["LOGG_SEIS"])  # spectroscopic-like log g (offset-corrected seismic)
    df["e_logg"] = cal.sigma_spec
    df["fe_h"] = df["FE_H"]
    df["e_fe_h"] = df["FE_H_ERR"]
    df["c_fe"] = df["C_FE"]
    df["e_c_fe"] = df["C_FE_ERR"]
    df["n_fe"] = df["N_FE"]
    df["e_n_fe"] = df["N_FE_ERR"]

    # targets
    df["mass"] = df["MASS"]
    df["log10_mass"] = np.log10(df["MASS"])
    df["e_log10_mass"] = df["MASS_ERR"] / (df["MASS"] * np.log(10.0))
    df["age"] = df["AGE_APOKASC705_JT"]
    dlnm, dfeh = age_model.dlnage(df["EVOL_STATE"].to_numpy(), np.log(df["MASS"].to_numpy()), df["FE_H"].to_numpy())
    rel_from_mass = np.abs(dlnm) * df["MASS_ERR"].to_numpy() / df["MASS"].to_numpy()
    rel_from_feh = np.abs(dfeh) * df["FE_H_ERR"].to_numpy()
    df["rel_age_err"] = np.sqrt(rel_from_mass**2 + rel_from_feh**2)
    df["rel_age_err_mass_only"] = rel_from_mass
    df["dlnage_dlnm"] = dlnm
    df["e_age"] = df["rel_age_err"] * df["age"]

    # engine-like ("spectroscopic") inputs for evaluation / fixtures / density calibration:
    # real DR17 spectroscopic logg with its reported error where available, otherwise a simulated spectroscopic logg
    # (spectroscopic-like logg + N(0, sigma_spec), fixed seed) with the median reported spectroscopic error.
    rng = np.random.default_rng(SPLIT_SEED + 7)
    noise = rng.standard_normal(len(df)) * cal.sigma_spec
    has_spec = df["W24_LOGG_SPEC"].notna().to_numpy()
    df["eval_logg"] = np.where(has_spec, df["W24_LOGG_SPEC"], df["logg"] + noise)
    df["eval_e_logg"] = np.where(has_spec, df["W24_LOGG_SPEC_ERR"], cal.median_reported_err)
    df["eval_logg_source"] = np.where(has_spec, "dr17_spec", "simulated_spec")

    # star-level split (one permutation of all stars)
    rng = np.random.default_rng(SPLIT_SEED)
    perm = rng.permutation(len(df))
    n_tr = int(round(SPLIT_FRACTIONS[0] * len(df)))
    n_va = int(round(SPLIT_FRACTIONS[1] * len(df)))
    split = np.empty(len(df), dtype=object)
    split[perm[:n_tr]] = "train"
    split[perm[n_tr:n_tr + n_va]] = "validation"
    split[perm[n_tr + n_va:]] = "test"
    df["split"] = split
    df["star_id"] = np.where(df["APOGEE_ID"].notna(), df["APOGEE_ID"], "KIC" + df["KIC"].astype(str))

    # cuts
    finite = np.isfinite(df[["teff", "e_teff", "logg", "fe_h", "c_fe", "n_fe", "e_c_fe", "e_n_fe", "mass", "MASS_ERR"]]
                         ).all(axis=1)
    rel_ok = df["rel_age_err"] <= MAX_REL_AGE_ERR
    has_age = df["age"].notna()
    age_ok = has_age & (df["age"] <= MAX_AGE_GYR)
    df["in_mass"] = finite & rel_ok
    df["in_age"] = finite & rel_ok & age_ok
    counts = {
        "rows": int(len(df)),
        "non_finite_inputs": int((~finite).sum()),
        "rel_age_err_gt_25pct": int((~rel_ok).sum()),
        "no_age": int((~has_age).sum()),
        "age_gt_14": int((has_age & (df["age"] > MAX_AGE_GYR)).sum()),
        "mass_model_stars": int(df["in_mass"].sum()),
        "age_model_stars": int(df["in_age"].sum()),
    }
    files = [{"path": recorded(path), "sha256": sha256_file(path)}]
    return Prepared(df=df, logg_cal=cal, age_model=age_model, data_files=files, cut_counts=counts)


@dataclass
class ModelData:
    name: str
    target: str          # column of the flow's target (age or log10_mass)
    target_err: str
    df: pd.DataFrame     # stars of this model (all splits)

    def split(self, s):
        return self.df[self.df["split"] == s]


def model_data(prep: Prepared, name: str) -> ModelData:
    if name == "age":
        return ModelData("age", "age", "e_age", prep.df[prep.df["in_age"]].reset_index(drop=True))
    if name == "mass":
        return ModelData("mass", "log10_mass", "e_log10_mass", prep.df[prep.df["in_mass"]].reset_index(drop=True))
    raise ValueError(name)


def values_errors(df: pd.DataFrame, md: ModelData):
    """Training values/errors [n, 6] in flow order (5 labels + target)."""
    cols = LABELS + [md.target]
    ecols = ["e_" + c for c in LABELS] + [md.target_err]
    v = df[cols].to_numpy(np.float64)
    e = df[ecols].to_numpy(np.float64)
    return v, e


def eval_inputs(df: pd.DataFrame):
    """Engine-like inputs [n, 5] and errors [n, 5] (spectroscopic log g, see prepare())."""
    v = df[["teff", "eval_logg", "fe_h", "c_fe", "n_fe"]].to_numpy(np.float64)
    e = df[["e_teff", "eval_e_logg", "e_fe_h", "e_c_fe", "e_n_fe"]].to_numpy(np.float64)
    return v, e


METHODS = ("v2", "paper")


def augmentation_errors(errors: np.ndarray, method: str, jitter: float) -> np.ndarray:
    """Sigma of the training augmentation per star and dimension (flow order), by method.

    paper: the reported errors (every dimension). v2: `jitter` x the reported errors, except log g: the training values
    are seismic, so they get the full spectroscopic scatter (errors[:, 1] = sigma_spec) that inference inputs carry."""
    if method == "paper":
        return errors
    if method != "v2":
        raise ValueError(method)
    out = errors * jitter
    out[:, 1] = errors[:, 1]
    return out


def sigma_train(df: pd.DataFrame, cal: LoggCalibration) -> list:
    """Method v2's training-label noise per label: the rms reported error of the training stars (the noise the flow
    learned with), and for log g the spectroscopic scatter added to the seismic values."""
    rms = lambda c: float(np.sqrt(np.mean(df[c].to_numpy(np.float64) ** 2)))  # noqa: E731
    return [rms("e_teff"), cal.sigma_spec, rms("e_fe_h"), rms("e_c_fe"), rms("e_n_fe")]


def augment(values: np.ndarray, errors: np.ndarray, n_draws: int, seed: int) -> np.ndarray:
    """n_draws Gaussian draws per star of all dimensions: [n_stars * n_draws, d] (star-major)."""
    rng = np.random.default_rng(seed)
    n, d = values.shape
    out = values[:, None, :] + errors[:, None, :] * rng.standard_normal((n, n_draws, d))
    return out.reshape(n * n_draws, d)


def truth_of(name, df):
    """The asteroseismic value a model is judged against, and its error: age [Gyr] or mass [Msun]."""
    if name == "age":
        return df["age"].to_numpy(np.float64), df["e_age"].to_numpy(np.float64)
    return df["mass"].to_numpy(np.float64), df["MASS_ERR"].to_numpy(np.float64)
