"""Target formulas against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from zooter.data import targets

NAN = float("nan")


def test_softmax_masks_unjudged_candidates():
    e = math.e
    labels = targets.soft_labels(np.array([[1.0, 0.0, NAN]]))
    assert_allclose(labels, [[e / (e + 1), 1 / (e + 1), 0.0]])


def test_temperature_divides_rewards():
    labels = targets.soft_labels(np.array([[1.0, 0.0]]), temperature=2.0)
    root = math.exp(0.5)
    assert_allclose(labels, [[root / (root + 1), 1 / (root + 1)]])
    with pytest.raises(ValueError, match="temperature must be > 0"):
        targets.soft_labels(np.array([[1.0, 0.0]]), temperature=0.0)


def test_softmax_is_stable_for_large_rewards():
    assert_allclose(targets.soft_labels(np.array([[1000.0, 1000.0]])), [[0.5, 0.5]])


def test_zscore_per_query_ignores_unjudged():
    out = targets.standardize(np.array([[1.0, 2.0, 3.0], [1.0, NAN, 3.0], [2.0, 2.0, NAN]]), "zscore")
    s = math.sqrt(2 / 3)
    assert_allclose(out[0], [-1 / s, 0.0, 1 / s])
    assert_allclose(out[1], [-1.0, NAN, 1.0])
    assert_allclose(out[2], [0.0, 0.0, NAN])


def test_log_and_logit_for_probabilities():
    rewards = np.array([[0.5, 0.25, 0.0]])
    assert_allclose(targets.standardize(rewards, "log"), [[math.log(0.5), math.log(0.25), math.log(1e-10)]])
    assert_allclose(targets.standardize(rewards, "logit")[0, :2], [0.0, math.log(1 / 3)])
    with pytest.raises(ValueError, match=r"needs rewards in \[0, 1\]"):
        targets.standardize(np.array([[2.0, 0.5]]), "log")


def test_rank_averages_ties_and_scales_to_unit_interval():
    out = targets.standardize(np.array([[3.0, 1.0, 3.0, NAN]]), "rank")
    assert_allclose(out, [[0.75, 0.0, 0.75, NAN]])


def test_unknown_standardization():
    with pytest.raises(ValueError, match="unknown standardization 'minmax'"):
        targets.standardize(np.zeros((1, 2)), "minmax")


def test_entropy_in_nats():
    assert_allclose(targets.entropy(np.array([[0.5, 0.5], [1.0, 0.0]])), [math.log(2), 0.0])
    assert_allclose(targets.entropy(np.full((1, 4), 0.25)), [math.log(4)])


def test_tag_table_never_reads_a_null_as_zero():
    # rewards [[2, null], [0, 0]] under one tag: s = [1, 0] and [0.5, 0.5]; candidate a's mean over both
    # queries is 0.75, b's over the one query that judged it is 0.5; renormalised: [0.6, 0.4]
    rewards = np.array([[2.0, np.nan], [0.0, 0.0]])
    labels = targets.soft_labels(rewards)
    assert_allclose(labels, [[1.0, 0.0], [0.5, 0.5]])
    table = targets.tag_table(labels, [["t"], ["t"]], judged=np.isfinite(rewards))
    assert_allclose(table.means, [[0.6, 0.4]])
    # reading the null as 0 would give [0.75, 0.25]
    assert_allclose(targets.tag_table(labels, [["t"], ["t"]]).means, [[0.75, 0.25]])
    # a candidate no query of the tag judged stays unknown; the mixture leaves it out
    only_a = targets.tag_table(np.array([[1.0, 0.0]]), [["u"]], judged=np.array([[True, False]]))
    assert only_a.means[0, 0] == 1.0 and np.isnan(only_a.means[0, 1])
    means, has_tag = targets.tag_means(only_a, [["u"]], 2)
    mixed = targets.mix_with_tags(np.array([[0.5, 0.5]]), means, has_tag, np.ones((1, 2), bool), 0.5)
    assert_allclose(mixed, [[0.75, 0.25]])


def test_tag_table_means_and_min_count():
    labels = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    tags = [["x"], ["x", "y"], ["y"]]
    table = targets.tag_table(labels, tags)
    assert table.tags == ["x", "y"]
    assert_allclose(table.means, [[0.5, 0.5], [0.25, 0.75]])
    assert table.counts.tolist() == [2, 2]
    assert targets.tag_table(labels, tags, min_count=3).tags == []
    rare = targets.tag_table(np.vstack([labels, [[1.0, 0.0]]]), [*tags, ["z"]], min_count=2)
    assert rare.tags == ["x", "y"]


def test_tag_means_average_known_tags_only():
    table = targets.TagTable(tags=["x", "y"], means=np.array([[0.5, 0.5], [0.25, 0.75]]), counts=np.array([2, 2]))
    means, has_tag = targets.tag_means(table, [["x", "y", "unseen"], ["unseen"], []], 2)
    assert_allclose(means[0], [0.375, 0.625])
    assert has_tag.tolist() == [True, False, False]


@pytest.mark.parametrize(("beta", "expected"), [(1.0, [0.8, 0.2]), (0.3, [0.5025, 0.4975]), (0.0, [0.375, 0.625])])
def test_beta_mixing(beta, expected):
    labels = np.array([[0.8, 0.2], [0.6, 0.4]])
    tag_mean = np.array([[0.375, 0.625], [0.0, 0.0]])
    mixed = targets.mix_with_tags(labels, tag_mean, np.array([True, False]), np.ones((2, 2), bool), beta)
    assert_allclose(mixed[0], expected)
    assert_allclose(mixed[1], [0.6, 0.4])  # no known tag: keeps s(q)


def test_mixing_keeps_unjudged_candidates_at_zero():
    labels = np.array([[0.6, 0.4, 0.0]])
    judged = np.array([[True, True, False]])
    mixed = targets.mix_with_tags(labels, np.array([[0.2, 0.3, 0.5]]), np.array([True]), judged, 0.5)
    assert_allclose(mixed, [[0.5, 0.5, 0.0]])
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\]"):
        targets.mix_with_tags(labels, labels, np.array([True]), judged, 1.5)


def test_build_targets_pipeline_by_hand():
    rewards = np.array([[2.0, 0.0], [0.0, 2.0]])
    tags = [["x"], ["x"]]
    labels = targets.soft_labels(rewards)
    table = targets.tag_table(labels, tags)
    assert_allclose(table.means, [[0.5, 0.5]])
    out = targets.build_targets(rewards, tags, table, beta=0.3)
    assert_allclose(out, 0.3 * labels + 0.7 * 0.5)
    assert_allclose(out.sum(axis=1), [1.0, 1.0])
    assert_allclose(targets.build_targets(rewards, tags, table, beta=1.0), labels)
