"""The frozen-encoder probe: embeddings computed once and reused from the cache, cached scores equal to
the encoder's on raw token ids, a frozen encoder kept out of the checkpoint, the losses by hand,
add_candidate, and the CLI round trip to Router.from_checkpoint (tests/test_routers.py runs
configs/router/probe*.yaml through fit/test/predict and the report)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import debug_args
from zooter import Router
from zooter.cli import main
from zooter.data.datamodule import ZooterDataModule
from zooter.routers.base import CheckpointMismatchError
from zooter.routers.probe import ProbeRouter
from zooter.table.synth import SynthConfig, generate

NAN = float("nan")
PROBE = "configs/router/probe.yaml"


def make_datamodule(cache_dir: Path, encoder: str = "tiny-deberta", num_queries: int = 120) -> ZooterDataModule:
    dm = ZooterDataModule(
        synth=SynthConfig(num_queries=num_queries),
        encoder=encoder,
        tokenizer_vocab_size=300,
        max_length=64,
        batch_size=16,
        cache_dir=str(cache_dir),
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


def make_router(dm: ZooterDataModule, **kwargs) -> ProbeRouter:
    return ProbeRouter(
        dm.candidates,
        encoder=dm.hparams.encoder,
        vocab_size=dm.vocab_size,
        tokenizer_fingerprint=dm.tokenizer_fingerprint,
        **kwargs,
    )


def count_encoder_calls(router: ProbeRouter) -> list[int]:
    """The batch sizes of every later forward pass of ``router``'s encoder."""
    calls: list[int] = []
    forward = router.encoder.forward

    def counted(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return forward(*args, **kwargs)

    router.encoder.forward = counted
    return calls


def fixed_scores(router: ProbeRouter, scores: list[list[float]]) -> torch.Tensor:
    """Make ``router.scores`` return ``scores`` (a leaf that collects the loss's gradient)."""
    values = torch.tensor(scores, requires_grad=True)
    router.scores = lambda batch: values
    return values


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory) -> ZooterDataModule:
    return make_datamodule(tmp_path_factory.mktemp("probe_data") / "cache")


def test_embeddings_are_computed_once_and_reused_from_the_cache(tmp_path):
    dm = make_datamodule(tmp_path / "cache")
    first = make_router(dm)
    calls = count_encoder_calls(first)
    first.embed_splits(dm)
    distinct = sum(len(dm.tables[split]) for split in ("train", "val", "test"))  # predict is the test split
    assert sum(calls) == distinct and max(calls) <= first.hparams.embedding_batch_size
    assert set(first._embeddings) == {"train", "val", "test", "predict"}
    assert first._embeddings["predict"] is first._embeddings["test"]
    assert len(list((tmp_path / "cache").glob("probe-embeddings-*.npy"))) == 3
    first.embed_splits(dm)  # a second setup of the same router
    assert sum(calls) == distinct

    # another run, head or optimization: the key (encoder and weights, tokenizer, max_length, pooling,
    # queries) is the same, so nothing is embedded
    second = make_router(dm, head="mlp", dropout=0.3, lr=0.1)
    second_calls = count_encoder_calls(second)
    second.embed_splits(dm)
    assert second_calls == []
    for split, vectors in first._embeddings.items():
        torch.testing.assert_close(second._embeddings[split], vectors, rtol=0, atol=0)

    other = make_router(dm, pooling="cls")  # another pooling: other vectors, another key
    other_calls = count_encoder_calls(other)
    other.embed_splits(dm)
    assert sum(other_calls) == distinct
    assert len(list((tmp_path / "cache").glob("probe-embeddings-*.npy"))) == 6


@pytest.mark.parametrize("encoder", ["tiny-deberta", "minilm"])
def test_cached_scores_equal_the_encoders_scores_from_raw_token_ids(tmp_path, encoder):
    dm = make_datamodule(tmp_path / "cache", encoder, num_queries=60)
    router = make_router(dm, head="mlp").eval()
    router.embed_splits(dm)
    for loader in (dm.val_dataloader(), dm.predict_dataloader()):  # table order and longest first
        for batch in loader:
            assert "split" in batch
            cached = router.scores(batch)
            raw = router.scores({key: value for key, value in batch.items() if key != "split"})
            torch.testing.assert_close(cached, raw, rtol=0, atol=1e-5)


