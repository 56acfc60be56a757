"""Callbacks that write run outputs: test metrics as JSON and routing predictions as JSON Lines.

Files go to the run directory (see :func:`run_dir`)
and are written by rank 0 only, atomically (a temporary file renamed into place), so a killed run
never leaves a truncated file that looks complete.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from zooter.eval.functional import decision_weights
from zooter.files import write_text_atomic


def run_dir(trainer: Trainer) -> Path:
    """Where this run's files go: the first logger's ``log_dir`` (CSV, TensorBoard), else
    ``save_dir/name/version`` (W&B: next to its checkpoints), else the trainer's root dir."""
    for logger in trainer.loggers:
        if getattr(logger, "log_dir", None):
            return Path(logger.log_dir)
        if logger.save_dir:
            return Path(logger.save_dir) / str(logger.name) / str(logger.version)
    return Path(trainer.default_root_dir)


class ZooterSaveConfig(SaveConfigCallback):
    """Saves the full config as Lightning does (``config.yaml`` in ``trainer.log_dir``), and also into
    the run directory when that holds none yet (W&B runs), pushing it to W&B's run config.

    ``save_config`` runs on rank 0 only, so it must not touch collectives (``trainer.log_dir``
    broadcasts; calling it here would hang DDP).
    """

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        path = run_dir(trainer) / self.config_filename
        if not path.is_file():
            write_text_atomic(path, self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.config.update(self.config.as_dict(), allow_val_change=True)


class TestMetricsWriter(Callback):
    """After ``test``, writes ``test_metrics.json`` (flat: every logged ``test/...`` value) and prints its path."""

    def __init__(self, filename: str = "test_metrics.json") -> None:
        self.filename = filename

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in sorted(trainer.callback_metrics.items()) if k.startswith("test/")}
        path = run_dir(trainer) / self.filename
        write_text_atomic(path, json.dumps(metrics, indent=2) + "\n")
        print(f"zooter: test metrics written to {path}", flush=True)


class RoutingPredictionWriter(BasePredictionWriter):
    """After ``predict``, writes ``predictions.jsonl``: one row per input query, in input order, with
    ``id``, ``query`` (its text), ``route`` (the chosen candidate), ``scores`` (the router's scores,
    ``null`` where it has no preference) and ``probs`` (their softmax). ``route`` is the decision the metrics score
    (:func:`zooter.eval.functional.decision_weights`: the best-scored candidate among those the eval
    judge scored, when the queries carry its scores); when several tie, ``route`` is the first in
    candidate order and ``tied`` lists them all (the metrics share the query among them). Under DDP
    the ranks' rows are gathered on rank 0 and checked for gaps and duplicates before writing."""

    def __init__(self, filename: str = "predictions.jsonl") -> None:
        super().__init__(write_interval="epoch")
        self.filename = filename

    def write_on_epoch_end(
        self, trainer: Trainer, pl_module: LightningModule, predictions: Sequence[Any], batch_indices: Sequence[Any]
    ) -> None:
        batches = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        fields = ("index", "scores", "probs")
        columns = [torch.cat([b[f] for b in batches]) if batches else torch.empty(0) for f in fields]
        if trainer.world_size > 1:
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, columns)
            columns = [torch.cat([g[k] for g in gathered]) for k in range(len(fields))]
        if not trainer.is_global_zero:
            return
        index, scores, probs = columns
        table = trainer.datamodule.tables["predict"]
        ids = table.ids
        order = torch.argsort(index)
        index, scores, probs = index[order], scores[order].double().numpy(), probs[order].tolist()
        expected = torch.arange(len(ids))
        if index.shape != expected.shape or not torch.equal(index, expected):
            raise RuntimeError(
                f"predictions cover {index.unique().numel()} distinct of {len(ids)} queries in {index.numel()} rows"
            )
        evals = trainer.datamodule.eval_scores("predict")
        weights = decision_weights(scores, np.zeros_like(scores) if evals is None else evals)
        candidates = pl_module.candidates
        lines = []
        for i in range(len(ids)):
            tied = [c for c, w in zip(candidates, weights[i], strict=True) if w > 0 and w == weights[i].max()]
            row: dict[str, Any] = {"id": ids[i], "query": table.queries[i], "route": tied[0]}
            if len(tied) > 1:
                row["tied"] = tied
            finite = [float(s) if np.isfinite(s) else None for s in scores[i]]
            row["scores"] = dict(zip(candidates, finite, strict=True))
            row["probs"] = dict(zip(candidates, probs[i], strict=True))
            lines.append(json.dumps(row))
        path = run_dir(trainer) / self.filename
        write_text_atomic(path, "\n".join(lines) + "\n")
        print(f"zooter: {len(lines)} predictions written to {path}", flush=True)
