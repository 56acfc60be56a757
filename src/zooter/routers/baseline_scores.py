"""Baseline scores over ``[queries, candidates]``: pure numpy, shared by the baseline routers
(:mod:`zooter.routers.baselines`) and ``zooter report``.

Each function gives a method's SCORES (higher is better; NaN = no preference), turned into decisions by
:func:`zooter.eval.functional.decision_weights` (ties shared). Learned baselines average training scores
per candidate over the queries that judged it (a null is never read as 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zooter.eval.functional import best_single_scores, candidate_means, decision_weights, expected_scores

DEFAULT_K = (1, 3, 5, 10, 20, 50, 100, 200, 500)  # k > the training set counts as all of it


def best_single(train_scores: np.ndarray, num_queries: int) -> np.ndarray:
    """Every query scores candidates by their mean training score: BMA, falling back to the next best
    model where BMA is not scored."""
    return np.tile(best_single_scores(train_scores), (num_queries, 1))


def random_choice(num_queries: int, num_candidates: int) -> np.ndarray:
    """No preference: the expected score of a uniformly random evaluable candidate."""
    return np.zeros((num_queries, num_candidates))


def oracle(eval_scores: np.ndarray) -> np.ndarray:
    """The eval judge's own best candidate."""
    return np.array(eval_scores, dtype=np.float64)


def reward_model_ranking(judge_scores: np.ndarray) -> np.ndarray:
    """RMR: generate with all N, keep the answer this judge scores best (ties split; unscored: no preference)."""
    return np.array(judge_scores, dtype=np.float64)


def tag_means(train_tags: Sequence[Sequence[str]], train_scores: np.ndarray) -> dict[str, np.ndarray]:
    """Each training tag's mean score per candidate (over the queries with that tag that judged it)."""
    members: dict[str, list[int]] = {}
    for i, row_tags in enumerate(train_tags):
        for tag in row_tags:
            members.setdefault(tag, []).append(i)
    return {tag: candidate_means(train_scores[rows]) for tag, rows in members.items()}


def tag_majority_from_means(
    means: dict[str, np.ndarray], fallback: np.ndarray, tags: Sequence[Sequence[str]]
) -> np.ndarray:
    """Scores of tag-majority: the mean of a query's known tags' vectors (NaN entries left out), or
    ``fallback`` (the BMA scores) when none of its tags is known."""
    scores = np.empty((len(tags), len(fallback)))
    for i, row_tags in enumerate(tags):
        known = [means[t] for t in row_tags if t in means]
        scores[i] = candidate_means(np.stack(known)) if known else fallback
    return scores


def tag_majority(
    train_tags: Sequence[Sequence[str]], train_scores: np.ndarray, tags: Sequence[Sequence[str]]
) -> np.ndarray:
    """Tag-majority scores of queries with ``tags``, learned from the training split."""
    return tag_majority_from_means(tag_means(train_tags, train_scores), best_single_scores(train_scores), tags)


def knn(train_embeddings: np.ndarray, train_scores: np.ndarray, embeddings: np.ndarray, k: int) -> np.ndarray:
    """Mean training score of the k most cosine-similar training queries."""
    a = train_embeddings / np.linalg.norm(train_embeddings, axis=1, keepdims=True)
    b = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    k = min(k, len(a))
    nearest = np.argpartition(-(b @ a.T), k - 1, axis=1)[:, :k]
    return np.stack([candidate_means(train_scores[rows]) for rows in nearest])


def choose_k(
    train_embeddings: np.ndarray,
    train_scores: np.ndarray,
    val_embeddings: np.ndarray,
    val_eval_scores: np.ndarray,
    candidates_k: Sequence[int] = DEFAULT_K,
) -> int:
    """The k with the best mean eval score on the validation split (smallest k on ties)."""
    best_k, best_score = candidates_k[0], -np.inf
    for k in candidates_k:
        scores = knn(train_embeddings, train_scores, val_embeddings, k)
        score = expected_scores(decision_weights(scores, val_eval_scores), val_eval_scores).mean()
        if score > best_score + 1e-12:
            best_k, best_score = k, score
    return best_k
