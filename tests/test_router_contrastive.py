"""The RouterDC-style router: cosine scores, the sample-LLM contrastive loss (ties, unjudged candidates),
the kl variant, the sample-sample loss on tags and add_candidate, against numbers derived by hand (the
CLI round trip of configs/router/routerdc.yaml is in test_routers.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from zooter.data.batching import RoutingCollator, RoutingDataset
from zooter.routers.contrastive import (
    RouterDCRouter,
    contrastive_masks,
    sample_llm_contrastive_loss,
    sample_sample_contrastive_loss,
)
from zooter.routers.losses import kl_divergence
from zooter.runs.add_candidate import fit_new_candidate

NAN = float("nan")
CANDIDATES = ["a", "b", "c", "d", "e"]


def make_router(**kwargs) -> RouterDCRouter:
    torch.manual_seed(0)
    return RouterDCRouter(CANDIDATES, vocab_size=40, pretrained=False, **kwargs).eval()


def fixed_pooled(router: RouterDCRouter, rows: list[list[float]]) -> torch.Tensor:
    """Make ``router.embed`` return these vectors (padded with zeros to the hidden size)."""
    pooled = torch.zeros(len(rows), router.hidden_size)
    pooled[:, : len(rows[0])] = torch.tensor(rows)
    router.embed = lambda batch: pooled
    return pooled


def set_embeddings(router: RouterDCRouter, rows: list[list[float]]) -> None:
    with torch.no_grad():
        router.candidate_embeddings.zero_()
        router.candidate_embeddings[:, : len(rows[0])] = torch.tensor(rows)


def token_batch(rows: int = 2) -> dict[str, torch.Tensor]:
    ids = torch.tensor([[2, 7, 9, 11, 3], [2, 5, 3, 0, 0]])[:rows]
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# rewards of two queries over a..e (top_k = bottom_k = 2):
#  q0: d unjudged; b and c tie at the 2nd/3rd place, so that group crosses both boundaries and is neither
#      positive nor negative: positives {a}, negatives {e}
#  q1: a and b tie for the best and fit the 2 places together: positives {a, b}, negatives {c, d}
REWARDS = torch.tensor([[2.0, 1.0, 1.0, NAN, -1.0], [1.0, 1.0, 0.0, -0.5, NAN]])


def test_positives_and_negatives_keep_ties_together_and_skip_unjudged():
    positive, negative = contrastive_masks(REWARDS, top_k=2, bottom_k=2)
    assert positive.tolist() == [[True, False, False, False, False], [True, True, False, False, False]]
    assert negative.tolist() == [[False, False, False, False, True], [False, False, True, True, False]]
    # a tie group too large for the places still joins when it is the best (worst) one
    positive, negative = contrastive_masks(torch.tensor([[1.0, 1.0, 1.0, 0.0, NAN]]), top_k=1, bottom_k=1)
    assert positive.tolist() == [[True, True, True, False, False]]
    assert negative.tolist() == [[False, False, False, True, False]]
    # top_k is capped at (judged - 1): with three judged and top_k 3, the worst is still a negative
    positive, negative = contrastive_masks(torch.tensor([[3.0, NAN, 2.0, 1.0, NAN]]), top_k=3, bottom_k=3)
    assert positive.tolist() == [[True, False, True, False, False]]
    assert negative.tolist() == [[False, False, False, True, False]]


def test_contrastive_loss_by_hand():
    scores = torch.tensor([[1.0, 0.5, 3.0, 9.0, -0.5], [0.0, 1.0, 2.0, -1.0, 5.0]], requires_grad=True)
    loss = sample_llm_contrastive_loss(scores, REWARDS, top_k=2, bottom_k=2)
    # q0: -log(e^1 / (e^1 + e^-0.5)); c (tied, 3.0) and d (unjudged, 9.0) take no part
    first = -math.log(math.exp(1.0) / (math.exp(1.0) + math.exp(-0.5)))
    # q1: the mean over the positives a (0) and b (1) against the negatives c (2) and d (-1)
    negatives = math.exp(2.0) + math.exp(-1.0)
    second = (-math.log(1 / (1 + negatives)) - math.log(math.e / (math.e + negatives))) / 2
    assert loss.tolist() == pytest.approx([first, second], abs=1e-6)
    assert first == pytest.approx(softplus(-1.5))
    loss.sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert scores.grad[0, 1:4].tolist() == [0.0, 0.0, 0.0] and scores.grad[1, 4] == 0


def test_queries_without_a_preference_have_zero_loss_and_finite_gradients():
    rewards = torch.tensor([[0.5, 0.5, NAN, 0.5, 0.5], [NAN, 1.0, NAN, NAN, NAN], [NAN] * 5])
    scores = torch.randn(3, 5, requires_grad=True)
    loss = sample_llm_contrastive_loss(scores, rewards)
    assert loss.tolist() == [0.0, 0.0, 0.0]
    loss.sum().backward()
    assert scores.grad.abs().sum() == 0


def test_scores_are_cosine_similarity_over_temperature_and_the_router_uses_the_contrastive_loss():
    router = make_router(score_temperature=0.5, top_k=2, bottom_k=2)
    set_embeddings(router, [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-3.0, 0.0], [0.0, -1.0]])
    fixed_pooled(router, [[2.0, 0.0], [0.0, 1.0]])
    scores = router.scores({})
    # cosines: q0 = [1, 0, 1/sqrt2, -1, 0], q1 = [0, 1, 1/sqrt2, 0, -1]; / 0.5
    r = 1 / math.sqrt(2)
    assert scores.tolist() == [pytest.approx([2, 0, 2 * r, -2, 0]), pytest.approx([0, 2, 2 * r, 0, -2])]
    loss = router.loss({"rewards": REWARDS})
    # q0: positive a (2) vs negative e (0); q1: positives a (0), b (2) vs negatives c (2r), d (0)
    second = (softplus(math.log(math.exp(2 * r) + 1) - 0) + softplus(math.log(math.exp(2 * r) + 1) - 2)) / 2
    assert loss.tolist() == pytest.approx([softplus(-2.0), second], abs=1e-6)


def test_kl_variant_is_kl_divergence_of_the_soft_targets():
    router = make_router(loss="kl", score_temperature=0.25)
    pooled = fixed_pooled(router, [[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
    batch = {
        "target": torch.tensor([[0.5, 0.3, 0.2, 0.0, 0.0], [0.1, 0.0, 0.6, 0.2, 0.1]]),
        "judged": torch.tensor([[True, True, True, False, True], [True, True, True, True, True]]),
    }  # no rewards: kl needs only the targets
    expected = kl_divergence(router.similarity_scores(pooled), batch["target"], batch["judged"])
    torch.testing.assert_close(router.loss(batch), expected)
    assert (expected > 0).all()


def test_sample_sample_loss_by_hand():
    # q0, q1 tag x; q2, q4 tag y; q3 untagged (neither anchor, positive nor negative)
    pooled = torch.tensor([[1.0, 0.0], [0.6, 0.8], [1.0, 1.0], [5.0, -1.0], [-1.0, 0.0]])
    groups = ["x", "x", "y", None, "y"]
    loss = sample_sample_contrastive_loss(pooled, groups, temperature=0.5)
    r = 1 / math.sqrt(2)
    c01, c02, c04 = 0.6, r, -1.0
    c12, c14 = 1.4 * r, -0.6
    c24 = -r

    def anchor(positive: float, negatives: list[float]) -> float:
        p = math.exp(positive / 0.5)
        return -math.log(p / (p + sum(math.exp(n / 0.5) for n in negatives)))

    expected = [
        anchor(c01, [c02, c04]),
        anchor(c01, [c12, c14]),
        anchor(c24, [c02, c12]),
        0.0,
        anchor(c24, [c04, c14]),
    ]
    assert loss.tolist() == pytest.approx(expected, abs=1e-6)
    # a group of one has no positive: loss 0
    assert sample_sample_contrastive_loss(pooled[:3], ["x", "y", "z"], 1.0).tolist() == [0.0, 0.0, 0.0]


def test_the_router_adds_the_weighted_sample_sample_loss_on_first_tags():
    router = make_router(sample_weight=0.5, score_temperature=0.5, top_k=2, bottom_k=2)
    pooled = fixed_pooled(router, [[1.0, 0.0], [0.6, 0.8]])
    tags = [["x", "x/sub"], [], ["x"], ["y", "x"]]  # rows 2 and 3 of the split: first tags x and y
    router._trainer = SimpleNamespace(datamodule=SimpleNamespace(tables={"train": SimpleNamespace(tags=tags)}))
    batch = {"rewards": REWARDS, "split": "train", "index": torch.tensor([0, 2])}
    contrastive = sample_llm_contrastive_loss(router.similarity_scores(pooled), REWARDS, 2, 2)
    # rows 0 and 2 share the tag x and there is no negative: -log(e^p / e^p) = 0
    torch.testing.assert_close(router.loss(batch), contrastive)
    batch["index"] = torch.tensor([0, 3])  # tags x and y: no positives, loss 0 again
    torch.testing.assert_close(router.loss(batch), contrastive)
    pooled = fixed_pooled(router, [[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0], [0.0, 1.0]])
    rewards = torch.cat([REWARDS, REWARDS])
    batch = {"rewards": rewards, "split": "train", "index": torch.tensor([0, 2, 3, 1])}  # x, x, y, untagged
    contrastive = sample_llm_contrastive_loss(router.similarity_scores(pooled), rewards, 2, 2)
    sample = sample_sample_contrastive_loss(pooled, ["x", "x", "y", None], 0.5)
    # anchors 0 and 1 (tag x) each: positive the other (cos 0.6), negative q2 (cos -1 and -0.6)
    assert sample.tolist() == pytest.approx([softplus((-1 - 0.6) / 0.5), softplus((-0.6 - 0.6) / 0.5), 0, 0])
    torch.testing.assert_close(router.loss(batch), contrastive + 0.5 * sample)
    # a batch outside the tables (add-candidate) leaves the term out; a split without tables is refused
    del batch["split"]
    torch.testing.assert_close(router.loss(batch), contrastive)
    router._trainer = None
    with pytest.raises(ValueError, match="sample_weight > 0 needs the tags"):
        router.loss({**batch, "split": "train"})


def test_bad_settings_and_missing_rewards_are_refused():
    with pytest.raises(ValueError, match="unknown loss 'ce'"):
        make_router(loss="ce")
    with pytest.raises(ValueError, match="score_temperature > 0"):
        make_router(score_temperature=0.0)
    with pytest.raises(ValueError, match="top_k >= 1"):
        make_router(top_k=0)
    router = make_router()
    fixed_pooled(router, [[1.0, 0.0]])
    with pytest.raises(ValueError, match=r"loss 'contrastive' needs batch\['rewards'\]"):
        router.loss({"target": torch.ones(1, 5) / 5, "judged": torch.ones(1, 5, dtype=torch.bool)})


def test_add_candidate_keeps_old_scores_and_adds_one_column():
    router = make_router()
    batch = token_batch()
    with torch.no_grad():
        before = router.scores(batch)
        pooled = router.embed(batch)
    old = router.candidate_embeddings.detach().clone()
    grown = router.add_candidate("f")
    with torch.no_grad():
        after = router.scores(batch)
    assert router.candidates == router.hparams.candidates == [*CANDIDATES, "f"]
    assert after.shape == (2, 6)
    torch.testing.assert_close(after[:, :5], before, rtol=0, atol=1e-6)
    torch.testing.assert_close(router.candidate_embeddings[5].detach(), old.mean(0))
    expected = torch.nn.functional.cosine_similarity(pooled, old.mean(0, keepdim=True)) / 0.1
    torch.testing.assert_close(after[:, 5], expected, rtol=1e-5, atol=1e-5)
    ((parameter, mask),) = grown
    assert any(parameter is p for p in router.parameters())  # registered, so saved and optimised
    assert mask.shape == parameter.shape and mask[-1].all() and not mask[:-1].any()


def test_fitting_only_the_new_candidate_leaves_the_old_ones_untouched():
    router = make_router(top_k=2, bottom_k=2)
    ids = [[2, 7, 9, 3], [2, 5, 3], [2, 8, 8, 6, 3], [2, 4, 3]]
    rewards = torch.tensor(
        [
            [0.1, 0.2, 0.3, 0.0, -1.0, 2.0],
            [0.0, 1.0, NAN, 0.5, 0.2, -1.0],
            [1.0, 0.0, 0.5, 0.2, 0.1, 3.0],
            [0.2, 0.2, 0.2, 0.0, 0.1, NAN],
        ]
    )
    dataset = RoutingDataset(ids, torch.full((4, 6), 1 / 6), torch.isfinite(rewards).numpy(), rewards=rewards.numpy())
    collate = RoutingCollator(SimpleNamespace(pad_token_id=0, padding_side="right"))
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=collate)
    batch = collate([dataset[i] for i in range(4)])
    with torch.no_grad():
        before = router.scores(batch)
        pooled = router.embed(batch)
        initial = torch.nn.functional.cosine_similarity(pooled, router.candidate_embeddings.mean(0, keepdim=True)) / 0.1
    fit_new_candidate(router, "f", loader, epochs=5, lr=0.1)
    with torch.no_grad():
        after = router.scores(batch)
    torch.testing.assert_close(after[:, :5], before, rtol=0, atol=1e-6)
    assert not torch.allclose(after[:, 5], initial, atol=1e-3)  # the new candidate moved from its start
