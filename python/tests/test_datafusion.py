"""starflow.register: the StarFlow functions inside a datafusion-python 55 SessionContext, through the FFI capsule."""

from __future__ import annotations

import datafusion
import pyarrow.parquet as pq

import starflow
from conftest import assert_bitwise

# The DR19 inputs without the view's `SET starflow.label_release` (datafusion-python does not know starflow.*): both
# sides use the model's own release.
VIEW = """CREATE VIEW inputs AS SELECT sdss4_apogee_id, teff, e_teff, logg, e_logg, fe_h, e_fe_h,
    c_h - fe_h AS c_fe, sqrt(e_c_h * e_c_h + e_fe_h * e_fe_h) AS e_c_fe,
    n_h - fe_h AS n_fe, sqrt(e_n_h * e_n_h + e_fe_h * e_fe_h) AS e_n_fe, flag_bad FROM stars"""
ARGS = "teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_fe, e_c_fe, n_fe, e_n_fe"
QUERY = f"""SELECT sdss4_apogee_id, a['value'] AS age, a['p16'] AS age_p16, a['p84'] AS age_p84,
    a['training_density'] AS density, a['bitmask'] AS age_bitmask, m['mass_median'] AS mass, m['bitmask'] AS mass_bitmask,
    starflow_flag_names(a['bitmask']) AS flags
FROM (SELECT sdss4_apogee_id, starflow_estimate('age', {ARGS}) AS a, starflow_mass({ARGS}) AS m
      FROM inputs WHERE NOT flag_bad)
ORDER BY sdss4_apogee_id"""


def test_registered_functions_give_the_clis_numbers(cli, small_input, tmp_path):
    ctx = datafusion.SessionContext()
    names = starflow.register(ctx)
    assert {"starflow_age", "starflow_mass", "starflow_estimate", "starflow_flag_names"} <= set(names)
    ctx.register_parquet("stars", str(small_input))
    ctx.sql(VIEW).collect()
    got = ctx.sql(QUERY).to_arrow_table()

    out = tmp_path / "cli.parquet"
    cli("--table", f"stars={small_input}", "sql", f"{VIEW}; {QUERY}", "-o", str(out))
    want = pq.read_table(out)
    assert got.num_rows == want.num_rows > 0
    assert_bitwise(got, want)


def test_functions_mix_with_dataframes(small_input):
    ctx = datafusion.SessionContext()
    starflow.register(ctx)
    ctx.register_parquet("stars", str(small_input))
    ctx.sql(VIEW).collect()
    frame = ctx.sql(f"SELECT sdss4_apogee_id, starflow_age({ARGS})['age'] AS age FROM inputs WHERE NOT flag_bad")
    young = frame.filter(datafusion.col("age") < datafusion.lit(5.0)).to_arrow_table()
    everyone = frame.to_arrow_table()
    assert 0 < young.num_rows < everyone.num_rows
    assert all(age < 5.0 for age in young.column("age").to_pylist())
