"""Cost–quality benchmark: ``zooter report --costs`` on dcrouter and AlpacaEval (issue 14's must-show).

    HF_HUB_OFFLINE=1 python benchmarks/cost_quality.py [--runs benchmarks/runs/realdata_gpu] [--tables ...]

Reads the paper's router (``zooter``) predictions of ``benchmarks/realdata.py`` runs (by default the
GPU runs of ``benchmarks/gpu.py``, copied to ``benchmarks/runs/realdata_gpu``): dcrouter's official
split (one run per seed, each its own row) and AlpacaEval's 5 folds in both judge directions. The report
adds every baseline (BMA, random, oracle, RMR, tag-majority, kNN chosen on validation) and the cost
section with the pool's cost file (``configs/costs/dcrouter.yaml``: FLOPs of the nominal sizes;
``configs/costs/alpacaeval.yaml``: dollars). Writes ``benchmarks/results/cost_quality/<table>/`` (a full
report with ``cost_quality.png``) and the summary ``benchmarks/results/cost_quality.md``.

``synthetic`` compares training for cost (``data.cost_weight``, issue 14 item 5) with the post-hoc λ
curve: the quickstart router (tiny encoder, embedded table, ``configs/costs/synth.yaml``) trained at
each λ of :data:`TRAINED_COST_WEIGHTS` (3 seeds each, CPU, about a minute per fit; runs kept in
``benchmarks/runs/cost_quality`` and reused), one report over all of them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402

from zooter.eval.cost_quality import apgr, pair_curve, upper_hull  # noqa: E402
from zooter.eval.cost_render import cell  # noqa: E402
from zooter.eval.decisions import pair_scores  # noqa: E402
from zooter.eval.report import ReportOptions, Run, write_report  # noqa: E402
from zooter.table.splits import SplitSpec, load_splits  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
TABLES = {
    "dcrouter": ("configs/costs/dcrouter.yaml", [f"zooter-seed{s}" for s in range(3)]),
    "alpacaeval_gpt4turbo_to_gpt4": ("configs/costs/alpacaeval.yaml", [f"zooter-fold{f}" for f in range(5)]),
    "alpacaeval_gpt4_to_gpt4turbo": ("configs/costs/alpacaeval.yaml", [f"zooter-fold{f}" for f in range(5)]),
}
TRAINED_COST_WEIGHTS = (0.0, 0.5, 1.0)  # data.cost_weight: λ in reward units, cost / max cost in [0, 1]
SEEDS = (0, 1, 2)
SYNTH_RUNS = REPO / "benchmarks" / "runs" / "cost_quality" / "synthetic"
SHOWN = ("kNN", "tag-majority", "best single (BMA)", "random", "oracle")
RESAMPLES = 2000  # bootstrap resamples of the test queries (APGR intervals)
COLUMNS = ("cost", "quality", "aiq", "cost_to_match_bma", "apgr", "cpt50", "cpt80")


def keep_cost_outputs(out: Path) -> Path:
    """Drop the report's other plots (realdata.py records those): report.md, report.json, cost_quality.png stay."""
    for plot in out.glob("*.png"):
        if plot.name != "cost_quality.png":
            plot.unlink()
    return out


