"""Run every speed benchmark, one after another, each writing its ``benchmarks/results/*.md``.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/run_all.py           # ~30 min on 2 CPU cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/run_all.py --quick   # smoke run of each (~5 min)
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/run_all.py --only latency memory

Serially, never in parallel: the scripts time wall clock, and two at once would slow each other.
Run it on a quiet machine; every results file records the load average before and after. ``--quick``
runs write under ``--out_dir`` (default: a temporary folder), so a smoke run never overwrites the
recorded results. The AlpacaEval quality benchmarks (``alpacaeval_cv.py``, ``alpacaeval_probe.py``)
are not speed figures and need ``../shared/data``: run them by hand.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchutil

HERE = Path(__file__).resolve().parent
# (name, script, extra arguments, results file)
BENCHMARKS = [
    ("throughput", "throughput.py", [], "throughput.md"),
    (
        "throughput_logging",
        "throughput.py",
        ["--encoders", "tiny-deberta", "--group_by_length", "false", "--log_every_step_arm", "--repeats", "7"],
        None,
    ),
    ("padding", "padding.py", [], "padding.md"),
    ("data_prep", "data_prep.py", [], "data_prep.md"),
    ("latency", "latency.py", [], "latency.md"),
    ("memory", "memory.py", [], "memory.md"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [name for name, *_ in BENCHMARKS]
    parser.add_argument("--quick", action="store_true", help="a smoke run of every benchmark")
    parser.add_argument("--only", nargs="+", choices=names, default=names, help="run only these")
    parser.add_argument("--out_dir", type=Path, default=None, help="default: benchmarks/results (--quick: a temp dir)")
    args = parser.parse_args()
    out_dir = args.out_dir or (Path(tempfile.mkdtemp(prefix="zooter-bench-")) if args.quick else benchutil.RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}

    timings = []
    for name, script, extra, results in BENCHMARKS:
        if name not in args.only:
            continue
        out = out_dir / (results or f"{name}.md")
        command = [sys.executable, str(HERE / script), *extra, "--out", str(out), *(["--quick"] if args.quick else [])]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        done = subprocess.run(command, cwd=benchutil.REPO, env=env)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"run_all: {script} exited with {done.returncode} after {seconds:.0f} s; later benchmarks not run")
        timings.append((name, seconds, out))

    print("\nbenchmark            time    results")
    for name, seconds, out in timings:
        print(f"{name:<20} {seconds / 60:5.1f} min  {out}")


if __name__ == "__main__":
    main()
