"""DDP on 2 CPU processes (gloo): every query predicted exactly once, metrics equal to one process.

The CLI runs as a subprocess because Lightning's DDP launcher re-runs the command line per rank.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import debug_args
from helpers import finish_zooter, run_zooter, start_zooter
from zooter.cli import main
from zooter.table.synth import SynthConfig, generate

pytestmark = pytest.mark.slow
DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]


def args(tmp_path: Path) -> list[str]:
    # 250 queries: a test split of 25, not divisible by 2 ranks; 1 epoch (configs/debug.yaml)
    return debug_args(tmp_path, "--data.synth.num_queries", "250")


def test_ddp_trains_predicts_every_query_once_and_matches_one_process(tmp_path):
    common = args(tmp_path)
    run_zooter("fit", *common, *DDP)
    runs = tmp_path / "runs" / "quickstart"
    ckpt = runs / "version_0" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()

    version = "--trainer.logger.init_args.version"  # each its own directory (else all go to version_0-<stage>-last)
    run_zooter("predict", *common, *DDP, "--ckpt_path", str(ckpt), version, "ddp-predict")
    run_zooter("test", *common, *DDP, "--ckpt_path", str(ckpt), version, "ddp-test")
    main(["predict", *common, "--ckpt_path", str(ckpt), version, "one-predict"])
    main(["test", *common, "--ckpt_path", str(ckpt), version, "one-test"])

    ddp_rows = [json.loads(line) for line in (runs / "ddp-predict" / "predictions.jsonl").open()]
    one_rows = [json.loads(line) for line in (runs / "one-predict" / "predictions.jsonl").open()]
    table = generate(SynthConfig(num_queries=250))
    test_ids = [table.ids[i] for i in np.random.default_rng(0).permutation(250)[:25]]
    assert [r["id"] for r in ddp_rows] == test_ids == [r["id"] for r in one_rows]
    for ddp_row, one_row in zip(ddp_rows, one_rows, strict=True):
        assert ddp_row["route"] == one_row["route"]
        assert list(ddp_row["probs"].values()) == pytest.approx(list(one_row["probs"].values()), abs=1e-5)

    ddp_metrics = json.loads((runs / "ddp-test" / "test_metrics.json").read_text())
    one_metrics = json.loads((runs / "one-test" / "test_metrics.json").read_text())
    assert ddp_metrics.keys() == one_metrics.keys()
    for key, value in one_metrics.items():
        assert ddp_metrics[key] == pytest.approx(value, abs=1e-5), key


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_loopback_train_and_predict_every_query_once(tmp_path):
    """num_nodes=2 x devices=1: two 'nodes' launched by hand, as a cluster launcher would, on 127.0.0.1."""
    common = [*args(tmp_path), "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu",
              "--trainer.devices", "1", "--trainer.num_nodes", "2"]  # fmt: skip
    ckpt = tmp_path / "runs" / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    for stage, extra in (("fit", []), ("predict", ["--ckpt_path", str(ckpt)])):
        env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
        finish_zooter(*(start_zooter(stage, *common, *extra, env={**env, "NODE_RANK": str(r)}) for r in (1, 0)))
    predictions = tmp_path / "runs" / "quickstart" / "version_0-predict-last" / "predictions.jsonl"  # beside the fit
    rows = [json.loads(line) for line in predictions.open()]
    table = generate(SynthConfig(num_queries=250))
    assert [r["id"] for r in rows] == [table.ids[i] for i in np.random.default_rng(0).permutation(250)[:25]]
