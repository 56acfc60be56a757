"""Baselines and evaluation metrics on a hand-made table, against numbers derived by hand."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from zooter.eval.cost import CostModel
from zooter.eval.functional import (
    best_single,
    candidate_means,
    candidate_mtr,
    decision_weights,
    entropy_bins,
    expected_scores,
    mtr_and_uplift,
    rank_among,
    subsets_from_labels,
    summarize,
)
from zooter.routers import baseline_scores as baselines

NAN = float("nan")
# candidates a, b, c; four test queries; b is not scored on the last one
EVAL = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 1.0], [0.5, 0.5, 0.0], [1.0, NAN, 0.0]])
TAGS = [["x"], ["x"], ["y"], ["y"]]
TRAIN = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.5]])  # means a 2/3 > c 1/2 > b 1/3
TRAIN_TAGS = [["x"], ["x"], ["y"]]
JUDGE = np.array([[0.2, 0.9, 0.1], [0.3, 0.3, 0.1], [0.9, 0.1, 0.2], [0.1, 0.8, 0.5]])


def score_of(prefs: np.ndarray) -> float:
    return float(expected_scores(decision_weights(prefs, EVAL), EVAL).mean())


def test_oracle_random_rmr_and_best_single_by_hand():
    assert score_of(baselines.oracle(EVAL)) == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    # random: the mean of each query's scored candidates
    assert score_of(baselines.random_choice(4, 3)) == pytest.approx((0.5 + 2 / 3 + 1 / 3 + 0.5) / 4)
    # RMR: b, a|b tie (0.5), a, then b is unscored -> c
    assert score_of(baselines.reward_model_ranking(JUDGE)) == pytest.approx((0 + 0.5 + 0.5 + 0) / 4)
    assert score_of(baselines.reward_model_ranking(EVAL)) == score_of(baselines.oracle(EVAL))
    assert score_of(baselines.best_single(TRAIN, 4)) == pytest.approx((1 + 0 + 0.5 + 1) / 4)


def test_best_single_falls_back_to_the_next_best_model():
    scores = np.array([[NAN, 0.2, 0.7]])
    weights = decision_weights(baselines.best_single(np.array([[1.0, 0.0, 0.5]]), 1), scores)
    assert_allclose(weights, [[0, 0, 1]])


def test_summary_by_hand():
    weights = decision_weights(baselines.best_single(TRAIN, 4), EVAL)
    bma = expected_scores(weights, EVAL)
    summary = summarize(weights, EVAL, bma, ["a", "b", "c"])
    assert summary["routed_score"] == pytest.approx(0.625)
    assert summary["best_single_score"] == pytest.approx(0.625)
    assert summary["oracle_score"] == pytest.approx(0.875)
    assert summary["gap_recovered"] == pytest.approx(0.0)
    assert summary["top1_acc"] == pytest.approx(0.75)  # a is among the best on q0, q2, q3
    assert summary["selection_entropy"] == pytest.approx(0.0)
    assert [summary[f"share/{c}"] for c in "abc"] == pytest.approx([1, 0, 0])
    rmr = summarize(decision_weights(baselines.reward_model_ranking(JUDGE), EVAL), EVAL, bma, ["a", "b", "c"])
    assert rmr["gap_recovered"] == pytest.approx((0.25 - 0.625) / 0.25)
    assert [rmr[f"share/{c}"] for c in "abc"] == pytest.approx([(0 + 0.5 + 1 + 0) / 4, (1 + 0.5) / 4, 1 / 4])
    assert rmr["top1_acc"] == pytest.approx((0 + 0.5 + 1 + 0) / 4)


def test_best_single_is_one_rule_with_ties_shared_and_a_first_name():
    train = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, NAN]])  # a and b tie at 0.5; c is 0 on the one query it has
    assert_allclose(candidate_means(train), [0.5, 0.5, 0.0])
    assert best_single(train, ["a", "b", "c"]) == "a"  # the routing fallback: the first tied best
    weights = decision_weights(baselines.best_single(train, 2), np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert_allclose(weights, [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])  # the metrics: the tie shares each query


def test_one_tolerance_for_ties_in_decisions():
    scores = np.array([[0.5, 0.5 + 5e-7, 0.1], [0.5, 0.5 + 5e-6, 0.1]])
    weights = decision_weights(scores, np.ones((2, 3)))
    assert_allclose(weights, [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])


def test_tag_majority_and_unseen_tags():
    # x: a best; y: b best, but b is unscored on q3 -> c (second on tag y)
    assert score_of(baselines.tag_majority(TRAIN_TAGS, TRAIN, TAGS)) == pytest.approx((1 + 0 + 0.5 + 0) / 4)
    prefs = baselines.tag_majority(TRAIN_TAGS, TRAIN, [["never-seen"]])
    assert_allclose(prefs, baselines.best_single(TRAIN, 1))


def test_knn_and_choice_of_k():
    train_emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    query = np.array([[1.0, 0.05]])
    assert_allclose(baselines.knn(train_emb, TRAIN, query, 1), TRAIN[:1])
    assert_allclose(baselines.knn(train_emb, TRAIN, query, 2), [[1.0, 0.0, 0.5]])
    labels = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    # k=1 -> a; k=2 -> a|c tie; k=3 -> c (2 of 3 neighbours)
    assert baselines.choose_k(train_emb, labels, query, np.array([[0.0, 0.0, 1.0]]), (1, 2, 3)) == 3
    assert baselines.choose_k(train_emb, labels, query, np.array([[1.0, 0.0, 0.0]]), (1, 2, 3)) == 1


def test_mtr_and_uplift_with_ties_by_hand():
    subsets = subsets_from_labels(TAGS)
    assert {k: v.tolist() for k, v in subsets.items()} == {"x": [0, 1], "y": [2, 3]}
    table = np.stack([candidate_means(EVAL[rows]) for rows in subsets.values()])
    assert_allclose(table, [[0.5, 0.5, 0.75], [0.75, 0.5, 0.0]])
    oracle = np.array([1.0, 0.75])
    assert mtr_and_uplift(oracle, table) == pytest.approx((1.25, 1.0))  # y: tied with a -> rank 1.5
    bma = np.array([0.5, 0.75])
    assert mtr_and_uplift(bma, table) == pytest.approx((2.25, 0.5))  # x: c better, a and b tied -> 3
    mtr, uplift = candidate_mtr(table)  # each candidate ranked among the other two
    assert_allclose(mtr, [(2.5 + 1) / 2, (2.5 + 2) / 2, (1 + 3) / 2])
    assert_allclose(uplift, [0.5, 0.0, 0.5])
    assert rank_among(0.5, np.array([0.5, 0.75])) == 2.5


def test_entropy_bins_and_cost():
    bins = entropy_bins(np.array([0.3, 0.1, 0.2, 0.0, 0.5]), 2)
    assert [b.tolist() for b in bins] == [[3, 1, 2], [0, 4]]
    cost = CostModel(
        llm_params=13e9, router_params=86e6, reward_model_params=7e9, prompt_tokens=100, response_tokens=400
    )
    assert cost.routed() == pytest.approx(2 * 86e6 * 100 + 2 * 13e9 * 500)
    assert cost.reward_model_ranking(6) / cost.routed() == pytest.approx(6 * 20e9 * 500 / (86e6 * 100 + 13e9 * 500))


def test_paired_bootstrap_interval_brackets_the_mean_and_excludes_zero_only_when_it_should():
    from zooter.eval.functional import paired_bootstrap

    clear = np.r_[np.full(80, 0.1), np.full(20, -0.1)]  # mean 0.06, se about 0.008
    low, high = paired_bootstrap(clear)
    assert 0 < low < 0.06 < high < 0.08
    noise = np.random.default_rng(1).choice([-1.0, 1.0], 200)  # mean near 0
    low, high = paired_bootstrap(noise)
    assert low < noise.mean() < high and low < 0 < high
    assert paired_bootstrap(clear, seed=3) == paired_bootstrap(clear, seed=3)
