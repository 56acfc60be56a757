"""Router losses over masked candidate distributions; each returns one value per query.

``judged`` marks the candidates a query's target covers; the router's distribution is renormalised
over them (other logits are set to -inf), so an unjudged candidate never counts as a bad one.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

KLDirection = Literal["forward", "reverse"]
RewardLoss = Literal["mse", "bce"]
TARGET_FLOOR = 1e-12  # reverse KL needs log(target); a judged candidate's target is clamped to this


def masked_log_softmax(logits: Tensor, judged: Tensor) -> Tensor:
    """``log_softmax`` over the judged candidates only; 0 (not -inf) elsewhere, so that products with
    a zero target stay 0 and gradients stay finite. Use ``judged`` to tell the two apart."""
    log_probs = logits.float().masked_fill(~judged, float("-inf")).log_softmax(dim=-1)
    return log_probs.masked_fill(~judged, 0.0)


def kl_divergence(logits: Tensor, target: Tensor, judged: Tensor, direction: KLDirection = "forward") -> Tensor:
    """``forward``: KL(target || router), the distillation loss (default); ``reverse``: KL(router || target)."""
    log_router = masked_log_softmax(logits, judged)
    if direction == "forward":
        log_target = target.clamp_min(TARGET_FLOOR).log()
        terms = torch.where(target > 0, target * (log_target - log_router), torch.zeros_like(target))
    elif direction == "reverse":
        log_target = target.clamp_min(TARGET_FLOOR).log()
        router = log_router.exp() * judged
        terms = torch.where(judged, router * (log_router - log_target), torch.zeros_like(target))
    else:
        raise ValueError(f"unknown KL direction {direction!r}; use 'forward' or 'reverse'")
    return terms.sum(dim=-1)


def hard_label_cross_entropy(logits: Tensor, target: Tensor, judged: Tensor) -> Tensor:
    """Cross-entropy on the target's argmax (the paper's ablation); tied maxima share the label equally."""
    masked = target.masked_fill(~judged, float("-inf"))
    top = (masked >= masked.max(dim=-1, keepdim=True).values - 1e-12) & judged
    hard = top.float() / top.sum(dim=-1, keepdim=True)
    log_router = masked_log_softmax(logits, judged)
    return -torch.where(hard > 0, hard * log_router, torch.zeros_like(hard)).sum(dim=-1)


def reward_regression(scores: Tensor, rewards: Tensor, kind: RewardLoss = "mse") -> Tensor:
    """Per-query mean over the judged (finite) rewards of ``mse`` (squared error of the scores to the
    rewards) or ``bce`` (binary cross-entropy of ``sigmoid(scores)`` to rewards read as probabilities,
    e.g. 0/1 task scores; rewards outside ``[0, 1]`` are refused).

    Args:
        scores: ``[batch, candidates]`` router scores.
        rewards: ``[batch, candidates]`` rewards, NaN where the candidate was not judged.
        kind: ``mse`` or ``bce``.
    """
    judged = torch.isfinite(rewards)
    filled = torch.where(judged, rewards, torch.zeros_like(rewards)).to(scores.dtype)  # no NaN in the gradient
    if kind == "mse":
        per_entry = (scores - filled).square()
    elif kind == "bce":
        seen = rewards[judged]
        if seen.numel() and (seen.min() < 0 or seen.max() > 1):
            raise ValueError(
                f"loss 'bce' needs rewards in [0, 1] (e.g. 0/1 task scores), got rewards in "
                f"[{seen.min().item():.4g}, {seen.max().item():.4g}]; use loss 'mse' or 'kl', or "
                "data.standardization 'rank'"
            )
        per_entry = F.binary_cross_entropy_with_logits(scores, filled, reduction="none")
    else:
        raise ValueError(f"unknown reward loss {kind!r}; use 'mse' or 'bce'")
    per_entry = per_entry.masked_fill(~judged, 0.0)
    return per_entry.sum(dim=-1) / judged.sum(dim=-1).clamp_min(1)