def _zooter(*argv: str) -> None:
    print("cost_quality.py: zooter " + " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "zooter", *argv], check=True, cwd=REPO)


def synthetic_runs(seed: int) -> list[Path]:
    """Fit and predict the quickstart router at every trained λ for one seed (finished runs are reused)."""
    runs = []
    for weight in TRAINED_COST_WEIGHTS:
        version = f"cw{weight:g}-seed{seed}"
        common = [
            *("--config", "configs/quickstart.yaml", "--seed_everything", str(seed)),
            *("--data.costs", "configs/costs/synth.yaml", "--data.cost_weight", str(weight)),
            *("--trainer.logger.init_args.save_dir", str(SYNTH_RUNS), "--trainer.logger.init_args.name", "quickstart"),
            *("--trainer.enable_progress_bar", "false"),
        ]
        predict_dir = SYNTH_RUNS / "quickstart" / f"{version}-predict"
        if not (predict_dir / "predictions.jsonl").is_file():
            _zooter("fit", *common, "--trainer.logger.init_args.version", version)
            ckpt = next((SYNTH_RUNS / "quickstart" / version / "checkpoints").glob("best-*.ckpt"))
            _zooter(
                "predict", *common, "--trainer.logger.init_args.version", f"{version}-predict", "--ckpt_path", str(ckpt)
            )
        runs.append(predict_dir)
    return runs


def synthetic_reports() -> dict[str, dict[str, Any]]:
    """One report per seed, each with the router trained at every λ (the λ = 0 one gives the post-hoc curve)."""
    reports = {}
    for seed in SEEDS:
        options = ReportOptions(
            out=str(RESULTS / "cost_quality" / f"synthetic_seed{seed}"),
            names=[f"trained λ={w:g}" for w in TRAINED_COST_WEIGHTS],
            costs=str(REPO / "configs/costs/synth.yaml"),
        )
        out = keep_cost_outputs(write_report(synthetic_runs(seed), options))
        reports[f"synthetic_seed{seed}"] = json.loads((out / "report.json").read_text())
    return reports


def trained_against_post_hoc(reports: dict[str, dict[str, Any]]) -> list[str]:
    """Per seed and trained λ > 0: its (cost, quality) against the post-hoc hull of the router trained at
    λ = 0 at the same cost (that router's λ sweep, mixed at random between its points)."""
    plain = f"trained λ={TRAINED_COST_WEIGHTS[0]:g}"
    lines = [
        "## Training for cost against post-hoc λ (synthetic, quickstart router, 3 seeds)",
        "",
        "Each seed: the router trained with `data.cost_weight` λ_t (labels softmax((r − λ_t·cost/max cost)/τ)) "
        f"at its own operating point, against the `{plain}` router's post-hoc λ hull at the same mean cost. "
        "Positive: training for cost beats adjusting the ordinary router after training. Per-seed figures; "
        "3 seeds give no interval, so no claim either way rests on them.",
        "",
        "| seed | λ_t | cost (FLOPs) | quality | post-hoc hull at that cost | difference |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    differences: dict[float, list[float]] = {w: [] for w in TRAINED_COST_WEIGHTS[1:]}
    for name, report in reports.items():
        section = report["cost_quality"]
        cheapest = min(section["singles"].values(), key=lambda single: single["cost"]["mean"])
        curve = section["methods"][plain]["curve"]
        hull = upper_hull(
            np.r_[curve["cost"], cheapest["cost"]["mean"]], np.r_[curve["quality"], cheapest["quality"]["mean"]]
        )
        for weight in TRAINED_COST_WEIGHTS[1:]:
            trained = section["methods"][f"trained λ={weight:g}"]
            cost, quality = trained["cost"]["mean"], trained["quality"]["mean"]
            post_hoc = float(np.interp(cost, *hull))
            differences[weight].append(quality - post_hoc)
            lines.append(
                f"| {name.removeprefix('synthetic_seed')} | {weight:g} | {cost:.3g} | {quality:.3f} | "
                f"{post_hoc:.3f} | {quality - post_hoc:+.3f} |"
            )
    lines.append("")
    for weight, values in differences.items():
        shown = ", ".join(f"{v:+.3f}" for v in values)
        lines.append(f"- λ_t = {weight:g}: mean difference {np.mean(values):+.3f} over seeds ({shown}).")
    return [*lines, ""]


def _apgr_of(rows: np.ndarray, scores: np.ndarray, weak_evals: np.ndarray, strong_evals: np.ndarray) -> float:
    """APGR of the two-model rule on these rows (a bootstrap resample, or all of them)."""
    shares, qualities = pair_curve(scores[rows], weak_evals[rows], strong_evals[rows])
    return apgr(shares, qualities, float(weak_evals[rows].mean()), float(strong_evals[rows].mean()))


def apgr_interval(runs: list[Path], report: dict[str, Any], seed: int = 0) -> tuple[float, float, float]:
    """APGR − 0.5 (random mixing of the pair gives exactly 0.5) of one router over its folds, and its 95%
    bootstrap interval: test queries resampled within each fold, APGR averaged over folds per resample."""
    rng = np.random.default_rng(seed)
    per_fold = []
    for directory in runs:
        run = Run.load(directory)
        fold = int(run.data.get("fold") or 0)
        pair = report["per_fold"][str(fold)]["cost_quality"]["pair"]
        test = load_splits(SplitSpec.from_mapping(run.data))["test"]
        evals, probs = test.judge(report["eval_judge"]), run.table_scores(test, probs=True)
        weak, strong = test.candidates.index(pair["weak"]), test.candidates.index(pair["strong"])
        judged = np.isfinite(evals[:, weak]) & np.isfinite(evals[:, strong])
        scores, weak_evals, strong_evals = pair_scores(probs[judged], weak, strong), *evals[judged][:, [weak, strong]].T
        n = len(scores)
        samples = [_apgr_of(rng.integers(0, n, n), scores, weak_evals, strong_evals) for _ in range(RESAMPLES)]
        per_fold.append((_apgr_of(np.arange(n), scores, weak_evals, strong_evals), np.array(samples)))
    point = float(np.mean([p for p, _ in per_fold])) - 0.5
    means = np.nanmean([s for _, s in per_fold], axis=0) - 0.5
    return point, float(np.nanquantile(means, 0.025)), float(np.nanquantile(means, 0.975))


def run_table(name: str, runs_root: Path) -> dict[str, Any]:
    cost_file, run_names = TABLES[name]
    runs = [runs_root / name / run / "predict" for run in run_names]
    missing = [str(r) for r in runs if not (r / "predictions.jsonl").is_file()]
    if missing:
        raise SystemExit(f"cost_quality.py: missing prediction runs (run benchmarks/realdata.py or gpu.py): {missing}")
    # seeds share fold 0, so each is its own row; folds of one router share its name
    names = [r.replace("zooter-", "zooter ") for r in run_names] if name == "dcrouter" else ["zooter"] * len(runs)
    options = ReportOptions(out=str(RESULTS / "cost_quality" / name), names=names, costs=str(REPO / cost_file))
    out = keep_cost_outputs(write_report(runs, options))
    report = json.loads((out / "report.json").read_text())
    groups = {n: [r for r, m in zip(runs, names, strict=True) if m == n] for n in dict.fromkeys(names)}
    report["apgr_intervals"] = {n: apgr_interval(group, report) for n, group in groups.items()}
    return report


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
        routers = [n for n in section["methods"] if n not in SHOWN and not n.startswith("RMR")]
        shown = routers + [n for n in SHOWN if n in section["methods"]]
        for method in shown:
            stats = section["methods"][method]
            lines.append(f"| {method} | " + " | ".join(cell(stats.get(k), k) for k in COLUMNS) + " |")
        for router, (point, low, high) in report.get("apgr_intervals", {}).items():
            verdict = "above" if low > 0 else "below" if high < 0 else "not distinguishable from"
            lines.append(
                f"- {router}: APGR − 0.5 = {point:+.3f}, 95% bootstrap interval over test queries [{low:+.3f}, "
                f"{high:+.3f}] ({RESAMPLES} resamples{', within folds' if len(report['folds']) > 1 else ''}): "
                f"{verdict} random mixing of the pair."
            )
        lines += ["", f"![{name}](cost_quality/{name}/cost_quality.png)", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=REPO / "benchmarks" / "runs" / "realdata_gpu")
    parser.add_argument("--tables", nargs="+", default=[*TABLES, "synthetic"], choices=[*TABLES, "synthetic"])
    args = parser.parse_args()
    reports = {name: run_table(name, args.runs) for name in args.tables if name != "synthetic"}
    text = summary(reports)
    if "synthetic" in args.tables:
        synthetic = synthetic_reports()
        text += "\n" + "\n".join(trained_against_post_hoc(synthetic)) + "\n" + summary(synthetic).split("\n", 4)[4]
    (RESULTS / "cost_quality.md").write_text(text + "\n")
    print(f"cost_quality.py: {RESULTS / 'cost_quality.md'}")


if __name__ == "__main__":
    main()
