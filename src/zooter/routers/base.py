"""The router seam: every router is a :class:`RouterModule`; routers trained by gradient steps are
:class:`TrainableRouter`\\ s.

A router is one class that implements :meth:`RouterModule.scores` (``[batch, candidates]``, higher is
better) and, if trainable, :meth:`TrainableRouter.loss` (one value per query). Everything else comes
from the base classes, the same for every router:

- evaluation: ``validate``/``test`` feed the scores to :class:`~zooter.eval.metrics.RoutingMetrics`
  (the one definition of the metrics, shared with ``zooter report``);
- prediction: ``predict`` returns each query's scores and probabilities, written to
  ``predictions.jsonl`` by :class:`~zooter.runs.callbacks.RoutingPredictionWriter`;
- the checkpoint section ``checkpoint["zooter"]`` (written here only, read by
  :class:`zooter.inference.Router`): the candidate order, the tokenizer's files, ``max_length``, the
  best single model, plus what a router adds in :meth:`RouterModule.extra_checkpoint_state`;
- for trainable routers: the training step, ``train/loss`` logging and the optimizer/scheduler (AdamW
  with linear warm-up and decay by default, or any ``optimizer``/``scheduler`` callables from the
  config, the LightningCLI way).

Choose a router with ``--model <class_path>`` (bare class names work for zooter's routers) or a
``configs/router/<name>.yaml`` file.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from zooter.eval.metrics import RoutingMetrics

CHECKPOINT_KEY = "zooter"


class CheckpointMismatchError(ValueError):
    """A checkpoint trained for other candidates (or another tokenizer) than the data at hand."""


class RouterModule(LightningModule):
    """Base class of every router: implement :meth:`scores`; evaluation, prediction and the checkpoint
    section come with it.

    Args:
        candidates: the candidate names, in the order of the score columns (linked from the data).
    """

    def __init__(self, candidates: list[str] | None = None) -> None:
        super().__init__()
        if not candidates or len(candidates) < 2:
            raise ValueError(f"a router needs at least 2 candidates, got {candidates}")
        self.save_hyperparameters()  # every subclass's __init__ arguments too (Lightning walks the frames)
        self.candidates = list(candidates)
        self.val_metrics = RoutingMetrics(self.candidates)
        self.test_metrics = RoutingMetrics(self.candidates)

    def scores(self, batch: dict[str, Any]) -> Tensor:
        """Routing scores ``[batch, candidates]``; higher means a better expected answer. NaN or -inf:
        no preference for that candidate. Ties (within the metrics' tolerance) share the query."""
        raise NotImplementedError

    def probabilities(self, batch: dict[str, Any]) -> Tensor:
        """``softmax`` of the scores (candidates without a finite score get 0; a row without any: uniform)."""
        return scores_to_probabilities(self.scores(batch))

    # ----------------------------------------------------------------------------- evaluation
    #: whether the metrics include ``kl`` (KL of the training target to the softmax of the scores),
    #: meaningful where the scores are trained as logits
    reports_kl = False

    def _evaluate(self, batch: dict[str, Any], metrics: RoutingMetrics) -> None:
        targets = (batch["target"], batch["judged"]) if self.reports_kl else (None, None)
        metrics.update(self.scores(batch), batch["eval_scores"], batch["best_single_score"], *targets)

    def _log_metrics(self, stage: str, metrics: RoutingMetrics) -> None:
        values = {f"{stage}/{key}": value for key, value in metrics.compute().items()}
        headline = f"{stage}/routed_score"
        # the values are already reduced over ranks by the metric; sync_dist only silences Lightning
        self.log(headline, values.pop(headline), prog_bar=True, sync_dist=True)
        self.log_dict(values, sync_dist=True)
        metrics.reset()

    def on_train_start(self) -> None:
        self.val_metrics.reset()  # drop the sanity check's state

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_metrics)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        scores = self.scores(batch).detach().double()  # exactly the values the metrics decide on
        return {"index": batch["index"].cpu(), "scores": scores.cpu(), "probs": scores_to_probabilities(scores).cpu()}

    # ----------------------------------------------------------------------------- checkpoints
    def extra_checkpoint_state(self) -> dict[str, Any]:
        """What this router adds to the checkpoint section (restored by :meth:`load_extra_checkpoint_state`)."""
        return {}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_checkpoint_state` saved."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # keep only this class's own arguments: the CLI links data values (e.g. vocab_size) into every
        # router's config, and a router without that argument could not be rebuilt from its checkpoint
        accepted = {name for cls in type(self).__mro__ if issubclass(cls, RouterModule)
                    for name in inspect.signature(cls.__init__).parameters}  # fmt: skip
        hparams = checkpoint.get("hyper_parameters", {})
        for key in [k for k in hparams if not k.startswith("_") and k not in accepted]:
            del hparams[key]
        section: dict[str, Any] = {"candidates": self.candidates}
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None and hasattr(datamodule, "routing_state"):
            section.update(datamodule.routing_state())
        section.update(self.extra_checkpoint_state())
        checkpoint[CHECKPOINT_KEY] = section

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        section = checkpoint.get(CHECKPOINT_KEY, {})
        saved = section.get("candidates")
        if saved is not None and saved != self.candidates:
            raise CheckpointMismatchError(
                f"the checkpoint routes over candidates {saved}, but the data has {self.candidates}; "
                "pass data.candidates in the checkpoint's order, or use a table with the same candidates"
            )
        self.load_extra_checkpoint_state(section)


class TrainableRouter(RouterModule):
    """A router trained by gradient steps: implement :meth:`scores` and :meth:`loss`.

    Args:
        candidates: candidate names (linked from the data).
        lr: learning rate of the default AdamW (paper: 1e-5).
        weight_decay: weight decay of the default AdamW (paper: 5e-7).
        warmup_ratio: share of the training steps with a linear warm-up of the default schedule, which
            then decays linearly to 0.
        optimizer: another optimizer, e.g. ``{class_path: torch.optim.SGD, init_args: {lr: 0.1}}``
            (then ``lr``/``weight_decay`` are not used).
        scheduler: another learning-rate schedule, stepped after every optimizer step (then
            ``warmup_ratio`` is not used).
    """

    def __init__(
        self,
        candidates: list[str] | None = None,
        lr: float = 1e-5,
        weight_decay: float = 5e-7,
        warmup_ratio: float = 0.1,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(candidates)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    reports_kl = True

    def loss(self, batch: dict[str, Any]) -> Tensor:
        """The training loss of each query ``[batch]`` (the batch carries ``target`` and ``judged``)."""
        raise NotImplementedError

    def add_candidate(self, name: str) -> list[tuple[torch.nn.Parameter, Tensor]]:
        """Route over one more candidate, ``name`` (appended last): grow the candidate-specific parameters
        by one row and return ``(parameter, mask)`` pairs, ``mask`` marking the entries that belong to the
        new candidate. ``zooter add-candidate`` then fits only those entries, the rest frozen.
        Routers without candidate-specific parameters raise ``NotImplementedError``."""
        raise NotImplementedError(f"{type(self).__name__} cannot add a candidate without retraining")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss = self.loss(batch).mean()
        if self._logging_step():
            self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def _logging_step(self) -> bool:
        """Whether the loggers write this step's metrics (Lightning's rule: every ``log_every_n_steps``
        steps, or when stopping; ``log_every_n_steps: 0`` keeps logging every step for the progress bar).

        ``self.log`` costs about 0.5 ms a call on CPU (Lightning moves its result store to the device
        each time): ~3% of a tiny-deberta step (``benchmarks/results/throughput_logging.md``). Logging
        only the steps the loggers write keeps the logged values identical; the progress bar's
        ``train/loss`` then refreshes every ``log_every_n_steps``.
        """
        trainer = self._trainer
        if trainer is None:  # called outside a Trainer
            return True
        every = trainer.log_every_n_steps
        return every <= 0 or (trainer.global_step + 1) % every == 0 or trainer.should_stop

    def configure_optimizers(self) -> dict[str, Any]:
        if self.optimizer_factory is not None:
            optimizer = self.optimizer_factory(self.parameters())
        else:
            optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if self.scheduler_factory is not None:
            scheduler = self.scheduler_factory(optimizer)
        else:
            from transformers import get_linear_schedule_with_warmup

            total = max(int(self.trainer.estimated_stepping_batches), 1)
            scheduler = get_linear_schedule_with_warmup(optimizer, int(self.hparams.warmup_ratio * total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def scores_to_probabilities(scores: Tensor) -> Tensor:
    """Row-wise softmax over the finite scores; a row with none is uniform."""
    scores = scores.float()
    finite = torch.isfinite(scores)
    masked = scores.masked_fill(~finite, float("-inf"))
    probs = masked.softmax(dim=-1)
    uniform = torch.full_like(probs, 1.0 / scores.shape[-1])
    return torch.where(finite.any(dim=-1, keepdim=True), probs, uniform)
