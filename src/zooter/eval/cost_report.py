"""The cost–quality section of ``zooter report``: every method's curve and numbers on one fold, and
their aggregate over folds (the formulas are in :mod:`zooter.eval.cost_quality`).

Per fold, with a cost matrix ``[queries, candidates]`` (a cost file, or the table's per-query costs):

- single candidates: mean cost and mean quality (the eval judge);
- every method (routers and baselines) from its utility scores ``u`` (a router's probabilities, as
  ``zooter route`` uses them; a baseline's score matrix): the λ sweep of ``argmax u − λ·cost`` over
  :func:`~zooter.eval.cost_quality.cost_weight_grid` (the grid ``zooter calibrate`` searches, from the
  argmax to every query on its cheapest candidate; ties shared as in the metrics) plus the
  cheapest candidate (any router can fall back to it). Its point at λ = 0 is the method as run;
- AIQ over the single candidates' cost range, and the cost at which the method's hull reaches the best
  single model's quality (``cost_to_match_bma``; NaN where it never does);
- RouteLLM's setting between a ``weak`` and a ``strong`` candidate (default: the cheapest candidate and
  the best single model on train): the two-model rule over every threshold of ``u_strong − u_weak``
  on the queries judged for both, APGR, CPT(50%) and CPT(80%); the zero router (random mixtures of
  the two) for the plot;
- routers also get the threshold rule swept (``max p`` below the threshold → the fallback: the best
  single model, or the cheapest candidate by :func:`~zooter.eval.decisions.fallback_index`, as
  ``zooter route --fallback``), at :data:`THRESHOLD_LEVELS` quantiles of the top probability;
- RMR generates with every candidate: one point at the sum of their costs, no curve.

Over folds: numbers as mean ± std; curves averaged point by point (λ curves share the grid; PGR curves
are interpolated on :data:`SHARE_GRID`). The Pareto frontier is taken over the fold-mean points of
the single candidates and the methods (the oracle left out: no router can be it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from zooter.eval.cost_quality import (
    aiq,
    apgr,
    cheapest_candidate,
    cost_to_reach,
    cost_weight_grid,
    cpt,
    decision_curve,
    pair_curve,
    pareto_frontier,
    random_mixture_line,
)
from zooter.eval.decisions import FALLBACKS, fallback_index, pair_scores
from zooter.eval.functional import best_single, candidate_means, decision_weights, expected_scores, gap_recovered

SHARE_GRID = np.linspace(0.0, 1.0, 101)
THRESHOLD_LEVELS = np.linspace(0.0, 1.0, 21)  # quantiles of the top probability where the threshold sweep stops
CPT_TARGETS = (0.5, 0.8)
ORACLE = "oracle"

MeanStd = Callable[[list[float]], dict[str, Any]]


def check_pair_names(candidates: Sequence[str], weak: str | None, strong: str | None) -> None:
    """Refuse a ``--weak``/``--strong`` that is not a candidate, or the same candidate twice."""
    for role, name in (("weak", weak), ("strong", strong)):
        if name is not None and name not in candidates:
            raise ValueError(f"--{role} {name!r} is not a candidate: {list(candidates)}")
    if weak is not None and weak == strong:
        raise ValueError(f"--weak and --strong name the same candidate {weak!r}")


def choose_pair(
    candidates: Sequence[str], costs: np.ndarray, train_evals: np.ndarray, weak: str | None, strong: str | None
) -> tuple[int, int] | None:
    """``(weak, strong)`` indices: the named ones, else the cheapest candidate
    (:func:`~zooter.eval.cost_quality.cheapest_candidate`, as ``zooter calibrate``) and the best single
    model on train; None when the defaults are the same candidate."""
    check_pair_names(candidates, weak, strong)
    weak_index = candidates.index(weak or cheapest_candidate(costs, train_evals, candidates))
    strong_index = candidates.index(strong or best_single(train_evals, candidates))
    if weak_index == strong_index:  # the defaults coincide (a named pair was checked above)
        return None
    return weak_index, strong_index


def fold_cost_quality(
    utilities: Mapping[str, np.ndarray],
    evals: np.ndarray,
    costs: np.ndarray,
    candidates: Sequence[str],
    train_evals: np.ndarray,
    bma_quality: float,
    rmr: Sequence[str] = (),
    routers: Sequence[str] = (),
    weak: str | None = None,
    strong: str | None = None,
) -> dict[str, Any]:
    """Cost–quality numbers of one fold's test split (see the module docstring).

    ``utilities``: method name → ``[queries, candidates]`` scores; names in ``rmr`` are reward-model
    ranking (one point at the summed cost); names in ``routers`` (utilities = probabilities) also get the
    threshold sweeps. ``costs``: ``[queries, candidates]``. ``train_evals``: the training split's eval
    scores (they pick the default pair and the BMA)."""
    candidate_costs = costs.mean(axis=0)
    qualities = candidate_means(evals)
    cost_range = (float(candidate_costs.min()), float(candidate_costs.max()))
    grid = cost_weight_grid(candidate_costs)
    cheapest = int(np.argmin(candidate_costs))
    fallbacks = {
        kind: fallback_index(kind, candidates, best_single(train_evals, candidates), candidate_costs)
        for kind in FALLBACKS
    }
    pair = choose_pair(list(candidates), candidate_costs, train_evals, weak, strong)
    methods: dict[str, dict[str, Any]] = {}
    for name, utility in utilities.items():
        if name in rmr:
            point_quality = float(expected_scores(decision_weights(utility, evals), evals).mean())
            methods[name] = {"cost": float(costs.sum(axis=1).mean()), "quality": point_quality}
            continue
        curve = decision_curve(utility, evals, costs, cost_weights=grid)
        xs, ys = np.r_[curve.mean_cost, candidate_costs[cheapest]], np.r_[curve.mean_quality, qualities[cheapest]]
        methods[name] = {
            "cost": float(curve.mean_cost[0]),
            "quality": float(curve.mean_quality[0]),
            "aiq": aiq(xs, ys, cost_range),
            "cost_to_match_bma": cost_to_reach(xs, ys, bma_quality),
            "curve": {
                "cost_weight": grid.tolist(),
                "cost": curve.mean_cost.tolist(),
                "quality": curve.mean_quality.tolist(),
            },
        }
        if pair is not None:
            methods[name].update(_pair_numbers(utility, evals, *pair))
        if name in routers:
            methods[name]["threshold_curves"] = _threshold_curves(utility, evals, costs, fallbacks)
    out: dict[str, Any] = {
        "singles": {
            c: {"cost": float(candidate_costs[k]), "quality": float(qualities[k])} for k, c in enumerate(candidates)
        },
        "cost_range": list(cost_range),
        "methods": methods,
        "pair": None,
    }
    if pair is not None:
        w, s = pair
        judged = np.isfinite(evals[:, w]) & np.isfinite(evals[:, s])
        out["pair"] = {
            "weak": candidates[w],
            "strong": candidates[s],
            "queries": int(judged.sum()),
            "left_out": int((~judged).sum()),
            "weak_quality": float(evals[judged, w].mean()),
            "strong_quality": float(evals[judged, s].mean()),
        }
    return out


def _threshold_curves(
    probs: np.ndarray, evals: np.ndarray, costs: np.ndarray, fallbacks: Mapping[str, int]
) -> dict[str, dict[str, list[float]]]:
    """The threshold rule per fallback: thresholds at :data:`THRESHOLD_LEVELS` quantiles of the top
    probability, then +inf (every query falls back)."""
    thresholds = np.r_[np.quantile(probs.max(axis=1), THRESHOLD_LEVELS), np.inf]
    curves = {}
    for kind, index in fallbacks.items():
        curve = decision_curve(probs, evals, costs, thresholds=thresholds, fallback=index)
        curves[kind] = {
            "cost": curve.mean_cost.tolist(),
            "quality": curve.mean_quality.tolist(),
            "fallback_share": curve.fallback_share.tolist(),
        }
    return curves


def _pair_numbers(utility: np.ndarray, evals: np.ndarray, weak: int, strong: int) -> dict[str, Any]:
    """APGR, CPT and the PGR curve (on :data:`SHARE_GRID`) of the two-model rule on the judged queries."""
    judged = np.isfinite(evals[:, weak]) & np.isfinite(evals[:, strong])
    scores = np.nan_to_num(pair_scores(utility[judged], weak, strong), nan=0.0, posinf=0.0, neginf=0.0)
    weak_evals, strong_evals = evals[judged, weak], evals[judged, strong]
    shares, qualities = pair_curve(scores, weak_evals, strong_evals)
    q_weak, q_strong = float(weak_evals.mean()), float(strong_evals.mean())
    numbers = {"apgr": apgr(shares, qualities, q_weak, q_strong)}
    numbers.update({f"cpt{round(100 * t)}": cpt(shares, qualities, q_weak, q_strong, t) for t in CPT_TARGETS})
    pgr = gap_recovered(qualities, q_weak, q_strong)
    numbers["pgr_curve"] = (
        np.interp(SHARE_GRID, shares, pgr) if np.ndim(pgr) else np.full_like(SHARE_GRID, np.nan)
    ).tolist()
    return numbers


CURVE_KEYS = ("curve", "threshold_curves", "pgr_curve")  # per-fold arrays, averaged over folds
SCALARS = ("cost", "quality", "aiq", "cost_to_match_bma", "apgr", "cpt50", "cpt80")


def aggregate_cost_quality(folds: Sequence[dict[str, Any]], mean_std: MeanStd) -> dict[str, Any]:
    """Mean ± std over folds of every number, curves averaged point by point, and the Pareto frontier."""
    first = folds[0]
    singles = {
        c: {key: mean_std([f["singles"][c][key] for f in folds]) for key in ("cost", "quality")}
        for c in first["singles"]
    }
    methods: dict[str, dict[str, Any]] = {}
    for name, numbers in first["methods"].items():
        entry = {key: mean_std([f["methods"][name][key] for f in folds]) for key in SCALARS if key in numbers}
        if "curve" in numbers:
            entry["curve"] = {
                key: np.mean([f["methods"][name]["curve"][key] for f in folds], axis=0).tolist()
                for key in ("cost", "quality")
            }
            entry["curve"]["cost_weight"] = numbers["curve"]["cost_weight"]  # the first fold's λ (equal costs: all)
        if "threshold_curves" in numbers:
            entry["threshold_curves"] = {
                kind: {
                    key: np.mean([f["methods"][name]["threshold_curves"][kind][key] for f in folds], axis=0).tolist()
                    for key in ("cost", "quality", "fallback_share")
                }
                for kind in numbers["threshold_curves"]
            }
        if "pgr_curve" in numbers:
            entry["pgr_curve"] = np.mean([f["methods"][name]["pgr_curve"] for f in folds], axis=0).tolist()
        methods[name] = entry
    names = [*singles, *(n for n in methods if n != ORACLE)]
    points = [singles[n] if n in singles else methods[n] for n in names]
    on_frontier = pareto_frontier([p["cost"]["mean"] for p in points], [p["quality"]["mean"] for p in points])
    out: dict[str, Any] = {
        "singles": singles,
        "methods": methods,
        "frontier": [names[i] for i in on_frontier],
        "cost_range": np.mean([f["cost_range"] for f in folds], axis=0).tolist(),
        "share_grid": SHARE_GRID.tolist(),
        "pair": None,
    }
    if first["pair"] is not None:
        pair = {key: first["pair"][key] for key in ("weak", "strong")}
        for key in ("weak_quality", "strong_quality"):
            pair[key] = mean_std([f["pair"][key] for f in folds])
        pair["left_out"] = sum(f["pair"]["left_out"] for f in folds)
        weak, strong = singles[pair["weak"]], singles[pair["strong"]]
        line = random_mixture_line(
            weak["cost"]["mean"], weak["quality"]["mean"], strong["cost"]["mean"], strong["quality"]["mean"]
        )
        pair["mixture_line"] = {"cost": line[0].tolist(), "quality": line[1].tolist()}
        out["pair"] = pair
    return out
