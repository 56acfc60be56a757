"""Inference cost per query in FLOPs: a routed query, a single LLM, and reward-model ranking (RMR)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CostModel:
    """Inference cost per query in FLOPs (forward pass = 2 x parameters x tokens).

    Args:
        llm_params: parameters of each candidate LLM (paper: 13e9).
        router_params: parameters of the router (paper: 86e6 for mdeberta-v3-base's backbone).
        reward_model_params: parameters of the reward model used by RMR (paper's QwenRM: 7e9).
        prompt_tokens: tokens of a query.
        response_tokens: tokens of a generated answer.
    """

    llm_params: float = 13e9
    router_params: float = 86e6
    reward_model_params: float = 7e9
    prompt_tokens: int = 100
    response_tokens: int = 400

    def routed(self) -> float:
        """Router on the prompt + one LLM generation."""
        tokens = self.prompt_tokens + self.response_tokens
        return 2 * self.router_params * self.prompt_tokens + 2 * self.llm_params * tokens

    def reward_model_ranking(self, num_candidates: int) -> float:
        """N generations + N reward-model passes over prompt and answer."""
        tokens = self.prompt_tokens + self.response_tokens
        return num_candidates * 2 * (self.llm_params + self.reward_model_params) * tokens

    def single(self) -> float:
        return 2 * self.llm_params * (self.prompt_tokens + self.response_tokens)
