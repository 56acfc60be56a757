"""zooter add-candidate: a router trained on 5 candidates learns a 6th without retraining, and then
routes to it where it is best (slow: a 3-epoch fit on 600 queries); a debug-sized router checks the
mechanics and the errors in the fast suite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, debug_args
from zooter import Router
from zooter.cli import main
from zooter.table.schema import write_jsonl
from zooter.table.synth import SynthConfig, generate

NEW = "coder"


def write_tables(tmp_path: Path, num_queries: int) -> dict[str, Path]:
    """Train/val/test files (2/3, 1/9, 2/9) of one synthetic table, with all 6 candidates and without ``coder``."""
    full = generate(SynthConfig(num_queries=num_queries, seed=3))
    order = np.random.default_rng(0).permutation(len(full))
    train, val = num_queries * 2 // 3, num_queries * 7 // 9
    splits = {"train": order[:train], "val": order[train:val], "test": order[val:]}
    old = [c for c in full.candidates if c != NEW]
    paths = {}
    for split, rows in splits.items():
        part = full.subset(rows)
        paths[f"{split}_all"] = write_jsonl(part, tmp_path / f"{split}_all.jsonl")
        without = part.with_candidates([*old, NEW])
        without.candidates = old
        without.scores = {judge: matrix[:, :-1] for judge, matrix in without.scores.items()}
        paths[split] = write_jsonl(without, tmp_path / f"{split}.jsonl")
    paths["dir"] = tmp_path
    return paths


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, Path]:
    """900 queries: 600 train, 100 val, 200 test."""
    return write_tables(tmp_path_factory.mktemp("add"), 900)


@pytest.fixture(scope="module")
def small_fit(tmp_path_factory) -> tuple[dict[str, Path], Path]:
    """A debug-sized router (configs/debug.yaml: 1 epoch) on 5 candidates of 180 queries, and its last.ckpt."""
    small = write_tables(tmp_path_factory.mktemp("add_small"), 180)
    main(["fit", *debug_args(small["dir"]), *data_args(small, "")])
    return small, small["dir"] / "runs" / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"


def data_args(tables: dict[str, Path], suffix: str) -> list[str]:
    return [
        "--data.synth", "null", "--data.train_judge", "rm_low_noise", "--data.eval_judge", "true",
        "--data.train_path", str(tables[f"train{suffix}"]), "--data.val_path", str(tables[f"val{suffix}"]),
        "--data.test_path", str(tables[f"test{suffix}"]),
    ]  # fmt: skip


def test_add_candidate_grows_the_router_and_leaves_the_old_candidates_untouched(small_fit, capsys):
    small, ckpt = small_fit
    out = small["dir"] / "plus_coder.ckpt"
    capsys.readouterr()
    main(["add-candidate", "--ckpt_path", str(ckpt), "--table", str(small["train_all"]), "--candidate", NEW,
          "--out", str(out), "--epochs", "2"])  # fmt: skip
    train = [json.loads(line) for line in small["train_all"].read_text().splitlines()]
    scored = sum(row["scores_by_judge"]["rm_low_noise"][NEW] is not None for row in train)
    assert (
        f"{scored} of 120 rows of {small['train_all']} score 'coder' ({120 - scored} left out)"
        in capsys.readouterr().out
    )
    old, new = Router.from_checkpoint(ckpt), Router.from_checkpoint(out)
    assert new.candidates == [*old.candidates, NEW]
    queries = [json.loads(line)["query"] for line in small["test_all"].read_text().splitlines()]
    p_old, p_new = old.probabilities(queries), new.probabilities(queries)
    # the old candidates' logits are untouched: the old distribution is the new one renormalised without coder
    np.testing.assert_allclose(p_new[:, :-1] / p_new[:, :-1].sum(axis=1, keepdims=True), p_old, atol=1e-5)
    assert p_new[:, -1].min() > 0


@pytest.mark.slow
def test_an_added_candidate_is_chosen_where_it_is_best(tables, capsys):
    tmp = tables["dir"]
    common = ["--config", str(REPO / "configs/quickstart.yaml"), "--data.cache_dir", str(tmp / "cache"),
              "--trainer.logger.init_args.save_dir", str(tmp / "runs"), "--trainer.enable_progress_bar", "false",
              "--trainer.enable_model_summary", "false", "--data.tokenizer_vocab_size", "600"]  # fmt: skip
    main(["fit", *common, *data_args(tables, "")])
    ckpt = tmp / "runs" / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    out = tmp / "plus_coder.ckpt"
    capsys.readouterr()
    main(["add-candidate", "--ckpt_path", str(ckpt), "--table", str(tables["train_all"]), "--candidate", NEW,
          "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    train = [json.loads(line) for line in tables["train_all"].read_text().splitlines()]
    scored = sum(row["scores_by_judge"]["rm_low_noise"][NEW] is not None for row in train)
    assert f"{scored} of 600 rows of {tables['train_all']} score 'coder' ({600 - scored} left out)" in printed

    old, new = Router.from_checkpoint(ckpt), Router.from_checkpoint(out)
    assert new.candidates == [*old.candidates, NEW]
    test = json.loads("[" + ",".join(tables["test_all"].read_text().splitlines()) + "]")
    queries = [row["query"] for row in test]
    true = np.array([[row["scores_by_judge"]["true"][c] for c in new.candidates] for row in test])
    # the old candidates' logits are untouched: the old distribution is the new one renormalised without coder
    p_old, p_new = old.probabilities(queries), new.probabilities(queries)
    np.testing.assert_allclose(p_new[:, :-1] / p_new[:, :-1].sum(axis=1, keepdims=True), p_old, atol=1e-5)
    picks = np.array([new.candidates.index(d.candidate) for d in new.route(queries)])
    coder_best = true.argmax(axis=1) == len(new.candidates) - 1
    share_where_best = float((picks[coder_best] == 5).mean())
    share_elsewhere = float((picks[~coder_best] == 5).mean())
    print(f"coder best on {coder_best.sum()} test queries; routed to coder there {share_where_best:.2f}, "
          f"elsewhere {share_elsewhere:.2f}")  # fmt: skip
    assert coder_best.sum() >= 20
    assert share_where_best >= 0.5 and share_where_best > share_elsewhere + 0.3

    # the grown checkpoint tests like any other, on the table with 6 candidates, and beats the 5-candidate router
    order = ["--data.candidates", json.dumps(new.candidates)]  # the checkpoint's order: the new one last
    main(["test", *common, *data_args(tables, "_all"), *order, "--ckpt_path", str(out)])
    grown = json.loads((tmp / "runs" / "quickstart" / "version_1" / "test_metrics.json").read_text())
    routed_old = true[np.arange(len(test)), [old.candidates.index(d.candidate) for d in old.route(queries)]].mean()
    print(f"test routed score: 5 candidates {routed_old:.4f}, with {NEW} added {grown['test/routed_score']:.4f}")
    assert grown["test/routed_score"] > routed_old
    assert grown[f"test/share/{NEW}"] == pytest.approx(float((picks == 5).mean()), abs=1e-6)


def test_add_candidate_errors_are_messages(small_fit, tmp_path):
    small, ckpt = small_fit
    base = ["add-candidate", "--ckpt_path", str(ckpt), "--out", str(tmp_path / "x.ckpt")]
    with pytest.raises(SystemExit, match="'writer' is already a candidate"):
        main([*base, "--table", str(small["train_all"]), "--candidate", "writer"])
    with pytest.raises(SystemExit, match="unknown candidate 'coder'"):
        main([*base, "--table", str(small["train_all"]), "--candidate", "poet"])
    with pytest.raises(SystemExit, match="no such checkpoint"):
        main(["add-candidate", "--ckpt_path", str(tmp_path / "none.ckpt"), "--table", str(small["train_all"]),
              "--candidate", NEW, "--out", str(tmp_path / "y.ckpt")])  # fmt: skip
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["zooter"]["candidates"][-1] != NEW
