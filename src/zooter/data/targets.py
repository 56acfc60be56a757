"""Training targets from rewards: pure functions over ``[queries, candidates]`` arrays.

NaN marks a candidate that was not judged for a query. Such a candidate gets probability 0 in every
target, and the remaining mass is spread over the judged candidates only.

The pipeline, in order (every step is a config value of the data module):

1. :func:`standardize` the raw rewards per query (``none``, ``zscore``, ``log``, ``logit``, ``rank``);
2. :func:`soft_labels`: ``s(q) = softmax(r(q) / temperature)`` over judged candidates (the paper: T = 1);
   for training for cost (optional), :func:`sample_labels` first subtracts :func:`cost_penalty`:
   ``s(q) = softmax((r(q) - lambda * c_hat) / temperature)`` with ``c_hat_i = cost_i / max_j cost_j``;
3. :func:`tag_table`: ``s_t`` = mean of ``s(q')`` over the TRAINING queries carrying tag ``t``;
4. :func:`mix_with_tags`: ``s*(q) = beta * s(q) + (1 - beta) * mean_{t in T(q)} s_t``; a query with no
   known tag keeps ``s(q)``.

The defaults are the paper's Zooter: ``beta`` = 0.3 (:data:`PAPER_BETA`) and ``temperature`` = 1 on raw
rewards; ``beta`` = 1 (sample-level labels only, tags ignored) is an ablation to ask for explicitly.

Training for cost (LLMRouter's performance-cost trade-off, ``data.costs`` + ``data.cost_weight``): the
costs are divided by the pool's largest, so ``c_hat`` is unitless in ``[0, 1]`` and ``lambda`` is in
units of the standardized reward, comparable across cost files (price or FLOPs). ``lambda`` = 0 (the
default) leaves the labels exactly as without costs. Steps 3 and 4 then run on these cost-aware labels
(the tag table too), so ``s*(q)`` leans towards cheaper candidates where the rewards are close.

A null is never read as a zero. In step 3, each candidate's entry of ``s_t`` is its mean over the
tag's training queries that JUDGED it, and ``s_t`` is then renormalised to sum to 1 (rewards
``[[2, null], [0, 0]]`` under one tag: ``s = [1, 0], [0.5, 0.5]``, candidate means ``[0.75, 0.5]``,
``s_t = [0.6, 0.4]``); a candidate no query of the tag judged stays unknown (NaN). In step 4 the tag
mean of a query averages, per candidate, the tags that know it, and is restricted to the candidates
the query judged (and renormalised), so ``s*(q)`` is a distribution over exactly ``s(q)``'s candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Standardization = Literal["none", "zscore", "log", "logit", "rank"]
PROBABILITY_CLIP = 1e-10
PAPER_BETA = 0.3  # the paper's best mix (Zooter, Table 2); 1 = sample-level labels only (an ablation)
PAPER_TEMPERATURE = 1.0  # the paper's softmax temperature over raw rewards


def standardize(rewards: np.ndarray, method: Standardization = "none") -> np.ndarray:
    """Rescale raw rewards per query; NaN (not judged) stays NaN.

    - ``zscore``: subtract the query's mean and divide by its standard deviation (0 where all are equal);
    - ``log`` / ``logit``: for rewards that are probabilities, clipped to ``[1e-10, 1 - 1e-10]``;
    - ``rank``: average rank among the query's judged candidates, scaled to ``[0, 1]`` (ties share a rank).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if method == "none":
        return rewards.copy()
    if method == "zscore":
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(rewards, axis=1, keepdims=True)
            std = np.nanstd(rewards, axis=1, keepdims=True)
        scaled = np.where(std > 0, (rewards - mean) / np.where(std > 0, std, 1.0), 0.0)
        return np.where(np.isfinite(rewards), scaled, np.nan)
    if method in ("log", "logit"):
        finite = rewards[np.isfinite(rewards)]
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            raise ValueError(
                f"standardization {method!r} needs rewards in [0, 1]; got [{finite.min()}, {finite.max()}]"
            )
        p = np.clip(rewards, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
        return np.log(p) if method == "log" else np.log(p) - np.log1p(-p)
    if method == "rank":
        return _average_rank(rewards)
    raise ValueError(f"unknown standardization {method!r}; use one of none, zscore, log, logit, rank")


def _average_rank(rewards: np.ndarray) -> np.ndarray:
    judged = np.isfinite(rewards)
    filled = np.where(judged, rewards, -np.inf)
    below = (filled[:, None, :] < filled[:, :, None]) & judged[:, None, :]
    equal = (filled[:, None, :] == filled[:, :, None]) & judged[:, None, :]
    rank = below.sum(-1) + (equal.sum(-1) - 1) / 2.0  # 0-based average rank
    n_judged = judged.sum(1, keepdims=True)
    scaled = rank / np.maximum(n_judged - 1, 1)
    return np.where(judged, scaled, np.nan)


def soft_labels(rewards: np.ndarray, temperature: float = PAPER_TEMPERATURE) -> np.ndarray:
    """``softmax(rewards / temperature)`` over each query's judged candidates (0 where not judged)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    rewards = np.asarray(rewards, dtype=np.float64)
    judged = np.isfinite(rewards)
    if not judged.any(axis=1).all():
        raise ValueError("every query needs at least one judged candidate")
    logits = np.where(judged, rewards / temperature, -np.inf)
    logits = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def cost_penalty(costs: np.ndarray, cost_weight: float) -> np.ndarray:
    """``lambda * c_hat``, with ``c_hat = costs / costs.max()`` (in ``[0, 1]``; all 0 when every cost is 0):
    the amount :func:`sample_labels` subtracts from the standardized rewards. ``costs``: finite, >= 0, one
    per candidate (or any shape that broadcasts against the rewards)."""
    if not cost_weight >= 0:
        raise ValueError(f"cost_weight must be >= 0, got {cost_weight}")
    costs = np.asarray(costs, dtype=np.float64)
    if costs.size == 0 or not np.isfinite(costs).all() or costs.min() < 0:
        raise ValueError(f"costs must be finite numbers >= 0, got {costs}")
    top = costs.max()
    return cost_weight * (costs / top if top > 0 else np.zeros_like(costs))


def sample_labels(
    rewards: np.ndarray,
    temperature: float = PAPER_TEMPERATURE,
    standardization: Standardization = "none",
    penalty: np.ndarray | None = None,
) -> np.ndarray:
    """Steps 1-2: ``s(q) = softmax((standardize(r(q)) - penalty) / temperature)`` (no penalty: none)."""
    scaled = standardize(rewards, standardization)
    return soft_labels(scaled if penalty is None else scaled - penalty, temperature)


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats of each row (0 log 0 = 0)."""
    p = np.asarray(probabilities, dtype=np.float64)
    logs = np.log(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=-1)


@dataclass
class TagTable:
    """Mean label per tag over the training split: ``means[k]`` belongs to ``tags[k]``."""

    tags: list[str]
    means: np.ndarray
    counts: np.ndarray

    def index(self) -> dict[str, int]:
        return {t: k for k, t in enumerate(self.tags)}


def tag_table(
    labels: np.ndarray, tags: Sequence[Sequence[str]], min_count: int = 1, judged: np.ndarray | None = None
) -> TagTable:
    """``s_t`` per tag: each candidate's mean label over the tag's queries that judged it, renormalised
    to sum to 1 (NaN where no query of the tag judged the candidate; tags seen ``< min_count`` times
    dropped). ``judged``: the ``[queries, candidates]`` mask of judged candidates (default: all).

    Pass the TRAINING split only, so no evaluation query leaks into the table.
    """
    judged = np.ones(labels.shape, dtype=bool) if judged is None else np.asarray(judged, dtype=bool)
    vocabulary: dict[str, int] = {}
    rows, cols = _tag_pairs(tags, vocabulary, grow=True)
    counts = np.bincount(cols, minlength=len(vocabulary))
    sums = np.zeros((len(vocabulary), labels.shape[1]))
    judged_counts = np.zeros_like(sums)
    np.add.at(sums, cols, np.where(judged[rows], labels[rows], 0.0))
    np.add.at(judged_counts, cols, judged[rows])
    keep = counts >= max(min_count, 1)
    names = [t for t, k in vocabulary.items() if keep[k]]
    means = np.divide(sums, judged_counts, out=np.full_like(sums, np.nan), where=judged_counts > 0)[keep]
    means /= np.nansum(means, axis=1, keepdims=True)
    return TagTable(tags=names, means=means, counts=counts[keep])


def tag_means(table: TagTable, tags: Sequence[Sequence[str]], num_candidates: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query and candidate, the mean of ``s_t`` over the query's known tags that know the candidate
    (NaN where none does), and a mask of queries with at least one known tag."""
    rows, cols = _tag_pairs(tags, table.index(), grow=False)
    values = table.means[cols]
    known = np.isfinite(values)
    sums = np.zeros((len(tags), num_candidates))
    counts = np.zeros_like(sums)
    np.add.at(sums, rows, np.where(known, values, 0.0))
    np.add.at(counts, rows, known)
    has_tag = np.bincount(rows, minlength=len(tags)) > 0
    return np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0), has_tag


def mix_with_tags(
    labels: np.ndarray, tag_mean: np.ndarray, has_tag: np.ndarray, judged: np.ndarray, beta: float
) -> np.ndarray:
    """``beta * s(q) + (1 - beta) * tag mean``; queries with no known tag keep ``s(q)``.

    The tag mean is restricted to the query's judged candidates that its tags know, and renormalised,
    so the result is a distribution over exactly the candidates ``s(q)`` covers.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    restricted = np.where(judged & np.isfinite(tag_mean), tag_mean, 0.0)
    mass = restricted.sum(axis=1, keepdims=True)
    usable = has_tag & (mass[:, 0] > 0)
    restricted = np.divide(restricted, mass, out=np.zeros_like(restricted), where=mass > 0)
    mixed = beta * labels + (1 - beta) * restricted
    return np.where(usable[:, None], mixed, labels)


def _tag_pairs(tags: Sequence[Sequence[str]], vocabulary: dict[str, int], grow: bool) -> tuple[np.ndarray, np.ndarray]:
    """(query index, tag index) for every known tag of every query; ``grow`` adds unseen tags."""
    rows, cols = [], []
    for i, query_tags in enumerate(tags):
        for tag in query_tags:
            k = vocabulary.setdefault(tag, len(vocabulary)) if grow else vocabulary.get(tag)
            if k is not None:
                rows.append(i)
                cols.append(k)
    return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)


def build_targets(
    rewards: np.ndarray,
    tags: Sequence[Sequence[str]],
    table: TagTable | None,
    beta: float = PAPER_BETA,
    temperature: float = PAPER_TEMPERATURE,
    standardization: Standardization = "none",
    penalty: np.ndarray | None = None,
) -> np.ndarray:
    """The whole pipeline for one split: standardize, subtract the cost ``penalty`` (:func:`cost_penalty`,
    if any), softmax, then mix with the (training) tag table."""
    labels = sample_labels(rewards, temperature, standardization, penalty)
    if table is None or beta == 1.0:
        return labels
    means, has_tag = tag_means(table, tags, rewards.shape[1])
    return mix_with_tags(labels, means, has_tag, np.isfinite(rewards), beta)
