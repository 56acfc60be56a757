"""Routing quality as one torchmetrics ``Metric`` over :mod:`zooter.eval.functional`.

Each ``update`` turns a batch's router scores into decisions with
:func:`~zooter.eval.functional.decision_weights` (ties shared, picks restricted to the candidates the
eval judge scored) and adds per-query sums to float64 states (``dist_reduce_fx="sum"``, so DDP ranks
reduce exactly). ``compute`` returns the keys of :func:`~zooter.eval.functional.summarize`, plus ``kl``
(mean KL(target || router) over queries) when targets were given. ``zooter report`` computes the same
keys from ``predictions.jsonl`` with the same functions.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from zooter.eval import functional as F
from zooter.routers.losses import kl_divergence

SUMS = ("routed", "oracle", "best_single", "hits", "count", "kl", "kl_count")


class RoutingMetrics(Metric):
    """Accumulates routing decisions against eval-judge scores; ``compute()`` returns a flat dict."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, candidates: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.candidates = list(candidates)
        for name in SUMS:
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("picks", default=torch.zeros(len(candidates), dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self,
        scores: Tensor,
        eval_scores: Tensor,
        best_single_score: Tensor,
        target: Tensor | None = None,
        judged: Tensor | None = None,
    ) -> None:
        """``scores`` ``[B, N]`` of the router, the eval judge's ``[B, N]`` (NaN = not scored) and the best
        single model's per-query score (see :func:`zooter.eval.functional.best_single_scores`)."""
        evals = eval_scores.detach().double().cpu().numpy()
        weights = F.decision_weights(scores.detach().double().cpu().numpy(), evals)
        sums = {
            "routed": F.expected_scores(weights, evals).sum(),
            "oracle": F.oracle_scores(evals).sum(),
            "best_single": best_single_score.detach().double().sum().item(),
            "hits": F.top1_hits(weights, evals).sum(),
            "count": len(evals),
        }
        if target is not None and judged is not None:
            sums["kl"] = kl_divergence(scores, target, judged).double().sum().item()
            sums["kl_count"] = target.shape[0]
        for name, value in sums.items():
            setattr(self, name, getattr(self, name) + float(value))
        self.picks += torch.as_tensor(weights.sum(axis=0), dtype=torch.float64, device=self.picks.device)

    def compute(self) -> dict[str, Tensor]:
        count = self.count.item()
        share = (self.picks / count).cpu().numpy()
        routed, best_single, oracle = (getattr(self, n).item() / count for n in ("routed", "best_single", "oracle"))
        values = {
            "routed_score": routed,
            "best_single_score": best_single,
            "oracle_score": oracle,
            "gap_recovered": F.gap_recovered(routed, best_single, oracle),
            "top1_acc": self.hits.item() / count,
            "selection_entropy": F.entropy_nats(share),
        }
        if self.kl_count > 0:
            values["kl"] = self.kl.item() / self.kl_count.item()
        values.update({f"share/{name}": float(share[k]) for k, name in enumerate(self.candidates)})
        return {key: torch.tensor(value, dtype=torch.float32) for key, value in values.items()}
