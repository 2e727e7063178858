#!/usr/bin/env python3
"""Build starflow's bundled default catalogue (examples/data/).

    python3 examples/build_catalogue.py [--data-dir data/reference]

Writes, next to this script:
  data/astraAllStarASPCAP_apokasc3.parquet  6,603 real APOKASC-3 stars in the SDSS DR19 astraAllStarASPCAP
                                            HDU-2 schema (exact lower-case names and types, subset of columns)
  data/dr17_allstar_sample.parquet          first 200 of those stars with DR17 allStar upper-case names
  data/README.md                            provenance, derivations, column table, counts, checksums

Input (data-dir: the repository's reference tables, data/reference/): <data-dir>/derived/apokasc3_apoor_gold_joined.csv
(APOKASC-3 alpha-poor Gold subset joined with APOGEE ids and Warfield+2024 DR17 spectroscopic logg) and the DR19
data-model column list <data-dir>/sdss_dr19_datamodel/astraAllStarASPCAP_DR19_hdu2_columns.csv (names and types).

Deterministic: no randomness, no wall-clock time in the output (BUILD_DATE below is the catalogue's version date),
so re-running with the same inputs and the same pyarrow version rewrites byte-identical files.
Needs numpy and pyarrow (`pip install numpy pyarrow`). Every output is read back and checked before the script
reports success; any mismatch raises.
"""

import argparse
import csv
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models" / "train"))
from paths import DR19_COLUMNS as DATAMODEL_REL, JOINED as SOURCE_REL, REFERENCE, recorded  # noqa: E402
from paths import sha256_file as sha256  # noqa: E402

BUILD_DATE = "2026-11-23"  # catalogue version date (not the run time; keeps the output reproducible)

# The files the joined CSV was built from, recorded as data/reference/derived/README.md gives them: they are not in the
# repository (t2 is, with fewer columns), so their hashes are the record, not recomputed.
UPSTREAM = [
    {"path": "shared/data/apokasc3_table4_subset/Table4_Apoor_RGB+RC_Gold.csv",
     "sha256": "2be0c1d5f718dcf00923653d015ec2847faed5e827e50cb36a2a8d98a5198511"},
    {"path": "shared/data/apokasc705_ages_tayar/APOKASC705_AGE_short.csv",
     "sha256": "b9f9beebeadef87f81114ac165594f4e0aa27ce6993aae64ffaae2c8c1bc899b"},
    {"path": "shared/data/apok2_warfield2024/t2_apokasc2_rgb_ages.csv",
     "sha256": "cc9a9bcf9260973572f506678a97cb760eba5bdae5c904d59c212c3de8097933"},
]

EXPECTED_ROWS = 6603
DR17_SAMPLE_ROWS = 200

# Floor (dex) on e_c_h / e_n_h when the DR17 [X/Fe] error is not larger than the [Fe/H] error, so that
# sqrt(C_FE_ERR^2 - FE_H_ERR^2) has no real positive value.
ERR_XH_FLOOR = 0.01

# Robust sigma: 1.4826 * MAD is the standard deviation for a Gaussian
MAD_TO_SIGMA = 1.4826

OUT_DR19 = "astraAllStarASPCAP_apokasc3.parquet"
OUT_DR17 = "dr17_allstar_sample.parquet"

# DR19 columns written, and the Arrow type each data-model type maps to
DR19_COLUMNS = [
    "sdss_id", "sdss4_apogee_id", "catalogid",
    "teff", "e_teff", "logg", "e_logg",
    "c_h", "e_c_h", "fe_h", "e_fe_h", "n_h", "e_n_h",
    "flag_warn", "flag_bad",
]
EXPECTED_DM_TYPES = {  # what the brief asks for; checked against the data-model file
    "sdss_id": "int64", "catalogid": "int64", "sdss4_apogee_id": "char[19]",
    "flag_warn": "bool", "flag_bad": "bool",
    **{c: "float32" for c in ["teff", "e_teff", "logg", "e_logg", "c_h", "e_c_h",
                               "fe_h", "e_fe_h", "n_h", "e_n_h"]},
}

SOURCE_COLUMNS = ["KIC", "APOGEE_ID", "EVOL_STATE", "TEFF", "TEFF_ERR", "LOGG_SEIS", "LOGG_SEIS_ERR",
                  "W24_LOGG_SPEC", "W24_LOGG_SPEC_ERR", "FE_H", "FE_H_ERR", "C_FE", "C_FE_ERR",
                  "N_FE", "N_FE_ERR"]


def arrow_type(dm_type):
    if dm_type == "int64":
        return pa.int64()
    if dm_type == "int32":
        return pa.int32()
    if dm_type == "float32":
        return pa.float32()
    if dm_type == "bool":
        return pa.bool_()
    if dm_type.startswith("char["):
        return pa.string()
    raise ValueError(f"unmapped data-model type {dm_type!r}")


