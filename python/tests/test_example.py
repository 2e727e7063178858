"""examples/python_pipeline.py runs as documented (on the first 300 good stars, to keep CI quick)."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.compute as pc
import pyarrow.parquet as pq

from conftest import REPO


def test_the_pipeline_example_writes_its_table_and_figure(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "examples/python_pipeline.py"), "--out", str(tmp_path), "--stars", "300"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    good = pq.read_table(tmp_path / "good_stars.parquet")
    assert 150 < good.num_rows <= 300
    # good stars only, every one matched in the seismic table
    assert pc.max(pc.bit_wise_and(good.column("age_bitmask"), 13)).as_py() == 0
    assert good.column("seismic_mass").null_count == 0
    assert 0.8 < pc.approximate_median(pc.divide(good.column("mass"), good.column("seismic_mass"))).as_py() < 1.2
    assert (tmp_path / "age_feh_cn.png").stat().st_size > 10_000
    assert "good stars ->" in done.stdout
