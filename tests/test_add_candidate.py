"""zooter add-candidate: a router trained on 5 candidates learns a 6th without retraining, and then
routes to it where it is best."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO
from zooter import Router
from zooter.cli import main
from zooter.table.schema import write_jsonl
from zooter.table.synth import SynthConfig, generate

NEW = "coder"


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, Path]:
    """Train/val/test files of one synthetic table, with all 6 candidates and without ``coder``."""
    tmp_path = tmp_path_factory.mktemp("add")
    full = generate(SynthConfig(num_queries=900, seed=3))
    order = np.random.default_rng(0).permutation(len(full))
    splits = {"train": order[:600], "val": order[600:700], "test": order[700:]}
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


def data_args(tables: dict[str, Path], suffix: str) -> list[str]:
    return [
        "--data.synth", "null", "--data.train_judge", "rm_low_noise", "--data.eval_judge", "true",
        "--data.train_path", str(tables[f"train{suffix}"]), "--data.val_path", str(tables[f"val{suffix}"]),
        "--data.test_path", str(tables[f"test{suffix}"]),
    ]  # fmt: skip


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


def test_add_candidate_errors_are_messages(tables, tmp_path):
    ckpt = next((tables["dir"] / "runs").rglob("last.ckpt"), None)
    if ckpt is None:
        pytest.skip("needs the checkpoint of the test above")
    base = ["add-candidate", "--ckpt_path", str(ckpt), "--out", str(tmp_path / "x.ckpt")]
    with pytest.raises(SystemExit, match="'writer' is already a candidate"):
        main([*base, "--table", str(tables["train_all"]), "--candidate", "writer"])
    with pytest.raises(SystemExit, match="unknown candidate 'coder'"):
        main([*base, "--table", str(tables["train_all"]), "--candidate", "poet"])
    with pytest.raises(SystemExit, match="no such checkpoint"):
        main(["add-candidate", "--ckpt_path", str(tmp_path / "none.ckpt"), "--table", str(tables["train_all"]),
              "--candidate", NEW, "--out", str(tmp_path / "y.ckpt")])  # fmt: skip
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["zooter"]["candidates"][-1] != NEW
