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


def write_costs(path, params_b: dict[str, float]):
    path.write_text("candidates:\n" + "".join(f"  {name}: {{params_b: {p}}}\n" for name, p in params_b.items()))
    return path


def test_cost_aware_labels_by_hand(tmp_path):
    from zooter.table.costs import load_costs

    # params 10, 20, 40 (FLOPs proxy, proportional to params): c_hat = cost / max = [0.25, 0.5, 1]
    costs = load_costs(write_costs(tmp_path / "costs.yaml", {"a": 10, "b": 20, "c": 40}), candidates=["a", "b", "c"])
    assert costs.unit == "flops"
    penalty = targets.cost_penalty(costs.per_query, 2.0)
    assert_allclose(penalty, [0.5, 1.0, 2.0])  # lambda = 2
    # q1 rewards [1, 1, 1.5] - penalty = logits [0.5, 0, -0.5]: the cheapest, a, now leads (c led before);
    # q2 [2, 0, null] - penalty = [1.5, -1, null]: softmax e^1.5, e^-1 = e^2.5 : 1 over a and b, c stays 0
    rewards = np.array([[1.0, 1.0, 1.5], [2.0, 0.0, NAN]])
    labels = targets.sample_labels(rewards, penalty=penalty)
    e = math.exp
    z1 = e(0.5) + 1 + e(-0.5)
    assert_allclose(labels[0], [e(0.5) / z1, 1 / z1, e(-0.5) / z1])
    assert_allclose(labels[1], [e(2.5) / (e(2.5) + 1), 1 / (e(2.5) + 1), 0.0])
    assert targets.soft_labels(rewards)[0].argmax() == 2 and labels[0].argmax() == 0
    # temperature 2 halves the logits, penalty included: q1 [0.25, 0, -0.25]
    z2 = e(0.25) + 1 + e(-0.25)
    assert_allclose(targets.sample_labels(rewards, 2.0, penalty=penalty)[0], [e(0.25) / z2, 1 / z2, e(-0.25) / z2])
    # beta = 1: build_targets gives these labels; beta = 0.5 mixes them with a tag table built from them
    assert_allclose(targets.build_targets(rewards, [[], []], None, beta=1.0, penalty=penalty), labels)
    table = targets.tag_table(labels, [["t"], ["t"]], judged=np.isfinite(rewards))
    mixed = targets.build_targets(rewards, [["t"], ["t"]], table, beta=0.5, penalty=penalty)
    means, has_tag = targets.tag_means(table, [["t"], ["t"]], 3)
    assert_allclose(mixed, targets.mix_with_tags(labels, means, has_tag, np.isfinite(rewards), 0.5))


def test_zero_cost_weight_gives_exactly_the_plain_targets():
    rewards = np.array([[0.3, 2.0, NAN], [1.0, -1.0, 0.5]])
    tags = [["x"], ["x", "y"]]
    table = targets.tag_table(targets.soft_labels(rewards), tags, judged=np.isfinite(rewards))
    penalty = targets.cost_penalty(np.array([1.0, 5.0, 2.0]), 0.0)
    assert_allclose(penalty, [0.0, 0.0, 0.0], atol=0)
    for method in ("none", "zscore", "rank"):
        plain = targets.build_targets(rewards, tags, table, 0.3, 0.7, method)
        assert np.array_equal(targets.build_targets(rewards, tags, table, 0.3, 0.7, method, penalty), plain)


def test_cost_penalty_checks_its_inputs():
    assert_allclose(targets.cost_penalty(np.zeros(3), 1.0), [0.0, 0.0, 0.0])  # all free: no penalty
    assert_allclose(targets.cost_penalty(np.array([[1.0, 4.0], [2.0, 0.0]]), 0.5), [[0.125, 0.5], [0.25, 0.0]])
    with pytest.raises(ValueError, match=r"cost_weight must be >= 0, got -0\.1"):
        targets.cost_penalty(np.ones(2), -0.1)
    with pytest.raises(ValueError, match="cost_weight must be >= 0, got nan"):
        targets.cost_penalty(np.ones(2), NAN)
    for bad in ([1.0, -1.0], [1.0, NAN], []):
        with pytest.raises(ValueError, match="costs must be finite numbers >= 0"):
            targets.cost_penalty(np.array(bad), 1.0)
