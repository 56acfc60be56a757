"""The data module: splits, folds, train-only tag table, token cache and batches."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from conftest import row
from zooter.data import targets
from zooter.data.datamodule import ZooterDataModule
from zooter.table.schema import TableError
from zooter.table.synth import SynthConfig


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
    expected = dm.tables["val"].judge("true")[:8, dm.candidates.index(dm.best_single)]
    assert_allclose(batch["best_single_score"], expected, rtol=1e-6)
    assert batch["index"].tolist() == list(range(8))


def test_best_single_model_is_chosen_on_train(tmp_path):
    dm = make(tmp_path)
    means = np.nanmean(dm.tables["train"].judge("true"), axis=0)
    assert dm.best_single == dm.candidates[int(means.argmax())]


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

    from zooter.table.splits import SplitSpec

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


def padding_share(lengths: np.ndarray, order: list[int], batch_size: int) -> float:
    """Mean over batches of pad tokens / all tokens, each batch padded to its longest query."""
    shares = []
    for start in range(0, len(order), batch_size):
        batch = lengths[order[start : start + batch_size]]
        shares.append(1.0 - batch.sum() / (batch.max() * len(batch)))
    return float(np.mean(shares))


def test_length_grouped_sampler_yields_every_index_once_with_less_padding():
    from zooter.data.batching import LengthGroupedSampler

    lengths = np.random.default_rng(0).integers(3, 60, size=203)  # 203: the last batch is short
    sampler = LengthGroupedSampler(lengths, batch_size=8, mega_batches=5, seed=1)
    order = list(sampler)
    assert len(sampler) == 203 and sorted(order) == list(range(203))
    random_order = np.random.default_rng(1).permutation(203).tolist()
    grouped, ungrouped = padding_share(lengths, order, 8), padding_share(lengths, random_order, 8)
    assert grouped < 0.5 * ungrouped, (grouped, ungrouped)
    # the DataLoader's batches are the sampler's: each one comes from one sorted mega-batch
    batches = [lengths[order[i : i + 8]] for i in range(0, 200, 8)]
    assert all(b.max() - b.min() <= 20 for b in batches)
    assert max(b.max() for b in batches) == lengths.max() == batches[0].max()  # longest batch first


def test_length_grouped_sampler_is_seeded_by_seed_and_epoch():
    from zooter.data.batching import LengthGroupedSampler

    lengths = np.arange(100) % 17

    def order(seed: int, epoch: int) -> list[int]:
        sampler = LengthGroupedSampler(lengths, batch_size=4, mega_batches=3, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(0, 0) == order(0, 0) and order(0, 3) == order(0, 3)
    assert order(0, 1) != order(0, 0) and order(1, 0) != order(0, 0)


def test_length_grouped_sampler_gives_each_ddp_rank_its_share_in_grouped_batches():
    from torch.utils.data import DistributedSampler

    from zooter.data.batching import LengthGroupedSampler

    lengths = np.random.default_rng(2).integers(3, 60, size=163)  # 163: the ranks' last batches are short
    samplers = [LengthGroupedSampler(lengths, 4, mega_batches=5, seed=0, num_replicas=2, rank=r) for r in range(2)]
    # a DistributedSampler, so Lightning does not wrap it in a DistributedSamplerWrapper that would reshuffle it
    assert isinstance(samplers[0], DistributedSampler)
    ranks = [list(sampler) for sampler in samplers]
    assert len(ranks[0]) == len(ranks[1]) == len(samplers[0]) == 82
    assert set(ranks[0] + ranks[1]) == set(range(163)) and len(ranks[0] + ranks[1]) == 164  # one repeat pads
    for step in range(20):  # both ranks' batch k come from one length group
        both = lengths[ranks[0][4 * step : 4 * step + 4] + ranks[1][4 * step : 4 * step + 4]]
        assert both.max() - both.min() <= 20
    one = LengthGroupedSampler(lengths, 8, mega_batches=5, seed=0)
    assert [i for pair in zip(*ranks, strict=True) for i in pair][:160] == list(one)[:160]


def test_group_by_length_train_loader_covers_the_split_with_grouped_batches(tmp_path):
    dm = make(tmp_path, group_by_length=True)
    loader = dm.train_dataloader()
    indices = [batch["index"] for batch in loader]
    assert sorted(torch.cat(indices).tolist()) == list(range(len(dm.datasets["train"])))
    assert all(len(i) == 8 for i in indices)
    # the same loader in a second epoch: another order
    loader.sampler.set_epoch(1)
    assert torch.cat([batch["index"] for batch in loader]).tolist() != torch.cat(indices).tolist()
    assert make(tmp_path).train_dataloader().sampler.__class__.__name__ == "RandomSampler"


def test_fit_with_group_by_length_runs(tmp_path, monkeypatch):
    from conftest import debug_args
    from zooter.cli import main
    from zooter.data import batching

    epochs = []
    original = batching.LengthGroupedSampler.set_epoch
    monkeypatch.setattr(
        batching.LengthGroupedSampler, "set_epoch", lambda self, e: (epochs.append(e), original(self, e))
    )
    # 160 queries: 128 for training, 4 batches an epoch of 32; 2 epochs, logged every 3rd step
    steps = ["--data.synth.num_queries", "160", "--trainer.max_epochs", "2", "--trainer.log_every_n_steps", "3"]
    main(["fit", *debug_args(tmp_path, *steps), "--data.group_by_length", "true"])
    run = tmp_path / "runs" / "quickstart" / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "group_by_length: true" in (run / "config.yaml").read_text()
    assert epochs == [0, 1]
    # 2 epochs x 4 batches; train/loss is logged (only) on the steps the logger writes, every 3rd
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    logged = [r.split(",") for r in rows[1:] if r.split(",")[header.index("train/loss")]]
    assert [int(r[header.index("step")]) for r in logged] == [2, 5]


def test_prediction_runs_longest_first_and_maps_back_to_rows(tmp_path):
    """Predict batches are cut from a length-sorted order (less padding); every item still names its row."""
    dm = make(tmp_path)
    test, predict = dm.datasets["test"], dm.datasets["predict"]
    items = [predict[i] for i in range(len(predict))]
    lengths = [len(item["input_ids"]) for item in items]
    assert lengths == sorted(lengths, reverse=True)
    assert sorted(item["index"] for item in items) == list(range(len(test)))
    for item in items:
        expected = test[item["index"]]
        assert item["input_ids"] == expected["input_ids"]
        assert torch.equal(item["target"], expected["target"])
    padded = sum(b["input_ids"].numel() for b in dm.predict_dataloader())
    assert padded <= sum(b["input_ids"].numel() for b in dm.test_dataloader())


@pytest.mark.parametrize("side", ["right", "left"])
def test_collator_pads_as_the_tokenizer_does(tmp_path, side):
    from zooter.data.batching import RoutingCollator

    dm = make(tmp_path)
    dm.tokenizer.padding_side = side
    items = [dm.datasets["train"][i] for i in range(8)]
    expected = dm.tokenizer.pad([{"input_ids": item["input_ids"]} for item in items], return_tensors="pt")
    batch = RoutingCollator(dm.tokenizer)(items)
    for key in ("input_ids", "attention_mask"):
        assert batch[key].dtype == expected[key].dtype and torch.equal(batch[key], expected[key]), key
    assert torch.equal(batch["target"], torch.stack([item["target"] for item in items]))


def test_the_data_summary_names_its_source(tmp_path, table_file, caplog):
    """A config without data.path trains on the synthetic table: the summary line must say so."""
    with caplog.at_level("INFO"):
        make(tmp_path)
    assert "zooter data: the embedded synthetic table (no data.path or data.train_path given): " in caplog.text
    caplog.clear()
    rows = [row(i, {"a": float(i % 2), "b": 1.0 - i % 2}) for i in range(30)]
    path = table_file(rows, "mine.jsonl")
    with caplog.at_level("INFO"):
        make(tmp_path, synth=None, path=str(path), eval_judge="scores")
    assert f"zooter data: {path}: " in caplog.text


def synth_cost_file(tmp_path):
    """A cost file for the synthetic candidates: 1, 2, ... billion parameters in candidate order."""
    from zooter.table.synth import generate

    names = generate(SynthConfig(num_queries=10)).candidates
    path = tmp_path / "synth_costs.yaml"
    path.write_text("candidates:\n" + "".join(f"  {n}: {{params_b: {k + 1}}}\n" for k, n in enumerate(names)))
    return path


def test_cost_aware_targets_and_tag_table_by_hand(tmp_path, table_file):
    # costs a: 1, b: 3 -> c_hat [1/3, 1]; lambda 1.5 -> penalty [0.5, 1.5]
    costs = tmp_path / "costs.yaml"
    costs.write_text("candidates:\n  a: {params_b: 1}\n  b: {params_b: 3}\n")
    rows = [row(i, {"a": float(i % 2), "b": 1.0 - i % 2}, tags=["shared"]) for i in range(20)]
    held = table_file([row(20 + i, {"a": 3.0, "b": 0.0}, tags=[]) for i in range(5)], "test.jsonl")
    dm = ZooterDataModule(
        train_path=str(table_file(rows, "train.jsonl")),
        val_path=str(held),
        test_path=str(held),
        beta=0.0,
        costs=str(costs),
        cost_weight=1.5,
        cache_dir=str(tmp_path / "cache"),
        tokenizer_vocab_size=200,
    )
    dm.setup("fit")
    e = np.exp
    # rewards (1, 0) -> logits (0.5, -1.5): a gets e^2 / (e^2 + 1); rewards (0, 1) -> (-0.5, -0.5): 1/2 each.
    # The tag table is built from these cost-aware labels (10 queries of each kind): a = (e^2/(e^2+1) + 1/2) / 2
    a = (e(2) / (e(2) + 1) + 0.5) / 2
    assert_allclose(dm.tag_table.means, [[a, 1 - a]])
    assert_allclose(dm.datasets["train"].target.numpy(), np.tile([a, 1 - a], (20, 1)), rtol=1e-6)  # beta 0
    # untagged test rows keep s(q): rewards (3, 0) -> logits (2.5, -1.5), a gets e^4 / (e^4 + 1)
    assert_allclose(dm.datasets["test"].target.numpy(), np.tile([e(4) / (e(4) + 1), 1 / (e(4) + 1)], (5, 1)), rtol=1e-6)


def test_zero_cost_weight_gives_todays_targets_and_costs_reuse_the_token_cache(tmp_path, monkeypatch, caplog):
    import datasets

    plain = make(tmp_path)
    costs = synth_cost_file(tmp_path)
    zero = make(tmp_path, costs=str(costs), cost_weight=0.0)
    for split in ("train", "val", "test"):
        assert torch.equal(zero.datasets[split].target, plain.datasets[split].target), split
    assert np.array_equal(zero.tag_table.means, plain.tag_table.means, equal_nan=True)

    monkeypatch.setattr(datasets.Dataset, "map", lambda *a, **k: pytest.fail("re-tokenized for a cost setting"))
    with caplog.at_level("INFO"):
        priced = make(tmp_path, costs=str(costs), cost_weight=0.5)
    assert priced.datasets["train"].input_ids == plain.datasets["train"].input_ids
    assert not np.allclose(priced.datasets["train"].target, plain.datasets["train"].target)
    assert priced.fingerprint() != zero.fingerprint()
    # the summary names the setting and how far it moved the labels towards cheap candidates
    moved = re.search(
        r"cost_weight 0.5 over \S+synth_costs.yaml \(flops\): mean cost/max under s ([\d.]+) \(([\d.]+) at",
        caplog.text,
    )
    assert moved is not None and float(moved[1]) < float(moved[2])
    assert "targets: beta 0.3, temperature 1.0, standardization none, cost_weight 0.5 over" in caplog.text


def test_cost_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"data\.cost_weight=0\.5 needs data.costs, a candidate cost file"):
        make(tmp_path, cost_weight=0.5)
    with pytest.raises(ValueError, match=r"data\.cost_weight must be >= 0, got -1\.0"):
        make(tmp_path, costs=str(synth_cost_file(tmp_path)), cost_weight=-1.0)
    partial = tmp_path / "partial.yaml"
    partial.write_text("candidates:\n  generalist: {params_b: 7}\n")
    with pytest.raises(TableError, match=r"partial\.yaml: no cost for candidate\(s\) \['coder', "):
        make(tmp_path, costs=str(partial), cost_weight=0.5)
    with pytest.raises(TableError, match=r"absent\.yaml: no such cost file"):
        make(tmp_path, costs=str(tmp_path / "absent.yaml"))


def test_fit_trains_for_cost_from_the_command_line(tmp_path):
    from conftest import debug_args
    from zooter.cli import main

    costs = synth_cost_file(tmp_path)
    main(["fit", *debug_args(tmp_path, "--data.costs", str(costs), "--data.cost_weight", "0.5")])
    run = tmp_path / "runs" / "quickstart" / "version_0"
    config = (run / "config.yaml").read_text()
    assert f"costs: {costs}" in config and "cost_weight: 0.5" in config
    assert "cost_weight: 0.5" in (run / "hparams.yaml").read_text()  # the logger's hyperparameters
    saved = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["datamodule_hyper_parameters"]["cost_weight"] == 0.5
    assert saved["datamodule_hyper_parameters"]["costs"] == str(costs)
