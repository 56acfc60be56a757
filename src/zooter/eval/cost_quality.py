"""Cost–quality numbers of routers: Pareto frontier, non-decreasing hull, AIQ, APGR, CPT, zero router.

Numpy only, pure functions. A point is one router (or one decision rule, e.g. one threshold) summarised
as (mean cost per query, mean quality). Any two points can be mixed at random per query, so every point
on the segment between them is reachable (expected cost and quality are linear in the mixing share).

RouterBench (Hu et al., 2024, "RouterBench: A Benchmark for Multi-LLM Routing System", sec. 3):

- the non-decreasing convex hull: the upper convex hull of the points, kept up to its best quality and
  flat after it (more budget never lowers quality: one can always fall back to a cheaper router);
- AIQ ("average improvement in quality"): the area under that hull over a cost range divided by the
  range, i.e. the hull's mean quality over the range;
- the zero router: random mixtures of two single models (:func:`random_mixture_line`).

RouteLLM (Ong et al., 2024, "RouteLLM: Learning to Route LLMs with Preference Data", sec. 5;
``routellm/evals/evaluate.py``), between a weak (cheap) and a strong model, over a threshold sweep that
gives points (share of calls to the strong model, quality):

- PGR (performance gap recovered) = ``(q - q_weak) / (q_strong - q_weak)``, which is
  :func:`zooter.eval.functional.gap_recovered` with the weak model as baseline and the strong as ceiling;
- APGR: the area under PGR against the strong-call share over [0, 1];
- CPT(x%): the smallest strong-call share at which PGR reaches x%.

Conventions (ours where the sources leave them open):

- equal points count once; qualities within :data:`~zooter.eval.functional.TIE_TOLERANCE` are tied
  for the frontier (the higher-cost one is dominated);
- curves are piecewise linear between their points (trapezoids for areas, linear interpolation for CPT);
- a RouteLLM curve is completed with the two ends every router between the two models reaches: all
  calls weak (share 0, PGR 0) and all strong (share 1, PGR 1), unless it has its own point at share 0
  or 1; PGR is never clipped (below 0 or above 1 counts as it is);
- ``q_strong == q_weak`` (within 1e-12): there is no gap to recover, PGR is undefined, and APGR and CPT
  are NaN.

Points of one router come from :func:`decision_curve`: the runtime rule
(:func:`zooter.eval.decisions.cost_aware_choice`) over a sweep of λ or of thresholds, each decision
scored as the metrics score any decision (:func:`zooter.eval.functional.decision_weights`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zooter.eval.decisions import check_cost_weight, cost_aware_choice
from zooter.eval.functional import (
    TIE_TOLERANCE,
    best_single,
    decision_weights,
    expected_scores,
    gap_recovered,
    pick_weights,
)

LOW_PENALTY = 1e-4  # λ·(cost range) at the grid's low end: utilities move by at most this (near the argmax)
HIGH_PENALTY = 2.0  # λ·(smallest cost gap) at the high end: above any probability gap (every call cheapest)
POINTS_PER_DECADE = 50  # consecutive λ of the grid differ by 10^(1/50) - 1 = 4.7%


def _points(costs: np.ndarray, qualities: np.ndarray, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(costs, dtype=np.float64).ravel()
    y = np.asarray(qualities, dtype=np.float64).ravel()
    if len(x) != len(y):
        raise ValueError(f"{names[0]} and {names[1]} differ in length: {len(x)} vs {len(y)}")
    if len(x) == 0:
        raise ValueError(f"no points: {names[0]} and {names[1]} are empty")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"{names[0]} and {names[1]} must be finite (NaN or inf found)")
    return x, y


def pareto_frontier(costs: np.ndarray, qualities: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points, by increasing cost.

    A point is dominated when another costs no more and gives no less quality, one of them strictly
    (qualities within ``TIE_TOLERANCE`` are equal). Of identical points the first index is kept."""
    x, y = _points(costs, qualities, ("costs", "qualities"))
    order = np.lexsort((np.arange(len(x)), -y, x))  # cost up, then quality down, then index
    kept, best = [], -np.inf
    for i in order:
        if y[i] > best + TIE_TOLERANCE:
            kept.append(int(i))
            best = y[i]
    return np.array(kept, dtype=np.int64)


