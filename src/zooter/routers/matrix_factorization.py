"""Matrix factorisation router (RouteLLM's ``mf``, EmbedLLM style): a query vector projected into a
``dim``-wide space, dotted with one learned embedding per candidate, plus a per-candidate bias."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from zooter.routers.encoder_router import EncoderRouter
from zooter.routers.losses import kl_divergence, reward_regression

MFLoss = Literal["mse", "bce", "kl"]


class MatrixFactorizationRouter(EncoderRouter):
    """Matrix factorisation router: projected query vector · candidate embedding + candidate bias.

    ``score[q, n] = <W pool(encoder(q)), e_n> + b_n`` is the predicted quality of candidate ``n``'s
    answer to query ``q`` (higher is better).

    Each candidate is one row ``e_n`` (and bias ``b_n``), so ``zooter add-candidate`` fits a new LLM by
    learning one embedding against the frozen encoder and projection.

    Losses, one value per query, over the candidates the training judge scored only (an unjudged
    candidate, NaN in ``batch["rewards"]``, never counts):

    - ``mse``: mean squared error of the scores to the train judge's (standardized) rewards;
    - ``bce``: binary cross-entropy of ``sigmoid(score)`` to rewards read as probabilities (0/1 task
      scores, as in RouteLLM and EmbedLLM); rewards outside ``[0, 1]`` are refused;
    - ``kl``: KL(s* || softmax(scores / score_temperature)) over the judged candidates, the paper's reward
      distillation on the same soft targets s* as :class:`~zooter.routers.zooter.ZooterRouter` (built
      by the data module from ``data.beta``, ``data.temperature``, ``data.standardization``): Zooter's
      training signal with a factorised head, i.e. candidate embeddings that a new LLM can join. With
      ``data.beta`` 1 and ``score_temperature`` equal to ``data.temperature``, the scores fit the rewards up
      to a per-query constant.

    Args:
        candidates: candidate names (linked from ``data.candidates``; stored in every checkpoint).
        dim: width of the shared query/candidate embedding space.
        loss: ``mse`` (regress the rewards), ``bce`` (rewards in ``[0, 1]`` as probabilities) or ``kl``
            (distil the soft targets s*).
        score_temperature: softmax temperature of the scores in the ``kl`` loss (unused by ``mse``/``bce``).
        encoding: the encoder's arguments (``encoder``, ``pooling``, ``dropout``, ...; see
            :class:`~zooter.routers.encoder_router.EncoderRouter`) and the optimization's (``lr``,
            ``weight_decay``, ``warmup_ratio``, ``optimizer``, ``scheduler``; see
            :class:`~zooter.routers.base.TrainableRouter`).
    """

    def __init__(
        self,
        candidates: list[str] | None = None,
        dim: int = 128,
        loss: MFLoss = "mse",
        score_temperature: float = 1.0,
        **encoding: Any,
    ) -> None:
        if loss not in ("mse", "bce", "kl"):
            raise ValueError(f"unknown loss {loss!r}; use 'mse', 'bce' or 'kl'")
        if dim < 1 or not score_temperature > 0:
            raise ValueError(
                f"dim must be >= 1 and score_temperature > 0, got dim={dim}, score_temperature={score_temperature}"
            )
        super().__init__(candidates, **encoding)
        self.projection = nn.Linear(self.hidden_size, dim, bias=False)
        self.candidate_embeddings = nn.Parameter(torch.randn(len(self.candidates), dim) * dim**-0.5)
        self.candidate_bias = nn.Parameter(torch.zeros(len(self.candidates)))

    def scores(self, batch: dict[str, Any]) -> Tensor:
        return self.projection(self.embed(batch)) @ self.candidate_embeddings.T + self.candidate_bias

    def add_candidate(self, name: str) -> list[tuple[nn.Parameter, Tensor]]:
        """Append one candidate embedding and bias, initialised to the mean of the existing candidates'
        (the new candidate starts as the average one)."""
        embeddings, bias = self.candidate_embeddings.detach(), self.candidate_bias.detach()
        self.candidate_embeddings = nn.Parameter(torch.cat([embeddings, embeddings.mean(0, keepdim=True)]))
        self.candidate_bias = nn.Parameter(torch.cat([bias, bias.mean(0, keepdim=True)]))
        self.candidates.append(name)
        self.hparams.candidates = list(self.candidates)
        new_row = torch.zeros(len(self.candidates), dtype=torch.bool, device=bias.device)
        new_row[-1] = True
        return [
            (self.candidate_embeddings, new_row[:, None].expand_as(self.candidate_embeddings)),
            (self.candidate_bias, new_row),
        ]

    def loss(self, batch: dict[str, Any]) -> Tensor:
        scores = self.scores(batch).float()
        if self.hparams.loss == "kl":
            return kl_divergence(scores / self.hparams.score_temperature, batch["target"], batch["judged"])
        if batch.get("rewards") is None:
            raise ValueError(f"loss {self.hparams.loss!r} needs batch['rewards'] (the train judge's rewards)")
        return reward_regression(scores, batch["rewards"].float(), self.hparams.loss)
