"""Label releases: how the labels of another APOGEE data release relate to the training labels (APOGEE DR17).

The flows are trained on DR17 labels; starflow is applied to DR19 (and, in the hidden checks and the report, to DR14)
labels. Labels move between releases, so for every release R and label i starflow needs

* ``offset``: the zero point of R against DR17, ``median(x_R - x_17)`` over stars measured in both (log g: against
  the training log g, i.e. the offset-corrected seismic log g); inputs are moved onto the DR17 scale by subtracting it;
* the release's **real label noise**, as the flow sees it: ``sigma_real^2 = (error_scale * sigma_reported)^2 +
  sigma_sys^2``. ``error_scale`` maps R's reported errors onto the training release's scale (DR14 reports Teff errors
  of ~75 K for stars whose DR14 and DR17 Teff differ by 16 K rms; DR17 reports log g errors of 0.02-0.04 dex for
  a real spread of 0.05-0.08 dex against seismic log g); ``sigma_sys`` is the part that no reported error carries:
  the star-to-star spread of the release differences (pipeline changes; the photon noise of the shared spectra cancels
  in them), or for log g the noise floor of the spectroscopic values.

Method v2 draws a star's labels only for ``sigma_excess^2 = max(sigma_real^2 - sigma_train^2, 0)`` (reference.py).

Releases (every number measured here, on stars of the TRAINING split only, except where marked as a prior):

* ``dr17``: the training release. Offsets 0. Teff, [Fe/H], [C/Fe], [N/Fe]: reported errors at face value. log g:
  from the 2,077 stars with DR17 spectroscopic and seismic log g, the spread of spec - seis grows with the reported
  error (0.049 / 0.062 / 0.081 dex at 0.02 / 0.03 / 0.04): fitted as error_scale ~1.8 and a floor sigma_sys ~0.034.
* ``dr14``: MADE (Das & Sanders 2019) APOGEE DR14 labels of APOKASC stars matched by position (< 2") to the training
  table. DR14 conventions as MADE gives them: [Fe/H] := [M/H], [C/Fe] := [C/M], [N/Fe] := [N/M].
* ``dr16``: APOKASC-2 x APOGEE DR16 (astroNN training file), matched by APOGEE id: Teff, log g, [Fe/H] measured;
  it has no C or N, so those two take the unknown-release prior below.
* ``dr19``: no DR19 labels of training stars exist here, so nothing is measured. Offsets 0, error scales as DR17
  (the same ASPCAP family), and sigma_sys per label = the largest release shift measured above
  (``sqrt(offset^2 + spread^2)`` over dr14 and dr16; log g: the largest per-evolutionary-state offset) added to DR17's
  own terms: an unknown zero point treated as an uncertainty of the size releases have moved before.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from paths import APOKASC2_DR16, MADE

LABELS = ["teff", "logg", "fe_h", "c_fe", "n_fe"]
TRAINING_RELEASE = "dr17"
RELEASES = ("dr17", "dr14", "dr16", "dr19")
DEFAULT_RELEASE = "dr19"  # what starflow is for: SDSS-V DR19 inputs

MADE_MATCH_ARCSEC = 2.0
MISSING = -9999.0


def robust_std(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


@dataclass
class Release:
    name: str
    offset: list
    error_scale: list
    sigma_sys: list
    measured: list            # per label: were offset/scale/sys measured on this release's data?
    n_stars: int
    source: str
    details: dict = field(default_factory=dict)

    def to_manifest(self) -> dict:
        return {"offset": self.offset, "error_scale": self.error_scale, "sigma_sys": self.sigma_sys,
                "measured": self.measured, "n_stars": self.n_stars, "source": self.source}


def apogee_id_position(apogee_id: str):
    """(ra, dec) in degrees from a 2MASS-style id 2Mhhmmssss+ddmmsss (J2000, truncated: ~0.1" / 0.15")."""
    s = apogee_id[2:]
    ra = (int(s[0:2]) + int(s[2:4]) / 60 + int(s[4:8]) / 100 / 3600) * 15
    sign = -1 if s[8] == "-" else 1
    dec = sign * (int(s[9:11]) + int(s[11:13]) / 60 + int(s[13:16]) / 10 / 3600)
    return ra, dec


def match_positions(ra1, dec1, ra2, dec2, radius_arcsec):
    """For each (ra1, dec1): index of the nearest (ra2, dec2) within the radius, else -1."""
    r1, d1, r2, d2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (ra1, dec1, ra2, dec2))
    out = np.full(len(r1), -1, dtype=np.int64)
    for i in range(len(r1)):
        cosd = np.sin(d1[i]) * np.sin(d2) + np.cos(d1[i]) * np.cos(d2) * np.cos(r1[i] - r2)
        sep = np.degrees(np.arccos(np.clip(cosd, -1.0, 1.0))) * 3600.0
        k = int(np.argmin(sep))
        if sep[k] < radius_arcsec:
            out[i] = k
    return out


def read_made(data_dir: str) -> pd.DataFrame:
    """MADE's DR14 labels in starflow's names: teff, logg, fe_h (= [M/H]), c_fe (= [C/M]), n_fe (= [N/M]) + errors,
    positions, and Vrard+2018 seismic masses. -9999 -> NaN."""
    m = pd.read_csv(os.path.join(data_dir, MADE), skipinitialspace=True).replace(MISSING, np.nan)
    return pd.DataFrame({
        "ra": m["ra"], "dec": m["dec"],
        "teff": m["teff"], "e_teff": m["teff_err"], "logg": m["logg"], "e_logg": m["logg_err"],
        "fe_h": m["m_h"], "e_fe_h": m["m_h_err"], "c_fe": m["[C/M]"], "e_c_fe": m["err_[C/M]"],
        "n_fe": m["[N/M]"], "e_n_fe": m["err_[N/M]"], "mass_vrard": m["mass"], "e_mass_vrard": m["mass_error"],
    })


def made_matches(df: pd.DataFrame, data_dir: str) -> pd.DataFrame:
    """MADE stars matched to the training table: MADE's DR14 columns + `row` (index into df) per matched star."""
    made = read_made(data_dir)
    has_id = df["APOGEE_ID"].notna().to_numpy()
    rows = np.nonzero(has_id)[0]
    pos = np.array([apogee_id_position(a) for a in df["APOGEE_ID"].to_numpy()[rows]])
    k = match_positions(made["ra"], made["dec"], pos[:, 0], pos[:, 1], MADE_MATCH_ARCSEC)
    made = made[k >= 0].copy()
    made["row"] = rows[k[k >= 0]]
    made = made.drop_duplicates("row", keep=False).reset_index(drop=True)
    made["KIC"] = df["KIC"].to_numpy()[made["row"].to_numpy()]
    return made


