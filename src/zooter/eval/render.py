"""Rendering a report: Markdown tables, PNG plots and W&B logging (the numbers come from :mod:`zooter.eval.report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zooter.eval.cost_render import cost_figure, cost_markdown

SUMMARY_KEYS = ("routed_score", "gap_recovered", "top1_acc", "selection_entropy", "mtr", "uplift")
MAX_PLOTTED_SUBSETS = 30
ENTROPY_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
ENTROPY_DASHES = ("-", "--", "-.", ":")


def _fmt(stat: dict[str, Any], digits: int = 3) -> str:
    if not np.isfinite(stat["mean"]):
        return "n/a"
    return f"{stat['mean']:.{digits}f}" + (f" ± {stat['std']:.{digits}f}" if len(stat["folds"]) > 1 else "")


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: methods x metrics, per-subset scores with MTR/uplift, entropy, cost."""
    folds = report["folds"]
    lines = [
        "# zooter report",
        "",
        f"Table `{report['source']}`, eval judge `{report['eval_judge']}`, {len(folds)} fold(s) {folds}, "
        f"test queries per fold {report['test_queries']}. Mean ± std over folds.",
        "",
        "## Methods",
        "",
        "| method | " + " | ".join(SUMMARY_KEYS) + " |",
        "|---|" + "---:|" * len(SUMMARY_KEYS),
    ]
    for name, stats in report["methods"].items():
        cells = [_fmt(stats[k]) if k in stats else "n/a" for k in SUMMARY_KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    subsets = report["subsets"]["names"]
    if subsets:
        names = list(report["methods"])
        lines += ["", "## Per subset (mean eval score; n = test queries over all folds)", ""]
        lines += ["| subset | n | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
        for subset in _largest_subsets(report, len(subsets)):
            scores = " | ".join(_fmt(report["subsets"]["scores"][n][subset]) for n in names)
            lines.append(f"| {subset} | {report['subsets']['sizes'][subset]} | {scores} |")
        lines += [
            "",
            "Single candidates, each ranked among the others:",
            "",
            "| candidate | MTR | uplift |",
            "|---|---:|---:|",
        ]
        for candidate, stats in report["candidate_ranks"].items():
            lines.append(f"| {candidate} | {_fmt(stats['mtr'], 2)} | {_fmt(stats['uplift'], 2)} |")
    entropy = report["entropy"]
    lines += [
        "",
        f"## Eval score by training reward entropy H(s(q)) ({entropy['train_judge']})",
        "",
        "| H bin | " + " | ".join(entropy["scores"]) + " |",
        "|---|" + "---:|" * len(entropy["scores"]),
    ]
    for b, (low, high) in enumerate(entropy["bins"]):
        lines.append(
            f"| {low:.2f}–{high:.2f} | " + " | ".join(f"{v[b]:.3f}" for v in entropy["scores"].values()) + " |"
        )
    cost = report["cost"]
    lines += [
        "",
        "## Inference cost per query (FLOPs, 2 x parameters x tokens)",
        "",
        "| method | FLOPs | relative |",
        "|---|---:|---:|",
    ]
    routed = cost["flops_per_query"]["routed"]
    for name, flops in cost["flops_per_query"].items():
        lines.append(f"| {name} | {flops:.3g} | {flops / routed:.2f}× |")
    if report.get("cost_quality"):
        lines += ["", *cost_markdown(report["cost_quality"])]
    lines += [
        "",
        "## Definitions",
        "",
        "- routed_score: mean eval-judge score of the method's decisions (argmax over eval-judged candidates; "
        "tied candidates share the query). The same definitions as `zooter test` (zooter/eval/functional.py).",
        "- gap_recovered: (routed_score − BMA) / (oracle − BMA). BMA, tag-majority and kNN learn from the eval judge "
        "on the training split.",
        "- random: expected score of a uniform pick; RMR <judge>: the pick that judge scores best.",
        "- MTR: per subset, rank among the single candidates plus the method (1 + better + tied/2); mean over "
        "subsets. uplift: share of subsets where no single candidate is better (ties count as first).",
        "",
    ]
    return "\n".join(lines)


def write_plots(report: dict[str, Any], out: Path) -> list[Path]:
    """methods.png, subsets.png, entropy.png, shares.png and, with costs, cost_quality.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["methods"])
    paths = []
    means = [report["methods"][n]["routed_score"]["mean"] for n in names]
    stds = [report["methods"][n]["routed_score"]["std"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.5))
    ax.barh(names, means, xerr=stds, color=["tab:blue" if n in _routers(report) else "tab:gray" for n in names])
    for name, style in (("oracle", "--"), ("best single (BMA)", ":")):
        ax.axvline(report["methods"][name]["routed_score"]["mean"], color="k", linestyle=style, label=name)
    ax.invert_yaxis()
    low = min(means) - 0.1 * (max(means) - min(means) + 1e-9)
    ax.set_xlim(left=low)
    ax.set_xlabel(f"mean eval score ({report['eval_judge']})")
    ax.set_title("Routers (blue) and baselines")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    paths.append(_save(fig, out / "methods.png"))

    subsets = _largest_subsets(report, MAX_PLOTTED_SUBSETS)
    if subsets:
        grid = np.array([[report["subsets"]["scores"][n][s]["mean"] for n in names] for s in subsets])
        fig, ax = plt.subplots(figsize=(0.9 * len(names) + 4, 0.32 * len(subsets) + 2))
        image = ax.imshow(grid, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right")
        ax.set_yticks(range(len(subsets)), [f"{s} ({report['subsets']['sizes'][s]})" for s in subsets])
        for i in range(len(subsets)):
            for j in range(len(names)):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="w", fontsize=7)
        fig.colorbar(image, ax=ax, label="mean eval score")
        total = len(report["subsets"]["names"])
        suffix = f" ({len(subsets)} largest of {total})" if total > len(subsets) else ""
        ax.set_title("Mean eval score per subset (n test queries)" + suffix)
        paths.append(_save(fig, out / "subsets.png"))

    paths.append(_save(entropy_figure(report), out / "entropy.png"))

    candidates = report["candidates"]
    shares = np.array([[report["methods"][n][f"share/{c}"]["mean"] for c in candidates] for n in names])
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 2))
    left = np.zeros(len(names))
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(candidates), 2)))
    for k, candidate in enumerate(candidates):
        ax.barh(names, shares[:, k], left=left, label=candidate, color=colors[k])
        left += shares[:, k]
    ax.invert_yaxis()
    ax.set_xlabel("share of test queries routed to each candidate")
    ax.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set_title("Routing share per candidate")
    paths.append(_save(fig, out / "shares.png"))
    if report.get("cost_quality"):
        paths.append(_save(cost_figure(report["cost_quality"], _routers(report)), out / "cost_quality.png"))
    return paths


def entropy_figure(report: dict[str, Any]) -> Any:
    """Mean eval score per entropy bin, one line per method (the paper's Figure 3).

    Methods often coincide (a router that learned the BMA, RMR with the eval judge = the oracle): each
    line gets its own marker and dash pattern, later lines thinner with smaller markers so the ones
    beneath show, every line is shifted sideways by a small step (1.5% of the x range), and the legend
    names the methods a line coincides with.
    """
    import matplotlib.pyplot as plt

    entropy = report["entropy"]
    names = list(entropy["scores"])
    values = {name: np.asarray(entropy["scores"][name], dtype=float) for name in names}
    centers = np.array([(low + high) / 2 for low, high in entropy["bins"]])
    span = float(np.ptp(centers)) if len(centers) > 1 else 1.0
    step = 0.015 * span
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, name in enumerate(names):
        same = [other for other in names[:k] if np.allclose(values[other], values[name], atol=1e-9, equal_nan=True)]
        label = name + (f" (= {', '.join(same)})" if same else "")
        ax.plot(
            centers + (k - (len(names) - 1) / 2) * step,
            values[name],
            marker=ENTROPY_MARKERS[k % len(ENTROPY_MARKERS)],
            linestyle=ENTROPY_DASHES[k % len(ENTROPY_DASHES)],
            markersize=max(9 - 1.2 * k, 4),
            linewidth=max(2.6 - 0.4 * k, 1.0),
            markerfacecolor="none" if k % 2 else None,
            label=label,
        )
    ax.set_xlabel(f"entropy of the training reward distribution H(s(q)), {entropy['train_judge']} (nats)")
    ax.set_ylabel("mean eval score of the pick")
    ax.set_title("Eval score by reward entropy (equal-count bins; lines offset sideways)", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def _largest_subsets(report: dict[str, Any], limit: int) -> list[str]:
    sizes = report["subsets"]["sizes"]
    return sorted(report["subsets"]["names"], key=lambda s: (-sizes[s], s))[:limit]


def _routers(report: dict[str, Any]) -> set[str]:
    return set(report.get("routers", []))


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def log_to_wandb(report: dict[str, Any], plots: list[Path], project: str, out: Path) -> None:
    import wandb

    run = wandb.init(project=project, job_type="report", name=out.name, dir=str(out))
    table = wandb.Table(columns=["method", *SUMMARY_KEYS])
    for name, stats in report["methods"].items():
        table.add_data(name, *[stats[k]["mean"] if k in stats else None for k in SUMMARY_KEYS])
    run.log({"report/methods": table, **{f"report/{p.stem}": wandb.Image(str(p)) for p in plots}})
    run.finish()
