"""Side-by-side benchmark on the same stars: starflow (both methods), the paper's normflows/PyTorch stack, onnxruntime
from Python.

    python bench/run.py [--stars 100000] [--subset 1000] [--threads 2] [--models age,mass]
                        [--methods paper,v2,v2-dr17,v2-within] [--keep] [--json PATH]

1. A synthetic DR19 catalogue of --stars stars (bench/make_catalogue.py; a DR17 one too for `v2-dr17`).
2. starflow end to end on all of it (queries/dr19_inputs.sql + queries/ages_masses.sql, or bench/ages.sql with
   --models age), in its own process per method: wall time, CPU time, peak RSS (from wait4's rusage of that process).
   Methods: `paper` (models age_paper, mass_paper: 50 draws for every star), `v2` (models age, mass on the DR19
   catalogue; its view sets the dr19 label release, whose systematics draw most stars), `v2-dr17` (the same models on a
   DR17 allStar catalogue of as many stars, resampled from the bundled DR17 sample, through queries/dr17_inputs.sql:
   the training release, where a star is drawn only where its errors exceed the training labels' noise, else it is one
   flow pass), `v2-within` (that DR17 catalogue with every error multiplied by 0.01: every star within the training
   noise, one flow pass each; not real data, the ceiling of v2's speed-up).
3. The Python baselines (bench/baseline.py: normflows/PyTorch and onnxruntime on --threads threads with reference.py's
   800,000-row calls, onnxruntime on 1 thread with cache-sized 25,000-row calls) on the first --subset stars of the
   same catalogue, the paper's method, with the engine's own draws (tests/data/engine_draws.py, default seed), so every
   star compares with starflow's paper run.
4. Agreement of the three on the subset (parity tolerances of tests/udf_queries.rs); exit 1 if any star disagrees.
5. numpy float32 sgemm on 1 and --threads threads, the ceiling for flow evaluations if they were pure matrix work.
6. The cost of the C-N plane (CN_ATYPICAL, docs/METHOD.md sec. 9; --cn-stars, 0 skips; --cn-only: nothing else):
   starflow's v2 models on catalogues of --cn-stars stars with `starflow.cn_flag` on and off, DR19 (most stars drawn:
   12,500 flow rows per star and model, plus the plane's 4,010), DR17 (a fifth of the stars one row of 250) and DR17
   with errors x 0.01 (every star one row: the plane is most of the work).
Prints a table (with the v2 runs' speed against the paper run) and writes JSON (default
bench/results/<date>-<stars>.json).
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "data"))
sys.path.insert(0, os.path.join(ROOT, "models", "train"))
import engine_draws  # noqa: E402
import reference  # noqa: E402
from make_catalogue import write_catalogue  # noqa: E402
from provenance import portable  # noqa: E402

DRAWS = 50
GRID = {"age": 14.0 / 249.0, "mass": 3.0 / 249.0}          # grid steps (tolerance units)
POINTS = {"age": 250, "mass": 249}                         # grid points evaluated per flow row: the mass grid's M = 0 is skipped
EVALS = {m: DRAWS * POINTS[m] for m in POINTS}             # flow evaluations per star, paper's method
# starflow runs: name -> (model of each target, catalogue: (layout, error scale)); the layout's input view sets the
# label release of that name
METHODS = {"paper": ({"age": "age_paper", "mass": "mass_paper"}, ("dr19", 1.0)),
           "v2": ({"age": "age", "mass": "mass"}, ("dr19", 1.0)),
           "v2-dr17": ({"age": "age", "mass": "mass"}, ("dr17", 1.0)),
           "v2-within": ({"age": "age", "mass": "mass"}, ("dr17", 0.01))}
# One coupling block's MLP 3->16->16->6 is 3*16 + 16*16 + 16*6 = 400 multiply-adds; 6 blocks, 2 FLOP each. Biases,
# ReLU, exp and the affine update add ~10% more elementwise work, not counted (they are not sgemm-shaped anyway).
FLOP_PER_EVAL = 6 * 2 * (3 * 16 + 16 * 16 + 16 * 6)
SGEMM = """
import time, numpy as np
n = 2048
a = np.random.default_rng(0).random((n, n), dtype=np.float32); b = a.T.copy(); a @ b
best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(5))
print(2 * n**3 / best / 1e9)
"""


def busy_cpu_seconds():
    """CPU seconds the whole machine has spent busy since boot (/proc/stat): the shared machine's other load shows up
    as busy time that is not ours."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def measured(cmd, log_path):
    """Run cmd to completion: wall seconds, CPU seconds and peak RSS (MiB) of that process alone (wait4), and the CPU
    seconds other processes took meanwhile."""
    with open(log_path, "w") as log:
        t0, busy0 = time.perf_counter(), busy_cpu_seconds()
        # in the repository: starflow finds its models and ONNX Runtime there (udfs/src/locate.rs)
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, ru = os.wait4(p.pid, 0)
        wall, busy = time.perf_counter() - t0, busy_cpu_seconds() - busy0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[0]} failed ({os.waitstatus_to_exitcode(status)}):\n" + open(log_path).read()[-3000:])
    cpu = ru.ru_utime + ru.ru_stime
    return {"seconds": wall, "process_seconds": wall, "cpu_seconds": cpu, "others_cpu_seconds": max(busy - cpu, 0.0),
            "peak_rss_mib": ru.ru_maxrss / 1024}