def read_datamodel(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    dm = {}
    for i, r in enumerate(rows):
        dm[r["name"]] = {"index": i, "type": r["type"], "unit": r["unit"].strip(),
                         "description": r["description"].strip()}
    return dm


def read_source(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in SOURCE_COLUMNS if c not in reader.fieldnames]
        if missing:
            raise SystemExit(f"{path}: missing columns {missing}")
        rows = list(reader)
    out = {}
    for c in SOURCE_COLUMNS:
        vals = [r[c] for r in rows]
        if c in ("APOGEE_ID", "EVOL_STATE"):
            out[c] = [v if v != "" else None for v in vals]
        elif c == "KIC":
            out[c] = np.array([int(v) for v in vals], dtype=np.int64)
        else:  # float() of the decimal text is correctly rounded; "" -> NaN
            out[c] = np.array([float(v) if v != "" else math.nan for v in vals], dtype=np.float64)
    return out


def robust_sigma(x):
    med = np.median(x)
    return float(MAD_TO_SIGMA * np.median(np.abs(x - med)))


def derive_xh_err(xfe_err, feh_err):
    """e_x_h such that sqrt(e_x_h^2 + e_fe_h^2) == e_x_fe, floored at ERR_XH_FLOOR."""
    var = xfe_err ** 2 - feh_err ** 2
    floored = var < ERR_XH_FLOOR ** 2
    return np.sqrt(np.where(floored, ERR_XH_FLOOR ** 2, var)), floored


def build(src):
    n = len(src["KIC"])
    if n != EXPECTED_ROWS:
        raise SystemExit(f"expected {EXPECTED_ROWS} rows, found {n}")
    if not np.all(np.diff(src["KIC"]) > 0):
        raise SystemExit("source rows are not sorted by KIC (strictly increasing)")
    for c in ["TEFF", "TEFF_ERR", "LOGG_SEIS", "LOGG_SEIS_ERR", "FE_H", "FE_H_ERR",
              "C_FE", "C_FE_ERR", "N_FE", "N_FE_ERR"]:
        if not np.all(np.isfinite(src[c])):
            raise SystemExit(f"source column {c} has missing values")
    for c in ["TEFF_ERR", "FE_H_ERR", "C_FE_ERR", "N_FE_ERR"]:
        if not np.all(src[c] > 0):
            raise SystemExit(f"source column {c} has non-positive errors")

    # --- logg: DR17 calibrated spectroscopic logg where it exists, else seismic logg with a spectroscopic-size error
    has_spec = np.isfinite(src["W24_LOGG_SPEC"])
    if not np.array_equal(has_spec, np.isfinite(src["W24_LOGG_SPEC_ERR"])):
        raise SystemExit("W24_LOGG_SPEC and W24_LOGG_SPEC_ERR are not null together")
    diff = src["W24_LOGG_SPEC"][has_spec] - src["LOGG_SEIS"][has_spec]
    is_rgb = np.array([s == "RGB" for s in src["EVOL_STATE"]])
    sigma = robust_sigma(diff)
    logg_stats = {
        "n_both": int(has_spec.sum()),
        "median_spec_minus_seis": float(np.median(diff)),
        "mean_spec_minus_seis": float(np.mean(diff)),
        "std_spec_minus_seis": float(np.std(diff, ddof=1)),
        "robust_sigma_spec_minus_seis": sigma,
        "robust_sigma_rgb_only": robust_sigma(diff[is_rgb[has_spec]]),
        "n_both_rc": int((~is_rgb[has_spec]).sum()),
        "median_spec_minus_seis_rc": float(np.median(diff[~is_rgb[has_spec]])),
        "median_seis_err": float(np.median(src["LOGG_SEIS_ERR"])),
        "median_spec_err": float(np.median(src["W24_LOGG_SPEC_ERR"][has_spec])),
    }
    logg = np.where(has_spec, src["W24_LOGG_SPEC"], src["LOGG_SEIS"])
    e_logg = np.where(has_spec, src["W24_LOGG_SPEC_ERR"], sigma)

    # --- [C/H], [N/H]
    c_h = src["C_FE"] + src["FE_H"]
    n_h = src["N_FE"] + src["FE_H"]
    e_c_h, c_floor = derive_xh_err(src["C_FE_ERR"], src["FE_H_ERR"])
    e_n_h, n_floor = derive_xh_err(src["N_FE_ERR"], src["FE_H_ERR"])

    values = {
        "sdss_id": pa.nulls(n, pa.int64()),
        "sdss4_apogee_id": src["APOGEE_ID"],
        "catalogid": pa.nulls(n, pa.int64()),
        "teff": src["TEFF"], "e_teff": src["TEFF_ERR"],
        "logg": logg, "e_logg": e_logg,
        "c_h": c_h, "e_c_h": e_c_h,
        "fe_h": src["FE_H"], "e_fe_h": src["FE_H_ERR"],
        "n_h": n_h, "e_n_h": e_n_h,
        "flag_warn": np.zeros(n, dtype=bool), "flag_bad": np.zeros(n, dtype=bool),
    }
    info = {
        "has_spec": has_spec, "is_rgb": is_rgb, "logg_stats": logg_stats,
        "c_floor": c_floor, "n_floor": n_floor, "logg": logg, "e_logg": e_logg,
    }
    return values, info


def make_table(values, dm, metadata):
    fields, arrays = [], []
    for name in sorted(DR19_COLUMNS, key=lambda c: dm[c]["index"]):  # DR19 column order
        typ = arrow_type(dm[name]["type"])
        fields.append(pa.field(name, typ, nullable=True))
        v = values[name]
        arrays.append(v if isinstance(v, pa.Array) else pa.array(v, type=typ))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata))


