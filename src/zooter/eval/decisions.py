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
"""

from __future__ import annotations

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
