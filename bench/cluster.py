"""Throughput of the catalogue on a local Ballista cluster against the single process, and the cluster's overhead per job.

    ~/.cache/starflow-venv/bin/python bench/cluster.py [--files 8] [--out bench/results/DATE-cluster.json]

The bundled stars (6,603) split into --files Parquet files in path order; `starflow catalog` of that directory
(method v2, DR19 inputs: every star drawn, the C-N planes on) run
  - in one process with 2 threads,
  - on a cluster of the scheduler and 1 executor with 2 threads,
  - on a cluster of the scheduler and 2 executors with 1 thread each,
each process's CPU seconds read from /proc (utime + stime) before and after. The overhead of a job: 20 `SELECT count(*)`
of a 100-row file in one client, on the cluster and in one process; the difference per statement is what planning on
the scheduler, handing out the task and fetching the result cost. All processes on 127.0.0.1; the binary is the debug
build of $CARGO_TARGET_DIR (the tests' build).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from provenance import portable

ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/starflow-target")) / "debug/starflow"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port):
    deadline = time.time() + 60
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing on port {port}")


def start_cluster(executors, threads):
    port = free_port()
    procs = [subprocess.Popen([BINARY, "-q", "scheduler", "--bind", f"127.0.0.1:{port}"], stderr=subprocess.DEVNULL)]
    wait_port(port)
    for _ in range(executors):
        bind = f"127.0.0.1:{free_port()}"
        procs.append(subprocess.Popen([BINARY, "-q", "--threads", str(threads), "executor", "--scheduler", f"127.0.0.1:{port}",
                                       "--bind", bind], stderr=subprocess.DEVNULL))
    time.sleep(2)  # the executors register
    return f"df://127.0.0.1:{port}", procs


def timed(args, watched=()):
    before = [cpu_seconds(p.pid) for p in watched]
    start = time.time()
    run = subprocess.run([BINARY, *args], capture_output=True, text=True)
    wall = time.time() - start
    if run.returncode != 0:
        sys.exit(f"{args}: {run.stderr}")
    return wall, [cpu_seconds(p.pid) - b for p, b in zip(watched, before)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--out", default=str(ROOT / "bench/results" / (time.strftime("%Y-%m-%d") + "-cluster.json")))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    table = pq.read_table(ROOT / "examples/data/astraAllStarASPCAP_apokasc3.parquet")
    step = -(-table.num_rows // args.files)
    data = work / "dr19"
    data.mkdir()
    for i in range(args.files):
        pq.write_table(table.slice(i * step, step), data / f"part-{i:03d}.parquet")
    pq.write_table(table.slice(0, 100), work / "small.parquet")
    stars = table.num_rows
    results = {"stars": stars, "files": args.files, "binary": portable(str(BINARY)), "runs": []}

    children_before = os.times()
    wall, _ = timed(["-q", "--threads", "2", "catalog", str(data), str(work / "single")])
    children = os.times()
    client_cpu = (children.children_user - children_before.children_user) + (children.children_system - children_before.children_system)
    results["runs"].append({"run": "single process, 2 threads", "wall_s": wall, "stars_per_s": stars / wall,
                            "cpu_s": {"process": client_cpu}})
    print(results["runs"][-1], flush=True)

    for executors, threads in [(1, 2), (2, 1)]:
        url, procs = start_cluster(executors, threads)
        try:
            before = os.times()
            wall, cpus = timed(["-q", "--cluster", url, "catalog", str(data), str(work / f"cluster{executors}")], procs)
            after = os.times()
            client = (after.children_user - before.children_user) + (after.children_system - before.children_system)
            run = {"run": f"cluster, {executors} executor(s) x {threads} thread(s)", "wall_s": wall, "stars_per_s": stars / wall,
                   "cpu_s": {"client": client, "scheduler": cpus[0], **{f"executor{i}": c for i, c in enumerate(cpus[1:])}}}
            for i, c in enumerate(cpus[1:]):
                run["cpu_s"][f"executor{i}_share_of_wall"] = c / wall
            results["runs"].append(run)
            print(run, flush=True)
            if executors == 2:
                sql = ";".join([f"SELECT count(*) FROM '{work / 'small.parquet'}'"] * 20)
                local, _ = timed(["-q", "--format-out", "csv", "sql", sql])
                remote, cpus = timed(["-q", "--cluster", url, "--format-out", "csv", "sql", sql], procs)
                results["job_overhead"] = {"statements": 20, "local_s": local, "cluster_s": remote,
                                           "per_job_s": (remote - local) / 20, "scheduler_cpu_s": cpus[0]}
                print(results["job_overhead"], flush=True)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    for name in ["StarFlow_summary.parquet", "StarFlow_age_posterior.parquet", "StarFlow_mass_posterior.parquet"]:
        single = pq.read_table(work / "single" / name)
        for executors in (1, 2):
            assert pq.read_table(work / f"cluster{executors}" / name).equals(single), f"{name} differs"
    results["identical_outputs"] = True
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
