"""Shared helpers of the speed benchmarks: machine description, repeated timings, result files.

Not a benchmark itself. Every speed benchmark writes ``benchmarks/results/<name>.md`` with what was
measured, on what machine (CPU model, cores, torch version and threads, load average), the settings,
and the median of repeated runs with their min and max.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
LOAD_CAVEAT = (
    "Timings are wall-clock on a machine that may be shared: the load average before and after the "
    "run is given; with other work running, medians drift up and min/max spread out. Compare ratios "
    "measured in one run rather than absolute seconds across runs."
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine() -> dict[str, str]:
    """The machine and software a timing was taken on."""
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "CPU": cpu_model(),
        "cores": f"{os.cpu_count()} logical ({usable} usable by this process)",
        "torch": f"{torch.__version__}, {torch.get_num_threads()} intra-op threads",
        "python": f"{platform.python_version()} on {platform.system()} {platform.release()}",
        "load average (1/5/15 min) at start": load_average(),
    }


def machine_section(info: dict[str, str]) -> str:
    lines = ["## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += [f"- load average (1/5/15 min) at end: {load_average()}", f"- caveat: {LOAD_CAVEAT}", ""]
    return "\n".join(lines)


def repeat(fn: Callable[[], object], times: int) -> list[float]:
    """Wall-clock seconds of ``times`` calls of ``fn``."""
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def stats(samples: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(samples), min(samples), max(samples)


def fmt(samples: Sequence[float], unit: str = "s", scale: float = 1.0, digits: int = 2) -> str:
    """``median (min–max) unit`` of the samples times ``scale``."""
    median, low, high = (x * scale for x in stats(samples))
    return f"{median:.{digits}f} ({low:.{digits}f}–{high:.{digits}f}) {unit}".rstrip()


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=REPO, capture_output=True, text=True)
        return head.stdout.strip() + (" + uncommitted changes in src/" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def command_section() -> list[str]:
    """The ``## Command`` section of a results file: the command line that wrote it."""
    return ["## Command", "", "```bash", f"HF_HUB_OFFLINE=1 {command_line()}", "```"]


def command_line() -> str:
    script = Path(sys.argv[0]).resolve()
    if script.is_relative_to(REPO):
        script = script.relative_to(REPO)
    return " ".join(["python", str(script), *sys.argv[1:]])


@contextlib.contextmanager
def argv(args: list[str]):
    """``sys.argv[1:]`` set to ``args`` (LightningCLI warns when it is given args and sees others)."""
    saved = sys.argv
    sys.argv = [saved[0], *args]
    try:
        yield
    finally:
        sys.argv = saved


@contextlib.contextmanager
def cwd(path: Path):
    saved = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(saved)


def write_result(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    print(f"wrote {path}", flush=True)
    return path


# AlpacaEval judge directions: train judge, eval judge, standardization of the train judge's rewards
ALPACAEVAL_DIRECTIONS = {
    "gpt4turbo_to_gpt4": ("gpt4turbo_vs_gpt4preview", "gpt4_vs_davinci003", "logit"),
    "gpt4_to_gpt4turbo": ("gpt4_vs_davinci003", "gpt4turbo_vs_gpt4preview", "zscore"),
}


def alpacaeval_data_args(direction: str, table: Path, max_length: int) -> list[str]:
    """The data arguments of one AlpacaEval direction (configs/data/alpacaeval.yaml with its judges)."""
    train_judge, eval_judge, standardization = ALPACAEVAL_DIRECTIONS[direction]
    repo = Path(__file__).resolve().parents[1]
    return [
        "--config", str(repo / "configs/data/alpacaeval.yaml"),
        "--data.path", str(table),
        "--data.train_judge", train_judge,
        "--data.eval_judge", eval_judge,
        "--data.standardization", standardization,
        "--data.max_length", str(max_length),
        "--data.cache_dir", str(repo / ".zooter_cache"),
    ]  # fmt: skip