def training_logg(df: pd.DataFrame, cal) -> np.ndarray:
    """The training scale of log g: seismic + the DR17 spectroscopic offset (data.calibrate_logg)."""
    seis = df["LOGG_SEIS"].to_numpy()
    return seis + cal.offset(seis)


def dr17_logg_noise(df: pd.DataFrame, cal):
    """DR17 spectroscopic log g: spread of spec - training log g as a function of the reported error.

    Fits spread^2 = (k e)^2 + floor^2 over the reported-error groups (0.02, 0.03, 0.04 dex, >= 20 stars each),
    weighted by group size; returns (k, floor, groups)."""
    both = df[df["W24_LOGG_SPEC"].notna()]
    d = both["W24_LOGG_SPEC"].to_numpy() - training_logg(both, cal)
    e = both["W24_LOGG_SPEC_ERR"].to_numpy()
    groups = []
    for value in np.unique(np.round(e, 3)):
        sel = np.isclose(e, value)
        if sel.sum() >= 20:
            groups.append({"reported": float(value), "n": int(sel.sum()), "std": float(np.std(d[sel], ddof=1))})
    A = np.array([[g["reported"] ** 2, 1.0] for g in groups])
    y = np.array([g["std"] ** 2 for g in groups])
    w = np.sqrt([g["n"] for g in groups])
    (k2, floor2), *_ = np.linalg.lstsq(A * w[:, None], y * w, rcond=None)
    return math.sqrt(max(k2, 0.0)), math.sqrt(max(floor2, 0.0)), groups


