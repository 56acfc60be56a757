"""Losses and routing metrics on hand-made batches, against numbers derived by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional

from zooter.eval.metrics import RoutingMetrics
from zooter.routers.losses import hard_label_cross_entropy, kl_divergence

NAN = float("nan")
FORWARD_KL = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)  # KL([.75,.25] || [.5,.5])
REVERSE_KL = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)  # KL([.5,.5] || [.75,.25])


def test_forward_kl_by_hand_and_equal_to_torch_kl_div():
    logits, target = torch.zeros(1, 2), torch.tensor([[0.75, 0.25]])
    judged = torch.ones(1, 2, dtype=torch.bool)
    assert kl_divergence(logits, target, judged).item() == pytest.approx(FORWARD_KL)
    reference = functional.kl_div(logits.log_softmax(-1), target, reduction="sum")
    assert kl_divergence(logits, target, judged).item() == pytest.approx(reference.item())


def test_reverse_kl_by_hand():
    logits, target = torch.zeros(1, 2), torch.tensor([[0.75, 0.25]])
    judged = torch.ones(1, 2, dtype=torch.bool)
    assert kl_divergence(logits, target, judged, "reverse").item() == pytest.approx(REVERSE_KL)
    with pytest.raises(ValueError, match="unknown KL direction 'sideways'"):
        kl_divergence(logits, target, judged, "sideways")


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_unjudged_candidate_is_ignored_and_gradients_stay_finite(direction):
    logits = torch.tensor([[0.0, 0.0, 5.0]], requires_grad=True)
    target = torch.tensor([[0.75, 0.25, 0.0]])
    judged = torch.tensor([[True, True, False]])
    loss = kl_divergence(logits, target, judged, direction)
    assert loss.item() == pytest.approx(FORWARD_KL if direction == "forward" else REVERSE_KL)
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[0, 2] == 0


def test_hard_label_cross_entropy_splits_ties():
    logits = torch.tensor([[0.0, math.log(2.0), 0.0]])  # router = [1/4, 1/2, 1/4]
    target = torch.tensor([[0.4, 0.4, 0.2]])
    loss = hard_label_cross_entropy(logits, target, torch.ones(1, 3, dtype=torch.bool))
    assert loss.item() == pytest.approx(-(0.5 * math.log(0.25) + 0.5 * math.log(0.5)))


def _batch():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [5.0, 0.0, 0.0]])
    eval_scores = torch.tensor([[1.0, 0.5, 0.0], [0.2, NAN, 0.9], [0.1, 0.7, 0.7]])
    # the best single model is "b" (then "a"): its per-query score, with "a" where "b" is unjudged
    best_single = torch.tensor([0.5, 0.2, 0.7], dtype=torch.float64)
    return logits, eval_scores, best_single


def test_routing_metrics_by_hand():
    metric = RoutingMetrics(["a", "b", "c"])
    logits, eval_scores, best_single = _batch()
    metric.update(logits, eval_scores, best_single)
    out = {k: v.item() for k, v in metric.compute().items()}
    # picks: a (1.0, a hit), c (b is unjudged -> c, 0.9, a hit), a (0.1, best is 0.7: a miss)
    assert out["routed_score"] == pytest.approx(2.0 / 3)
    assert out["oracle_score"] == pytest.approx(2.6 / 3)
    assert out["best_single_score"] == pytest.approx(1.4 / 3)
    assert out["gap_recovered"] == pytest.approx((2.0 - 1.4) / (2.6 - 1.4))
    assert out["top1_acc"] == pytest.approx(2.0 / 3)
    assert [out["share/a"], out["share/b"], out["share/c"]] == pytest.approx([2 / 3, 0.0, 1 / 3])
    assert out["selection_entropy"] == pytest.approx(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)))
    assert "kl" not in out


def test_routing_metrics_share_tied_picks():
    metric = RoutingMetrics(["a", "b", "c"])
    # tied scores on a and b: the query is shared, so its score is the mean of theirs (an expected value)
    metric.update(torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.5]]), torch.tensor([0.5]))
    out = {k: v.item() for k, v in metric.compute().items()}
    assert out["routed_score"] == pytest.approx(0.5)
    assert out["top1_acc"] == pytest.approx(0.5)
    assert [out["share/a"], out["share/b"], out["share/c"]] == pytest.approx([0.5, 0.5, 0.0])


def test_routing_metrics_accumulate_over_batches_and_ties_count_as_hits():
    logits, eval_scores, best_single = _batch()
    whole, parts = RoutingMetrics(["a", "b", "c"]), RoutingMetrics(["a", "b", "c"])
    whole.update(logits, eval_scores, best_single)
    parts.update(logits[:1], eval_scores[:1], best_single[:1])
    parts.update(logits[1:], eval_scores[1:], best_single[1:])
    for key, value in whole.compute().items():
        assert parts.compute()[key].item() == pytest.approx(value.item())
    tie = RoutingMetrics(["a", "b"])
    tie.update(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([1.0]))
    assert tie.compute()["top1_acc"].item() == 1.0


def test_routing_metrics_kl_is_mean_over_queries():
    metric = RoutingMetrics(["a", "b"])
    target = torch.tensor([[0.75, 0.25], [0.5, 0.5]])
    metric.update(torch.zeros(2, 2), torch.ones(2, 2), torch.ones(2), target, torch.ones(2, 2, dtype=torch.bool))
    assert metric.compute()["kl"].item() == pytest.approx(FORWARD_KL / 2)
