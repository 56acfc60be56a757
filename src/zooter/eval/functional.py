"""Routing decisions scored by an evaluation judge: pure numpy functions over ``[queries, candidates]``.

Every method (router or baseline) is reduced to PREFERENCES ``[queries, candidates]`` (higher is
better). Its decision for a query is the argmax over the candidates the eval judge scored; tied
maxima share the query equally, so a method's score is its expected score under uniform tie-breaking
(this makes ``random`` its expected value and RMR with a discrete judge fair).

Ranking metrics over subsets (the paper's MTR and uplift; it leaves the pool and ties open):

- pool: on each subset, a method is ranked among the N single candidates plus itself, by mean eval
  score on that subset; a single candidate is ranked among the N candidates;
- rank = 1 + (number of candidates strictly better) + (number tied) / 2 (average rank for ties);
- MTR = mean rank over subsets (lower is better);
- uplift = share of subsets where no single candidate is strictly better (ties count as first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TIE_TOLERANCE = 1e-9


def decision_weights(preferences: np.ndarray, eval_scores: np.ndarray) -> np.ndarray:
    """``[queries, candidates]`` weights: uniform over each query's best-preferred evaluable candidates."""
    evaluable = np.isfinite(eval_scores)
    prefs = np.where(evaluable & np.isfinite(preferences), preferences, -np.inf)
    best = prefs.max(axis=1, keepdims=True)
    top = evaluable & (prefs >= best - TIE_TOLERANCE)
    top = np.where(np.isfinite(best), top, evaluable)  # no usable preference at all: every evaluable one
    return top / top.sum(axis=1, keepdims=True)


def expected_scores(weights: np.ndarray, eval_scores: np.ndarray) -> np.ndarray:
    """Per-query expected eval score of a decision."""
    return (weights * np.nan_to_num(eval_scores, nan=0.0)).sum(axis=1)


def entropy_nats(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@dataclass
class MethodSummary:
    """The headline numbers of one method on one split."""

    score: float
    gap_recovered: float
    top1_acc: float
    selection_entropy: float
    share: np.ndarray

    def as_dict(self, candidates: Sequence[str]) -> dict[str, float]:
        out = {
            "score": self.score,
            "gap_recovered": self.gap_recovered,
            "top1_acc": self.top1_acc,
            "selection_entropy": self.selection_entropy,
        }
        out.update({f"share/{c}": float(s) for c, s in zip(candidates, self.share, strict=True)})
        return out


def summarize(weights: np.ndarray, eval_scores: np.ndarray, best_single: float, oracle: float) -> MethodSummary:
    """Mean score, gap recovered vs the best single model, top-1 (hit = in the eval judge's best set),
    entropy of the routing shares, and the shares themselves."""
    per_query = expected_scores(weights, eval_scores)
    score = float(per_query.mean())
    filled = np.where(np.isfinite(eval_scores), eval_scores, -np.inf)
    is_best = filled >= filled.max(axis=1, keepdims=True) - TIE_TOLERANCE
    top1 = float((weights * is_best).sum(axis=1).mean())
    share = weights.mean(axis=0)
    gap = oracle - best_single
    return MethodSummary(
        score=score,
        gap_recovered=(score - best_single) / gap if abs(gap) > 1e-12 else float("nan"),
        top1_acc=top1,
        selection_entropy=entropy_nats(share),
        share=share,
    )


def candidate_means(eval_scores: np.ndarray) -> np.ndarray:
    """Mean eval score of always choosing each candidate (over the queries it was judged on)."""
    with np.errstate(invalid="ignore"):
        return np.nanmean(eval_scores, axis=0)


def rank_among(value: float, pool: np.ndarray) -> float:
    """1 + (pool members strictly better) + (tied members) / 2."""
    better = np.sum(pool > value + TIE_TOLERANCE)
    tied = np.sum(np.abs(pool - value) <= TIE_TOLERANCE)
    return float(1 + better + tied / 2)


def subset_ranks(method_means: np.ndarray, candidate_table: np.ndarray) -> np.ndarray:
    """Rank of a method on each subset among the single candidates (``candidate_table[subset, candidate]``)."""
    return np.array(
        [rank_among(m, row[np.isfinite(row)]) for m, row in zip(method_means, candidate_table, strict=True)]
    )


def mtr_and_uplift(method_means: np.ndarray, candidate_table: np.ndarray) -> tuple[float, float]:
    """Mean task rank and uplift rate of a method over subsets (see the module docstring)."""
    ranks = subset_ranks(method_means, candidate_table)
    first = [
        not np.any(row[np.isfinite(row)] > m + TIE_TOLERANCE)
        for m, row in zip(method_means, candidate_table, strict=True)
    ]
    return float(ranks.mean()), float(np.mean(first))


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


@dataclass
class CostModel:
    """Inference cost per query in FLOPs (forward pass = 2 x parameters x tokens).

    Args:
        llm_params: parameters of each candidate LLM (paper: 13e9).
        router_params: parameters of the router (paper: 86e6 for mdeberta-v3-base's backbone).
        reward_model_params: parameters of the reward model used by RMR (paper's QwenRM: 7e9).
        prompt_tokens: tokens of a query.
        response_tokens: tokens of a generated answer.
    """

    llm_params: float = 13e9
    router_params: float = 86e6
    reward_model_params: float = 7e9
    prompt_tokens: int = 100
    response_tokens: int = 400

    def routed(self) -> float:
        """Router on the prompt + one LLM generation."""
        tokens = self.prompt_tokens + self.response_tokens
        return 2 * self.router_params * self.prompt_tokens + 2 * self.llm_params * tokens

    def reward_model_ranking(self, num_candidates: int) -> float:
        """N generations + N reward-model passes over prompt and answer."""
        tokens = self.prompt_tokens + self.response_tokens
        return num_candidates * 2 * (self.llm_params + self.reward_model_params) * tokens

    def single(self) -> float:
        return 2 * self.llm_params * (self.prompt_tokens + self.response_tokens)
