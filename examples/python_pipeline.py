#!/usr/bin/env python3
"""A StarFlow analysis in Python: ages and masses of a DR19 catalogue, good stars joined with the asteroseismic
table, a figure and a Parquet file.

    pip install "./python[examples]"       # once: the package, matplotlib and pandas (README, "Python")
    python examples/python_pipeline.py [--input CATALOGUE] [--out DIR] [--stars N]

CATALOGUE is a DR19 astraAllStarASPCAP file, local or s3:// (default: the bundled 6,603 APOKASC-3 stars); for a
private bucket give the endpoint, region and credentials as for the CLI (AWS_* variables or a profile).
Writes DIR/good_stars.parquet (the good stars with their StarFlow and asteroseismic columns) and DIR/age_feh_cn.png
(age against [Fe/H], coloured by [C/N]). --stars N keeps the first N stars (a quick run).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyarrow.compute as pc
import pyarrow.parquet as pq

import starflow

REPO = Path(__file__).resolve().parents[1]

# Bits that make an estimate unusable here: BAD_INPUT (4), OUT_OF_RANGE (8), and LOW_DENSITY (1): outside the
# training set (docs/METHOD.md); GRID_EDGE, MULTIMODAL, CN_ATYPICAL stay as flags in the output.
REJECT = 1 | 4 | 8

QUERY = """
SELECT s.sdss4_apogee_id, s.fe_h, s.c_fe - s.n_fe AS c_n,
       s.age, s.age_p16, s.age_p84, s.age_bitmask, starflow_flag_names(s.age_bitmask) AS age_flags,
       s.mass, s.mass_p16, s.mass_p84, s.mass_bitmask,
       k.evol_state, k.mass AS seismic_mass, k.age_apokasc705_jt AS apokasc_age
FROM (
    SELECT i.sdss4_apogee_id, i.fe_h, i.c_fe, i.n_fe,
           a['median'] AS age, a['p16'] AS age_p16, a['p84'] AS age_p84, a['bitmask'] AS age_bitmask,
           m['median'] AS mass, m['p16'] AS mass_p16, m['p84'] AS mass_p84, m['bitmask'] AS mass_bitmask
    FROM (
        SELECT *,
               starflow_estimate('age', teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe) AS a,
               starflow_estimate('mass', teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe) AS m
        FROM (SELECT * FROM starflow_input WHERE NOT flag_bad LIMIT ${stars})
    ) i
) s
JOIN (SELECT "APOGEE_ID" AS apogee_id, "EVOL_STATE" AS evol_state, "MASS" AS mass,
             "AGE_APOKASC705_JT" AS age_apokasc705_jt FROM seismic) k
  ON s.sdss4_apogee_id = k.apogee_id
WHERE (s.age_bitmask | s.mass_bitmask) & ${reject} = 0
ORDER BY s.sdss4_apogee_id
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default=str(REPO / "examples/data/astraAllStarASPCAP_apokasc3.parquet"))
    parser.add_argument("--out", type=Path, default=Path("out/python_pipeline"))
    parser.add_argument("--stars", type=int, default=None, help="the first N good stars only")
    args = parser.parse_args()

    # The DR19 input view (labels' release dr19), then the query: the same SQL the CLI runs with --define.
    sql = (REPO / "queries/dr19_inputs.sql").read_text() + ";\n" + QUERY
    seismic = REPO / "data/reference/derived/apokasc3_apoor_gold_joined.csv"
    defines = {"input": args.input, "reject": str(REJECT), "stars": str(args.stars) if args.stars else "ALL"}
    good = starflow.sql(sql, tables={"seismic": str(seismic)}, defines=defines)
    if good.num_rows == 0:
        raise SystemExit("no good stars: nothing to plot")

    args.out.mkdir(parents=True, exist_ok=True)
    pq.write_table(good, args.out / "good_stars.parquet")

    frame = good.to_pandas()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), constrained_layout=True)
    points = ax.scatter(frame["fe_h"], frame["age"], c=frame["c_n"], s=6, cmap="viridis", vmin=-0.8, vmax=0.2)
    fig.colorbar(points, ax=ax, label="[C/N]")
    ax.set(xlabel="[Fe/H]", ylabel="StarFlow age (posterior median) [Gyr]", ylim=(0, 14))
    ax.set_title(f"{len(frame):,} good APOKASC-3 giants, StarFlow v2")
    fig.savefig(args.out / "age_feh_cn.png", dpi=120)

    ratio = pc.divide(good.column("mass"), good.column("seismic_mass"))
    print(
        f"{good.num_rows} good stars -> {args.out}/good_stars.parquet, {args.out}/age_feh_cn.png; "
        f"median StarFlow/seismic mass {pc.approximate_median(ratio).as_py():.3f}"
    )


if __name__ == "__main__":
    main()
