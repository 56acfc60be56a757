"""Failures on purpose, for the reliability tests: callbacks that kill or break a run at a set point.

The CLI runs as a subprocess with this folder on ``PYTHONPATH`` and adds them with
``--trainer.callbacks+=chaos.KillAtStep --trainer.callbacks.step=N``. Run as a script,
``python chaos.py ZOOTER_ARGS...`` runs ``zooter`` with ``torch.save`` killing the process half-way
through the ``ZOOTER_KILL_AT_SAVE``-th write of ``last.ckpt``.
"""

from __future__ import annotations

import io
import os
import signal
import sys

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class KillAtStep(Callback):
    """SIGKILL this process (no cleanup, no exception) when a training batch of global step ``step`` ends.

    ``marker``: kill only if this file does not exist yet (it is created first), so a rerun of the same
    command goes through. ``group``: kill the whole process group, as a job scheduler does (e.g. a
    ``zooter sweep`` together with the fit it runs).
    """

    def __init__(self, step: int, marker: str | None = None, group: bool = False) -> None:
        self.step = step
        self.marker = marker
        self.group = group

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        if trainer.global_step != self.step:
            return
        if self.marker is not None:
            if os.path.exists(self.marker):
                return
            open(self.marker, "w").close()
        if self.group:
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


class RaiseOnRank(Callback):
    """Raise on one DDP rank only, at the start of training step ``step``."""

    def __init__(self, rank: int, step: int = 1) -> None:
        self.rank = rank
        self.step = step

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            raise RuntimeError(f"chaos: rank {self.rank} fails at step {self.step}")


def kill_during_nth_save(n: int, name: str = "last.ckpt") -> None:
    """Make the ``n``-th ``torch.save`` into a file whose name holds ``name`` write half its bytes, then
    SIGKILL the process."""
    real_save = torch.save
    calls = 0

    def save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        nonlocal calls
        if name not in str(getattr(f, "name", "")):
            return real_save(obj, f, *args, **kwargs)
        calls += 1
        if calls < n:
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        f.write(buffer.getvalue()[: buffer.tell() // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = save


if __name__ == "__main__":
    kill_during_nth_save(int(os.environ["ZOOTER_KILL_AT_SAVE"]))
    from zooter.cli import main

    main(sys.argv[1:])
