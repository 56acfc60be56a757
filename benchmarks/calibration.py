"""Calibration round trips: a target share of strong calls chosen on validation, achieved on test.

    HF_HUB_OFFLINE=1 python benchmarks/calibration.py

For each router checkpoint below, the router's probabilities on its run's validation and test splits
are computed once; then, for every target share S in :data:`TARGETS`, the two-model rule is calibrated
on validation exactly as ``zooter calibrate --target share=S`` does (``calibration.PairRule.for_share``;
strong = the checkpoint's best single model, weak = the cheapest candidate by the pool's cost file) and
applied to test. A target holds when the test share is within ±5 points. The sampling noise of a
quantile threshold alone gives a share error of about sqrt(S(1−S)(1/n_val + 1/n_test)) (one standard
deviation, same distribution), printed beside each split so a miss can be read against it.

A share needs no labels, so ``zooter calibrate --queries`` can set the threshold on a sample of the
traffic instead. That is measured too: the test split is halved at random (seed 0); the threshold is
set on half A's queries (their labels unused) and the share measured on half B.

Routers: the MiniLM probe on dcrouter (official split: validation cut from train, the official test
file; 3 seeds), the MiniLM probe on AlpacaEval (GPT-4-Turbo → GPT-4, 5 folds) and the quickstart
router on the embedded synthetic table (3 seeds, from ``benchmarks/cost_quality.py``). Writes
``benchmarks/results/calibration_sweep.md`` and ``calibration.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402

from zooter.calibration import PairRule  # noqa: E402
from zooter.eval.cost_quality import cheapest_candidate  # noqa: E402
from zooter.inference import Router  # noqa: E402
from zooter.runs.calibrate import router_split, run_config  # noqa: E402
from zooter.table.costs import load_costs  # noqa: E402
from zooter.table.splits import SplitSpec, load_splits  # noqa: E402

RUNS = REPO / "benchmarks" / "runs"
RESULTS = REPO / "benchmarks" / "results"
TARGETS = np.round(np.arange(0.1, 0.91, 0.1), 2)
TOLERANCE = 0.05
GROUPS = {
    "dcrouter (official split)": (
        "configs/costs/dcrouter.yaml",
        sorted(RUNS.glob("realdata/dcrouter/probe-seed*/fit/checkpoints/best-*.ckpt")),
    ),
    "AlpacaEval GPT-4-Turbo → GPT-4 (5 folds)": (
        "configs/costs/alpacaeval.yaml",
        sorted(RUNS.glob("realdata/alpacaeval_gpt4turbo_to_gpt4/probe-fold*/fit/checkpoints/best-*.ckpt")),
    ),
    "synthetic (3 seeds)": (
        "configs/costs/synth.yaml",
        sorted(RUNS.glob("cost_quality/synthetic/quickstart/cw0-seed*/checkpoints/best-*.ckpt")),
    ),
}


def round_trips(ckpt: Path, cost_file: str) -> dict[str, Any]:
    """Validation and test shares of strong calls for every target, for one checkpoint."""
    _, data = run_config(ckpt, None)
    spec = SplitSpec.from_mapping(data)
    tables = load_splits(spec)
    router = Router.from_checkpoint(ckpt)
    candidates = router.candidates
    costs = load_costs(REPO / cost_file, candidates).per_query
    train_evals = tables["train"].with_candidates(candidates).judge(spec.eval_judge)
    weak, strong = cheapest_candidate(costs, train_evals, candidates), router.best_single
    val = router_split("val", tables["val"], router, spec.eval_judge)
    test = router_split("test", tables["test"], router, spec.eval_judge)
    order = np.random.default_rng(0).permutation(len(test.ids))
    half_a, half_b = test.probs[order[: len(order) // 2]], test.probs[order[len(order) // 2 :]]
    shares: dict[str, list[float]] = {"val": [], "test": [], "traffic": []}
    for target in TARGETS:
        rule = PairRule.for_share(val.probs, candidates, weak, strong, float(target))
        for name, probs in (("val", val.probs), ("test", test.probs)):
            shares[name].append(float(np.mean(rule.choose(probs, candidates) == candidates.index(strong))))
        on_traffic = PairRule.for_share(half_a, candidates, weak, strong, float(target))
        shares["traffic"].append(float(np.mean(on_traffic.choose(half_b, candidates) == candidates.index(strong))))
    return {"ckpt": ckpt, "weak": weak, "strong": strong, "n_val": len(val.ids), "n_test": len(test.ids), **shares}


def figure(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4.6), sharey=True)
    for ax, (group, runs) in zip(np.atleast_1d(axes), results.items(), strict=True):
        ax.fill_between(TARGETS, TARGETS - TOLERANCE, TARGETS + TOLERANCE, color="0.9", label="target ± 5 points")
        ax.plot([0, 1], [0, 1], ":", color="0.5", lw=1)
        for k, run in enumerate(runs):
            label = "test (one line per seed/fold)" if k == 0 else None
            ax.plot(TARGETS, run["test"], "o-", color="tab:blue", alpha=0.7, ms=3, label=label)
            ax.plot(TARGETS, run["val"], "x", color="tab:orange", ms=4, label="validation" if k == 0 else None)
            label = "test half B, threshold on half A's queries" if k == 0 else None
            ax.plot(TARGETS, run["traffic"], "s--", color="tab:green", alpha=0.6, ms=2.5, lw=0.9, label=label)
        n_val, n_test = runs[0]["n_val"], runs[0]["n_test"]
        ax.set_title(
            f"{group}\nval {n_val}, test {n_test} queries; {runs[0]['weak']} → {runs[0]['strong']}", fontsize=8
        )
        ax.set_xlabel("target share of strong calls (chosen on validation)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    np.atleast_1d(axes)[0].set_ylabel("achieved share of strong calls")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "# Calibration round trips: target share of strong calls (validation) against the test share",
        "",
        "Written by `benchmarks/calibration.py`. Each checkpoint's two-model rule is calibrated on its run's "
        "validation split as `zooter calibrate --target share=S` does, then applied to test. Weak = the "
        "cheapest candidate of the pool's cost file (ties: best on train), strong = the checkpoint's best "
        "single model. Figure: [calibration.png](calibration.png). σ = sqrt(S(1−S)(1/n_val + 1/n_test)), the "
        "share error a quantile threshold has from sampling alone when validation and test come from one "
        "distribution.",
        "",
    ]
    for group, runs in results.items():
        middle = list(TARGETS).index(0.5)
        sigma = np.sqrt(0.25 * (1 / runs[0]["n_val"] + 1 / runs[0]["n_test"]))
        held = sum(abs(r["test"][middle] - 0.5) <= TOLERANCE + 1e-12 for r in runs)
        traffic_held = sum(abs(r["traffic"][middle] - 0.5) <= TOLERANCE + 1e-12 for r in runs)
        traffic_all = sum(
            abs(t - s) <= TOLERANCE + 1e-12 for r in runs for t, s in zip(r["traffic"], TARGETS, strict=True)
        )
        all_held = sum(abs(t - s) <= TOLERANCE + 1e-12 for r in runs for t, s in zip(r["test"], TARGETS, strict=True))
        lines += [
            f"## {group}",
            "",
            f"{runs[0]['weak']} → {runs[0]['strong']}; validation {runs[0]['n_val']}, test {runs[0]['n_test']} "
            f"queries per run; σ at S = 0.5: {sigma:.3f}. Target 0.5 held (±5 points) in {held} of {len(runs)} "
            f"runs; all targets 0.1–0.9: {all_held} of {len(runs) * len(TARGETS)}. Threshold set on half A of "
            f"the test queries (unlabeled), measured on half B: 0.5 held in {traffic_held} of {len(runs)}, all "
            f"targets in {traffic_all} of {len(runs) * len(TARGETS)}.",
            "",
            "| run | val share at 0.5 | test share at 0.5 | test − target | largest test miss over 0.1–0.9 | "
            "test half B at 0.5, threshold on half A's queries |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for run in runs:
            misses = np.abs(np.array(run["test"]) - TARGETS)
            parts = run["ckpt"].relative_to(RUNS).parts
            name = "/".join(parts[1:3] if parts[0] == "realdata" else parts[2:4])
            lines.append(
                f"| {name} | {run['val'][middle]:.3f} | "
                f"{run['test'][middle]:.3f} | {run['test'][middle] - 0.5:+.3f} | {misses.max():.3f} at "
                f"{TARGETS[int(misses.argmax())]:.1f} | {run['traffic'][middle]:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    results: dict[str, list[dict[str, Any]]] = {}
    for group, (cost_file, checkpoints) in GROUPS.items():
        if not checkpoints:
            print(
                f"calibration.py: no checkpoints for {group}; skipped (run benchmarks/realdata.py or cost_quality.py)"
            )
            continue
        results[group] = [round_trips(ckpt, cost_file) for ckpt in checkpoints]
        print(f"calibration.py: {group}: {len(checkpoints)} runs", flush=True)
    figure(results, RESULTS / "calibration.png")
    (RESULTS / "calibration_sweep.md").write_text(summary(results) + "\n")
    print(f"calibration.py: {RESULTS / 'calibration_sweep.md'}, {RESULTS / 'calibration.png'}")


if __name__ == "__main__":
    main()
