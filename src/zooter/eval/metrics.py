"""Routing quality as one torchmetrics ``Metric`` (sum states, so DDP ranks reduce exactly).

For each query the router's pick is the argmax of its scores over the candidates the EVAL judge
scored (a null score cannot be evaluated). Keys returned by :meth:`RoutingMetrics.compute`:

- ``routed_score``: mean eval score of the picked candidate;
- ``best_single_score``: mean eval score of the best single model on average (chosen on the train
  split with the eval judge; where the eval judge did not score it, the next best such model);
- ``oracle_score``: mean of the best eval score per query;
- ``gap_recovered``: ``(routed - best_single) / (oracle - best_single)`` (NaN when oracle = best single);
- ``top1_acc``: share of queries whose pick is among the eval judge's best (ties count as hits);
- ``selection_entropy``: entropy (nats) of the distribution of picks over candidates;
- ``kl``: mean KL(target || router) over queries, when targets are given;
- ``share/<candidate>``: share of queries routed to each candidate.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from zooter.routers.losses import kl_divergence

TIE_TOLERANCE = 1e-6


class RoutingMetrics(Metric):
    """Accumulates routing decisions against eval-judge scores; ``compute()`` returns a flat dict."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, candidates: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.candidates = list(candidates)
        for name in ("routed", "oracle", "best_single", "best_single_count", "count", "hits", "kl", "kl_count"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("picks", default=torch.zeros(len(candidates), dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self,
        logits: Tensor,
        eval_scores: Tensor,
        best_single_score: Tensor,
        target: Tensor | None = None,
        judged: Tensor | None = None,
    ) -> None:
        evaluable = torch.isfinite(eval_scores)
        pick = logits.float().masked_fill(~evaluable, float("-inf")).argmax(dim=-1)
        picked = eval_scores.gather(1, pick[:, None]).squeeze(1)
        best = eval_scores.masked_fill(~evaluable, float("-inf")).max(dim=-1).values
        self.routed += picked.double().sum()
        self.oracle += best.double().sum()
        self.hits += (picked >= best - TIE_TOLERANCE).double().sum()
        self.count += pick.numel()
        scored = torch.isfinite(best_single_score)
        self.best_single += best_single_score[scored].double().sum()
        self.best_single_count += scored.sum()
        self.picks += torch.bincount(pick, minlength=len(self.candidates)).double()
        if target is not None and judged is not None:
            self.kl += kl_divergence(logits, target, judged).double().sum()
            self.kl_count += target.shape[0]

    def compute(self) -> dict[str, Tensor]:
        routed = self.routed / self.count
        oracle = self.oracle / self.count
        best_single = self.best_single / self.best_single_count
        gap = oracle - best_single
        share = self.picks / self.picks.sum()
        values = {
            "routed_score": routed,
            "best_single_score": best_single,
            "oracle_score": oracle,
            "gap_recovered": (routed - best_single) / gap if gap.abs() > 1e-12 else torch.tensor(float("nan")),
            "top1_acc": self.hits / self.count,
            "selection_entropy": -torch.where(share > 0, share * share.log(), torch.zeros_like(share)).sum(),
        }
        if self.kl_count > 0:
            values["kl"] = self.kl / self.kl_count
        values.update({f"share/{name}": share[k] for k, name in enumerate(self.candidates)})
        return {key: value.float() for key, value in values.items()}
