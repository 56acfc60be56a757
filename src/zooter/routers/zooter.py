"""The paper's router: encoder -> pooled query vector -> dropout -> linear head over the candidates."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn
from transformers import get_linear_schedule_with_warmup

from zooter.routers import encoders
from zooter.routers.base import CHECKPOINT_KEY, CheckpointMismatchError, RouterModule
from zooter.routers.losses import KLDirection, hard_label_cross_entropy, kl_divergence


class ZooterRouter(RouterModule):
    """The Zooter router: encoder -> pooled query vector -> dropout -> linear head over candidates.

    Args:
        candidates: candidate names (linked from ``data.candidates``; stored in every checkpoint).
        encoder: ``tiny-deberta``, ``minilm`` or a hub id / local path (linked from ``data.encoder``).
        vocab_size: tokenizer size (linked from the data; used by ``tiny-deberta``).
        tokenizer_fingerprint: hash of the tokenizer the data module built (linked; checked on reload).
        pretrained: load pretrained weights (``False``: same architecture, random weights).
        encoder_config: overrides of encoder config fields, e.g. ``{"num_hidden_layers": 4}``.
        pooling: ``cls`` (first token, as RouterDC) or ``mean`` over non-padding tokens.
        dropout: dropout before the head.
        loss: ``kl`` (reward distillation, the paper) or ``ce`` (hard-label cross-entropy ablation).
        kl_direction: ``forward`` = KL(target || router) (distillation, default) or ``reverse``.
        lr: AdamW learning rate (paper: 1e-5).
        weight_decay: AdamW weight decay (paper: 5e-7).
        warmup_ratio: share of the training steps with a linear warm-up; then linear decay to 0.
    """

    def __init__(
        self,
        candidates: list[str] | None = None,
        encoder: str = encoders.TINY_DEBERTA,
        vocab_size: int | None = None,
        tokenizer_fingerprint: str | None = None,
        pretrained: bool = True,
        encoder_config: dict[str, Any] | None = None,
        pooling: Literal["cls", "mean"] = "cls",
        dropout: float = 0.1,
        loss: Literal["kl", "ce"] = "kl",
        kl_direction: KLDirection = "forward",
        lr: float = 1e-5,
        weight_decay: float = 5e-7,
        warmup_ratio: float = 0.1,
    ) -> None:
        super().__init__(candidates)
        self.save_hyperparameters()
        # from_pretrained returns a model in eval mode; Lightning keeps submodule modes, so reset it
        self.encoder = encoders.build_encoder(encoder, vocab_size, pretrained, encoder_config).train()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.config.hidden_size, len(self.candidates))

    def scores(self, batch: dict[str, Tensor]) -> Tensor:
        hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        if self.hparams.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
        return self.head(self.dropout(pooled))

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        logits = self.scores(batch)
        if self.hparams.loss == "kl":
            per_query = kl_divergence(logits, batch["target"], batch["judged"], self.hparams.kl_direction)
        else:
            per_query = hard_label_cross_entropy(logits, batch["target"], batch["judged"])
        loss = per_query.mean()
        if self._logging_step():
            self.log("train/loss", loss, prog_bar=True, batch_size=logits.shape[0])
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
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(self.hparams.warmup_ratio * total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[CHECKPOINT_KEY]["tokenizer_fingerprint"] = self.hparams.tokenizer_fingerprint

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        saved = checkpoint.get(CHECKPOINT_KEY, {}).get("tokenizer_fingerprint")
        current = self.hparams.tokenizer_fingerprint
        if saved is not None and current is not None and saved != current:
            raise CheckpointMismatchError(
                f"the checkpoint was trained with tokenizer {saved}, but the data module built {current}; "
                "for tiny-deberta the tokenizer is trained on the training split: keep data.path, the split "
                "settings and data.tokenizer_vocab_size of the training run"
            )
