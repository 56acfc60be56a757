"""What a killed run needs to resume exactly: whole checkpoints and the random state inside them.

- :class:`AtomicCheckpointIO` writes each checkpoint to a temporary file beside its final name, syncs
  it to disk and renames it into place, so a kill while saving leaves the previous ``last.ckpt``
  whole. (Lightning's own writer stages the file in the system temp dir and *moves* it, which is a
  copy, and so not atomic, when that dir is on another file system.)
- :class:`RandomStateCheckpoint` stores the Python, NumPy and torch random states in every
  checkpoint and restores them on resume, so the resumed run draws the batch order and dropout masks
  the uninterrupted run would have drawn: ``zooter fit --ckpt_path .../last.ckpt`` finishes with the
  same weights and metrics (``tests/test_reliability.py``).
- :func:`zooter.files.resume_args` gives ``zooter cv`` and ``zooter sweep`` the ``--ckpt_path`` that resumes
  an interrupted fit (a finished one resumes at its end and stops at once); it lives apart so that those
  commands start without loading Lightning.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from zooter.files import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic (temporary sibling, fsync, rename)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)  # remote stores: Lightning's writer
            return
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())


class RandomStateCheckpoint(Callback):
    """Saves the random number generators' states with every checkpoint and restores them on resume."""

    def state_dict(self) -> dict[str, Any]:
        kind, keys, position, has_gauss, gauss = np.random.get_state()
        numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss)  # tensors load safely
        state: dict[str, Any] = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        kind, keys, position, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
