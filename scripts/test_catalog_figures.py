"""End-to-end test of scripts/catalog_figures.py on a catalogue made by the starflow binary.

    python scripts/test_catalog_figures.py        (exit status 0 = pass)

Builds a 300-row slice of the bundled catalogue (one row with a NaN Teff, so the VAC has a star without an estimate),
runs `starflow catalog` on it, runs the figure script, and checks every PNG and validation.json. Also checks that the
figure script refuses a catalogue that is not row-matched to its input. The binary: $STARFLOW_BIN, else
$CARGO_TARGET_DIR/debug/starflow, else ~/.cache/starflow-target/debug/starflow.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "models" / "train"))
from paths import HASSELQUIST, REFERENCE  # noqa: E402

BUNDLED = REPO / "examples" / "data" / "astraAllStarASPCAP_apokasc3.parquet"
FIGURES = ["kiel_density.png", "age_density_cuts.png", "cn_age.png", "seismic.png", "hasselquist2020.png"]
N_ROWS = 300
BAD_ROW = 7


def starflow_bin() -> Path:
    if os.environ.get("STARFLOW_BIN"):
        return Path(os.environ["STARFLOW_BIN"])
    target = os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache" / "starflow-target"
    return Path(target) / "debug" / "starflow"


def make_input(path: Path):
    t = pq.read_table(BUNDLED).slice(0, N_ROWS)
    teff = t["teff"].to_numpy().copy()
    teff[BAD_ROW] = np.nan
    t = t.set_column(t.schema.get_field_index("teff"), "teff", pa.array(teff, pa.float32()))
    pq.write_table(t, path)


def run(cmd) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=REPO, capture_output=True, text=True)


def check_png(path: Path, errors: list):
    if not path.exists():
        errors.append(f"{path.name}: missing")
        return
    size = path.stat().st_size
    if size <= 10_000:
        errors.append(f"{path.name}: only {size} bytes")
    try:
        img = mpimg.imread(path)
    except Exception as e:  # a truncated or non-PNG file
        errors.append(f"{path.name}: not a readable PNG ({e})")
        return
    if not img.std() > 0:
        errors.append(f"{path.name}: blank image")


def finite_numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from finite_numbers(v)
    elif isinstance(obj, (int, float)):
        yield obj


def main() -> int:
    binary = starflow_bin()
    if not binary.exists():
        print(f"FAIL: starflow binary not found at {binary} (set STARFLOW_BIN)")
        return 1
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inp, out = tmp / "input.parquet", tmp / "vac"
        make_input(inp)
        r = run([binary, "-q", "catalog", inp, out])
        if r.returncode != 0:
            print(f"FAIL: starflow catalog exited {r.returncode}: {r.stderr.strip()}")
            return 1
        summary = pq.read_table(out / "StarFlow_summary.parquet")
        if summary.num_rows != N_ROWS or summary["age"][BAD_ROW].is_valid:
            errors.append(f"summary: {summary.num_rows} rows, age of the NaN-Teff row {summary['age'][BAD_ROW]}")

        r = run([sys.executable, REPO / "scripts" / "catalog_figures.py", out, "--input", inp])
        print(r.stdout, end="")
        if r.returncode != 0:
            print(f"FAIL: catalog_figures.py exited {r.returncode}: {r.stderr.strip()}")
            return 1
        figures = out / "figures"
        for name in FIGURES:
            check_png(figures / name, errors)
        if len(r.stdout.splitlines()) != len(FIGURES) + 1:
            errors.append(f"expected one line per file written, got:\n{r.stdout}")

        v = json.loads((figures / "validation.json").read_text())
        bad = [x for x in finite_numbers(v) if not math.isfinite(x)]
        if bad:
            errors.append(f"validation.json has non-finite numbers: {bad}")
        ids = pq.read_table(inp, columns=["sdss4_apogee_id"])["sdss4_apogee_id"].drop_null().to_pylist()
        expected = len(set(ids) & set(pd.read_csv(REFERENCE / HASSELQUIST, usecols=["ID"])["ID"]))
        h = v["hasselquist2020"]
        if h["n_in_common"] != expected or not 0 < h["n_compared"] <= expected:
            errors.append(f"Hasselquist stars in common: {h['n_in_common']} (compared {h['n_compared']}), "
                          f"expected {expected}")

        # The same catalogue against a reordered input must be refused, not plotted.
        shuffled = tmp / "reversed.parquet"
        t = pq.read_table(inp)
        pq.write_table(t.take(list(reversed(range(t.num_rows)))), shuffled)
        r = run([sys.executable, REPO / "scripts" / "catalog_figures.py", out, "--input", shuffled,
                 "--figures", tmp / "refused"])
        if r.returncode == 0 or "not row-matched" not in r.stderr:
            errors.append(f"a reordered input was not refused (exit {r.returncode}): {r.stderr.strip()}")

    for e in errors:
        print(f"FAIL: {e}")
    print("FAIL" if errors else "PASS: catalog figures")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
