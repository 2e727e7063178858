"""Shared fixtures: the repository, the starflow CLI built beside the package (the reference for "same numbers"), and
small real inputs cut from the bundled catalogue."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = REPO / "examples/data/astraAllStarASPCAP_apokasc3.parquet"
QUERIES = REPO / "queries"


def cli_path() -> Path:
    """The CLI of this checkout's build: $STARFLOW_BIN, else $CARGO_TARGET_DIR/debug/starflow (scripts/test.sh builds
    it with `cargo test --workspace` before the Python tests)."""
    if os.environ.get("STARFLOW_BIN"):
        return Path(os.environ["STARFLOW_BIN"])
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache/starflow-target")
    return Path(target) / "debug/starflow"


@pytest.fixture(scope="session")
def cli():
    """Run the CLI in the repository (its models/ and .ort/, the rules of udfs/src/locate.rs); returns stdout."""
    binary = cli_path()
    if not binary.is_file():
        pytest.fail(f"the starflow CLI is not built at {binary}: run `cargo test --workspace --no-run` or set STARFLOW_BIN")

    def run(*args: str) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("STARFLOW_MODELS", "ORT_DYLIB_PATH")}
        done = subprocess.run([str(binary), "--quiet", *args], cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run


@pytest.fixture(scope="session")
def cli_stderr():
    """Run the CLI expecting it to fail; returns its one line of stderr."""

    def run(*args: str) -> str:
        done = subprocess.run([str(cli_path()), "--quiet", *args], cwd=REPO, capture_output=True, text=True)
        assert done.returncode != 0
        return done.stderr.strip()

    return run


@pytest.fixture(scope="session")
def small_input(tmp_path_factory) -> Path:
    """80 real stars of the bundled catalogue (every 80th row, so RGB and RC, with a few flag_bad ones)."""
    table = pq.read_table(CATALOGUE)
    rows = table.take(np.arange(0, table.num_rows, 80)[:80])
    path = tmp_path_factory.mktemp("input") / "stars.parquet"
    pq.write_table(rows, path)
    return path


def assert_bitwise(got: pa.Table, want: pa.Table) -> None:
    """Same columns, same rows, and every value the same to the bit (NaN and nulls included); column types may differ
    in representation only (e.g. string views), so values are compared after a cast to the reference's type."""
    assert got.column_names == want.column_names
    assert got.num_rows == want.num_rows
    for name in want.column_names:
        g, w = got.column(name).combine_chunks(), want.column(name).combine_chunks()
        if g.type != w.type:
            g = g.cast(w.type)
        if pa.types.is_floating(w.type):
            assert g.is_null().equals(w.is_null()), name
            bits = lambda a: a.fill_null(0).to_numpy(zero_copy_only=False).view(np.uint64)  # noqa: E731
            np.testing.assert_array_equal(bits(g), bits(w), err_msg=name)
        else:
            assert g.equals(w), name
