"""The one definition of every routing metric: pure numpy functions over ``[queries, candidates]``.

Used by :class:`zooter.eval.metrics.RoutingMetrics` during training and testing and by ``zooter report``,
so the same scores give the same numbers in both.

Decisions. A router (or baseline) gives SCORES ``[queries, candidates]`` (higher is better; NaN or
-inf = no preference for that candidate). Its decision for a query is the argmax over the candidates
the EVAL judge scored (a pick that cannot be scored is never made). Scores within
:data:`TIE_TOLERANCE` of the maximum are tied, and tied maxima share the query equally, so every
number is an expected value under uniform tie-breaking (``random`` is its expected value; RMR with a
discrete judge is fair). A query whose scores prefer no evaluable candidate at all is shared by all of
its evaluable candidates.

Per split:

- ``routed_score``: mean eval score of the decisions;
- ``best_single_score``: the same for the best single model on average (BMA), chosen on the TRAINING
  split by :func:`best_single_scores`, falling back to the next best model where BMA is not scored;
- ``oracle_score``: mean of each query's best eval score;
- ``gap_recovered``: ``(routed - best_single) / (oracle - best_single)`` (NaN when oracle = best single);
- ``top1_acc``: share of the decision's weight on the eval judge's best candidates (ties with the best count);
- ``share/<candidate>``: mean decision weight per candidate; ``selection_entropy``: its entropy in nats.

Ranking over subsets (the paper's MTR and uplift; it leaves the pool and ties open):

- pool: on each subset, a method is ranked among the N single candidates by mean eval score (plus
  itself); a single candidate is ranked among the other N - 1;
- rank = 1 + (candidates strictly better) + (candidates tied) / 2 (average rank for ties);
- MTR = mean rank over subsets (lower is better); uplift = share of subsets where no single
  candidate is strictly better (ties count as first).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TIE_TOLERANCE = 1e-6  # scores (and eval scores, and subset means) this close count as tied


def candidate_means(scores: np.ndarray) -> np.ndarray:
    """Mean score of each candidate over the queries that judged it (NaN: judged on none)."""
    scores = np.asarray(scores, dtype=np.float64)
    judged = np.isfinite(scores)
    counts = judged.sum(axis=0)
    sums = np.where(judged, scores, 0.0).sum(axis=0)
    return np.divide(sums, counts, out=np.full(scores.shape[1], np.nan), where=counts > 0)


def best_single_scores(train_scores: np.ndarray) -> np.ndarray:
    """The best single model on average as SCORES over candidates: each candidate's mean training score.

    The one rule for "best single model": the argmax of these (ties shared, as every decision), and
    where that model is not scored, the next best one. Used by the data module (``best_single_score``),
    the report's BMA baseline, the BMA router and the routing fallback (:func:`best_single`)."""
    return candidate_means(train_scores)


def best_single(train_scores: np.ndarray, candidates: Sequence[str]) -> str:
    """The name of the best single model: the first (in candidate order) of the tied best means."""
    means = np.nan_to_num(best_single_scores(train_scores), nan=-np.inf)
    return candidates[int(np.flatnonzero(means >= means.max() - TIE_TOLERANCE)[0])]


def decision_weights(scores: np.ndarray, eval_scores: np.ndarray) -> np.ndarray:
    """``[queries, candidates]`` weights of the decisions: uniform over the tied best-scored evaluable
    candidates (see the module docstring)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = np.broadcast_to(scores, eval_scores.shape)
    evaluable = np.isfinite(eval_scores)
    usable = np.where(evaluable & np.isfinite(scores), scores, -np.inf)
    best = usable.max(axis=1, keepdims=True)
    top = evaluable & (usable >= best - TIE_TOLERANCE)
    top = np.where(np.isfinite(best), top, evaluable)  # no usable preference at all: every evaluable one
    return top / np.maximum(top.sum(axis=1, keepdims=True), 1)


def pick_weights(choice: np.ndarray, eval_scores: np.ndarray) -> np.ndarray:
    """The weights of one pick per query (index ``choice``), scored as any decision: a pick the eval
    judge did not score goes to the query's judged candidates (:func:`decision_weights` of its one-hot)."""
    one_hot = np.zeros(np.shape(eval_scores))
    one_hot[np.arange(len(one_hot)), np.asarray(choice, dtype=np.int64)] = 1.0
    return decision_weights(one_hot, eval_scores)


