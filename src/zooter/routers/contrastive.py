"""RouterDC-style router (Chen et al., 2024, arXiv 2409.19886): the query's pooled vector against one
learnable embedding per candidate, scored by cosine similarity, trained with dual contrastive losses.

The loss functions are module-level so they can be checked by hand: :func:`contrastive_masks`,
:func:`sample_llm_contrastive_loss` and :func:`sample_sample_contrastive_loss`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zooter.routers.encoder_router import EncoderRouter
from zooter.routers.losses import kl_divergence

ContrastiveLoss = Literal["contrastive", "kl"]


def _extreme_groups(rewards: Tensor, judged: Tensor, k: Tensor, largest: bool) -> Tensor:
    """The judged candidates among the ``k`` best (``largest``) or worst of each row, tie groups kept
    whole: a group joins only if all its members fit within the ``k`` places; the best (worst) group
    always joins. ``k`` is ``[batch]``; returns a ``[batch, N]`` mask."""
    r = rewards.unsqueeze(-1)  # [B, N, 1]: candidate n
    other = rewards.unsqueeze(-2)  # [B, 1, N]: candidate m
    better_or_equal = (other >= r) if largest else (other <= r)  # NaN compares False
    count = (better_or_equal & judged.unsqueeze(-2)).sum(dim=-1)  # places the group of n reaches down to
    fill = float("-inf") if largest else float("inf")
    masked = rewards.masked_fill(~judged, fill)
    extreme = masked.amax(dim=-1, keepdim=True) if largest else masked.amin(dim=-1, keepdim=True)
    return judged & ((count <= k.unsqueeze(-1)) | (rewards == extreme))


def contrastive_masks(rewards: Tensor, top_k: int, bottom_k: int) -> tuple[Tensor, Tensor]:
    """Positive and negative candidates ``[batch, N]`` of each query from its rewards (NaN: not judged).

    Only judged candidates take part. Positives: the ``top_k`` best-rewarded, with ``top_k`` capped at
    (judged candidates - 1) so that one is left to be a negative. Negatives: the ``bottom_k``
    worst-rewarded among the rest. Ties: candidates with equal rewards count as one group that is
    taken whole or not at all (a group that would cross the k-th place is left out), except that the
    best group is always positive and the worst group, unless positive, always negative. So a
    negative is strictly worse than every positive, and a query whose judged rewards are all equal
    (or with fewer than two judged) has no negatives, hence a zero loss.
    """
    judged = torch.isfinite(rewards)
    k_pos = torch.clamp(judged.sum(dim=-1) - 1, min=0).clamp(max=top_k)
    positive = _extreme_groups(rewards, judged, k_pos, largest=True)
    rest = judged & ~positive
    negative = _extreme_groups(rewards, rest, torch.full_like(k_pos, bottom_k), largest=False)
    return positive, negative


def _contrast(similarity: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
    """Per row, the mean over positives p of ``-log(exp(s_p) / (exp(s_p) + sum_n exp(s_n)))`` over the
    negatives n, i.e. ``softplus(logsumexp(s_n) - s_p)``; 0 for a row without positives. Rows need not
    have negatives (then each term is 0)."""
    similarity = similarity.float()
    # a large finite fill (not -inf) keeps every gradient finite; its exp is 0
    floor = torch.finfo(similarity.dtype).min / 4
    negatives = torch.logsumexp(similarity.masked_fill(~negative, floor), dim=-1, keepdim=True)
    negatives = negatives.masked_fill(~negative.any(dim=-1, keepdim=True), floor)
    terms = F.softplus(negatives - similarity).masked_fill(~positive, 0.0)
    return terms.sum(dim=-1) / positive.sum(dim=-1).clamp_min(1)


def sample_llm_contrastive_loss(scores: Tensor, rewards: Tensor, top_k: int = 3, bottom_k: int = 3) -> Tensor:
    """RouterDC's sample-LLM contrastive loss ``[batch]``: for each positive candidate p of a query,
    ``-log(exp(s_p) / (exp(s_p) + sum_{n in negatives} exp(s_n)))``, averaged over the positives
    (positives and negatives from :func:`contrastive_masks`; unjudged candidates never take part).

    Args:
        scores: the router's scores ``[batch, N]`` (cosine similarity / ``score_temperature``).
        rewards: the train judge's rewards ``[batch, N]``, NaN where not judged.
        top_k: positives per query (at most).
        bottom_k: negatives per query (at most).
    """
    positive, negative = contrastive_masks(rewards, top_k, bottom_k)
    return _contrast(scores, positive, negative)


def sample_sample_contrastive_loss(pooled: Tensor, groups: Sequence[str | None], temperature: float) -> Tensor:
    """RouterDC's sample-sample contrastive loss ``[batch]`` over the queries of one batch, with groups
    (e.g. each query's first tag) for RouterDC's clusters: for anchor i, every other query of its group
    is a positive p, every query of another group a negative n, and the anchor's loss is the mean over
    its positives of ``-log(exp(c_ip) / (exp(c_ip) + sum_n exp(c_in)))``, ``c`` = cosine similarity of
    the pooled vectors / ``temperature``. Queries without a group (``None``) are neither anchors,
    positives nor negatives; an anchor without positives in the batch has loss 0.

    Args:
        pooled: the queries' vectors ``[batch, hidden]``.
        groups: each query's group, ``None`` for none.
        temperature: divides the cosine similarities.
    """
    if len(groups) != pooled.shape[0]:
        raise ValueError(f"{len(groups)} groups for {pooled.shape[0]} queries")
    codes = {g: i for i, g in enumerate(dict.fromkeys(g for g in groups if g is not None))}
    ids = torch.tensor([-1 if g is None else codes[g] for g in groups], device=pooled.device)
    grouped = ids >= 0
    both = grouped.unsqueeze(0) & grouped.unsqueeze(1)
    same = ids.unsqueeze(0) == ids.unsqueeze(1)
    positive = both & same & ~torch.eye(len(groups), dtype=torch.bool, device=pooled.device)
    negative = both & ~same
    unit = F.normalize(pooled.float(), dim=-1)
    return _contrast(unit @ unit.T / temperature, positive, negative)


class RouterDCRouter(EncoderRouter):
    """RouterDC: ``score[q, n] = cos(pool(encoder(q)), e_n) / score_temperature`` with one learnable embedding
    ``e_n`` per candidate (higher is better).

    Losses, one value per query:

    - ``contrastive`` (RouterDC's sample-LLM loss, :func:`sample_llm_contrastive_loss`): on the train
      judge's rewards (``batch["rewards"]``), the ``top_k`` best judged candidates are positives and the
      ``bottom_k`` worst negatives; per positive p, ``-log(exp(s_p) / (exp(s_p) + sum_n exp(s_n)))``,
      averaged over the positives. Unjudged candidates are never positives or negatives; tied rewards
      are kept together (see :func:`contrastive_masks`).
    - ``kl``: KL(s* || softmax(scores)) over the judged candidates (:func:`~zooter.routers.losses.kl_divergence`),
      i.e. Zooter's reward distillation on the same soft targets s* as
      :class:`~zooter.routers.zooter.ZooterRouter` (``data.beta``, ``data.temperature``,
      ``data.standardization``, tag priors included), with RouterDC's cosine head: the full reward
      distribution, not only the top/bottom k, and a candidate-embedding head that ``zooter
      add-candidate`` can grow by one LLM.

    With ``sample_weight > 0``, RouterDC's sample-sample loss (:func:`sample_sample_contrastive_loss`)
    is added, weighted: training queries sharing their first tag (``data`` tables, looked up by the
    batch's split and rows) attract each other's pooled vectors, others repel; untagged queries are
    skipped. Batches outside a routing table's split (``zooter add-candidate``, which freezes the encoder
    this term trains) leave it out.

    Args:
        candidates: candidate names (linked from ``data.candidates``; stored in every checkpoint).
        loss: ``contrastive`` (RouterDC's sample-LLM loss on the rewards) or ``kl`` (distil s*).
        score_temperature: the scores are cosine similarities divided by it, and so are the sample-sample
            similarities (RouterDC's temperature; not ``data.temperature``, the soft labels' own). Default
            0.1: scores in [-10, 10], room for a peaked softmax (RouterDC's scripts use 1, where the softmax
            of cosines in [-1, 1] can never be sharper than e^2 : 1).
        top_k: positives per query in the ``contrastive`` loss (RouterDC: 3).
        bottom_k: negatives per query in the ``contrastive`` loss (RouterDC: 3).
        sample_weight: weight of the sample-sample contrastive loss on shared first tags (0: off).
        encoding: the encoder's arguments (``encoder``, ``pooling``, ``dropout``, ...; see
            :class:`~zooter.routers.encoder_router.EncoderRouter`) and the optimization's (``lr``,
            ``weight_decay``, ``warmup_ratio``, ``optimizer``, ``scheduler``; see
            :class:`~zooter.routers.base.TrainableRouter`).
    """

    def __init__(
        self,
        candidates: list[str] | None = None,
        loss: ContrastiveLoss = "contrastive",
        score_temperature: float = 0.1,
        top_k: int = 3,
        bottom_k: int = 3,
        sample_weight: float = 0.0,
        **encoding: Any,
    ) -> None:
        if loss not in ("contrastive", "kl"):
            raise ValueError(f"unknown loss {loss!r}; use 'contrastive' or 'kl'")
        if not score_temperature > 0 or top_k < 1 or bottom_k < 1 or not sample_weight >= 0:
            raise ValueError(
                "need score_temperature > 0, top_k >= 1, bottom_k >= 1 and sample_weight >= 0, got score_temperature="
                f"{score_temperature}, top_k={top_k}, bottom_k={bottom_k}, sample_weight={sample_weight}"
            )
        super().__init__(candidates, **encoding)
        self.candidate_embeddings = nn.Parameter(
            torch.randn(len(self.candidates), self.hidden_size) / self.hidden_size**0.5
        )

    def similarity_scores(self, pooled: Tensor) -> Tensor:
        """``cos(pooled, e_n) / score_temperature`` ``[batch, N]`` for pooled query vectors ``[batch, hidden]``."""
        query = F.normalize(pooled, dim=-1)
        return query @ F.normalize(self.candidate_embeddings, dim=-1).T / self.hparams.score_temperature

    def scores(self, batch: dict[str, Any]) -> Tensor:
        return self.similarity_scores(self.embed(batch))

    def add_candidate(self, name: str) -> list[tuple[nn.Parameter, Tensor]]:
        """Append one candidate embedding, initialised to the mean of the existing ones (the new candidate
        starts in the direction of the average candidate)."""
        embeddings = self.candidate_embeddings.detach()
        self.candidate_embeddings = nn.Parameter(torch.cat([embeddings, embeddings.mean(0, keepdim=True)]))
        self.candidates.append(name)
        self.hparams.candidates = list(self.candidates)
        new_row = torch.zeros(len(self.candidates), dtype=torch.bool, device=embeddings.device)
        new_row[-1] = True
        return [(self.candidate_embeddings, new_row[:, None].expand_as(self.candidate_embeddings))]

    def query_groups(self, batch: dict[str, Any]) -> list[str | None] | None:
        """Each query's first tag from the data module's table of the batch's split (``None``: untagged);
        ``None`` when the batch names no split (queries from outside the data module's tables)."""
        split = batch.get("split")
        if split is None:
            return None
        tables = getattr(getattr(self._trainer, "datamodule", None), "tables", None)
        if tables is None or split not in tables:
            raise ValueError(f"sample_weight > 0 needs the tags of the {split!r} split: train with ZooterDataModule")
        tags = tables[split].tags
        return [tags[i][0] if tags[i] else None for i in batch["index"].tolist()]

    def loss(self, batch: dict[str, Any]) -> Tensor:
        pooled = self.embed(batch)
        scores = self.similarity_scores(pooled).float()
        if self.hparams.loss == "kl":
            per_query = kl_divergence(scores, batch["target"], batch["judged"])
        else:
            if batch.get("rewards") is None:
                raise ValueError("loss 'contrastive' needs batch['rewards'] (the train judge's rewards)")
            per_query = sample_llm_contrastive_loss(scores, batch["rewards"], self.hparams.top_k, self.hparams.bottom_k)
        if self.hparams.sample_weight > 0:
            groups = self.query_groups(batch)
            if groups is not None:
                sample = sample_sample_contrastive_loss(pooled, groups, self.hparams.score_temperature)
                per_query = per_query + self.hparams.sample_weight * sample
        return per_query