def write(table, path):
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(table, tmp, compression="zstd", compression_level=9, row_group_size=1 << 20,
                   write_statistics=True, version="2.6")
    os.replace(tmp, path)


def f32(x):
    return np.asarray(x, dtype=np.float64).astype(np.float32)


def check_equal(label, got, want):
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape or not np.array_equal(got, want):
        bad = np.flatnonzero(got != want)[:5] if got.shape == want.shape else "shape"
        raise SystemExit(f"verification failed for {label}: first bad rows {bad}")


def verify_dr19(path, src, info, dm):
    t = pq.read_table(path)
    n = len(src["KIC"])
    if t.num_rows != n:
        raise SystemExit(f"{path}: {t.num_rows} rows, expected {n}")
    expect_names = sorted(DR19_COLUMNS, key=lambda c: dm[c]["index"])
    if t.column_names != expect_names:
        raise SystemExit(f"{path}: columns {t.column_names}")
    for name in expect_names:
        if t.schema.field(name).type != arrow_type(dm[name]["type"]):
            raise SystemExit(f"{path}: {name} has type {t.schema.field(name).type}")
    col = {c: t.column(c).to_numpy(zero_copy_only=False) for c in expect_names
           if c not in ("sdss_id", "catalogid", "sdss4_apogee_id")}
    if t.column("sdss_id").null_count != n or t.column("catalogid").null_count != n:
        raise SystemExit("sdss_id / catalogid must be all null")
    if t.column("sdss4_apogee_id").to_pylist() != src["APOGEE_ID"]:
        raise SystemExit("sdss4_apogee_id differs from APOGEE_ID")
    check_equal("teff", col["teff"], f32(src["TEFF"]))
    check_equal("e_teff", col["e_teff"], f32(src["TEFF_ERR"]))
    check_equal("fe_h", col["fe_h"], f32(src["FE_H"]))
    check_equal("e_fe_h", col["e_fe_h"], f32(src["FE_H_ERR"]))
    check_equal("logg", col["logg"], f32(info["logg"]))
    check_equal("e_logg", col["e_logg"], f32(info["e_logg"]))
    hs = info["has_spec"]
    check_equal("logg(spec rows)", col["logg"][hs], f32(src["W24_LOGG_SPEC"][hs]))
    check_equal("logg(seis rows)", col["logg"][~hs], f32(src["LOGG_SEIS"][~hs]))
    if col["flag_bad"].any() or col["flag_warn"].any():
        raise SystemExit("flags must be false")
    # the DR19 -> [X/Fe] view of docs/METHOD.md gives back the source values
    roundtrip = {}
    for x, floor in (("c", info["c_floor"]), ("n", info["n_floor"])):
        X = x.upper()
        xfe = col[f"{x}_h"].astype(np.float64) - col["fe_h"].astype(np.float64)
        if np.max(np.abs(xfe - src[f"{X}_FE"])) > 2e-6:
            raise SystemExit(f"{x}_h - fe_h does not give back {X}_FE")
        e_xfe = np.sqrt(col[f"e_{x}_h"].astype(np.float64) ** 2 + col["e_fe_h"].astype(np.float64) ** 2)
        rel = np.abs(e_xfe - src[f"{X}_FE_ERR"]) / src[f"{X}_FE_ERR"]
        if np.max(rel[~floor]) > 1e-5:
            raise SystemExit(f"e_{x}_fe round trip off by {np.max(rel[~floor])} on non-floored rows")
        if np.any(e_xfe[floor] < src[f"{X}_FE_ERR"][floor]):
            raise SystemExit(f"floored e_{x}_fe smaller than source")  # floor can only inflate
        infl = e_xfe[floor] - src[f"{X}_FE_ERR"][floor]
        roundtrip[x] = {
            "max_rel_err_unfloored": float(np.max(rel[~floor])) if (~floor).any() else 0.0,
            "n_floored": int(floor.sum()),
            "floored_recomputed_minus_source_median": float(np.median(infl)) if floor.any() else 0.0,
            "floored_recomputed_minus_source_max": float(np.max(infl)) if floor.any() else 0.0,
            "recomputed_median_all": float(np.median(e_xfe)),
            "source_median_all": float(np.median(src[f"{X}_FE_ERR"])),
        }
    meta = t.schema.metadata or {}
    prov = json.loads(meta[b"starflow.provenance"])
    if prov["row_count"] != n:
        raise SystemExit("provenance row_count mismatch")
    kic = json.loads(meta[b"starflow.row_kic"])
    if kic != [int(k) for k in src["KIC"]]:
        raise SystemExit("starflow.row_kic mismatch")
    ls = meta[b"starflow.row_logg_source"].decode()
    if ls != "".join("S" if s else "A" for s in hs):
        raise SystemExit("starflow.row_logg_source mismatch")
    # spot checks on literal CSV values (first row of the CSV: KIC 893214)
    if kic[0] == 893214:
        assert col["teff"][0] == np.float32(4718.92) and col["fe_h"][0] == np.float32(-0.2617)
        assert t.column("sdss4_apogee_id")[0].as_py() == "2M19245967+3638183"
        assert col["c_h"][0] == np.float32(-0.0626 + -0.2617)
    return t, roundtrip


