"""starflow.catalog: the CLI's three files, bit for bit; Ctrl-C leaves the directory as it was."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

import starflow
from conftest import CATALOGUE, assert_bitwise

FILES = ["StarFlow_age_posterior.parquet", "StarFlow_mass_posterior.parquet", "StarFlow_summary.parquet"]


def test_the_catalogue_equals_the_clis(cli, small_input, tmp_path):
    written = starflow.catalog(str(small_input), str(tmp_path / "py"))
    assert written["rows"] == 80 and sorted(Path(f).name for f in written["files"]) == FILES
    cli("catalog", str(small_input), str(tmp_path / "cli"))
    for name in FILES:
        got, want = pq.read_table(tmp_path / "py" / name), pq.read_table(tmp_path / "cli" / name)
        assert_bitwise(got, want)
        # the provenance too, but for the input path
        assert got.schema.metadata[b"models"] == want.schema.metadata[b"models"]


def test_ctrl_c_stops_a_catalogue_and_keeps_the_previous_one(small_input, tmp_path):
    out = tmp_path / "vac"
    starflow.catalog(str(small_input), str(out))
    before = {name: (out / name).read_bytes() for name in FILES}
    script = "import starflow, sys; starflow.catalog(sys.argv[1], sys.argv[2], threads=1)"
    child = subprocess.Popen([sys.executable, "-c", script, str(CATALOGUE), str(out)], stderr=subprocess.PIPE, text=True)
    # Interrupt while the new files are being written: once the staging area exists.
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".staging") for p in out.iterdir()):
        assert child.poll() is None, child.stderr.read()
        assert time.monotonic() < deadline, "no staging area appeared"
        time.sleep(0.05)
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    # Python ends on an uncaught KeyboardInterrupt by SIGINT, as the shell expects
    assert child.returncode == -signal.SIGINT and stderr.rstrip().endswith("KeyboardInterrupt"), stderr
    assert sorted(p.name for p in out.iterdir()) == FILES, "staged files were left behind"
    assert {name: (out / name).read_bytes() for name in FILES} == before
