"""The cost–quality section of a report as Markdown and as a figure (numbers from :mod:`zooter.eval.cost_report`)."""

from __future__ import annotations

from typing import Any

import numpy as np

COLUMNS = (
    ("cost", "cost"),
    ("quality", "quality"),
    ("aiq", "AIQ"),
    ("cost_to_match_bma", "cost to match BMA"),
    ("apgr", "APGR"),
    ("cpt50", "CPT(50%)"),
    ("cpt80", "CPT(80%)"),
)
UNITS = {"price": "price per query", "flops": "FLOPs per query", "table": "the table's per-query costs"}


def cell(stat: dict[str, Any] | None, key: str) -> str:
    """A mean ± std cell (3 significant digits for costs, 3 decimals otherwise; "never" for a cost to
    match that no point reaches)."""
    if stat is None or not np.isfinite(stat["mean"]):
        return "n/a" if stat is None or key != "cost_to_match_bma" else "never"
    text = f"{stat['mean']:.3g}" if key in ("cost", "cost_to_match_bma") else f"{stat['mean']:.3f}"
    std = stat["std"] if abs(stat["std"]) > 1e-12 * max(abs(stat["mean"]), 1.0) else 0.0
    return text + (f" ± {std:.2g}" if len(stat["folds"]) > 1 else "")


def cost_markdown(section: dict[str, Any]) -> list[str]:
    """Lines of the report's "Cost and quality" section."""
    unit = UNITS.get(section["unit"], section["unit"])
    pair = section["pair"]
    lines = [
        "## Cost and quality",
        "",
        f"Costs: {unit}, from `{section['source']}`"
        + (f" ({section['filled']} unknown per-query cells filled)" if section["filled"] else "")
        + ". Each method's curve sweeps λ in argmax(u − λ·cost) (u: a router's probabilities, a baseline's "
        "scores); AIQ is the mean of its non-decreasing hull over the single models' cost range; 'cost to "
        "match BMA' is where that hull first reaches the best single model's quality.",
    ]
    if pair is not None:
        lines.append(
            f"Two-model setting (RouteLLM): weak `{pair['weak']}`, strong `{pair['strong']}` (qualities "
            f"{pair['weak_quality']['mean']:.3f} and {pair['strong_quality']['mean']:.3f}); APGR is the area "
            "under PGR against the share of strong calls, CPT(x%) the share of strong calls needed to recover "
            "x% of the gap (lower is better); random mixing gives APGR 0.5."
            + (f" {pair['left_out']} query(ies) not judged for both were left out." if pair["left_out"] else "")
        )
    else:
        lines.append("Two-model setting: none (the cheapest candidate is also the best single model).")
    lines += ["", "| method | " + " | ".join(title for _, title in COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for name, stats in section["methods"].items():
        lines.append(f"| {name} | " + " | ".join(cell(stats.get(key), key) for key, _ in COLUMNS) + " |")
    lines += ["", "| single candidate | cost | quality |", "|---|---:|---:|"]
    for name, stats in section["singles"].items():
        lines.append(f"| {name} | {cell(stats['cost'], 'cost')} | {cell(stats['quality'], 'quality')} |")
    lines += ["", "Pareto frontier (fold means; the oracle left out): " + ", ".join(section["frontier"]) + ".", ""]
    return lines


def cost_figure(section: dict[str, Any], routers: set[str]) -> Any:
    """Left: quality against cost (single models, each method's λ curve with its λ = 0 point, the zero
    router between the pair, frontier points ringed). Right: PGR against the share of strong calls."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6), width_ratios=(3, 2))
    singles = section["singles"]
    costs = np.array([s["cost"]["mean"] for s in singles.values()])
    left.scatter(costs, [s["quality"]["mean"] for s in singles.values()], color="0.5", s=25, zorder=3)
    for name, s in singles.items():
        left.annotate(
            name,
            (s["cost"]["mean"], s["quality"]["mean"]),
            fontsize=7,
            color="0.35",
            xytext=(3, 3),
            textcoords="offset points",
        )
    palette = [plt.get_cmap("tab10")(i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)]  # no grey: the single models'
    for k, (name, stats) in enumerate(section["methods"].items()):
        color = palette[k % len(palette)]
        style = "-" if name in routers else "--"
        if "curve" in stats:
            left.plot(stats["curve"]["cost"], stats["curve"]["quality"], style, color=color, lw=1.4, alpha=0.8)
        for kind, dashes in (("best_single", (1, 1)), ("cheapest", (4, 1, 1, 1))):
            if kind in stats.get("threshold_curves", {}):
                curve = stats["threshold_curves"][kind]
                left.plot(curve["cost"], curve["quality"], color=color, lw=0.9, alpha=0.7, dashes=dashes)
        left.scatter([stats["cost"]["mean"]], [stats["quality"]["mean"]], color=color, s=45, zorder=4, label=name)
        if "pgr_curve" in stats:
            apgr = stats["apgr"]["mean"]
            right.plot(section["share_grid"], stats["pgr_curve"], style, color=color, label=f"{name} ({apgr:.2f})")
    frontier = [singles[n] if n in singles else section["methods"][n] for n in section["frontier"]]
    left.scatter(
        [p["cost"]["mean"] for p in frontier],
        [p["quality"]["mean"] for p in frontier],
        s=140,
        facecolors="none",
        edgecolors="k",
        lw=1,
        zorder=5,
        label="Pareto frontier",
    )
    pair = section["pair"]
    if pair is not None:
        line = pair["mixture_line"]
        left.plot(
            line["cost"], line["quality"], ":", color="k", lw=1, label=f"random {pair['weak']} / {pair['strong']}"
        )
        right.plot([0, 1], [0, 1], ":", color="k", lw=1, label="random mixture (0.50)")
        for level in (0.5, 0.8):
            right.axhline(level, color="0.8", lw=0.8, zorder=0)
        right.set_title(f"Two models: {pair['weak']} → {pair['strong']}\n(legend: APGR)", fontsize=9)
        right.set_xlabel(f"share of calls to {pair['strong']}")
        right.set_ylabel("performance gap recovered (PGR)")
        right.legend(fontsize=7)
    else:
        right.set_axis_off()
    every = np.r_[costs, [m["cost"]["mean"] for m in section["methods"].values()]]
    if every.min() > 0 and every.max() / every.min() > 10:
        left.set_xscale("log")
    left.set_xlabel(f"mean cost per query ({UNITS.get(section['unit'], section['unit'])})")
    left.set_ylabel("mean eval score")
    left.set_title(
        "Quality against cost: λ sweeps (routers solid, baselines dashed);\n"
        "routers' threshold sweeps: dotted → best single, dash-dot → cheapest",
        fontsize=9,
    )
    left.legend(fontsize=7, loc="best", framealpha=0.9)
    return fig
