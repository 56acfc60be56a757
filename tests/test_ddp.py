"""DDP on 2 CPU processes (gloo): every query predicted exactly once, metrics equal to one process.

The CLI runs as a subprocess because Lightning's DDP launcher re-runs the command line per rank.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import cli_args
from zooter.cli import main
from zooter.table.synth import SynthConfig, generate

pytestmark = pytest.mark.slow
DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]


def args(tmp_path: Path) -> list[str]:
    # 250 queries: a test split of 25, not divisible by 2 ranks
    small = ["--data.synth.num_queries", "250", "--data.tokenizer_vocab_size", "400"]
    return [*cli_args(tmp_path, "configs/quickstart.yaml"), *small]


def zooter(*argv: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "zooter", *argv], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]


def test_ddp_trains_predicts_every_query_once_and_matches_one_process(tmp_path):
    common = args(tmp_path)
    zooter("fit", *common, *DDP, "--trainer.max_epochs", "1")
    runs = tmp_path / "runs" / "quickstart"
    ckpt = runs / "version_0" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()

    zooter("predict", *common, *DDP, "--ckpt_path", str(ckpt))
    zooter("test", *common, *DDP, "--ckpt_path", str(ckpt))
    main(["predict", *common, "--ckpt_path", str(ckpt)])
    main(["test", *common, "--ckpt_path", str(ckpt)])

    ddp_rows = [json.loads(line) for line in (runs / "version_1" / "predictions.jsonl").open()]
    one_rows = [json.loads(line) for line in (runs / "version_3" / "predictions.jsonl").open()]
    table = generate(SynthConfig(num_queries=250))
    test_ids = [table.ids[i] for i in np.random.default_rng(0).permutation(250)[:25]]
    assert [r["id"] for r in ddp_rows] == test_ids == [r["id"] for r in one_rows]
    for ddp_row, one_row in zip(ddp_rows, one_rows, strict=True):
        assert ddp_row["route"] == one_row["route"]
        assert list(ddp_row["probs"].values()) == pytest.approx(list(one_row["probs"].values()), abs=1e-5)

    ddp_metrics = json.loads((runs / "version_2" / "test_metrics.json").read_text())
    one_metrics = json.loads((runs / "version_4" / "test_metrics.json").read_text())
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
    for stage, extra in (("fit", ["--trainer.max_epochs", "1"]), ("predict", ["--ckpt_path", str(ckpt)])):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}  # fmt: skip
        nodes = [
            subprocess.Popen(
                [sys.executable, "-m", "zooter", stage, *common, *extra],
                env={**env, "NODE_RANK": str(rank)},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for rank in (1, 0)
        ]
        outputs = [node.communicate(timeout=300)[0] for node in nodes]
        assert all(node.returncode == 0 for node in nodes), "\n".join(o[-3000:] for o in outputs)
    rows = [json.loads(line) for line in (tmp_path / "runs" / "quickstart" / "version_1" / "predictions.jsonl").open()]
    table = generate(SynthConfig(num_queries=250))
    assert [r["id"] for r in rows] == [table.ids[i] for i in np.random.default_rng(0).permutation(250)[:25]]
