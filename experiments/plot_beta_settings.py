"""The β sweep at three tag settings (issue 16) in one plot, with the β each would choose on validation.

    python experiments/plot_beta_settings.py --collect   # read sweeps/<name>/ into experiments/results/*.json
    python experiments/plot_beta_settings.py             # plot from experiments/results/beta_<setting>.json

``--collect`` reads each sweep's points (``point.json``, ``fit/metrics.csv``, ``test/test_metrics.json``,
as ``zooter sweep`` leaves them) and writes ``experiments/results/beta_<setting>.json``: per point β,
seed, the best ``val/routed_score`` over the fit's epochs (the checkpoint that ``zooter test`` scored)
and the test metrics. The plot (``beta_tag_informativeness.png``) shows test gap recovered and test
routed score against β, mean ± std over seeds, one line per setting; a star marks the β with the best
mean validation routed score, the one a user would pick. The table printed last goes in the results.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "experiments" / "results"
# setting -> the sweep that recorded it (experiments/sweeps/<sweep>.yaml)
SETTINGS = {"informative": "beta_informative", "default": "beta_default", "uninformative": "beta_uninformative"}
TEST_KEYS = ("test/routed_score", "test/gap_recovered", "test/best_single_score", "test/oracle_score")
VAL_KEY = "val/routed_score"


def best_val(metrics_csv: Path) -> float:
    """The highest ``val/routed_score`` a fit logged: the monitored value of its best checkpoint."""
    with metrics_csv.open() as handle:
        values = [float(row[VAL_KEY]) for row in csv.DictReader(handle) if row.get(VAL_KEY)]
    if not values:
        raise ValueError(f"{metrics_csv}: no {VAL_KEY} logged")
    return max(values)


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One record per finished point of a sweep directory."""
    points = []
    for point_dir in sorted(sweep_dir.glob("p*")):
        test_file = point_dir / "test" / "test_metrics.json"
        if not test_file.is_file():
            continue
        point = json.loads((point_dir / "point.json").read_text())
        test = json.loads(test_file.read_text())
        record = {
            "beta": point["data.beta"],
            "seed": point["seed_everything"],
            VAL_KEY: best_val(point_dir / "fit" / "metrics.csv"),
        }
        points.append(record | {key: test[key] for key in TEST_KEYS})
    return points


def by_beta(points: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """β values, and the mean and standard deviation over seeds of ``key`` at each."""
    groups: dict[float, list[float]] = defaultdict(list)
    for point in points:
        groups[point["beta"]].append(point[key])
    betas = np.array(sorted(groups))
    means = np.array([np.mean(groups[b]) for b in betas])
    stds = np.array([np.std(groups[b], ddof=1) if len(groups[b]) > 1 else 0.0 for b in betas])
    return betas, means, stds


def chosen_on_val(points: list[dict[str, Any]]) -> float:
    """The β with the best mean validation routed score over seeds (the smallest β among equals)."""
    betas, means, _ = by_beta(points, VAL_KEY)
    return float(betas[int(np.argmax(means))])


def summary(results: dict[str, list[dict[str, Any]]]) -> str:
    """A Markdown table: per setting, validation score per β, the β chosen on validation and its test numbers."""
    betas = sorted({p["beta"] for points in results.values() for p in points})
    lines = ["| setting | " + " | ".join(f"val β={b}" for b in betas) + " | β chosen on val | its test gap recovered "
             "| test gap recovered at β = 1 |", "|---|" + "---:|" * (len(betas) + 3)]  # fmt: skip
    for setting, points in results.items():
        val_betas, val_means, _ = by_beta(points, VAL_KEY)
        val = dict(zip(val_betas.tolist(), val_means, strict=True))
        gap_betas, gap_means, gap_stds = by_beta(points, "test/gap_recovered")
        gap = {b: f"{m:.3f} ± {s:.3f}" for b, m, s in zip(gap_betas.tolist(), gap_means, gap_stds, strict=True)}
        choice = chosen_on_val(points)
        cells = [f"{val[b]:.4f}" if b in val else "n/a" for b in betas]
        lines.append(f"| {setting} | " + " | ".join(cells) + f" | {choice} | {gap[choice]} | {gap.get(1.0, 'n/a')} |")
    return "\n".join(lines)


def plot(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = (("test/gap_recovered", "test gap recovered"), ("test/routed_score", "test routed score (true quality)"))
    for ax, (key, title) in zip(axes, panels, strict=True):
        for k, (setting, points) in enumerate(results.items()):
            color = f"C{k}"
            betas, means, stds = by_beta(points, key)
            ax.errorbar(betas, means, yerr=stds, marker="o", capsize=3, color=color, label=setting)
            choice = chosen_on_val(points)
            ax.plot([choice], [means[list(betas).index(choice)]], marker="*", markersize=16, color=color,
                    markeredgecolor="k", linestyle="none")  # fmt: skip
            if key == "test/routed_score":
                ax.axhline(by_beta(points, "test/best_single_score")[1].mean(), color=color, linestyle=":")
        if key == "test/gap_recovered":
            ax.axhline(0.0, color="k", linewidth=0.8, linestyle=":")
        ax.set_xlabel("β (weight of the sample-level label)")
        ax.set_title(title)
    axes[0].legend(title="tags", fontsize=8)
    axes[1].text(0.01, 0.01, "dotted: best single model per setting; ★: β chosen on validation",
                 transform=axes[1].transAxes, fontsize=7)  # fmt: skip
    fig.suptitle("β sweep by tag informativeness (synthetic, 2,000 queries, rm_high_noise; mean ± std over 3 seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collect", action="store_true", help="first read the sweeps' points from --sweeps")
    parser.add_argument("--sweeps", type=Path, default=REPO / "sweeps", help="where zooter sweep left its points")
    args = parser.parse_args()
    results = {}
    for setting, sweep in SETTINGS.items():
        record_file = RESULTS / f"beta_{setting}.json"
        if args.collect:
            points = collect(args.sweeps / sweep)
            if not points:
                raise SystemExit(f"{args.sweeps / sweep}: no finished point of sweep {sweep!r}")
            record_file.write_text(json.dumps({"sweep": sweep, "points": points}, indent=1) + "\n")
        results[setting] = json.loads(record_file.read_text())["points"]
    plot(results, RESULTS / "beta_tag_informativeness.png")
    print(summary(results))


if __name__ == "__main__":
    main()
