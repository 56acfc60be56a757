"""Baselines as preference matrices ``[queries, candidates]`` (see :mod:`zooter.eval.functional`).

Baselines that learn from the training split (best single model, tag-majority, kNN) use the
training split's scores of ``label_judge``; the report passes the eval judge, as an evaluator with
those labels would. None of them needs a GPU; kNN needs query embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zooter.eval.functional import decision_weights, expected_scores


def nan_mean(scores: np.ndarray, axis: int = 0) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        means = np.nanmean(scores, axis=axis)
    return np.nan_to_num(means, nan=-np.inf)


def best_single(train_scores: np.ndarray, num_queries: int) -> np.ndarray:
    """Every query prefers candidates by their mean training score: the best single model on average
    (BMA), falling back to the next best one where BMA is not scored."""
    return np.tile(nan_mean(train_scores), (num_queries, 1))


def random_choice(num_queries: int, num_candidates: int) -> np.ndarray:
    """No preference: the expected score of a uniformly random evaluable candidate."""
    return np.zeros((num_queries, num_candidates))


def oracle(eval_scores: np.ndarray) -> np.ndarray:
    """The eval judge's own best candidate."""
    return eval_scores.copy()


def reward_model_ranking(judge_scores: np.ndarray) -> np.ndarray:
    """RMR: generate with all N, keep the answer this judge scores best (ties split uniformly)."""
    return np.where(np.isfinite(judge_scores), judge_scores, -np.inf)


def tag_majority(
    train_tags: Sequence[Sequence[str]], train_scores: np.ndarray, tags: Sequence[Sequence[str]]
) -> np.ndarray:
    """Per tag, the mean training score of each candidate; a query averages its known tags' vectors and
    falls back to the best single model when none of its tags was seen in training."""
    members: dict[str, list[int]] = {}
    for i, row_tags in enumerate(train_tags):
        for tag in row_tags:
            members.setdefault(tag, []).append(i)
    tag_vectors = {tag: nan_mean(train_scores[rows]) for tag, rows in members.items()}
    fallback = nan_mean(train_scores)
    # where the tags cannot separate candidates (equal means), the best single model's order decides
    tie_break = 1e-6 * np.argsort(np.argsort(fallback)) / len(fallback)
    prefs = np.empty((len(tags), train_scores.shape[1]))
    for i, row_tags in enumerate(tags):
        known = [tag_vectors[t] for t in row_tags if t in tag_vectors]
        prefs[i] = np.mean(known, axis=0) + tie_break if known else fallback
    return prefs


def knn(train_embeddings: np.ndarray, train_scores: np.ndarray, embeddings: np.ndarray, k: int) -> np.ndarray:
    """Mean training score of the k most cosine-similar training queries."""
    a = train_embeddings / np.linalg.norm(train_embeddings, axis=1, keepdims=True)
    b = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    k = min(k, len(a))
    nearest = np.argpartition(-(b @ a.T), k - 1, axis=1)[:, :k]
    return np.stack([nan_mean(train_scores[rows]) for rows in nearest])


def choose_k(
    train_embeddings: np.ndarray,
    train_scores: np.ndarray,
    val_embeddings: np.ndarray,
    val_eval_scores: np.ndarray,
    candidates_k: Sequence[int] = (1, 3, 5, 10, 20, 50),
) -> int:
    """The k with the best mean eval score on the validation split (smallest k on ties)."""
    best_k, best_score = candidates_k[0], -np.inf
    for k in candidates_k:
        prefs = knn(train_embeddings, train_scores, val_embeddings, k)
        score = expected_scores(decision_weights(prefs, val_eval_scores), val_eval_scores).mean()
        if score > best_score + 1e-12:
            best_k, best_score = k, score
    return best_k