def expected_scores(weights: np.ndarray, eval_scores: np.ndarray) -> np.ndarray:
    """Per-query expected eval score of a decision."""
    return (weights * np.nan_to_num(eval_scores, nan=0.0)).sum(axis=1)


def oracle_scores(eval_scores: np.ndarray) -> np.ndarray:
    """Per-query best eval score."""
    return np.nanmax(np.where(np.isfinite(eval_scores), eval_scores, np.nan), axis=1)


def top1_hits(weights: np.ndarray, eval_scores: np.ndarray) -> np.ndarray:
    """Per-query weight of the decision on the eval judge's best candidates (ties with the best count)."""
    filled = np.where(np.isfinite(eval_scores), eval_scores, -np.inf)
    is_best = filled >= filled.max(axis=1, keepdims=True) - TIE_TOLERANCE
    return (weights * is_best).sum(axis=1)


def entropy_nats(p: np.ndarray) -> float:
    """Entropy of one distribution in nats (0 log 0 = 0)."""
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def gap_recovered(routed: float, best_single: float, oracle: float) -> float:
    """``(routed - best_single) / (oracle - best_single)``; NaN when the oracle gains nothing."""
    gap = oracle - best_single
    return (routed - best_single) / gap if abs(gap) > 1e-12 else float("nan")


def summarize(
    weights: np.ndarray, eval_scores: np.ndarray, best_single_per_query: np.ndarray, candidates: Sequence[str]
) -> dict[str, float]:
    """Every per-split number of one method (the keys of the module docstring)."""
    routed = float(expected_scores(weights, eval_scores).mean())
    best_single = float(np.mean(best_single_per_query))
    oracle = float(oracle_scores(eval_scores).mean())
    share = weights.mean(axis=0)
    out = {
        "routed_score": routed,
        "best_single_score": best_single,
        "oracle_score": oracle,
        "gap_recovered": gap_recovered(routed, best_single, oracle),
        "top1_acc": float(top1_hits(weights, eval_scores).mean()),
        "selection_entropy": entropy_nats(share),
    }
    out.update({f"share/{c}": float(s) for c, s in zip(candidates, share, strict=True)})
    return out


def paired_bootstrap(
    differences: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean of per-query paired ``differences`` (e.g. router − best single
    on the same queries), resampling queries with replacement."""
    differences = np.asarray(differences, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = differences[rng.integers(0, len(differences), (resamples, len(differences)))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def rank_among(value: float, pool: np.ndarray) -> float:
    """1 + (pool members strictly better) + (tied members) / 2."""
    better = np.sum(pool > value + TIE_TOLERANCE)
    tied = np.sum(np.abs(pool - value) <= TIE_TOLERANCE)
    return float(1 + better + tied / 2)


def mtr_and_uplift(method_means: np.ndarray, candidate_table: np.ndarray) -> tuple[float, float]:
    """Mean task rank and uplift of a method over subsets (``candidate_table[subset, candidate]``)."""
    ranks, first = [], []
    for mean, row in zip(method_means, candidate_table, strict=True):
        pool = row[np.isfinite(row)]
        ranks.append(rank_among(mean, pool))
        first.append(not np.any(pool > mean + TIE_TOLERANCE))
    return float(np.mean(ranks)), float(np.mean(first))


def candidate_mtr(candidate_table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MTR and uplift of each single candidate, ranked among the other candidates."""
    n = candidate_table.shape[1]
    mtr, uplift = np.zeros(n), np.zeros(n)
    for c in range(n):
        others = np.delete(candidate_table, c, axis=1)
        mtr[c], uplift[c] = mtr_and_uplift(candidate_table[:, c], others)
    return mtr, uplift


def subsets_from_labels(labels: Sequence[Sequence[str]], min_size: int = 1) -> dict[str, np.ndarray]:
    """Subset name -> row indices, from each row's labels (tags, or a one-element list of a field)."""
    members: dict[str, list[int]] = {}
    for i, row_labels in enumerate(labels):
        for label in row_labels:
            members.setdefault(label, []).append(i)
    return {name: np.array(rows) for name, rows in sorted(members.items()) if len(rows) >= min_size}


def entropy_bins(entropy: np.ndarray, num_bins: int) -> list[np.ndarray]:
    """Row indices of ``num_bins`` equal-count bins of increasing entropy."""
    order = np.argsort(entropy, kind="stable")
    return [chunk for chunk in np.array_split(order, num_bins) if len(chunk)]