def test_the_encoder_is_frozen_deterministic_and_kept_out_of_the_checkpoint(datamodule):
    router = make_router(datamodule).train()
    assert not router.encoder.training  # train() of the router leaves it in eval mode: no dropout
    assert not any(p.requires_grad for p in router.encoder.parameters())
    assert set(router.state_dict()) == {"head.weight", "head.bias"}  # the linear head only
    assert {name for name, _ in router.named_parameters()} == {"head.weight", "head.bias"}
    mlp = make_router(datamodule, head="mlp", hidden_dim=8)
    assert set(mlp.state_dict()) == {"body.1.weight", "body.1.bias", "head.weight", "head.bias"}
    assert mlp.head.weight.shape == (len(datamodule.candidates), 8)
    torch.manual_seed(1234)  # whatever the global seed: the same random tiny-deberta
    again = make_router(datamodule)
    assert again.encoder_digest() == router.encoder_digest()
    for (name, value), (_, same) in zip(
        router.encoder.state_dict().items(), again.encoder.state_dict().items(), strict=True
    ):
        assert torch.equal(value, same), name
    with pytest.raises(ValueError, match="unknown head 'deep'"):
        make_router(datamodule, head="deep")
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        make_router(datamodule, loss="hinge")


def test_kl_by_hand(datamodule):
    router = make_router(datamodule, loss="kl")
    candidates = len(datamodule.candidates)
    scores = [[0.0, math.log(3.0), 5.0] + [0.0] * (candidates - 3), [0.0] * candidates]
    fixed_scores(router, scores)
    target = torch.zeros(2, candidates)
    target[0, :2] = torch.tensor([0.25, 0.75])
    target[1, :2] = 0.5
    judged = torch.zeros(2, candidates, dtype=torch.bool)
    judged[0, :2] = True  # the router over a, b: softmax(0, ln 3) = (1/4, 3/4), the target exactly
    judged[1, :3] = True  # the router over a, b, c: (1/3, 1/3, 1/3)
    loss = router.loss({"target": target, "judged": judged})
    assert loss.tolist() == pytest.approx([0.0, math.log(1.5)], abs=1e-6)


def test_hard_label_cross_entropy_by_hand(datamodule):
    router = make_router(datamodule, loss="ce")
    fixed_scores(router, [[0.0, math.log(3.0), 0.0], [0.0, 0.0, 0.0]])
    batch = {
        "target": torch.tensor([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2]]),
        "judged": torch.tensor([[True, True, False], [True, True, True]]),
    }
    # query 0: label b, the router over a, b gives b 3/4; query 1: a and b tie, half a label each, 1/3 each
    assert router.loss(batch).tolist() == pytest.approx([math.log(4 / 3), math.log(3.0)], abs=1e-6)


def test_mse_by_hand_over_the_judged_rewards(datamodule):
    router = make_router(datamodule, loss="mse")
    scores = fixed_scores(router, [[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])
    batch = {"rewards": torch.tensor([[0.5, 2.0, NAN], [1.0, 0.0, 1.0]])}
    loss = router.loss(batch)
    # query 0: ((1 - 0.5)^2 + 0^2) / 2, c unjudged; query 1: (0.5^2 + 1^2 + 2^2) / 3
    assert loss.tolist() == pytest.approx([0.125, 1.75])
    loss.sum().backward()
    assert torch.isfinite(scores.grad).all() and scores.grad[0, 2] == 0
    with pytest.raises(ValueError, match=r"loss 'mse' needs batch\['rewards'\]"):
        router.loss({"target": torch.ones(1, 3) / 3, "judged": torch.ones(1, 3, dtype=torch.bool)})


def test_bce_by_hand_over_the_judged_rewards(datamodule):
    router = make_router(datamodule, loss="bce")
    fixed_scores(router, [[0.0, math.log(3.0), 5.0], [0.0, 0.0, 0.0]])
    batch = {"rewards": torch.tensor([[1.0, 0.0, NAN], [1.0, 0.0, 0.5]])}
    # query 0: (-log sigmoid(0) - log(1 - sigmoid(log 3))) / 2 = (log 2 + log 4) / 2, c unjudged;
    # query 1: every sigmoid is 1/2, so each term is log 2 whatever the reward
    assert router.loss(batch).tolist() == pytest.approx([1.5 * math.log(2.0), math.log(2.0)], abs=1e-6)
    with pytest.raises(ValueError, match=r"loss 'bce' needs rewards in \[0, 1\]"):
        router.loss({"rewards": torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])})


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_add_candidate_grows_the_last_layer_and_keeps_the_old_scores(datamodule, head):
    router = make_router(datamodule, head=head).eval()
    router.embed_splits(datamodule)
    batch = next(iter(datamodule.val_dataloader()))
    with torch.no_grad():
        before = router.scores(batch)
    grown = router.add_candidate("newcomer")
    with torch.no_grad():
        after = router.scores(batch)
    n = len(datamodule.candidates)
    assert router.candidates[-1] == "newcomer" and router.hparams.candidates == router.candidates
    assert after.shape == (before.shape[0], n + 1)
    torch.testing.assert_close(after[:, :n], before, rtol=0, atol=1e-6)
    assert [p is router.head.weight or p is router.head.bias for p, _ in grown] == [True, True]
    for parameter, mask in grown:
        assert mask.shape == parameter.shape and mask[-1].all() and not mask[:-1].any()


