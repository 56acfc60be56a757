"""Routers as LightningModules.

:class:`RouterModule` holds what every router shares: one scoring method ``scores(batch) -> [B, N]``,
``route()`` as its argmax, the evaluation metrics and the prediction step. :class:`ZooterRouter` is
the paper's router: a Hugging Face encoder, a pooled query vector, dropout and a linear head over
the N candidates, trained with KL(s* || router) or, as the paper's ablation, hard-label cross-entropy.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule
from torch import Tensor

from zooter.eval.metrics import RoutingMetrics

CHECKPOINT_KEY = "zooter"


class CheckpointMismatchError(ValueError):
    """A checkpoint trained for other candidates (or another tokenizer) than the data at hand."""


class RouterModule(LightningModule):
    """Base class of routers: implement :meth:`scores`; evaluation and prediction come with it.

    Args:
        candidates: the candidate names, in the order of the score columns (set from the data).
    """

    def __init__(self, candidates: list[str] | None = None) -> None:
        super().__init__()
        if not candidates or len(candidates) < 2:
            raise ValueError(f"a router needs at least 2 candidates, got {candidates}")
        self.candidates = list(candidates)
        self.val_metrics = RoutingMetrics(self.candidates)
        self.test_metrics = RoutingMetrics(self.candidates)

    def scores(self, batch: dict[str, Tensor]) -> Tensor:
        """Unnormalised routing scores ``[batch, candidates]``; higher means a better expected answer."""
        raise NotImplementedError

    def route(self, batch: dict[str, Tensor]) -> Tensor:
        """The index of the chosen candidate for each query."""
        return self.scores(batch).argmax(dim=-1)

    # ----------------------------------------------------------------------------- evaluation
    def _evaluate(self, batch: dict[str, Tensor], metrics: RoutingMetrics) -> None:
        logits = self.scores(batch)
        metrics.update(logits, batch["eval_scores"], batch["best_single_score"], batch["target"], batch["judged"])

    def _log_metrics(self, stage: str, metrics: RoutingMetrics) -> None:
        values = {f"{stage}/{key}": value for key, value in metrics.compute().items()}
        headline = f"{stage}/routed_score"
        # the values are already reduced over ranks by the metric; sync_dist only silences Lightning
        self.log(headline, values.pop(headline), prog_bar=True, sync_dist=True)
        self.log_dict(values, sync_dist=True)
        metrics.reset()

    def on_train_start(self) -> None:
        self.val_metrics.reset()  # drop the sanity check's state

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_metrics)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        probs = self.scores(batch).float().softmax(dim=-1)
        return {"index": batch["index"].cpu(), "probs": probs.cpu()}

    # ----------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {"candidates": self.candidates}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(CHECKPOINT_KEY, {}).get("candidates")
        if saved is not None and saved != self.candidates:
            raise CheckpointMismatchError(
                f"the checkpoint routes over candidates {saved}, but the data has {self.candidates}; "
                "pass data.candidates in the checkpoint's order, or use a table with the same candidates"
            )
