"""The repository and the release bundle each stand alone (issue 12).

    python scripts/test_standalone.py [clone|bundle]      (both by default; exit status 0 = pass)

clone:  `git clone` of this repository's HEAD into an empty temporary folder (nothing beside it), then there: the
        reference-data checks (scripts/reference_data.py), the figure test (scripts/test_catalog_figures.py, whose
        figures include the seismic and Hasselquist comparisons), and no `../shared` or `/work/` path in any file.
        Committed state only: uncommitted changes are not in the clone.
bundle: scripts/package.sh packs the starflow binary, unpacked into an empty folder, run there with a clean environment
        (HOME an empty folder, PATH a folder holding only a symlink to the binary: no cargo, no python, no repository):
        `starflow models` must find the models and ONNX Runtime beside the (real) executable, and `starflow catalog` of
        the bundled stars must write the three files, row-matched to the input. The binary's shared libraries must all
        be the C runtime's.

The binary: $STARFLOW_BIN, else $CARGO_TARGET_DIR/debug/starflow (the one scripts/test.sh has just built; a release
binary is what `scripts/package.sh` without --binary builds, ~35 min cold, too slow for every CI run).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
ORT = REPO / ".ort" / "libonnxruntime.so"
INPUT = "examples/astraAllStarASPCAP_apokasc3.parquet"  # in the bundle
FILES = ["StarFlow_summary.parquet", "StarFlow_age_posterior.parquet", "StarFlow_mass_posterior.parquet"]
KEYS = ["sdss_id", "sdss4_apogee_id", "catalogid"]
GRID_POINTS = 250
# what a Rust binary links besides ONNX Runtime (loaded at run time): glibc and libgcc, present on any Linux
SYSTEM_LIBRARIES = {"linux-vdso.so.1", "libgcc_s.so.1", "libm.so.6", "libc.so.6", "ld-linux-x86-64.so.2",
                    "libpthread.so.0", "libdl.so.2", "librt.so.1"}


def starflow_bin() -> Path:
    if os.environ.get("STARFLOW_BIN"):
        return Path(os.environ["STARFLOW_BIN"])
    target = os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache" / "starflow-target"
    return Path(target) / "debug" / "starflow"


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


def test_clone(binary: Path, errors: list):
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "starflow"
        r = run(["git", "clone", "--quiet", REPO, clone])
        if r.returncode != 0:
            errors.append(f"git clone failed: {r.stderr.strip()}")
            return
        commit = run(["git", "-C", clone, "rev-parse", "--short", "HEAD"]).stdout.strip()
        # The clone is alone in its folder. It has no ONNX Runtime (.ort/ is fetched, not committed): use this
        # machine's; the binary finds the clone's models (its working directory is the clone).
        env = {**os.environ, "STARFLOW_BIN": str(binary), "ORT_DYLIB_PATH": str(ORT.resolve())}
        for command in (["scripts/reference_data.py", "check"], ["scripts/test_catalog_figures.py"]):
            r = run([sys.executable, *command], cwd=clone, env=env)
            print(r.stdout, end="")
            if r.returncode != 0:
                errors.append(f"clone {commit}: {' '.join(command)} failed: {r.stdout.strip()} {r.stderr.strip()}")
        r = run(["git", "-C", clone, "grep", "-nE", r'\.\./shared|"/work/', "--", ":!scripts/test_standalone.py"])
        if r.stdout:
            errors.append(f"clone {commit}: paths outside the repository:\n{r.stdout}")
        print(f"clone of {commit} in an empty folder: checked")


def test_bundle(binary: Path, errors: list):
    version = run([binary, "--version"]).stdout.split()[1]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        r = run([REPO / "scripts" / "package.sh", "--binary", binary, tmp / "dist"])
        if r.returncode != 0:
            errors.append(f"package.sh failed: {r.stderr.strip()}")
            return
        tarball = Path(r.stdout.strip())
        if tarball.name != f"starflow-{version}-x86_64-linux.tar.gz":
            errors.append(f"bundle named {tarball.name}")
        unpacked, home, path = tmp / "unpacked", tmp / "home", tmp / "bin"
        for d in (unpacked, home, path):
            d.mkdir()
        run(["tar", "-xzf", tarball, "-C", unpacked], check=True)
        (bundle,) = unpacked.iterdir()
        print(f"bundle {tarball.name}: {tarball.stat().st_size / 1e6:.1f} MB")

        linked = run(["ldd", bundle / "starflow"]).stdout.split("\n")
        names = {Path(line.split()[0]).name for line in linked if line.strip()}
        if names - SYSTEM_LIBRARIES or "not found" in "".join(linked):
            errors.append(f"the binary needs libraries beyond the C runtime: {sorted(names - SYSTEM_LIBRARIES)}")

        # "put it on PATH": a symlink, as a user would make; nothing else in the environment (no CARGO_*, STARFLOW_*,
        # ORT_DYLIB_PATH, LD_LIBRARY_PATH)
        starflow = path / "starflow"
        starflow.symlink_to(bundle / "starflow")
        clean = {"HOME": str(home), "PATH": str(path)}
        r = run([starflow, "models"], cwd=bundle, env=clean)
        beside = "(found by: beside the executable)"
        for line in (f"models directory: {bundle / 'models'} {beside}",
                     f"onnxruntime: {bundle / 'libonnxruntime.so'}"):
            if line not in r.stdout:
                errors.append(f"starflow models does not say '{line}': {r.stdout}{r.stderr}")
        # every model the repository ships (both methods) is in the bundle and opens
        shipped = [d for d in (REPO / "models").iterdir() if (d / "manifest.json").is_file()]
        if r.stdout.count(beside) != 2 or r.stdout.count("session:   ok on cpu") != len(shipped):
            errors.append(f"starflow models in the bundle: {r.stdout}{r.stderr}")

        start = time.time()
        r = run([starflow, "-q", "catalog", INPUT, "out"], cwd=bundle, env=clean)
        if r.returncode != 0:
            errors.append(f"starflow catalog in the bundle exited {r.returncode}: {r.stderr.strip()}")
            return
        print(f"bundle: catalogue of the bundled stars in {time.time() - start:.0f} s")
        check_catalogue(bundle / INPUT, bundle / "out", version, errors)


def check_catalogue(input_path: Path, out: Path, version: str, errors: list):
    stars = pq.read_table(input_path, columns=KEYS)
    written = sorted(p.name for p in out.iterdir())
    if written != sorted(FILES):
        errors.append(f"the catalogue wrote {written}")
        return
    for name in FILES:
        t = pq.read_table(out / name)
        if not all(t[k].cast(stars[k].type).equals(stars[k]) for k in KEYS):
            errors.append(f"{name}: not row-matched to the input ({t.num_rows} rows, {stars.num_rows} stars)")
        if name != FILES[0] and t.num_columns != len(KEYS) + GRID_POINTS:
            errors.append(f"{name}: {t.num_columns} columns")
    summary = pq.read_table(out / FILES[0])
    if summary.schema.metadata[b"starflow_version"].decode() != version:
        errors.append(f"summary written by starflow {summary.schema.metadata[b'starflow_version']}, not {version}")
    # the bundled stars all have good labels: every one gets an age and a mass inside the grids
    for column, top in (("age", 14.0), ("mass", 3.0)):
        v = summary[column].to_numpy(zero_copy_only=False)
        if summary[column].null_count or not ((v >= 0) & (v <= top)).all():
            errors.append(f"summary {column}: {summary[column].null_count} null, range {v.min()}..{v.max()}")


def main() -> int:
    which = sys.argv[1:] or ["clone", "bundle"]
    binary = starflow_bin()
    if not binary.exists():
        print(f"FAIL: starflow binary not found at {binary} (set STARFLOW_BIN)")
        return 1
    errors: list[str] = []
    for name in which:
        {"clone": test_clone, "bundle": test_bundle}[name](binary, errors)
    for e in errors:
        print(f"FAIL: {e}")
    print("FAIL" if errors else f"PASS: standalone ({', '.join(which)})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