def sgemm_gflops(threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", SGEMM], env=env, check=True, capture_output=True, text=True).stdout
    return float(out)


def view_inputs(catalogue, k):
    """The first k stars as queries/dr19_inputs.sql gives them to the UDFs: float32 arithmetic, then widened."""
    names = ["sdss_id", "teff", "e_teff", "logg", "e_logg", "fe_h", "e_fe_h", "c_h", "e_c_h", "n_h", "e_n_h"]
    t = next(pq.ParquetFile(catalogue).iter_batches(batch_size=k, columns=names))
    c = {name: t[name].to_numpy().astype(np.float32) for name in names[1:]}
    labels = [c["teff"], c["logg"], c["fe_h"], c["c_h"] - c["fe_h"], c["n_h"] - c["fe_h"]]
    errors = [c["e_teff"], c["e_logg"], c["e_fe_h"], np.sqrt(c["e_c_h"] * c["e_c_h"] + c["e_fe_h"] * c["e_fe_h"]),
              np.sqrt(c["e_n_h"] * c["e_n_h"] + c["e_fe_h"] * c["e_fe_h"])]
    return t["sdss_id"].to_numpy(), np.stack(labels, 1).astype(np.float64), np.stack(errors, 1).astype(np.float64)


def evaluated_inputs(layout, catalogue, n):
    """(labels, errors) of the stars the query evaluates (not flagged bad), as the layout's input view gives them."""
    if layout == "dr19":
        _, labels, errors = view_inputs(catalogue, n)
        good = ~pq.read_table(catalogue, columns=["flag_bad"])["flag_bad"].to_numpy(zero_copy_only=False)
        return labels[good], errors[good]
    # queries/dr17_inputs.sql: the float32 columns as they are (widened), ASPCAPFLAG bit 23 is STAR_BAD
    names = ["TEFF", "LOGG", "FE_H", "C_FE", "N_FE"]
    t = pq.read_table(catalogue, columns=names + [n + "_ERR" for n in names] + ["ASPCAPFLAG"])
    good = (t["ASPCAPFLAG"].to_numpy() & (1 << 23)) == 0
    col = lambda n: t[n].to_numpy().astype(np.float64)[good]  # noqa: E731
    return np.stack([col(n) for n in names], 1), np.stack([col(n + "_ERR") for n in names], 1)


def flow_rows(target, method, labels, errors):
    """Flow evaluations of one model over the stars under a method: draw plans' rows x grid points."""
    models, (layout, _) = METHODS[method]
    model = reference.Model.from_manifest_file(os.path.join(ROOT, "models", models[target], "manifest.json"))
    rows = sum(model.draw_plan(x, e, layout)[2] for x, e in zip(labels, errors) if not reference.bad_input(x, e))
    return rows * POINTS[target]


def agreement(a, b, step):
    """Star-by-star check of two implementations' summaries of one model: maximum within one grid step, interval
    bounds (value + e_p, value + e_n) within a quarter step, training density within 1e-3 relative."""
    fails, worst = [], {"value_steps": 0.0, "bound_steps": 0.0, "density_rel": 0.0}
    for i in range(len(a["value"])):
        va, vb = a["value"][i], b["value"][i]
        if (va is None) != (vb is None):
            fails.append((i, "estimate present in one only"))
        elif va is not None:
            dv = abs(va - vb) / step
            db = max(abs(va + a[k][i] - vb - b[k][i]) for k in ("e_p", "e_n")) / step
            worst["value_steps"], worst["bound_steps"] = max(worst["value_steps"], dv), max(worst["bound_steps"], db)
            if dv > 1 + 1e-9 or db > 0.25:
                fails.append((i, f"value {va} vs {vb}, bounds differ by {db:.3f} steps"))
        da, dd = a["training_density"][i], b["training_density"][i]
        if (da is None) != (dd is None):
            fails.append((i, "density present in one only"))
        elif da is not None and dd != 0:
            r = abs(da / dd - 1)
            worst["density_rel"] = max(worst["density_rel"], r)
            if r > 1e-3:
                fails.append((i, f"density {da} vs {dd}"))
    bitmask_diff = sum(x != y for x, y in zip(a["bitmask"], b["bitmask"]))
    return {"stars": len(a["value"]), "failures": len(fails), "first_failures": fails[:5], "worst": worst,
            "bitmask_differences": bitmask_diff}


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(int(mem) / 2**20, 1), "kernel": platform.release(),
            "python": platform.python_version(), "numpy": np.__version__}


