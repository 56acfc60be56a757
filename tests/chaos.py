"""Failures on purpose, for the reliability tests: callbacks that kill or break a run at a set point.

The CLI runs as a subprocess with this folder on ``PYTHONPATH`` (``helpers.run_zooter``) and adds them
with ``--trainer.callbacks+=chaos.KillAtStep --trainer.callbacks.step=N``. Run as a script,
``python chaos.py ZOOTER_ARGS...`` runs ``zooter`` killed half-way through the ``ZOOTER_KILL_AT``-th
write (default 1) of a file whose name holds ``ZOOTER_KILL_WRITING`` (e.g. ``last.ckpt``).
"""

from __future__ import annotations

import io
import os
import pathlib
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


def kill_during_nth_write(n: int, name: str) -> None:
    """Make the ``n``-th write of a file whose name holds ``name`` (a checkpoint through ``torch.save``,
    text through ``Path.write_text``) write half its bytes, then SIGKILL the process."""
    real_save, real_write_text = torch.save, pathlib.Path.write_text
    calls = 0

    def kill_now(f: object, data: bytes) -> None:
        f.write(data[: len(data) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def due(target: object) -> bool:
        nonlocal calls
        if name in str(target):
            calls += 1
        return name in str(target) and calls == n

    def save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        if not due(getattr(f, "name", "")):
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        kill_now(f, buffer.getvalue())

    def write_text(path: pathlib.Path, data: str, *args: object, **kwargs: object) -> int:
        if not due(path.name):
            return real_write_text(path, data, *args, **kwargs)
        with path.open("wb") as f:
            kill_now(f, data.encode())
        return 0

    torch.save = save
    pathlib.Path.write_text = write_text


if __name__ == "__main__":
    kill_during_nth_write(int(os.environ.get("ZOOTER_KILL_AT", "1")), os.environ["ZOOTER_KILL_WRITING"])
    from zooter.cli import main

    main(sys.argv[1:])
