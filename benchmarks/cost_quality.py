"""Cost–quality benchmark: ``zooter report --costs`` on dcrouter and AlpacaEval (issue 14's must-show).

    HF_HUB_OFFLINE=1 python benchmarks/cost_quality.py [--runs benchmarks/runs/realdata_gpu]

Reads the paper's router (``zooter``) predictions of ``benchmarks/realdata.py`` runs (by default the
GPU runs of ``benchmarks/gpu.py``, copied to ``benchmarks/runs/realdata_gpu``): dcrouter's official
split (one run per seed, each its own row) and AlpacaEval's 5 folds in both judge directions. The report
adds every baseline (BMA, random, oracle, RMR, tag-majority, kNN chosen on validation) and the cost
section with the pool's cost file (``configs/costs/dcrouter.yaml``: FLOPs of the nominal sizes;
``configs/costs/alpacaeval.yaml``: dollars). Writes ``benchmarks/results/cost_quality/<table>/`` (a full
report with ``cost_quality.png``) and the summary ``benchmarks/results/cost_quality.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from zooter.eval.cost_render import cell  # noqa: E402
from zooter.eval.report import ReportOptions, write_report  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
TABLES = {
    "dcrouter": ("configs/costs/dcrouter.yaml", [f"zooter-seed{s}" for s in range(3)]),
    "alpacaeval_gpt4turbo_to_gpt4": ("configs/costs/alpacaeval.yaml", [f"zooter-fold{f}" for f in range(5)]),
    "alpacaeval_gpt4_to_gpt4turbo": ("configs/costs/alpacaeval.yaml", [f"zooter-fold{f}" for f in range(5)]),
}
SHOWN = ("kNN", "tag-majority", "best single (BMA)", "random", "oracle")
COLUMNS = ("cost", "quality", "aiq", "cost_to_match_bma", "apgr", "cpt50", "cpt80")


def run_table(name: str, runs_root: Path) -> dict[str, Any]:
    cost_file, run_names = TABLES[name]
    runs = [runs_root / name / run / "predict" for run in run_names]
    missing = [str(r) for r in runs if not (r / "predictions.jsonl").is_file()]
    if missing:
        raise SystemExit(f"cost_quality.py: missing prediction runs (run benchmarks/realdata.py or gpu.py): {missing}")
    # seeds share fold 0, so each is its own row; folds of one router share its name
    names = [r.replace("zooter-", "zooter ") for r in run_names] if name == "dcrouter" else ["zooter"] * len(runs)
    options = ReportOptions(out=str(RESULTS / "cost_quality" / name), names=names, costs=str(REPO / cost_file))
    out = write_report(runs, options)
    return json.loads((out / "report.json").read_text())


def summary(reports: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# Cost–quality of the paper's router and the baselines",
        "",
        "Written by `benchmarks/cost_quality.py` from `zooter report --costs` (full reports and "
        "`cost_quality.png` in `benchmarks/results/cost_quality/<table>/`). Definitions: "
        "`zooter/eval/cost_report.py` and `docs/architecture.md`. Cost = mean cost per query of the "
        "method as run (λ = 0); AIQ = mean quality of its non-decreasing λ hull over the single models' "
        "cost range; cost to match BMA = where that hull reaches the best single model's test quality "
        "(never: it does not); APGR, CPT(50%), CPT(80%) in the two-model setting named per table "
        "(lower CPT is better; random mixing: APGR 0.5, CPT 0.5 / 0.8). Mean ± std over folds "
        "(AlpacaEval); dcrouter's seeds are separate rows.",
        "",
    ]
    for name, report in reports.items():
        section = report["cost_quality"]
        pair = section["pair"]
        lines += [
            f"## {name}",
            "",
            f"Costs `{Path(section['source']).relative_to(REPO)}` (unit: {section['unit']}); eval judge "
            f"`{report['eval_judge']}`; folds {report['folds']}; test queries {report['test_queries']}. "
            f"Two-model setting: weak `{pair['weak']}` (cheapest), strong `{pair['strong']}` (best single on "
            f"train). Pareto frontier: {', '.join(section['frontier'])}.",
            "",
            "| method | " + " | ".join(COLUMNS) + " |",
            "|---|" + "---:|" * len(COLUMNS),
        ]
        shown = [n for n in section["methods"] if n.startswith("zooter")] + [
            n for n in SHOWN if n in section["methods"]
        ]
        for method in shown:
            stats = section["methods"][method]
            lines.append(f"| {method} | " + " | ".join(cell(stats.get(k), k) for k in COLUMNS) + " |")
        lines += ["", f"![{name}](cost_quality/{name}/cost_quality.png)", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=REPO / "benchmarks" / "runs" / "realdata_gpu")
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    args = parser.parse_args()
    reports = {name: run_table(name, args.runs) for name in args.tables}
    (RESULTS / "cost_quality.md").write_text(summary(reports) + "\n")
    print(f"cost_quality.py: {RESULTS / 'cost_quality.md'}")


if __name__ == "__main__":
    main()