def calibrate(df: pd.DataFrame, cal, data_dir: str, split_ok) -> dict:
    """Every release's offsets, error scales and systematic sigmas (see the module docstring).

    `df`: data.prepare()'s table; `cal`: its log g calibration; `split_ok`: boolean mask of df rows that may be used (the training split: never validation or test stars).
    """
    k_logg, floor_logg, logg_groups = dr17_logg_noise(df[split_ok], cal)
    dr17 = Release("dr17", [0.0] * 5, [1.0, k_logg, 1.0, 1.0, 1.0], [0.0, floor_logg, 0.0, 0.0, 0.0],
                   [True] * 5, int(split_ok.sum()), "training release (APOGEE DR17 labels of the training stars)",
                   {"logg_spread_by_reported_error": logg_groups})

    # DR14 (MADE), stars of the usable split only
    made = made_matches(df, data_dir)
    made = made[split_ok[made["row"].to_numpy()]].reset_index(drop=True)
    dr14 = _compare("dr14", made, df.iloc[made["row"].to_numpy()].reset_index(drop=True), cal,
                    "MADE (Das & Sanders 2019) APOGEE DR14 labels x training stars, matched by position")

    # DR16 (APOKASC-2 astroNN): Teff, log g, [Fe/H] only
    a = pd.read_csv(os.path.join(data_dir, APOKASC2_DR16)).replace(MISSING, np.nan).drop_duplicates("APOGEE_ID")
    a = a.rename(columns={"TEFF": "teff", "TEFF_ERR": "e_teff", "LOGG": "logg", "LOGG_ERR": "e_logg",
                          "FE_H": "fe_h", "FE_H_ERR": "e_fe_h"}).set_index("APOGEE_ID")
    usable = df[split_ok & df["APOGEE_ID"].isin(a.index)].reset_index(drop=True)
    dr16_labels = a.loc[usable["APOGEE_ID"], ["teff", "e_teff", "logg", "e_logg", "fe_h", "e_fe_h"]].reset_index(drop=True)
    dr16 = _compare("dr16", dr16_labels, usable, cal,
                    "APOKASC-2 x APOGEE DR16 (astroNN training file), matched by APOGEE id")

    # an unknown release: sigma_sys = DR17's own terms + the largest shift measured between releases
    shift = [0.0] * 5
    for rel in (dr14, dr16):
        for i in range(5):
            if rel.measured[i]:
                shift[i] = max(shift[i], rel.details["shift"][i])
    prior = [math.sqrt(dr17.sigma_sys[i] ** 2 + shift[i] ** 2) for i in range(5)]
    dr19 = Release("dr19", [0.0] * 5, list(dr17.error_scale), prior, [False] * 5, 0,
                   "prior: no DR19 labels of training stars here; zero offsets, DR17 error scales, sigma_sys = "
                   "DR17's + the largest release shift measured (dr14, dr16)", {"largest_shift": shift})
    for rel in (dr14, dr16):  # labels a release could not measure take the prior
        for i in range(5):
            if not rel.measured[i]:
                rel.offset[i], rel.error_scale[i], rel.sigma_sys[i] = 0.0, dr19.error_scale[i], prior[i]
    return {r.name: r for r in (dr17, dr14, dr16, dr19)}


def _compare(name, other: pd.DataFrame, ref: pd.DataFrame, cal, source) -> Release:
    """Release `name`'s labels (`other`, starflow names) against the same stars' training labels (`ref`, data.py rows).

    Teff, [Fe/H], [C/Fe], [N/Fe]: offset = median difference; error_scale = median DR17 error / median release error;
    sigma_sys = robust spread of the differences. log g: against the training scale (seismic + DR17 offset), whose own
    noise is tiny: offset = median difference, error_scale = robust spread / median reported error, sigma_sys = 0."""
    ref17 = {"teff": ("TEFF", "TEFF_ERR"), "fe_h": ("FE_H", "FE_H_ERR"), "c_fe": ("C_FE", "C_FE_ERR"),
             "n_fe": ("N_FE", "N_FE_ERR")}
    offset, scale, sys_, measured, shift, spread = [0.0] * 5, [1.0] * 5, [0.0] * 5, [False] * 5, [0.0] * 5, [0.0] * 5
    for i, lab in enumerate(LABELS):
        if lab not in other:
            continue
        x = other[lab].to_numpy(np.float64)
        e = other["e_" + lab].to_numpy(np.float64)
        if lab == "logg":
            d = x - training_logg(ref, cal)
        else:
            col, ecol = ref17[lab]
            d = x - ref[col].to_numpy(np.float64)
        ok = np.isfinite(d) & np.isfinite(e) & (e > 0)
        if ok.sum() < 50:
            continue
        measured[i] = True
        offset[i] = float(np.median(d[ok]))
        spread[i] = robust_std(d[ok])
        if lab == "logg":
            scale[i] = spread[i] / float(np.median(e[ok]))
            # per evolutionary state the log g offsets differ (RC vs RGB): the shift an unknown release may carry
            states = ref["EVOL_STATE"].to_numpy()[ok]
            shift[i] = max(abs(float(np.median(d[ok][states == s]))) for s in ("RGB", "RC") if (states == s).sum() >= 20)
        else:
            col, ecol = ref17[lab]
            scale[i] = float(np.median(ref[ecol].to_numpy(np.float64)[ok])) / float(np.median(e[ok]))
            sys_[i] = spread[i]
            shift[i] = math.hypot(offset[i], spread[i])
    return Release(name, offset, scale, sys_, measured, int(len(other)), source,
                   {"spread": spread, "shift": shift})


def excess_sigma(errors, release: dict, sigma_train) -> np.ndarray:
    """sigma_excess per label (reference.py rule): sqrt(max((k e)^2 + sys^2 - sigma_train^2, 0))."""
    e = np.asarray(errors, dtype=np.float64)
    k = np.asarray(release["error_scale"], dtype=np.float64)
    s = np.asarray(release["sigma_sys"], dtype=np.float64)
    t = np.asarray(sigma_train, dtype=np.float64)
    return np.sqrt(np.maximum((k * e) ** 2 + s ** 2 - t ** 2, 0.0))