def build_dr17(src, info, n_rows, metadata):
    sl = slice(0, n_rows)
    cols = [
        ("APOGEE_ID", pa.string(), src["APOGEE_ID"][sl]),
        ("TEFF", pa.float32(), src["TEFF"][sl]), ("TEFF_ERR", pa.float32(), src["TEFF_ERR"][sl]),
        ("LOGG", pa.float32(), info["logg"][sl]), ("LOGG_ERR", pa.float32(), info["e_logg"][sl]),
        ("FE_H", pa.float32(), src["FE_H"][sl]), ("FE_H_ERR", pa.float32(), src["FE_H_ERR"][sl]),
        ("C_FE", pa.float32(), src["C_FE"][sl]), ("C_FE_ERR", pa.float32(), src["C_FE_ERR"][sl]),
        ("N_FE", pa.float32(), src["N_FE"][sl]), ("N_FE_ERR", pa.float32(), src["N_FE_ERR"][sl]),
        ("ASPCAPFLAG", pa.int64(), np.zeros(n_rows, dtype=np.int64)),
    ]
    schema = pa.schema([pa.field(n, t, nullable=True) for n, t, _ in cols], metadata=metadata)
    return pa.Table.from_arrays([pa.array(v, type=t) for _, t, v in cols], schema=schema)


def verify_dr17(path, src, info, n_rows):
    t = pq.read_table(path)
    if t.num_rows != n_rows:
        raise SystemExit(f"{path}: {t.num_rows} rows")
    want = {"APOGEE_ID": pa.string(), "ASPCAPFLAG": pa.int64()}
    for name in t.column_names:
        if t.schema.field(name).type != want.get(name, pa.float32()):
            raise SystemExit(f"{path}: {name} has type {t.schema.field(name).type}")
    if t.column("APOGEE_ID").to_pylist() != src["APOGEE_ID"][:n_rows]:
        raise SystemExit("APOGEE_ID mismatch")
    for name in ["TEFF", "TEFF_ERR", "FE_H", "FE_H_ERR", "C_FE", "C_FE_ERR", "N_FE", "N_FE_ERR"]:
        check_equal(name, t.column(name).to_numpy(), f32(src[name][:n_rows]))
    check_equal("LOGG", t.column("LOGG").to_numpy(), f32(info["logg"][:n_rows]))
    check_equal("LOGG_ERR", t.column("LOGG_ERR").to_numpy(), f32(info["e_logg"][:n_rows]))
    if np.any(t.column("ASPCAPFLAG").to_numpy() != 0):
        raise SystemExit("ASPCAPFLAG must be 0")
    return t


