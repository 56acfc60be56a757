"""The matrix factorisation router: scores, its three losses and add_candidate, against numbers derived
by hand (the CLI round trip of configs/router/mf.yaml is in test_routers.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from zooter.data.batching import RoutingCollator, RoutingDataset
from zooter.routers.matrix_factorization import MatrixFactorizationRouter
from zooter.runs.add_candidate import fit_new_candidate

NAN = float("nan")
CANDIDATES = ["a", "b", "c"]


def make_router(**kwargs) -> MatrixFactorizationRouter:
    torch.manual_seed(0)
    return MatrixFactorizationRouter(CANDIDATES, vocab_size=40, pretrained=False, dim=4, **kwargs).eval()


def fixed_scores(router: MatrixFactorizationRouter, scores: list[list[float]]) -> torch.Tensor:
    """Make ``router.scores`` return ``scores`` (a leaf that collects the loss's gradient)."""
    values = torch.tensor(scores, requires_grad=True)
    router.scores = lambda batch: values
    return values


def token_batch(rows: int = 2) -> dict[str, torch.Tensor]:
    ids = torch.tensor([[2, 7, 9, 11, 3], [2, 5, 3, 0, 0]])[:rows]
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def test_scores_are_projected_query_dot_candidate_embedding_plus_bias():
    router = make_router()
    query = torch.zeros(1, router.hidden_size)
    query[0, :2] = torch.tensor([1.0, 2.0])
    router.embed = lambda batch: query
    with torch.no_grad():
        router.projection.weight.zero_()
        router.projection.weight[0, 0] = router.projection.weight[1, 1] = 1.0  # W q = [1, 2, 0, 0]
        router.candidate_embeddings.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0]]))
        router.candidate_bias.copy_(torch.tensor([0.0, 0.5, -1.0]))
    assert router.scores({}).tolist() == [[1.0, 2.5, 2.0]]


def test_mse_is_the_mean_over_judged_candidates_per_query():
    router = make_router(loss="mse")
    scores = fixed_scores(router, [[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])
    batch = {"rewards": torch.tensor([[0.5, 2.0, NAN], [1.0, 0.0, 1.0]])}
    loss = router.loss(batch)
    # query 0: ((1 - 0.5)^2 + (2 - 2)^2) / 2, c unjudged; query 1: (0.5^2 + 1^2 + 2^2) / 3
    assert loss.tolist() == pytest.approx([0.125, 1.75])
    loss.sum().backward()
    assert torch.isfinite(scores.grad).all() and scores.grad[0, 2] == 0
    assert scores.grad[0].tolist() == pytest.approx([0.5, 0.0, 0.0])  # d/ds (s - r)^2 / 2 = s - r


def test_bce_reads_rewards_as_probabilities():
    router = make_router(loss="bce")
    scores = fixed_scores(router, [[0.0, math.log(3.0), 5.0], [0.0, 0.0, math.log(3.0)]])
    batch = {"rewards": torch.tensor([[1.0, 0.0, NAN], [0.25, 1.0, 0.0]])}
    loss = router.loss(batch)
    # sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4; query 0: (-ln 1/2 - ln 1/4) / 2; query 1: (ln 2 + ln 2 + ln 4) / 3
    assert loss.tolist() == pytest.approx([1.5 * math.log(2.0), 4 / 3 * math.log(2.0)])
    loss.sum().backward()
    assert torch.isfinite(scores.grad).all() and scores.grad[0, 2] == 0


def test_bce_refuses_rewards_outside_zero_one():
    router = make_router(loss="bce")
    fixed_scores(router, [[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"loss 'bce' needs rewards in \[0, 1\].*got rewards in \[-0\.5, 1\.5\]"):
        router.loss({"rewards": torch.tensor([[1.5, -0.5, NAN]])})


def test_kl_distils_the_soft_targets_at_the_temperature():
    router = make_router(loss="kl", score_temperature=2.0)
    # scores / 2 = [0, 0, 3.5] and [ln 3, 0, 3.5]: over the judged a, b the router gives [1/2, 1/2] and [3/4, 1/4]
    fixed_scores(router, [[0.0, 0.0, 7.0], [2 * math.log(3.0), 0.0, 7.0]])
    batch = {
        "target": torch.tensor([[0.75, 0.25, 0.0], [0.75, 0.25, 0.0]]),
        "judged": torch.tensor([[True, True, False], [True, True, False]]),
    }  # no rewards: kl needs only the targets
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert router.loss(batch).tolist() == pytest.approx([expected, 0.0], abs=1e-6)
    router.hparams.score_temperature = 1.0  # [0.9, 0.1] for query 1
    second = 0.75 * math.log(0.75 / 0.9) + 0.25 * math.log(0.25 / 0.1)
    assert router.loss(batch).tolist() == pytest.approx([expected, second], abs=1e-6)


def test_reward_losses_need_rewards_and_bad_settings_are_refused():
    router = make_router(loss="mse")
    fixed_scores(router, [[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"loss 'mse' needs batch\['rewards'\]"):
        router.loss({"target": torch.ones(1, 3) / 3, "judged": torch.ones(1, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        make_router(loss="hinge")
    with pytest.raises(ValueError, match="score_temperature > 0"):
        make_router(score_temperature=0.0)


def test_add_candidate_keeps_old_scores_and_adds_one_column():
    router = make_router()
    batch = token_batch()
    with torch.no_grad():
        router.candidate_bias.copy_(torch.tensor([0.3, -0.2, 0.5]))
        before = router.scores(batch)
    old_embeddings = router.candidate_embeddings.detach().clone()
    grown = router.add_candidate("d")
    with torch.no_grad():
        after = router.scores(batch)
    assert router.candidates == router.hparams.candidates == ["a", "b", "c", "d"]
    assert after.shape == (2, 4)
    torch.testing.assert_close(after[:, :3], before, rtol=0, atol=1e-6)  # a wider matmul rounds differently
    # the new candidate starts as the average one: mean embedding and bias, so the mean of the old scores
    torch.testing.assert_close(router.candidate_embeddings[3].detach(), old_embeddings.mean(0))
    torch.testing.assert_close(after[:, 3], before.mean(1))
    params = dict(router.named_parameters())
    for parameter, mask in grown:
        assert any(parameter is p for p in params.values())  # registered, so saved and optimised
        assert mask.shape == parameter.shape and mask[-1].all() and not mask[:-1].any()


def test_fitting_only_the_new_candidate_leaves_the_old_ones_untouched():
    router = make_router(loss="mse")
    ids = [[2, 7, 9, 3], [2, 5, 3], [2, 8, 8, 6, 3], [2, 4, 3]]
    rewards = torch.tensor([[0.1, 0.2, 0.3, 2.0], [0.0, 1.0, NAN, -1.0], [1.0, 0.0, 0.5, 3.0], [0.2, 0.2, 0.2, NAN]])
    dataset = RoutingDataset(ids, torch.full((4, 4), 0.25), torch.isfinite(rewards).numpy(), rewards=rewards.numpy())
    collate = RoutingCollator(SimpleNamespace(pad_token_id=0, padding_side="right"))
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=collate)
    batch = collate([dataset[i] for i in range(4)])
    with torch.no_grad():
        before = router.scores(batch)
    fit_new_candidate(router, "d", loader, epochs=5, lr=0.1)
    with torch.no_grad():
        after = router.scores(batch)
    torch.testing.assert_close(after[:, :3], before, rtol=0, atol=1e-6)  # a wider matmul rounds differently
    assert not torch.allclose(after[:, 3], before.mean(1))  # the new candidate was fitted
