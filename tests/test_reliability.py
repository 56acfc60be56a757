"""Interruption, distributed failure and determinism: a killed or failing run loses nothing and hides nothing.

Kills are real ``SIGKILL``s of a ``zooter`` subprocess, at a set training step (``chaos.KillAtStep``)
or half-way through writing a checkpoint (``chaos.kill_during_nth_save``), so no cleanup code runs.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

from conftest import debug_args
from helpers import TESTS, output_tail, run_zooter
from zooter.cli import main

# 240 queries (configs/debug.yaml): 192 for training, 6 steps an epoch of 32; 3 epochs
DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]


def fit_args(tmp_path: Path, runs: str) -> list[str]:
    args = debug_args(tmp_path, "--trainer.max_epochs", "3")
    return [*args, "--trainer.logger.init_args.save_dir", str(tmp_path / runs)]


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


def newest_run(args: list[str]) -> Path:
    """The newest run directory under the save_dir that ``fit_args`` set (its last two items): a fit's
    ``version_N``, or the ``version_N-<stage>-<checkpoint>`` of a test or predict beside it."""
    runs = Path(args[-1]) / "quickstart"
    return max(runs.glob("version_*"), key=lambda p: p.stat().st_mtime_ns)


def metrics_of(args: list[str], ckpt: Path) -> dict[str, float]:
    """``zooter test`` of a checkpoint: its test_metrics.json."""
    main(["test", *args, "--ckpt_path", str(ckpt)])
    return json.loads((newest_run(args) / "test_metrics.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, list[str], Path]:
    """One uninterrupted 3-epoch fit: (tmp dir, its arguments, its last checkpoint)."""
    tmp_path = tmp_path_factory.mktemp("reliability")
    args = fit_args(tmp_path, "uninterrupted")
    main(["fit", *args])
    return tmp_path, args, tmp_path / "uninterrupted" / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"


@pytest.mark.slow  # fast suite: tests/test_resume.py resumes in-process after an epoch
def test_fit_killed_mid_epoch_resumes_to_the_same_weights_and_metrics(uninterrupted):
    tmp_path, reference_args, reference_ckpt = uninterrupted
    args = fit_args(tmp_path, "killed")
    kill = ["--trainer.callbacks+=chaos.KillAtStep", "--trainer.callbacks.step=9"]  # 3rd step of epoch 2
    run_zooter("fit", *args, *kill, expect=-signal.SIGKILL)
    checkpoints = tmp_path / "killed" / "quickstart" / "version_0" / "checkpoints"
    last = checkpoints / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 6  # end of epoch 1

    main(["fit", *args, "--ckpt_path", str(last)])  # resumes into version_1
    resumed_last = tmp_path / "killed" / "quickstart" / "version_1" / "checkpoints" / "last.ckpt"
    resumed, reference = weights(resumed_last), weights(reference_ckpt)
    assert resumed.keys() == reference.keys()
    for name in reference:
        torch.testing.assert_close(resumed[name], reference[name], rtol=0, atol=1e-6, msg=name)
    resumed_metrics = metrics_of(args, resumed_last)
    reference_metrics = metrics_of(reference_args, reference_ckpt)
    assert resumed_metrics.keys() == reference_metrics.keys()
    assert resumed_metrics == pytest.approx(reference_metrics, abs=1e-6)


@pytest.mark.slow  # fast suite: tests/test_resume.py (a save dying half-way) and the predictions kill below
def test_kill_while_saving_a_checkpoint_leaves_the_previous_one_whole(tmp_path):
    args = fit_args(tmp_path, "runs")
    chaos = dict(ZOOTER_KILL_WRITING="last.ckpt", ZOOTER_KILL_AT="2")  # epoch 2's last.ckpt
    run_zooter("fit", *args, script=TESTS / "chaos.py", env=chaos, expect=-signal.SIGKILL)
    checkpoints = tmp_path / "runs" / "quickstart" / "version_0" / "checkpoints"
    leftovers = sorted(p.name for p in checkpoints.glob(".last.ckpt.tmp*"))
    assert len(leftovers) == 1  # the half-written file, under a temporary name
    checkpoint = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 6 and checkpoint["epoch"] == 0  # epoch 1's last.ckpt, whole

    main(["fit", *args, "--ckpt_path", str(checkpoints / "last.ckpt")])  # and it resumes
    final = tmp_path / "runs" / "quickstart" / "version_1" / "checkpoints" / "last.ckpt"
    assert torch.load(final, map_location="cpu", weights_only=False)["global_step"] == 18


def test_predict_killed_while_writing_leaves_no_predictions_file(uninterrupted):
    _, args, ckpt = uninterrupted
    predict = ["predict", *args, "--ckpt_path", str(ckpt)]
    chaos = dict(ZOOTER_KILL_WRITING="predictions.jsonl")
    run_zooter(*predict, script=TESTS / "chaos.py", env=chaos, expect=-signal.SIGKILL)
    run = newest_run(args)
    assert not (run / "predictions.jsonl").exists()  # only the half-written temporary file is left
    assert len(list(run.glob(".predictions.jsonl.tmp*"))) == 1
    main(predict)
    rows = [json.loads(line) for line in (newest_run(args) / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and len({r["id"] for r in rows}) == 24


def test_same_config_and_seed_give_identical_weights_metrics_and_predictions(uninterrupted, tmp_path):
    _, reference_args, reference_ckpt = uninterrupted
    args = fit_args(tmp_path, "again")
    main(["fit", *args])
    again = tmp_path / "again" / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    first, second = weights(reference_ckpt), weights(again)
    assert all(torch.equal(first[name], second[name]) for name in first)
    first_ckpt = torch.load(reference_ckpt, map_location="cpu", weights_only=False)
    second_ckpt = torch.load(again, map_location="cpu", weights_only=False)
    first_scores = [c["best_model_score"] for k, c in first_ckpt["callbacks"].items() if "ModelCheckpoint" in k]
    second_scores = [c["best_model_score"] for k, c in second_ckpt["callbacks"].items() if "ModelCheckpoint" in k]
    assert first_scores == second_scores

    predictions = []
    for run_args, ckpt in ((reference_args, reference_ckpt), (args, again)):
        main(["predict", *run_args, "--ckpt_path", str(ckpt)])
        predictions.append((newest_run(run_args) / "predictions.jsonl").read_text())
    assert predictions[0] == predictions[1] and predictions[0].count("\n") == 24


@pytest.mark.slow
@pytest.mark.parametrize("rank", [0, 1])
def test_a_failing_ddp_rank_fails_the_whole_run_with_its_error(tmp_path, rank):
    args = fit_args(tmp_path, "runs")
    fail = ["--trainer.callbacks+=chaos.RaiseOnRank", f"--trainer.callbacks.rank={rank}"]
    done = run_zooter("fit", *args, *DDP, "--trainer.max_epochs", "1", *fail, expect=None)  # 300 s: never hangs
    assert done.returncode != 0, output_tail(done)
    assert f"RuntimeError: chaos: rank {rank} fails at step 1" in done.stderr