def main():
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--data-dir", type=Path, default=REFERENCE,
                    help="folder of the reference tables (default: data/reference in the repository)")
    ap.add_argument("--out-dir", type=Path, default=here / "data")
    args = ap.parse_args()
    data_dir = args.data_dir.resolve()
    out_dir = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    src_path = data_dir / SOURCE_REL
    dm_path = data_dir / DATAMODEL_REL
    dm = read_datamodel(dm_path)
    for c, t in EXPECTED_DM_TYPES.items():
        if c not in dm or dm[c]["type"] != t:
            raise SystemExit(f"DR19 data model: {c} is {dm.get(c, {}).get('type')}, expected {t}")
    src = read_source(src_path)
    values, info = build(src)
    n = len(src["KIC"])
    hs = info["has_spec"]
    ls = info["logg_stats"]

    script_rel = "examples/build_catalogue.py"
    sources = [{"path": recorded(src_path), "sha256": sha256(src_path), "role": "all values"},
               {"path": recorded(dm_path), "sha256": sha256(dm_path), "role": "column names, order and types"}]
    counts = {
        "rows": n,
        "rgb": int(info["is_rgb"].sum()), "rc": int((~info["is_rgb"]).sum()),
        "sdss4_apogee_id_null": int(sum(v is None for v in src["APOGEE_ID"])),
        "logg_spectroscopic_dr17": int(hs.sum()),
        "logg_seismic_substitute": int((~hs).sum()),
        "logg_seismic_substitute_rgb": int((~hs & info["is_rgb"]).sum()),
        "logg_seismic_substitute_rc": int((~hs & ~info["is_rgb"]).sum()),
        "e_c_h_floored": int(info["c_floor"].sum()),
        "e_n_h_floored": int(info["n_floor"].sum()),
    }
    derivations = {
        "sdss4_apogee_id": "APOGEE_ID (Tayar APOKASC v7.0.5 file, else Warfield+2024 t2); null where neither has the star",
        "sdss_id": "no source: all null", "catalogid": "no source: all null",
        "teff,e_teff": "TEFF, TEFF_ERR (APOGEE DR17 calibrated Teff; error as adopted by APOKASC-3)",
        "fe_h,e_fe_h": "FE_H, FE_H_ERR (DR17 [Fe/H]; error = APOKASC-3 adopted constant 0.058)",
        "logg,e_logg": (f"W24_LOGG_SPEC, W24_LOGG_SPEC_ERR (DR17 calibrated spectroscopic logg) where present "
                        f"(row_logg_source 'S'); otherwise LOGG_SEIS with e_logg = {ls['robust_sigma_spec_minus_seis']:.6g} "
                        f"= 1.4826*MAD(W24_LOGG_SPEC - LOGG_SEIS) over the {ls['n_both']} stars with both "
                        f"(row_logg_source 'A')"),
        "c_h": "C_FE + FE_H", "n_h": "N_FE + FE_H",
        "e_c_h": f"sqrt(max(C_FE_ERR^2 - FE_H_ERR^2, {ERR_XH_FLOOR}^2)) so that sqrt(e_c_h^2 + e_fe_h^2) = C_FE_ERR unless floored",
        "e_n_h": f"sqrt(max(N_FE_ERR^2 - FE_H_ERR^2, {ERR_XH_FLOOR}^2))",
        "flag_bad,flag_warn": "false (APOKASC-3 Gold stars passed its quality cuts; no ASPCAP flags in the sources)",
        "float32": "computed in float64 from the CSV text, stored as float32 (DR19 type)",
    }
    provenance = {
        "name": "starflow bundled default catalogue (APOKASC-3 alpha-poor Gold subset, DR19 astraAllStarASPCAP HDU-2 schema)",
        "date": BUILD_DATE,
        "script": script_rel,
        "script_sha256": sha256(Path(__file__).resolve()),
        "pyarrow_version": pa.__version__,
        "sources": sources,
        "upstream_of_source": UPSTREAM,
        "row_order": "as in the source CSV (ascending KIC); KIC per row in key 'starflow.row_kic'",
        "row_count": n,
        "counts": counts,
        "derivations": derivations,
        "logg_comparison": ls,
        "err_xh_floor_dex": ERR_XH_FLOOR,
        "not_dr19_data": "labels are APOGEE DR17 (via APOKASC-3 / Warfield+2024), stored under DR19 names",
    }
    metadata = {
        "starflow.provenance": json.dumps(provenance),
        "starflow.row_kic": json.dumps([int(k) for k in src["KIC"]]),
        "starflow.row_logg_source": "".join("S" if s else "A" for s in hs),
    }
    table = make_table(values, dm, metadata)
    dr19_path = out_dir / OUT_DR19
    write(table, dr19_path)
    t19, roundtrip = verify_dr19(dr19_path, src, info, dm)

    prov17 = dict(provenance)
    prov17["name"] = "starflow DR17 allStar-named sample (first 200 rows of the bundled catalogue)"
    prov17["row_count"] = DR17_SAMPLE_ROWS
    prov17["counts"] = {"rows": DR17_SAMPLE_ROWS,
                        "logg_spectroscopic_dr17": int(hs[:DR17_SAMPLE_ROWS].sum()),
                        "logg_seismic_substitute": int((~hs[:DR17_SAMPLE_ROWS]).sum())}
    prov17["derivations"] = {
        "APOGEE_ID,TEFF,TEFF_ERR,FE_H,FE_H_ERR,C_FE,C_FE_ERR,N_FE,N_FE_ERR": "source CSV columns of the same name",
        "LOGG,LOGG_ERR": derivations["logg,e_logg"],
        "ASPCAPFLAG": "0 (no flags in the sources)",
    }
    meta17 = {
        "starflow.provenance": json.dumps(prov17),
        "starflow.row_kic": json.dumps([int(k) for k in src["KIC"][:DR17_SAMPLE_ROWS]]),
        "starflow.row_logg_source": metadata["starflow.row_logg_source"][:DR17_SAMPLE_ROWS],
    }
    dr17_path = out_dir / OUT_DR17
    write(build_dr17(src, info, DR17_SAMPLE_ROWS, meta17), dr17_path)
    t17 = verify_dr17(dr17_path, src, info, DR17_SAMPLE_ROWS)

    readme = render_readme(provenance, prov17, roundtrip, dm, t19, t17, dr19_path, dr17_path)
    (out_dir / "README.md").write_text(readme)

    print(f"wrote {dr19_path} ({dr19_path.stat().st_size} bytes, {t19.num_rows} rows)")
    print(f"wrote {dr17_path} ({dr17_path.stat().st_size} bytes, {t17.num_rows} rows)")
    print(f"wrote {out_dir / 'README.md'}")
    print(json.dumps(counts))
    print(json.dumps(ls))
    print(json.dumps(roundtrip))
    return 0


