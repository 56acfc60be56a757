"""The data module: splits, folds, train-only tag table, token cache and batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from conftest import row
from zooter import targets
from zooter.data import ZooterDataModule
from zooter.schema import TableError
from zooter.synth import SynthConfig


def make(tmp_path, **kwargs) -> ZooterDataModule:
    kwargs.setdefault("synth", SynthConfig(num_queries=200))
    kwargs.setdefault("eval_judge", "true")
    dm = ZooterDataModule(cache_dir=str(tmp_path / "cache"), tokenizer_vocab_size=300, batch_size=8, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_fraction_split_is_disjoint_complete_and_seeded(tmp_path):
    dm = make(tmp_path, val_fraction=0.1, test_fraction=0.2)
    ids = {split: dm.tables[split].ids for split in ("train", "val", "test")}
    assert [len(ids[s]) for s in ("train", "val", "test")] == [140, 20, 40]
    assert len(set().union(*ids.values())) == 200
    assert make(tmp_path, val_fraction=0.1, test_fraction=0.2).tables["test"].ids == ids["test"]
    assert make(tmp_path, val_fraction=0.1, test_fraction=0.2, split_seed=1).tables["test"].ids != ids["test"]


def test_k_fold_test_splits_partition_the_table(tmp_path):
    tests = [make(tmp_path, folds=5, fold=k).tables["test"].ids for k in range(5)]
    assert sum(len(t) for t in tests) == 200 and len(set().union(*tests)) == 200
    with pytest.raises(ValueError, match="need folds >= 2 and 0 <= fold < folds"):
        make(tmp_path, folds=5, fold=5)


def test_tag_table_uses_training_queries_only(tmp_path, table_file):
    rows = [row(i, {"a": float(i % 2), "b": 1.0 - i % 2}, tags=["shared"]) for i in range(20)]
    rows += [row(20 + i, {"a": 3.0, "b": 0.0}, tags=["heldout"]) for i in range(5)]
    train = table_file(rows[:20], "train.jsonl")
    held = table_file(rows[20:], "test.jsonl")
    dm = ZooterDataModule(
        train_path=str(train),
        val_path=str(held),
        test_path=str(held),
        beta=0.0,
        cache_dir=str(tmp_path / "cache"),
        tokenizer_vocab_size=200,
    )
    dm.setup("fit")
    assert dm.tag_table.tags == ["shared"]
    labels = targets.soft_labels(dm.tables["train"].judge("scores"))
    assert_allclose(dm.tag_table.means[0], labels.mean(axis=0))
    e3 = np.exp(3.0)
    assert_allclose(dm.datasets["test"].target.numpy(), np.tile([e3 / (e3 + 1), 1 / (e3 + 1)], (5, 1)), rtol=1e-6)
    assert_allclose(dm.datasets["train"].target.numpy(), np.tile(dm.tag_table.means[0], (20, 1)), rtol=1e-6)


def test_beta_and_temperature_reuse_the_token_cache(tmp_path, monkeypatch):
    import datasets

    first = make(tmp_path, beta=1.0)
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())

    def fail(*args, **kwargs):
        raise AssertionError("re-tokenized although the cache holds these queries")

    monkeypatch.setattr(datasets.Dataset, "map", fail)
    second = make(tmp_path, beta=0.3, temperature=0.5, standardization="zscore")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == cached
    assert second.datasets["train"].input_ids == first.datasets["train"].input_ids
    assert not np.allclose(second.datasets["train"].target, first.datasets["train"].target)


def test_batches_are_padded_to_their_longest_query(tmp_path):
    dm = make(tmp_path)
    batch = next(iter(dm.val_dataloader()))
    lengths = batch["attention_mask"].sum(dim=1)
    assert batch["input_ids"].shape[1] == lengths.max().item()
    assert batch["target"].shape == (8, 6) and batch["eval_scores"].shape == (8, 6)
    assert batch["judged"].dtype == torch.bool
    assert_allclose(batch["target"].sum(dim=1), np.ones(8), rtol=1e-5)
    expected = dm.tables["val"].judge("true")[:8, dm.best_single_index]
    assert_allclose(batch["best_single_score"], expected, rtol=1e-6)
    assert batch["index"].tolist() == list(range(8))


def test_best_single_model_is_chosen_on_train(tmp_path):
    dm = make(tmp_path)
    means = np.nanmean(dm.tables["train"].judge("true"), axis=0)
    assert dm.best_single_index == int(means.argmax())


def test_predict_table_needs_no_scores_and_empty_splits_are_refused(tmp_path, table_file):
    train = table_file([row(i) for i in range(10)], "train.jsonl")
    queries = table_file([{"id": "x1", "query": "route me"}, {"id": "x2", "query": "and me"}], "q.jsonl")
    dm = ZooterDataModule(
        train_path=str(train), predict_path=str(queries), cache_dir=str(tmp_path / "c"), tokenizer_vocab_size=100
    )
    dm.setup("predict")
    assert len(dm.datasets["predict"]) == 2 and dm.tables["predict"].ids == ["x1", "x2"]
    with pytest.raises(TableError, match="the val split is empty"):
        make(tmp_path, val_fraction=0.0)


def test_split_spec_defaults_match_the_data_module():
    import inspect
    from dataclasses import fields

    from zooter.splits import SplitSpec

    signature = inspect.signature(ZooterDataModule.__init__).parameters
    for field in fields(SplitSpec):
        assert signature[field.name].default == field.default, field.name


def test_ranks_that_built_different_data_fail_together(tmp_path, monkeypatch):
    from types import SimpleNamespace

    dm = make(tmp_path)
    assert dm.fingerprint() == make(tmp_path).fingerprint()
    assert dm.fingerprint() != make(tmp_path, split_seed=1).fingerprint()
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    dm.trainer = SimpleNamespace(world_size=2)

    def gather(out, mine):
        out[:] = [mine, "another rank's data"]

    monkeypatch.setattr(torch.distributed, "all_gather_object", gather)
    with pytest.raises(RuntimeError, match="DDP ranks built different data"):
        dm._check_ranks_agree()