@pytest.fixture(scope="module")
def probe_fit(tmp_path_factory) -> tuple[list[str], Path]:
    """A debug-sized quickstart fit of configs/router/probe.yaml: its arguments and best checkpoint."""
    root = tmp_path_factory.mktemp("probe_fit")
    args = debug_args(root, "--config", str(Path(__file__).resolve().parents[1] / PROBE))
    main(["fit", *args])
    (best,) = (root / "runs" / "quickstart" / "version_0" / "checkpoints").glob("best-*.ckpt")
    return args, best


def test_predict_reuses_the_cache_and_router_from_checkpoint_reproduces_it(probe_fit, tmp_path, monkeypatch):
    from transformers import DebertaV2Model

    args, ckpt = probe_fit
    calls: list[int] = []
    forward = DebertaV2Model.forward

    def counted(self, *a, **kw):
        calls.append(kw["input_ids"].shape[0])
        return forward(self, *a, **kw)

    monkeypatch.setattr(DebertaV2Model, "forward", counted)
    main(["predict", *args, "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"), "--ckpt_path", str(ckpt)])
    assert calls == []  # every split was embedded by the fit: predict only reads the cache
    rows = [json.loads(line) for line in (tmp_path / "runs" / "quickstart" / "version_0" / "predictions.jsonl").open()]

    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert set(checkpoint["state_dict"]) == {"head.weight", "head.bias"}  # the encoder is rebuilt, not stored
    assert {"encoder_digest", "tokenizer_fingerprint"} <= set(checkpoint["zooter"])

    table = generate(SynthConfig(num_queries=240, seed=0))  # configs/debug.yaml's table
    query_of = dict(zip(table.ids, table.queries, strict=True))
    router = Router.from_checkpoint(ckpt, batch_size=7)  # other batches than predict's: the same numbers
    probs = router.probabilities([query_of[row["id"]] for row in rows])
    assert sum(calls) == len(rows)  # routing text runs the frozen encoder
    expected = np.array([[row["probs"][c] for c in router.candidates] for row in rows])
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-5)


def test_a_checkpoint_whose_encoder_rebuilds_differently_is_refused(probe_fit, tmp_path):
    _, ckpt = probe_fit
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    checkpoint["zooter"]["encoder_digest"] = "0" * 16
    changed = tmp_path / "changed.ckpt"
    torch.save(checkpoint, changed)
    with pytest.raises(CheckpointMismatchError, match="rebuilds with weights"):
        Router.from_checkpoint(changed)
    assert Router.from_checkpoint(ckpt).candidates == checkpoint["zooter"]["candidates"]


def test_fitting_only_the_new_candidate_leaves_the_old_ones_untouched(datamodule):
    from types import SimpleNamespace

    from zooter.data.batching import RoutingCollator, RoutingDataset
    from zooter.runs.add_candidate import fit_new_candidate

    router = make_router(datamodule, loss="mse")
    n = len(datamodule.candidates)
    ids = [[2, 7, 9, 3], [2, 5, 3], [2, 8, 8, 6, 3], [2, 4, 3]]
    rewards = torch.randn(4, n + 1)
    dataset = RoutingDataset(
        ids, torch.full((4, n + 1), 1 / (n + 1)), np.ones((4, n + 1), bool), rewards=rewards.numpy()
    )
    collate = RoutingCollator(SimpleNamespace(pad_token_id=0, padding_side="right"))
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=collate)
    batch = collate([dataset[i] for i in range(4)])  # text routed by zooter add-candidate: no split
    with torch.no_grad():
        before = router.eval().scores(batch)
    fit_new_candidate(router, "newcomer", loader, epochs=3, lr=0.1)
    with torch.no_grad():
        after = router.scores(batch)
    torch.testing.assert_close(after[:, :n], before, rtol=0, atol=1e-6)
    assert set(router.state_dict()) == {"head.weight", "head.bias"} and router.head.out_features == n + 1