def upper_hull(costs: np.ndarray, qualities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``(costs, qualities)`` of the non-decreasing upper convex hull (RouterBench).

    From the best point at the lowest cost along the upper convex hull up to the cheapest point of best
    quality, then flat at that quality to the highest cost: the last vertex ``(max cost, best quality)``
    is added when that point is not itself a vertex. The hull's value at cost c is the linear
    interpolation of the vertices. A single cost gives one vertex."""
    x, y = _points(costs, qualities, ("costs", "qualities"))
    order = np.lexsort((-y, x))  # by cost, the best first at equal costs (the chain drops the others)
    x, y = x[order], y[order]
    peak = int(np.argmax(y))  # the cheapest point of best quality
    hull: list[int] = []
    for i in range(peak + 1):  # monotone chain, upper part, left to right
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a])
            if cross < 0:  # b lies strictly above the chord a-i: keep it
                break
            hull.pop()
        hull.append(i)
    hx, hy = x[hull], y[hull]
    if x[-1] > hx[-1]:
        hx, hy = np.r_[hx, x[-1]], np.r_[hy, hy[-1]]
    return hx, hy


def aiq(costs: np.ndarray, qualities: np.ndarray, cost_range: tuple[float, float] | None = None) -> float:
    """RouterBench's AIQ: the area under :func:`upper_hull` over ``cost_range`` divided by its width.

    ``cost_range`` defaults to (min cost, max cost) of the points; above the max cost the hull stays
    flat, below the min cost it is undefined (ValueError). A zero-width range (e.g. a single point)
    gives the hull's value at that cost, the limit of the mean."""
    hx, hy = upper_hull(costs, qualities)
    lo, hi = (hx[0], hx[-1]) if cost_range is None else (float(cost_range[0]), float(cost_range[1]))
    if hi < lo:
        raise ValueError(f"cost_range {(lo, hi)} is reversed: give (low, high)")
    if lo < hx[0]:
        raise ValueError(f"cost_range starts at {lo}, below the cheapest point ({hx[0]}): the hull is undefined there")
    if hi == lo:
        return float(np.interp(lo, hx, hy))
    inside = (hx > lo) & (hx < hi)
    gx = np.r_[lo, hx[inside], hi]
    gy = np.interp(gx, hx, hy)  # flat beyond the last vertex
    return float(np.sum((gx[1:] - gx[:-1]) * (gy[1:] + gy[:-1]) / 2) / (hi - lo))


def random_mixture_line(
    cost_a: float, quality_a: float, cost_b: float, quality_b: float, n: int = 11
) -> tuple[np.ndarray, np.ndarray]:
    """RouterBench's zero router: ``n`` points ``(costs, qualities)`` of sending each query to model b with
    probability p = 0, 1/(n-1), ..., 1 and to a otherwise (expected cost and quality: (1-p)·a + p·b)."""
    if n < 2:
        raise ValueError(f"n must be at least 2 (the two models), got {n}")
    p = np.linspace(0.0, 1.0, n)
    return (1 - p) * cost_a + p * cost_b, (1 - p) * quality_a + p * quality_b


def _pgr_curve(
    strong_shares: np.ndarray, qualities: np.ndarray, weak_quality: float, strong_quality: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """(shares, PGR) sorted by share then PGR, completed with (0, 0) and (1, 1); None without a gap."""
    s, q = _points(strong_shares, qualities, ("strong_shares", "qualities"))
    if ((s < 0) | (s > 1)).any():
        raise ValueError(f"strong_shares must lie in [0, 1], got {s[(s < 0) | (s > 1)].tolist()}")
    pgr = gap_recovered(q, weak_quality, strong_quality)
    if np.isscalar(pgr):  # NaN: q_strong == q_weak
        return None
    if not (s == 0).any():
        s, pgr = np.r_[0.0, s], np.r_[0.0, pgr]
    if not (s == 1).any():
        s, pgr = np.r_[s, 1.0], np.r_[pgr, 1.0]
    order = np.lexsort((pgr, s))
    return s[order], pgr[order]


def apgr(strong_shares: np.ndarray, qualities: np.ndarray, weak_quality: float, strong_quality: float) -> float:
    """RouteLLM's APGR: the trapezoid area under PGR against the strong-call share over [0, 1].

    The straight line from all-weak to all-strong (random routing) gives 0.5. NaN when
    ``strong_quality == weak_quality`` (no gap to recover; see the module docstring)."""
    curve = _pgr_curve(strong_shares, qualities, weak_quality, strong_quality)
    if curve is None:
        return float("nan")
    s, pgr = curve
    return float(np.sum((s[1:] - s[:-1]) * (pgr[1:] + pgr[:-1]) / 2))


def cpt(
    strong_shares: np.ndarray, qualities: np.ndarray, weak_quality: float, strong_quality: float, target: float
) -> float:
    """RouteLLM's CPT(target): the smallest strong-call share at which PGR ≥ ``target`` (0.5 for CPT(50%)).

    Walks the curve by increasing share and interpolates linearly inside the first segment that reaches
    the target. NaN when the curve never reaches it (possible only with a point at share 1 below the
    target, or a target above every PGR) or when ``strong_quality == weak_quality``."""
    curve = _pgr_curve(strong_shares, qualities, weak_quality, strong_quality)
    if curve is None:
        return float("nan")
    s, pgr = curve
    reached = np.flatnonzero(pgr >= target)
    if len(reached) == 0:
        return float("nan")
    j = int(reached[0])
    if j == 0:
        return float(s[0])
    return float(s[j - 1] + (target - pgr[j - 1]) / (pgr[j] - pgr[j - 1]) * (s[j] - s[j - 1]))


def cost_to_reach(costs: np.ndarray, qualities: np.ndarray, target: float) -> float:
    """The least cost at which :func:`upper_hull` reaches quality ``target`` (within ``TIE_TOLERANCE``),
    interpolated along a hull segment (a random mixture of its two ends); NaN when no point reaches it."""
    hx, hy = upper_hull(costs, qualities)
    reached = np.flatnonzero(hy >= target - TIE_TOLERANCE)
    if len(reached) == 0:
        return float("nan")
    j = int(reached[0])
    if j == 0 or hy[j] - hy[j - 1] <= 0:
        return float(hx[j])
    return float(hx[j - 1] + (target - hy[j - 1]) / (hy[j] - hy[j - 1]) * (hx[j] - hx[j - 1]))


def pair_curve(pair: np.ndarray, weak_evals: np.ndarray, strong_evals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(strong shares, mean qualities)`` of the two-model rule at every distinct threshold.

    Queries sorted by pair score (:func:`zooter.eval.decisions.pair_scores`) go strong from the top; as
    :func:`~zooter.eval.decisions.pair_choice` sends equal pair scores the same way, a curve point sits
    at every boundary between distinct scores, from share 0 (all weak) to 1 (all strong). Every query
    must be judged for both models (the caller leaves the others out)."""
    pair = np.asarray(pair, dtype=np.float64).ravel()
    weak = np.asarray(weak_evals, dtype=np.float64).ravel()
    strong = np.asarray(strong_evals, dtype=np.float64).ravel()
    if not (len(pair) == len(weak) == len(strong)) or len(pair) == 0:
        raise ValueError(f"pair, weak_evals and strong_evals must be equally long and non-empty: "
                         f"{len(pair)}, {len(weak)}, {len(strong)}")  # fmt: skip
    if not (np.isfinite(pair).all() and np.isfinite(weak).all() and np.isfinite(strong).all()):
        raise ValueError("pair scores and both models' evals must be finite (leave unjudged queries out)")
    order = np.argsort(-pair, kind="stable")
    gains = np.r_[0.0, np.cumsum((strong - weak)[order])]
    sorted_pair = pair[order]
    k = np.r_[0, np.flatnonzero(sorted_pair[1:] != sorted_pair[:-1]) + 1, len(pair)]
    return k / len(pair), (weak.sum() + gains[k]) / len(pair)


@dataclass(frozen=True)
class DecisionCurve:
    """One point per setting of a sweep of :func:`decision_curve` (arrays ``[settings]`` unless noted)."""

    parameter: str  # "cost_weight" or "threshold": what ``values`` sweeps
    values: np.ndarray  # λ or the threshold, in the order given
    mean_cost: np.ndarray  # mean cost per query of the decisions
    mean_quality: np.ndarray  # mean eval score of the decisions (``routed_score``)
    shares: np.ndarray  # [settings, candidates]: share of calls per candidate (rows sum to 1)
    fallback_share: np.ndarray  # share of queries sent to the fallback (0 in a λ sweep)


def decision_curve(
    probs: np.ndarray,
    evals: np.ndarray,
    costs: np.ndarray,
    *,
    cost_weights: np.ndarray | None = None,
    thresholds: np.ndarray | None = None,
    fallback: int | None = None,
) -> DecisionCurve:
    """Cost and quality of the runtime decision rule over a sweep of λ (``cost_weights``, no threshold)
    or of ``thresholds`` (λ = 0, rows below the threshold to the ``fallback`` index); give exactly one.

    ``probs`` and ``evals`` are ``[queries, candidates]`` (evals: the eval judge's scores, NaN =
    unjudged), ``costs`` is ``[candidates]`` or ``[queries, candidates]``. Each decision is scored as
    the metrics score a decision (:func:`~zooter.eval.functional.decision_weights`): a pick that cannot
    be scored is never made (the query goes to its best judged candidate), and in a λ sweep utilities
    ``p − λ·cost`` tied within ``TIE_TOLERANCE`` share the query equally, so λ = 0 gives the methods
    table's ``routed_score`` and score matrices full of ties (baselines, the oracle) give expected
    values, not the first index; the runtime rule breaks such ties by order, which only matters where
    utilities tie exactly. Costs and call shares follow the same weights."""
    probs = np.asarray(probs, dtype=np.float64)
    evals = np.asarray(evals, dtype=np.float64)
    cost_matrix = np.broadcast_to(np.asarray(costs, dtype=np.float64), probs.shape)
    if evals.shape != probs.shape:
        raise ValueError(f"evals must have the shape of probs {probs.shape}, got {evals.shape}")
    if (cost_weights is None) == (thresholds is None):
        raise ValueError("give exactly one of cost_weights (a λ sweep) and thresholds (a threshold sweep)")
    parameter = "cost_weight" if thresholds is None else "threshold"
    values = np.asarray(cost_weights if thresholds is None else thresholds, dtype=np.float64).ravel()
    mean_cost, mean_quality, shares, fallback_share = [], [], [], []
    for value in values:
        if parameter == "cost_weight":
            check_cost_weight(float(value), cost_matrix)
            weights = decision_weights(probs - float(value) * cost_matrix, evals)  # ties shared, as the metrics
            fell_back = np.zeros(len(probs), dtype=bool)
        else:
            choice, fell_back = cost_aware_choice(probs, threshold=float(value), fallback=fallback)
            weights = pick_weights(choice, evals)
        mean_cost.append(float((weights * cost_matrix).sum(axis=1).mean()))
        mean_quality.append(float(expected_scores(weights, evals).mean()))
        shares.append(weights.mean(axis=0))
        fallback_share.append(float(fell_back.mean()))
    return DecisionCurve(
        parameter,
        values,
        np.array(mean_cost),
        np.array(mean_quality),
        np.array(shares).reshape(len(values), probs.shape[1]),
        np.array(fallback_share),
    )


def cost_weight_grid(costs: np.ndarray) -> np.ndarray:
    """The λ a budget or ``match_best_single`` search tries: 0, then a geometric grid from
    ``LOW_PENALTY / (max cost − min cost)`` (the argmax up to 1e-4 of utility) to
    ``HIGH_PENALTY / (smallest gap between two distinct costs)`` (every query to its cheapest candidate:
    a penalty gap of 2 outweighs any probability gap), ``POINTS_PER_DECADE`` points per decade.
    Equal costs give ``[0]`` (λ changes nothing)."""
    levels = np.unique(np.asarray(costs, dtype=np.float64))
    if len(levels) < 2:
        return np.zeros(1)
    low, high = LOW_PENALTY / (levels[-1] - levels[0]), HIGH_PENALTY / np.diff(levels).min()
    points = math.ceil(math.log10(high / low) * POINTS_PER_DECADE) + 1
    return np.r_[0.0, np.geomspace(low, high, points)]


def cheapest_candidate(costs: np.ndarray, train_evals: np.ndarray, candidates: Sequence[str]) -> str:
    """The candidate of least cost; among equally cheap ones, the best single model on train (mean eval
    score, :func:`~zooter.eval.functional.best_single`)."""
    costs = np.asarray(costs, dtype=np.float64)
    tied = np.flatnonzero(costs <= costs.min())
    return best_single(np.asarray(train_evals)[:, tied], [candidates[i] for i in tied])
