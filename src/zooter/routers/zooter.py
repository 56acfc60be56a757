"""The paper's router: encoder -> pooled query vector -> dropout -> linear head over the candidates,
trained with KL(s* || router) or, as the paper's ablation, hard-label cross-entropy."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from zooter.routers.encoder_router import EncoderRouter
from zooter.routers.losses import KLDirection, hard_label_cross_entropy, kl_divergence


class ZooterRouter(EncoderRouter):
    """The Zooter router: encoder -> pooled query vector -> dropout -> linear head over candidates.

    Args:
        candidates: candidate names (linked from ``data.candidates``; stored in every checkpoint).
        loss: ``kl`` (reward distillation, the paper) or ``ce`` (hard-label cross-entropy ablation).
        kl_direction: ``forward`` = KL(target || router) (distillation, default) or ``reverse``.
        encoding: the encoder's arguments (``encoder``, ``pooling``, ``dropout``, ...; see
            :class:`~zooter.routers.encoder_router.EncoderRouter`) and the optimization's (``lr``,
            ``weight_decay``, ``warmup_ratio``, ``optimizer``, ``scheduler``; see
            :class:`~zooter.routers.base.TrainableRouter`).
    """

    def __init__(
        self,
        candidates: list[str] | None = None,
        loss: Literal["kl", "ce"] = "kl",
        kl_direction: KLDirection = "forward",
        **encoding: Any,
    ) -> None:
        super().__init__(candidates, **encoding)
        self.head = nn.Linear(self.hidden_size, len(self.candidates))

    def scores(self, batch: dict[str, Any]) -> Tensor:
        return self.head(self.embed(batch))

    def add_candidate(self, name: str) -> list[tuple[nn.Parameter, Tensor]]:
        """Append one output row to the head (the new candidate's weights and bias)."""
        old = self.head
        self.head = nn.Linear(old.in_features, old.out_features + 1).to(old.weight.device, old.weight.dtype)
        with torch.no_grad():
            self.head.weight[:-1] = old.weight
            self.head.bias[:-1] = old.bias
        self.candidates.append(name)
        self.hparams.candidates = list(self.candidates)
        new_row = torch.zeros(old.out_features + 1, dtype=torch.bool, device=old.weight.device)
        new_row[-1] = True
        return [(self.head.weight, new_row[:, None].expand_as(self.head.weight)), (self.head.bias, new_row)]

    def loss(self, batch: dict[str, Any]) -> Tensor:
        logits = self.scores(batch)
        if self.hparams.loss == "kl":
            return kl_divergence(logits, batch["target"], batch["judged"], self.hparams.kl_direction)
        return hard_label_cross_entropy(logits, batch["target"], batch["judged"])