def git_commit():
    def git(*args):
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True).stdout.strip()
    rev, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    return rev + ("-dirty" if dirty else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--stars", type=int, default=100_000, help="catalogue size, all run through starflow")
    ap.add_argument("--subset", type=int, default=1000, help="stars for the Python baselines and the agreement check")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="age,mass", choices=["age,mass", "age"])
    ap.add_argument("--methods", default="paper,v2,v2-dr17,v2-within",
                    help="starflow runs, from: " + ", ".join(METHODS) + " (paper is always run: the baselines compare to it)")
    ap.add_argument("--seed", type=int, default=1, help="catalogue seed")
    ap.add_argument("--starflow", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser(
        "~/.cache/starflow-target")), "debug", "starflow"))
    ap.add_argument("--json", help="result file (default bench/results/<date>-<stars>.json)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (catalogue, outputs, logs)")
    ap.add_argument("--cn-stars", type=int, default=2000, help="catalogue size for the C-N plane's cost (0: skip)")
    ap.add_argument("--cn-only", action="store_true", help="measure only the C-N plane's cost (6.), no baselines")
    a = ap.parse_args()
    a.starflow = os.path.abspath(a.starflow)  # the commands run in the repository (measured)
    models = a.models.split(",")
    methods = ["paper"] + [m for m in a.methods.split(",") if m != "paper"]
    for m in methods:
        if m not in METHODS:
            sys.exit(f"unknown method {m} (choose from {', '.join(METHODS)})")
    subset = min(a.subset, a.stars)
    if not os.access(a.starflow, os.X_OK):
        sys.exit(f"no starflow binary at {a.starflow} (build it, or pass --starflow)")
    tmp = tempfile.mkdtemp(prefix="starflow-bench-")
    version = subprocess.run([a.starflow, "--version"], capture_output=True, text=True).stdout.strip()
    res = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine(), "git": git_commit(),
           "starflow_version": version, "starflow_binary": portable(a.starflow),
           "starflow_binary_mtime": time.ctime(os.path.getmtime(a.starflow)), "stars": a.stars, "subset": subset,
           "threads": a.threads, "models": models, "methods": methods, "draws": DRAWS, "flop_per_eval": FLOP_PER_EVAL,
           "loadavg_start": os.getloadavg()}
    query = os.path.join(HERE, "ages.sql") if models == ["age"] else os.path.join(ROOT, "queries", "ages_masses.sql")
    if a.cn_only:
        try:
            res["cn_flag"] = cn_flag_cost(a, query, models, tmp)
        finally:
            shutil.rmtree(tmp)
        res["loadavg_end"] = os.getloadavg()
        report_cn(res["cn_flag"])
        path = a.json or os.path.join(HERE, "results", f"{datetime.date.today().isoformat()}-cn-{a.cn_stars}.json")
        with open(path, "w") as f:
            json.dump(res, f, indent=1)
        print("results:", path)
        return
    try:
        catalogues = {(layout, scale): os.path.join(tmp, f"catalogue-{layout}-x{scale}.parquet")
                      for layout, scale in {METHODS[m][1] for m in methods}}
        for (layout, scale), path in catalogues.items():
            write_catalogue(a.stars, path, a.seed, layout, scale)
        catalogue = catalogues[METHODS["paper"][1]]
        res["sgemm_gflops"] = {str(t): sgemm_gflops(t) for t in sorted({1, a.threads})}

        # starflow: the whole catalogue, one process per method, as a user runs it
        runs, res["starflow_commands"] = {}, {}
        inputs = {key: evaluated_inputs(key[0], path, a.stars) for key, path in catalogues.items()}
        for method in methods:
            targets, key = METHODS[method]
            out = os.path.join(tmp, f"starflow-{method}.parquet")
            view = os.path.join(ROOT, "queries", f"{key[0]}_inputs.sql")
            cmd = [a.starflow, "-q", "--threads", str(a.threads), "run", view, query, "--define",
                   f"input={catalogues[key]}"]
            cmd += [f"--define={t}_model={targets[t]}" for t in models] + ["-o", out]
            res["starflow_commands"][method] = portable(" ".join(cmd))
            print(f"starflow ({method}):", " ".join(cmd), flush=True)
            name = "starflow" if method == "paper" else f"starflow {method}"
            runs[name] = dict(measured(cmd, os.path.join(tmp, f"starflow-{method}.log")), stars=a.stars, method=method,
                              evals=sum(flow_rows(t, method, *inputs[key]) for t in models))
        out = os.path.join(tmp, "starflow-paper.parquet")
        if time.ctime(os.path.getmtime(a.starflow)) != res["starflow_binary_mtime"]:
            print("WARNING: the starflow binary was replaced while it ran: the recorded version may be wrong")

        # the baselines: same stars (the subset), same draws
        ids, labels, errors = view_inputs(catalogue, subset)
        t0 = time.perf_counter()
        draws = np.array([engine_draws.sample_labels(engine_draws.DEFAULT_SEED, x.tolist(), e.tolist(), DRAWS)
                          for x, e in zip(labels, errors)])
        res["python_draws_seconds"] = time.perf_counter() - t0  # pure-Python port, not part of any timing below
        inputs = os.path.join(tmp, "inputs.npz")
        np.savez(inputs, labels=labels, errors=errors, draws=draws)
        # reference.py's default calls of 64 stars (800,000 rows), and the tuned user's cache-sized 2-star calls (the
        # engine's chunk), on one core: ONNX Runtime runs ~2x faster per row when its intermediates stay in L2
        baselines = {"normflows/PyTorch": ("torch", a.threads, 64), "onnxruntime (Python)": ("ort", a.threads, 64),
                     "onnxruntime (Python), 1 thr, 2-star": ("ort", 1, 2)}
        summaries = {}
        for name, (kind, threads, chunk) in baselines.items():
            print(f"{name}: {subset} stars", flush=True)
            path = os.path.join(tmp, f"{kind}{threads}-{chunk}.json")
            paper_models = ",".join(METHODS["paper"][0][m] for m in models)
            proc = measured([sys.executable, os.path.join(HERE, "baseline.py"), kind, inputs, path, "--threads",
                             str(threads), "--models", paper_models, "--chunk-stars", str(chunk)], path + ".log")
            got = json.load(open(path))
            summaries[name] = {m: got["models"][METHODS["paper"][0][m]] for m in models}
            runs[name] = dict(proc, stars=subset, threads=threads, chunk_stars=chunk, versions=got["versions"],
                              raw_log_prob_evals_per_s=got["raw_evals_per_s"],
                              seconds=sum(v["seconds"] for v in got["models"].values()),
                              evals=subset * sum(EVALS[m] for m in models),
                              loop_cpu_seconds=sum(v["cpu_seconds"] for v in got["models"].values()),
                              seconds_per_model={m: v["seconds"] for m, v in got["models"].items()})

        # starflow's rows for the subset, by sdss_id
        t = pq.read_table(out, columns=["sdss_id"] + [c.format(m) for m in models for c in
                                                    ["{}", "e_p_{}", "e_n_{}", "{}_training_density", "{}_bitmask"]])
        row = {v: i for i, v in enumerate(t["sdss_id"].to_pylist())}
        t = t.take([row[i] for i in ids.tolist()])
        summaries["starflow"] = {m: {"value": t[m].to_pylist(), "e_p": t[f"e_p_{m}"].to_pylist(),
                                     "e_n": t[f"e_n_{m}"].to_pylist(),
                                     "training_density": t[f"{m}_training_density"].to_pylist(),
                                     "bitmask": t[f"{m}_bitmask"].to_pylist()} for m in models}
        pairs = [("starflow", name) for name in baselines] + [("normflows/PyTorch", "onnxruntime (Python)")]
        res["agreement"] = {f"{x} vs {y}": {m: agreement(summaries[x][m], summaries[y][m], GRID[m]) for m in models}
                            for x, y in pairs}

        for r in runs.values():
            r["star_models_per_s"] = r["stars"] * len(models) / r["seconds"]
            r["evals_per_s"] = r["evals"] / r["seconds"]
            r["gflops"] = r["evals_per_s"] * FLOP_PER_EVAL / 1e9
            # per CPU-second: what a core does, whatever else ran on the shared machine
            r["evals_per_cpu_s"] = r["evals"] / r.get("loop_cpu_seconds", r["cpu_seconds"])
            r["star_models_per_cpu_s"] = r["stars"] * len(models) / r.get("loop_cpu_seconds", r["cpu_seconds"])
            # flow rows per star-model against the paper's 50 draws: 1 when every star is drawn
            r["draw_fraction"] = r["evals"] / (r["stars"] * sum(EVALS[m] for m in models))
        for name, r in runs.items():
            r["starflow_speedup"] = runs["starflow"]["star_models_per_s"] / r["star_models_per_s"]
        res["runs"] = runs
        if a.cn_stars > 0:
            res["cn_flag"] = cn_flag_cost(a, query, models, tmp)
        res["loadavg_end"] = os.getloadavg()
        report(res)
    finally:
        if a.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp)
    path = a.json or os.path.join(HERE, "results", f"{datetime.date.today().isoformat()}-{a.stars}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print("results:", path)
    bad = sum(m["failures"] for pair in res["agreement"].values() for m in pair.values())
    if bad:
        sys.exit(f"DISAGREEMENT: {bad} star-model comparisons outside tolerance (see {path})")


# The C-N plane's cost (6.): (name, catalogue layout, error scale) of its catalogues.
CN_CATALOGUES = [("dr19", "dr19", 1.0), ("dr17", "dr17", 1.0), ("dr17-within", "dr17", 0.01)]


def cn_flag_cost(a, query, models, tmp):
    """starflow's v2 models on --cn-stars stars of a DR19 and a DR17 catalogue (each through its view, which sets its
    label release), and of the DR17 one with errors x 0.01 (every star one flow pass, as v2-within), with the C-N plane
    on and off: stars/s and CPU milliseconds per star-model, and the plane's share."""
    out = {"stars": a.cn_stars, "models": models}
    for release, layout, error_scale in CN_CATALOGUES:
        catalogue = os.path.join(tmp, f"cn-catalogue-{release}.parquet")
        write_catalogue(a.cn_stars, catalogue, a.seed, layout, error_scale)
        for flag in ("true", "false"):
            settings = os.path.join(tmp, f"cn_{release}_{flag}.sql")
            with open(settings, "w") as f:
                f.write(f"SET starflow.cn_flag = {flag};\n")
            view = os.path.join(ROOT, "queries", f"{layout}_inputs.sql")
            cmd = [a.starflow, "-q", "--threads", str(a.threads), "run", view, settings, query, "--define",
                   f"input={catalogue}", "-o", os.path.join(tmp, "cn.parquet")]
            print(f"C-N plane cost: {release} labels, cn_flag = {flag}", flush=True)
            r = measured(cmd, settings + ".log")
            r["stars_per_s"] = a.cn_stars / r["seconds"]
            r["cpu_ms_per_star_model"] = 1e3 * r["cpu_seconds"] / (a.cn_stars * len(models))
            out[f"{release}_{flag}"] = r
        on, off = out[f"{release}_true"], out[f"{release}_false"]
        out[f"{release}_plane_cpu_ms_per_star_model"] = on["cpu_ms_per_star_model"] - off["cpu_ms_per_star_model"]
        out[f"{release}_plane_share_of_cpu"] = 1 - off["cpu_seconds"] / on["cpu_seconds"]
    return out


def report_cn(cn):
    print(f"\nC-N plane (starflow.cn_flag), {cn['stars']} stars, models {'+'.join(cn['models'])}: stars/s, CPU ms per "
          "star-model (others: cores' worth of CPU other processes used meanwhile)")
    for release, _, _ in CN_CATALOGUES:
        runs = {flag: cn[f"{release}_{flag}"] for flag in ("true", "false")}
        text = ", ".join(f"cn_flag {flag} {r['stars_per_s']:.1f}/s {r['cpu_ms_per_star_model']:.2f} ms "
                         f"(others {r['others_cpu_seconds'] / r['process_seconds']:.2f})" for flag, r in runs.items())
        print(f"  {release} labels: {text}: the plane costs {cn[f'{release}_plane_cpu_ms_per_star_model']:.2f} CPU ms "
              f"per star-model, {100 * cn[f'{release}_plane_share_of_cpu']:.0f}% of the CPU time")


def report(res):
    m, thr = res["machine"], res["threads"]
    print(f"\n{m['cpu']}, {m['nproc']} cores; starflow {res['starflow_version']} @ {res['git']}; "
          f"models {'+'.join(res['models'])}, {res['draws']} draws; load average at start "
          f"{res['loadavg_start'][0]:.2f}")
    ceiling = res["sgemm_gflops"][str(thr)]
    print("sgemm 2048^2 float32: " + ", ".join(f"{g:.1f} GFLOP/s ({t} thr)" for t, g in res["sgemm_gflops"].items())
          + f"; at {res['flop_per_eval']} FLOP/eval the {thr}-thread ceiling is "
          f"{ceiling * 1e9 / res['flop_per_eval'] / 1e6:.1f} M evals/s")
    cols = ["implementation", "stars", "thr", "wall s", "star-models/s", "M evals/s", "% sgemm", "M evals/CPU-s",
            "CPU/wall", "others", "peak RSS MiB", "starflow x"]
    rows = [[name, r["stars"], r.get("threads", thr), f"{r['seconds']:.1f}", f"{r['star_models_per_s']:.1f}",
             f"{r['evals_per_s'] / 1e6:.3f}", f"{100 * r['gflops'] / ceiling:.1f}", f"{r['evals_per_cpu_s'] / 1e6:.2f}",
             f"{r['cpu_seconds'] / r['process_seconds']:.2f}", f"{r['others_cpu_seconds'] / r['process_seconds']:.2f}",
             f"{r['peak_rss_mib']:.0f}", f"{r['starflow_speedup']:.2f}"] for name, r in res["runs"].items()]
    print()
    for row in [cols] + rows:
        print(f"{row[0]:36}" + "".join(f"{v:>{len(c) + 2}}" for v, c in zip(row[1:], cols[1:])))
    print("log_prob alone, same rows per call: " + ", ".join(
        f"{name} {r['raw_log_prob_evals_per_s'] / 1e6:.2f} M evals/s" for name, r in res["runs"].items()
        if "raw_log_prob_evals_per_s" in r))
    print("(baselines: wall s and CPU-s = their timed posterior loops; CPU/wall, peak RSS: whole processes, imports\n"
          " included; others = cores' worth of CPU other processes used meanwhile: > 0.1 means the wall-clock numbers\n"
          " are contaminated, M evals/CPU-s much less so)")
    if "cn_flag" in res:
        report_cn(res["cn_flag"])
    paper = res["runs"]["starflow"]
    for name, r in res["runs"].items():
        if r.get("method", "paper") != "paper":
            print(f"{name}: {1 / r['starflow_speedup']:.2f}x the paper's stars/s, "
                  f"{r['star_models_per_cpu_s'] / paper['star_models_per_cpu_s']:.2f}x per CPU-second "
                  f"({r['draw_fraction']:.3f} of its flow rows)")
    print("\nagreement: max |d value| (grid steps), max |d bound| (steps), max density rel., failures, bitmask diffs")
    for pair, per_model in res["agreement"].items():
        for model, g in per_model.items():
            w = g["worst"]
            print(f"  {pair:52} {model:4} {w['value_steps']:.3f} {w['bound_steps']:.4f} {w['density_rel']:.1e} "
                  f"{g['failures']}/{g['stars']} {g['bitmask_differences']}")


if __name__ == "__main__":
    main()
