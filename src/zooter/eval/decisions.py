"""The cost-aware decision rule, once: the same function in ``zooter route``, :meth:`zooter.Router.route`
and the cost–quality curves of :mod:`zooter.eval.cost_quality` (numpy only, no torch).

Per query, with router probabilities ``p`` over the candidates:

1. the candidate maximising ``p_i − λ·cost_i`` (λ = ``cost_weight`` ≥ 0; λ = 0 is the paper's argmax);
   equal utilities go to the first candidate in order (numpy's argmax), exactly, with no tolerance;
2. with a ``threshold``: a query whose ``max(p) < threshold`` goes to the ``fallback`` candidate
   instead (the caller picks it: the best single model, or the cheapest candidate) and is marked as
   fallen back; a threshold of 0 never falls back, one above 1 always does.

Costs are one number per candidate (``[candidates]``) or per query and candidate (``[queries,
candidates]``), in any unit; only their differences times λ matter.

The fallback of rule 2 is :func:`fallback_index`: the best single model on average (BMA, the default)
or the cheapest candidate (the first in candidate order among equally cheap ones).

The two-model rule (RouteLLM's setting, :func:`pair_choice`): only a ``weak`` (cheap) and a ``strong``
candidate are called; a query goes to the strong one when its pair score ``p_strong − p_weak`` is at
least the threshold, else to the weak one. Thresholds are calibrated as quantiles of the pair score
for a target share of strong calls (:func:`threshold_for_share`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_cost_weight(cost_weight: float, costs: object | None) -> None:
    """Refuse a negative λ, and a λ without costs to weigh (callers check before any model work)."""
    if cost_weight < 0:
        raise ValueError(f"cost_weight must be >= 0, got {cost_weight}")
    if cost_weight != 0 and costs is None:
        raise ValueError(f"cost_weight={cost_weight} needs costs (one number per candidate); none were given")


def cost_aware_choice(
    probs: np.ndarray,
    costs: np.ndarray | None = None,
    cost_weight: float = 0.0,
    threshold: float | None = None,
    fallback: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(choice, fell_back)``: the chosen candidate index per query (int64) and the rows sent to
    ``fallback`` because their top probability is below ``threshold`` (bool; all False without one)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs must be [queries, candidates], got shape {probs.shape}")
    check_cost_weight(cost_weight, costs)
    utility = probs
    if costs is not None and cost_weight != 0:
        costs = np.asarray(costs, dtype=np.float64)
        if costs.shape not in {probs.shape[1:], probs.shape}:
            raise ValueError(
                f"costs must be [candidates] or [queries, candidates] = {probs.shape}, got shape {costs.shape}"
            )
        utility = probs - cost_weight * costs
    choice = utility.argmax(axis=1)
    fell_back = np.zeros(len(probs), dtype=bool)
    if threshold is not None:
        if fallback is None:
            raise ValueError(f"threshold={threshold} needs a fallback candidate index; none was given")
        if not 0 <= fallback < probs.shape[1]:
            raise ValueError(f"fallback index {fallback} is out of range for {probs.shape[1]} candidates")
        fell_back = probs.max(axis=1) < threshold
        choice[fell_back] = fallback
    return choice, fell_back


FALLBACKS = ("best_single", "cheapest")


def fallback_index(kind: str, candidates: Sequence[str], best_single: str | None, costs: np.ndarray | None) -> int:
    """The candidate a query below the threshold goes to: ``best_single`` (the BMA's index) or
    ``cheapest`` (the least ``costs``, one per candidate; the first of equally cheap ones)."""
    if kind == "best_single":
        if best_single is None:
            raise ValueError("a threshold needs the best single model (fallback 'best_single'), which is unknown here")
        return list(candidates).index(best_single)
    if kind == "cheapest":
        if costs is None:
            raise ValueError("fallback 'cheapest' needs costs (one number per candidate)")
        return int(np.argmin(np.asarray(costs, dtype=np.float64)))
    raise ValueError(f"unknown fallback {kind!r}: use one of {list(FALLBACKS)}")


def pair_scores(probs: np.ndarray, weak: int, strong: int) -> np.ndarray:
    """``p_strong − p_weak`` per query: how much more the router wants the strong candidate."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs must be [queries, candidates], got shape {probs.shape}")
    for name, index in (("weak", weak), ("strong", strong)):
        if not 0 <= index < probs.shape[1]:
            raise ValueError(f"{name} index {index} is out of range for {probs.shape[1]} candidates")
    if weak == strong:
        raise ValueError(f"weak and strong must be two candidates, got index {weak} for both")
    return probs[:, strong] - probs[:, weak]


def pair_choice(probs: np.ndarray, weak: int, strong: int, threshold: float) -> np.ndarray:
    """The chosen index per query (``strong`` or ``weak``, int64): strong where the pair score ≥ threshold."""
    strong_rows = pair_scores(probs, weak, strong) >= threshold
    return np.where(strong_rows, strong, weak).astype(np.int64)


def threshold_for_share(pair: np.ndarray, share: float) -> float:
    """The threshold sending the share ``share`` of these pair scores to the strong candidate: the
    ``round(share·n)``-th largest score (``+inf`` for share 0, so nothing reaches it). Ties at the
    threshold all go strong, so the achieved share can exceed ``share`` by the tied rows."""
    pair = np.sort(np.asarray(pair, dtype=np.float64).ravel())[::-1]
    if not 0 <= share <= 1:
        raise ValueError(f"share must lie in [0, 1], got {share}")
    if len(pair) == 0:
        raise ValueError("no pair scores to calibrate on")
    k = round(share * len(pair))
    return float("inf") if k == 0 else float(pair[k - 1])
