"""Exact resumption and whole checkpoints, in-process and in seconds (zooter/runs/resume.py).

The slow tests in tests/test_reliability.py do the same with real ``SIGKILL``s of a ``zooter fit``
subprocess (mid-epoch, and half-way through writing ``last.ckpt``).
"""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from conftest import debug_args
from zooter.cli import main
from zooter.runs.resume import AtomicCheckpointIO


def state(ckpt) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


class StopAfterEpoch(Callback):
    """Stop training when epoch ``epoch`` ends, as a run interrupted between epochs (its last.ckpt is saved)."""

    def __init__(self, epoch: int = 0) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


def test_resuming_after_an_epoch_ends_with_the_uninterrupted_weights(tmp_path):
    args = debug_args(tmp_path, "--trainer.max_epochs", "2")  # 6 steps an epoch
    main(["fit", *args, f"--trainer.callbacks+={__name__}.StopAfterEpoch"])
    stopped = tmp_path / "runs" / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(stopped, map_location="cpu", weights_only=False)["global_step"] == 6
    main(["fit", *args, "--ckpt_path", str(stopped)])  # resumes into version_1
    resumed = tmp_path / "runs" / "quickstart" / "version_1" / "checkpoints" / "last.ckpt"
    assert torch.load(resumed, map_location="cpu", weights_only=False)["global_step"] == 12
    main(["fit", *args])  # the uninterrupted run: version_2
    straight = state(tmp_path / "runs" / "quickstart" / "version_2" / "checkpoints" / "last.ckpt")
    after_resume = state(resumed)
    assert after_resume.keys() == straight.keys()
    for name, value in straight.items():
        # the random states come back with the checkpoint: the same batch order and dropout masks in epoch 2
        torch.testing.assert_close(after_resume[name], value, rtol=0, atol=1e-6, msg=name)


def test_a_checkpoint_save_that_dies_half_way_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 6, "weights": torch.arange(1000.0)}, path)
    real_save = torch.save

    def dies_half_way(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 12, "weights": torch.zeros(1000)}, path)
    monkeypatch.undo()
    whole = torch.load(path, map_location="cpu", weights_only=False)
    assert whole["global_step"] == 6 and torch.equal(whole["weights"], torch.arange(1000.0))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
    io.save_checkpoint({"global_step": 12}, path)
    assert torch.load(path, map_location="cpu", weights_only=False) == {"global_step": 12}
