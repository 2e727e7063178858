"""FITS read speed, side by side on the same file: starflow, astropy, fitsio (Python), and (with --libraries) the Rust
FITS libraries starflow could have used (bench/fits-libraries: fitsrs, fitsio/cfitsio).

    python bench/fits_read.py [--rows 1000000] [--repeat 3] [--threads 2] [--libraries] [--json PATH]

1. A catalogue-like binary table of --rows rows x 50 columns (24 E, 16 D, 4 J, 2 K, 2 I, 1 L, one 18A id), written with
   fitsio (kept between runs in ~/.cache/starflow-bench/; remove it to regenerate).
2. Each reader decodes every column of every row into memory and takes the maximum of each numeric column (so all
   values are touched; the maxima must agree): starflow `SELECT max(c00), ..., count(id) FROM 'FILE'` (one process, end
   to end: start-up, planning, reading, decoding), astropy `Table.read` (then numpy max per column), fitsio `read`.
   Each runs --repeat times in its own process after one warm-up run (the file is in the page cache: this measures
   decoding, not the disk); the best wall time is reported, with CPU time and peak RSS of that process. With
   --libraries, the Rust libraries too (bench/fits-libraries, built in release mode: every column decoded, every number
   summed; the sums must agree), each in its own process, measured the same way.
Prints a table and writes JSON (default bench/results/<date>-fits-read.json).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from run import busy_cpu_seconds, git_commit, machine  # noqa: E402

COLUMNS = [("E", 24), ("D", 16), ("J", 4), ("K", 2), ("I", 2), ("L", 1)]
NUMPY = {"E": ">f4", "D": ">f8", "J": ">i4", "K": ">i8", "I": ">i2", "L": "?"}

PY_ASTROPY = """
import sys, numpy as np
from astropy.table import Table
t = Table.read(sys.argv[1], hdu=1, mask_invalid=False)
print(repr([float(np.max(t[c])) for c in t.colnames if c.startswith('c') and t[c].dtype.kind in 'fi']))
"""
PY_FITSIO = """
import sys, numpy as np, fitsio
d = fitsio.read(sys.argv[1], ext=1)
print(repr([float(np.max(d[c])) for c in d.dtype.names if c.startswith('c') and d[c].dtype.kind in 'fi']))
"""


def names():
    out, i = [], 0
    for code, n in COLUMNS:
        for _ in range(n):
            out.append((f"c{i:02d}", code))
            i += 1
    return out


def make_file(path, rows):
    import fitsio

    dtype = [(name, NUMPY[code]) for name, code in names()] + [("id", "S18")]
    rng = np.random.default_rng(15)
    with fitsio.FITS(path, "rw", clobber=True) as f:
        for start in range(0, rows, 250_000):
            n = min(250_000, rows - start)
            data = np.zeros(n, dtype=dtype)
            for name, code in names():
                if code in "ED":
                    data[name] = rng.normal(0, 100, n)
                elif code == "L":
                    data[name] = rng.random(n) < 0.5
                else:
                    data[name] = rng.integers(-30000, 30000, n)
            data["id"] = [f"2M{start + i:016d}" for i in range(n)]
            if start == 0:
                f.write(data)
            else:
                f[-1].append(data)


def measured(cmd):
    t0, busy0 = datetime.datetime.now(), busy_cpu_seconds()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, ru = os.wait4(p.pid, 0)
    out, err = p.stdout.read(), p.stderr.read()
    wall = (datetime.datetime.now() - t0).total_seconds()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[0]} failed:\n{err[-3000:]}")
    cpu = ru.ru_utime + ru.ru_stime
    return {"seconds": wall, "cpu_seconds": cpu, "others_cpu_seconds": max(busy_cpu_seconds() - busy0 - cpu, 0.0),
            "peak_rss_mib": ru.ru_maxrss / 1024, "stdout": out}


def best(cmd, repeat):
    measured(cmd)  # warm-up: page cache, Python imports
    runs = [measured(cmd) for _ in range(repeat)]
    return min(runs, key=lambda r: r["seconds"])


def maxima_of_starflow(csv):
    values = csv.strip().splitlines()[1].split(",")
    return [float(v) for v in values[:-1]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--starflow", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/starflow-target")), "debug", "starflow"))
    ap.add_argument("--libraries", action="store_true", help="also time fitsrs and fitsio/cfitsio from Rust (bench/fits-libraries)")
    ap.add_argument("--json")
    args = ap.parse_args()

    cache = os.path.expanduser("~/.cache/starflow-bench")
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, f"catalogue-{args.rows}.fits")
    if not os.path.exists(path):
        make_file(path, args.rows)
    size_mb = os.path.getsize(path) / 1e6
    numeric = [name for name, code in names() if code != "L"]

    sql = "SELECT " + ", ".join(f"max({c})" for c in numeric) + f", count(id) FROM '{path}'"
    results = {}
    for threads in sorted({1, args.threads}):
        cmd = [args.starflow, "-q", "--threads", str(threads), "--format-out", "csv", "sql", sql]
        results[f"starflow ({threads} thread{'s' if threads > 1 else ''})"] = best(cmd, args.repeat)
    results["astropy Table.read"] = best([sys.executable, "-c", PY_ASTROPY, path], args.repeat)
    results["fitsio read"] = best([sys.executable, "-c", PY_FITSIO, path], args.repeat)

    # Same maxima from every reader.
    reference = eval(results["fitsio read"]["stdout"])
    for name, r in list(results.items()):
        got = maxima_of_starflow(r["stdout"]) if name.startswith("starflow") else eval(r["stdout"])
        if not np.allclose(got, reference, rtol=1e-6, atol=0):  # starflow prints float32 maxima in shortest form
            sys.exit(f"{name} disagrees with fitsio: {got[:5]} vs {reference[:5]}")

    if args.libraries:
        # Each library in its own process, measured like the readers above; the checksums (sums of every number)
        # must agree.
        manifest = os.path.join(HERE, "fits-libraries", "Cargo.toml")
        target = os.path.join(cache, "fits-libraries-target")
        subprocess.run(["cargo", "build", "--release", "--manifest-path", manifest, "--target-dir", target], check=True)
        binary = os.path.join(target, "release", "fits-libraries")
        for library in ["fitsrs", "fitsio"]:
            results[f"Rust {library} 0.{'4' if library == 'fitsrs' else '21'}"] = best([binary, path, library], args.repeat)
        sums = {name: list(json.loads(r["stdout"]).values())[0]["checksum"] for name, r in results.items() if name.startswith("Rust")}
        if not np.allclose(list(sums.values()), list(sums.values())[0], rtol=1e-9, atol=0):
            sys.exit(f"the Rust libraries disagree: {sums}")

    base = results["starflow (1 thread)"]["seconds"]
    print(f"{args.rows:,} rows x 50 columns, {size_mb:.0f} MB, best of {args.repeat} (after a warm-up run)")
    print(f"{'reader':<26}{'wall s':>8}{'CPU s':>8}{'MB/s':>8}{'RSS MiB':>9}{'others':>8}  vs starflow 1 thread")
    for name, r in results.items():
        print(f"{name:<26}{r['seconds']:>8.2f}{r['cpu_seconds']:>8.2f}{size_mb / r['seconds']:>8.0f}"
              f"{r['peak_rss_mib']:>9.0f}{r['others_cpu_seconds']:>8.2f}  {r['seconds'] / base:.2f}x the time")

    out = args.json or os.path.join(HERE, "results", f"{datetime.date.today()}-fits-read.json")
    with open(out, "w") as f:
        json.dump({"rows": args.rows, "columns": 50, "file_mb": size_mb, "repeat": args.repeat, "git": git_commit(),
                   "machine": machine(), "results": {k: {kk: vv for kk, vv in v.items() if kk != "stdout"} for k, v in results.items()}},
                  f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