# ----------------------------------------------------------------------------------------------- README


ARROW_NAME = {"float": "float32", "double": "float64"}  # pyarrow prints float32 as "float"


def render_readme(prov, prov17, rt, dm, t19, t17, dr19_path, dr17_path):
    c = prov["counts"]
    ls = prov["logg_comparison"]
    src_rows = "\n".join(f"| `{s['path']}` | {s['role']} | `{s['sha256']}` |" for s in prov["sources"])
    up_rows = "\n".join(f"| `{s['path']}` | `{s['sha256']}` |" for s in prov["upstream_of_source"])
    source_of = {
        "sdss_id": "— (no source; **all null**)",
        "sdss4_apogee_id": f"`APOGEE_ID` ({c['sdss4_apogee_id_null']} null: no APOGEE id in the sources)",
        "catalogid": "— (no source; **all null**)",
        "teff": "`TEFF`", "e_teff": "`TEFF_ERR`",
        "logg": "`W24_LOGG_SPEC`, else `LOGG_SEIS` (see below)",
        "e_logg": f"`W24_LOGG_SPEC_ERR`, else {ls['robust_sigma_spec_minus_seis']:.5f} (see below)",
        "c_h": "`C_FE + FE_H`", "e_c_h": "`sqrt(max(C_FE_ERR^2 - FE_H_ERR^2, 0.01^2))`",
        "fe_h": "`FE_H`", "e_fe_h": "`FE_H_ERR` (constant 0.058)",
        "n_h": "`N_FE + FE_H`", "e_n_h": "`sqrt(max(N_FE_ERR^2 - FE_H_ERR^2, 0.01^2))`",
        "flag_warn": "false (see below)", "flag_bad": "false (see below)",
    }
    col_rows = []
    for f in t19.schema:
        d = dm[f.name]
        col_rows.append(f"| `{f.name}` | {ARROW_NAME.get(str(f.type), str(f.type))} | {d['type']} | {d['unit'] or ''} | {d['description']} | {source_of[f.name]} |")
    col_rows = "\n".join(col_rows)
    rc, rn = rt["c"], rt["n"]
    s19 = dr19_path.stat().st_size
    s17 = dr17_path.stat().st_size
    return f"""# `examples/data/` — starflow's bundled default catalogue

GENERATED by `python3 examples/build_catalogue.py` (do not edit by hand; edit the script and re-run).
Catalogue version date {prov['date']}; built with pyarrow {prov['pyarrow_version']}.

| file | rows | bytes | sha256 |
|---|---|---|---|
| `{dr19_path.name}` | {t19.num_rows:,} | {s19:,} | `{sha256(dr19_path)}` |
| `{dr17_path.name}` | {t17.num_rows:,} | {s17:,} | `{sha256(dr17_path)}` |

**What it is.** {c['rows']:,} real red giants — the APOKASC-3 (Pinsonneault et al. 2025) alpha-poor **Gold** RGB + red-clump
subset with 0.9 < M < 1.8 Msun and |[Fe/H]| < 0.45 ({c['rgb']:,} RGB, {c['rc']:,} RC) — with their **APOGEE DR17** labels,
written in the **SDSS DR19 `astraAllStarASPCAP` HDU-2 schema** (exact lower-case column names, DR19 column order and
types; a subset of the 396 columns). It is a stand-in for the real DR19 file, which is not available offline: the numbers are
DR17 values under DR19 names, not DR19 values. Rows keep the source order (ascending Kepler id, KIC).

`{dr17_path.name}` holds the first {t17.num_rows} of the same stars with DR17 `allStar` upper-case names, so the DR17 input view
can be tested.

## Provenance
Everything comes from the repository's reference tables (`data/reference/`, provenance in its READMEs; nothing downloaded):

| input | used for | sha256 |
|---|---|---|
{src_rows}

`derived/apokasc3_apoor_gold_joined.csv` was itself built (`data/reference/derived/README.md`) from these files of the data
collection the reference tables were copied from, recorded here with their hashes:

| upstream file | sha256 |
|---|---|
{up_rows}

Original publications: APOKASC-3, Pinsonneault et al. 2025, ApJS 276, 69 (Table 4, via GitHub `kailicao/mesa_apokasc`, MIT);
APOGEE DR17, Abdurro'uf et al. 2022; Warfield et al. 2024, AJ 167, 208 (DR17 calibrated spectroscopic logg, GitHub
`Jesstella/APO-K2`); APOGEE ids from Tayar's APOKASC v7.0.5 file. Column names and types: `sdss/datamodel` (BSD-3-Clause).

The same record is in each Parquet file's key-value metadata:
- `starflow.provenance` — JSON: sources with sha256, script and its sha256, derivations, counts, logg statistics, date;
- `starflow.row_kic` — JSON array, the KIC of every row (DR19 has no Kepler id column; this is the join key back to the source);
- `starflow.row_logg_source` — one character per row: `S` = DR17 spectroscopic logg, `A` = asteroseismic substitute (below).

Read it with `pyarrow.parquet.read_schema(path).metadata`.

## Is there another source with all five labels and errors?
No. Of the tables of the data collection (`data/reference/README.md`), only APOKASC-3 Table 4 (and the joined table built
from it) has per-star Teff, logg, [Fe/H], [C/Fe] and [N/Fe] with errors (and its logg is seismic). APO-K2 / Warfield+2024
(t1–t4, the APO-K2 catalogue) and the APOKASC-2 astroNN file (DR16) have Teff, logg, [Fe/H] with errors but no C or N;
APOKASC-2 Table 5 has no errors and no C/N; the Hasselquist+2020 and Tayar files hold ids and ages only; OCCAM has C and N
only as cluster means (DR16 `C_FE`/`N_FE`, DR19 `C_H`/`N_H`), not per star. So the catalogue is the {c['rows']:,} APOKASC-3 stars and nothing else.

## Columns (`{dr19_path.name}`)
Arrow type as written / DR19 data-model type / unit and description from the DR19 data model / what was put in it
(upper-case names are columns of `derived/apokasc3_apoor_gold_joined.csv`):

| column | Arrow | DR19 | unit | DR19 description | filled from |
|---|---|---|---|---|---|
{col_rows}

Floats are computed in float64 from the CSV text and stored as float32 (the DR19 type); `sdss4_apogee_id` (DR19 `char[19]`)
is a UTF-8 string, null (not blank) where unknown. DR19 columns with no honest source are left out rather than mislabelled,
in particular: `alpha_m_atm` (DR19 atmospheric [alpha/M]; the source has APOKASC-3's [alpha/Fe], a different quantity),
`m_h_atm`, `mass`/`radius` (DR19: from isochrones; the source has seismic values — and they are what StarFlow predicts),
`c_h_flags`/`n_h_flags`/`fe_h_flags`/`result_flags` (unknown), `ra`/`dec` and other ids.

## Derivations
**[C/H], [N/H].** DR19 has no `c_fe`/`n_fe`; starflow's DR19 view computes (`docs/METHOD.md`) `[C/Fe] = c_h - fe_h` with
error `sqrt(e_c_h^2 + e_fe_h^2)`. So `c_h = C_FE + FE_H` (the view gives `C_FE` back to float32 precision) and
`e_c_h = sqrt(max(C_FE_ERR^2 - FE_H_ERR^2, 0.01^2))`, chosen so that the view gives back `C_FE_ERR`; likewise `n_h`, `e_n_h`.
The floor (0.01 dex) applies where `C_FE_ERR^2 - FE_H_ERR^2 < 0.01^2` (i.e. `C_FE_ERR` < 0.0589), and **that is most rows**, because `FE_H_ERR` here is not
ASPCAP's reported [Fe/H] error but APOKASC-3's adopted constant 0.058 dex, larger than most [C/Fe]/[N/Fe] errors:

| | rows floored | view error on floored rows | median error: source / through the view |
|---|---|---|---|
| [C/Fe] | **{rc['n_floored']:,} of {c['rows']:,}** | `sqrt(0.01^2+0.058^2)` = 0.0589; exceeds `C_FE_ERR` by median {rc['floored_recomputed_minus_source_median']:.4f}, max {rc['floored_recomputed_minus_source_max']:.4f} | {rc['source_median_all']:.4f} / {rc['recomputed_median_all']:.4f} |
| [N/Fe] | **{rn['n_floored']:,} of {c['rows']:,}** | same; exceeds `N_FE_ERR` by median {rn['floored_recomputed_minus_source_median']:.4f}, max {rn['floored_recomputed_minus_source_max']:.4f} | {rn['source_median_all']:.4f} / {rn['recomputed_median_all']:.4f} |

On the other rows the view returns the source error exactly (relative difference <= {max(rc['max_rel_err_unfloored'], rn['max_rel_err_unfloored']):.1e}, float32).
So **through the DR19 view, [C/Fe] and [N/Fe] errors of the floored rows are inflated to ~0.059 dex**; the DR17 sample file
carries the source `C_FE_ERR`/`N_FE_ERR` unchanged. (For comparison, ASPCAP's own DR17 `FE_H_ERR` for the 2,077 stars in
Warfield+2024 t2 is 0.006–0.017 dex; with that error almost no row would need the floor, but it exists for only a third of the
stars, so the source's 0.058 was kept.) Likewise `e_teff` is APOKASC-3's adopted Teff error (median 46 K), larger than ASPCAP's
reported DR17 `TEFF_ERR` (~9 K in Warfield+2024).

**logg.** StarFlow conditions on the ASPCAP (spectroscopic) logg; APOKASC-3 gives only the asteroseismic logg, which is about
ten times more precise (median error {ls['median_seis_err']:.4f} dex).
- {c['logg_spectroscopic_dr17']:,} stars (`S`): `logg`, `e_logg` = the APOGEE DR17 **calibrated spectroscopic** logg and its
  error from Warfield+2024 t2 (`W24_LOGG_SPEC`, median error {ls['median_spec_err']:.3f}). {ls['n_both_rc']} of them are red-clump stars by APOKASC-3;
  their DR17 logg is {ls['median_spec_minus_seis_rc']:+.3f} dex (median) above the seismic value (APOKASC-2/Warfield+2024 and
  DR17 treated them as RGB, presumably with the RGB logg calibration) — kept as published. The quoted DR17 errors (0.02–0.04)
  are smaller than the measured spectroscopic-minus-seismic scatter (next item); they are kept as published too.
- {c['logg_seismic_substitute']:,} stars (`A`; {c['logg_seismic_substitute_rgb']:,} RGB, {c['logg_seismic_substitute_rc']:,} RC): no spectroscopic logg exists in the sources, so
  `logg` = **seismic logg** (`LOGG_SEIS`, no offset applied) and `e_logg` = **{ls['robust_sigma_spec_minus_seis']:.5f} dex** for all of them, a realistic
  spectroscopic-size error measured on the {ls['n_both']:,} stars that have both: robust sigma (1.4826 x MAD) of
  `W24_LOGG_SPEC - LOGG_SEIS` (median difference {ls['median_spec_minus_seis']:+.4f}, standard deviation {ls['std_spec_minus_seis']:.4f};
  RGB only: robust sigma {ls['robust_sigma_rgb_only']:.4f}). The values of these rows are seismic, i.e. less scattered than a real
  spectroscopic logg would be; the spectroscopic-vs-seismic scatter of red-clump stars could not be measured here.
  Which rows: `starflow.row_logg_source` (`A`) in the Parquet metadata.
- Not used: the DR16 ASPCAP logg of the APOKASC-2 astroNN file (`apokasc2_astronn/`) would cover only 1,903 of these stars,
  mixes in another data release, and scatters more against the DR17 logg (0.068 dex) than the seismic logg does (0.056 dex).

**Flags.** `flag_bad` = `flag_warn` = false for every row: APOKASC-3 Gold stars passed APOKASC-3's quality cuts and none of
the sources carries ASPCAP flags (this is an assumption, not a copied flag). `ASPCAPFLAG` = 0 in the DR17 sample likewise.

**Ids.** `sdss_id` and `catalogid` (SDSS-V ids) have no source offline: they are **all null** (int64), not invented.

## `{dr17_path.name}`
First {t17.num_rows} rows (same stars, same order; {prov17['counts']['logg_spectroscopic_dr17']} with spectroscopic logg, {prov17['counts']['logg_seismic_substitute']} with the seismic substitute):
`APOGEE_ID` string; `TEFF`, `TEFF_ERR`, `LOGG`, `LOGG_ERR`, `FE_H`, `FE_H_ERR`, `C_FE`, `C_FE_ERR`, `N_FE`, `N_FE_ERR` float32
(the source columns; `LOGG`/`LOGG_ERR` as `logg`/`e_logg` above); `ASPCAPFLAG` int64 = 0.

## Rebuild and checks
`python3 examples/build_catalogue.py` (needs `numpy`, `pyarrow`; `--data-dir` reads the reference tables from elsewhere).
The script checks the input (row count, KIC order, no missing labels, data-model types), writes both files (zstd, one row
group, temporary name then rename), then reads them back and checks every row: types and column order, row counts,
all values equal to the float32 of the CSV values, `c_h - fe_h` = `C_FE`, the error round trip above, all-null ids, false flags,
and the metadata. Same inputs and pyarrow version give byte-identical files.
"""


if __name__ == "__main__":
    sys.exit(main())
