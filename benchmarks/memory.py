"""Peak resident memory of `zooter fit` and `zooter predict` at the paper's scale, and the token cache's size.

    python benchmarks/memory.py            # tiny-deberta and MiniLM on 48k queries; about 5 minutes on 2 cores
    python benchmarks/memory.py --quick    # 4k queries, 20 steps, tiny-deberta only: a smoke run

Each command runs in its own process; its peak resident set size (max RSS) comes from the kernel's
resource usage of that child (``os.wait4``: the ``getrusage(RUSAGE_CHILDREN)`` figures of that one
child, descendants included). The table is the paper-sized synthetic one (48,000 queries x 6
candidates, ~6.4k tags) as JSON Lines; ``zooter fit`` starts with an empty token cache (so the peak
includes tokenizing), runs ``--steps`` optimizer steps (default: tiny-deberta 300, MiniLM 100) with
validation on 20 batches every ``--steps / 2`` steps and saves checkpoints; ``zooter predict`` then
routes ``--predict-queries`` queries (default: tiny-deberta all 48,000, MiniLM 24,000) with the last
checkpoint. For scale, the same is measured for a process
that only imports ``zooter.cli``. Writes ``benchmarks/results/memory.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchutil

REPO = benchutil.REPO
QUICKSTART = ["--config", "configs/quickstart.yaml"]
ENCODERS = {
    "tiny-deberta": QUICKSTART,
    "minilm": [*QUICKSTART, "--config", "configs/model/minilm.yaml", "--data.encoder", "minilm"],
}
# default (fit steps, predicted queries; None = the whole table) per encoder, to stay within ~5 minutes on 2
# cores: MiniLM takes ~0.45 s a step and routes ~300 queries/s there. The peak comes within the first steps
# (weights, gradients, AdamW state, the activations of a batch); how it grows with the number of predicted
# queries shows in tiny-deberta's row, which predicts the whole table.
DEFAULTS = {"tiny-deberta": (300, None), "minilm": (100, 24000)}


def run(command: list[str], env: dict[str, str]) -> dict:
    """Run ``command`` (from the repository root); its wall time and peak RSS (MiB)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{output[-4000:]}")
    return {"seconds": seconds, "max_rss_mib": usage.ru_maxrss / 1024, "output": output}  # ru_maxrss: KiB on Linux


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4k queries, 20 steps, tiny-deberta only")
    parser.add_argument("--num-queries", type=int, default=None, help="default 48000 (--quick: 4000)")
    parser.add_argument("--steps", type=int, default=None, help="fit steps (default: tiny 300, MiniLM 100; quick 20)")
    parser.add_argument("--predict-queries", type=int, default=None, help="default: tiny all, MiniLM 24000")
    parser.add_argument("--encoders", nargs="+", default=None, choices=list(ENCODERS))
    parser.add_argument("--out", type=Path, default=benchutil.RESULTS / "memory.md")
    args = parser.parse_args()
    num_queries = args.num_queries or (4000 if args.quick else 48000)
    encoders = args.encoders or (["tiny-deberta"] if args.quick else list(ENCODERS))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    info = benchutil.machine()

    from zooter.table.schema import write_jsonl
    from zooter.table.synth import SynthConfig, generate

    work = Path(tempfile.mkdtemp(prefix="zooter-bench-memory-"))
    rows: list[dict] = []
    try:
        table = generate(SynthConfig(num_queries=num_queries, topics_per_domain=800, seed=0))
        path = write_jsonl(table, work / "table.jsonl")
        num_tags = len({t for row_tags in table.tags for t in row_tags})
        baseline = run([sys.executable, "-c", "import zooter.cli"], env)
        print(f"import zooter.cli: max RSS {baseline['max_rss_mib']:.0f} MiB", flush=True)
        for encoder in encoders:
            steps = args.steps or (20 if args.quick else DEFAULTS[encoder][0])
            predict_queries = table.queries[: args.predict_queries or DEFAULTS[encoder][1] or len(table)]
            queries_path = work / f"queries-{encoder}.jsonl"
            queries_path.write_text(
                "".join(json.dumps({"id": f"p{i}", "query": q}) + "\n" for i, q in enumerate(predict_queries))
            )
            cache, runs = work / f"cache-{encoder}", work / f"runs-{encoder}"
            common = [
                *ENCODERS[encoder],
                "--data.path", str(path),
                "--data.cache_dir", str(cache),
                "--trainer.logger.init_args.save_dir", str(runs),
                "--trainer.enable_progress_bar", "false",
            ]  # fmt: skip
            zooter = [sys.executable, "-m", "zooter.cli"]
            val_every = str(max(steps // 2, 1))
            fit_args = ["--trainer.max_steps", str(steps), "--trainer.val_check_interval", val_every]
            fit = run([*zooter, "fit", *common, *fit_args, "--trainer.limit_val_batches", "20"], env)
            cache_after_fit = dir_size(cache)
            print(f"{encoder}: fit {fit['seconds']:.0f} s, max RSS {fit['max_rss_mib']:.0f} MiB", flush=True)
            ckpt = max(runs.glob("*/version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
            predict_args = ["--ckpt_path", str(ckpt), "--data.predict_path", str(queries_path)]
            predict = run([*zooter, "predict", *common, *predict_args], env)
            written = max(runs.glob("*/version_*/predictions.jsonl"), key=lambda p: p.stat().st_mtime)
            assert written.read_text().count("\n") == len(predict_queries), "predictions do not cover the queries"
            print(
                f"{encoder}: predict {predict['seconds']:.0f} s, max RSS {predict['max_rss_mib']:.0f} MiB", flush=True
            )
            rows.append(
                {
                    "encoder": encoder,
                    "steps": steps,
                    "predict_queries": len(predict_queries),
                    "fit": fit,
                    "predict": predict,
                    "cache_after_fit": cache_after_fit,
                    "cache_after_predict": dir_size(cache),
                    "checkpoint": ckpt.stat().st_size,
                }
            )
        text = report(info, table, num_tags, path, baseline, rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    benchutil.write_result(args.out, text)


def report(info, table, num_tags, path, baseline, rows) -> str:
    lines = [
        "# Peak memory of `zooter fit` and `zooter predict`",
        "",
        f"Command: `{benchutil.command_line()}` (zooter at {benchutil.git_commit()}). One run per command: "
        "peak RSS varies little between runs (the wall times are given for orientation only).",
        "",
        benchutil.machine_section(info),
        "## Settings",
        "",
        f"- table: `zooter.table.synth` with num_queries={len(table)}, topics_per_domain=800, seed=0: {len(table)} "
        f"queries x {len(table.candidates)} candidates x {len(table.judges)} judges, {num_tags} tags; JSONL "
        f"{path.stat().st_size / 1e6:.1f} MB, split 80/10/10 (train {round(0.8 * len(table))} queries)",
        "- `zooter fit` with configs/quickstart.yaml (MiniLM: + configs/model/minilm.yaml, `--data.encoder minilm`) "
        "and `--data.path` the table: batch 32, max_length 64, CPU, float32; `--trainer.max_steps` as in the "
        "table below, validation on 20 batches every half of them, checkpoints saved; an empty token cache at start.",
        "- `zooter predict` with the same configs, `--ckpt_path` the last checkpoint and `--data.predict_path` a "
        f"file of the table's first queries (how many: below); it rebuilds the data module (the {len(table)}-query "
        "table) from the config, so it holds the training table too.",
        "- max RSS: `ru_maxrss` of the finished child process (`os.wait4`), the kernel's high-water mark of its "
        "resident memory (descendants included).",
        "",
        "## Results",
        "",
        "| process | encoder | max RSS | wall time |",
        "|---|---|---:|---:|",
        f"| `python -c 'import zooter.cli'` (imports only) | – | {baseline['max_rss_mib']:.0f} MiB | "
        f"{baseline['seconds']:.1f} s |",
    ]
    for row in rows:
        lines.append(
            f"| `zooter fit`, {row['steps']} steps | {row['encoder']} | {row['fit']['max_rss_mib']:.0f} MiB | "
            f"{row['fit']['seconds']:.0f} s |"
        )
        lines.append(
            f"| `zooter predict`, {row['predict_queries']} queries | {row['encoder']} | "
            f"{row['predict']['max_rss_mib']:.0f} MiB | {row['predict']['seconds']:.0f} s |"
        )
    lines += [
        "",
        "## On disk",
        "",
        "| encoder | token cache after fit | after predict | checkpoint |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['encoder']} | {row['cache_after_fit'] / 1e6:.1f} MB | {row['cache_after_predict'] / 1e6:.1f} MB "
            f"| {row['checkpoint'] / 1e6:.1f} MB |"
        )
    lines += [
        "",
        "The token cache holds the token ids of every split (Arrow files written by `datasets`) and, for "
        "tiny-deberta, the tokenizer trained on the training queries; after predict also the predict file's tokens. "
        "The checkpoint holds the weights, the AdamW state and the tokenizer's files.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
