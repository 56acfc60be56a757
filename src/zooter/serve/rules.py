"""The routed model names and the decision they ask for, applied to the router's probabilities.

A request names a routed model by its ``model`` string:

- ``zooter``: argmax of the router's probabilities (or the first ``--calibration``'s rule, when given);
- ``zooter:<t>`` with ``0 ≤ t ≤ 1``: the threshold rule (top probability below ``t`` → the best single
  model of the checkpoint, marked ``fallback``);
- ``zooter:λ=<x>`` (or ``zooter:lambda=<x>``), ``x ≥ 0``: the candidate maximising ``p − x·price``,
  with the ``price`` of every candidate in the upstreams file;
- ``zooter:<name>``: the rule of a calibration file given to ``zooter serve --calibration`` (its file
  name without ``.json``).

The rule itself is :func:`zooter.eval.decisions.cost_aware_choice`, as in :meth:`zooter.Router.route`,
so a routed request goes where ``Router.route`` would send its last user message; this module only
applies it to probabilities the batcher computed for many requests at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zooter.eval.decisions import cost_aware_choice
from zooter.serve.protocol import ApiError

ROUTED = "zooter"
LAMBDA_PREFIXES = ("λ=", "lambda=")


@dataclass(frozen=True)
class Rule:
    """A routed model string, parsed: ``threshold``, ``cost_weight`` or a ``calibration`` name."""

    model: str
    threshold: float | None = None
    cost_weight: float = 0.0
    calibration: str | None = None


def is_routed(model: str) -> bool:
    return model == ROUTED or model.startswith(ROUTED + ":")


def _number(model: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (what == "threshold" and value > 1):
        bound = "between 0 and 1" if what == "threshold" else "a finite number >= 0"
        raise ApiError(400, f"model '{model}': the {what} must be {bound}, got {text!r}", param="model")
    return value


def parse_rule(model: str, calibrations: Sequence[str] = ()) -> Rule:
    """The rule of a routed model string (see the module docstring); the first calibration is the default."""
    if model == ROUTED:
        return Rule(model, calibration=calibrations[0] if calibrations else None)
    spec = model.removeprefix(ROUTED + ":")
    if spec in calibrations:
        return Rule(model, calibration=spec)
    for prefix in LAMBDA_PREFIXES:
        if spec.startswith(prefix):
            return Rule(model, cost_weight=_number(model, spec.removeprefix(prefix), "cost weight λ"))
    if spec[:1].isdigit() or spec.startswith("."):
        return Rule(model, threshold=_number(model, spec, "threshold"))
    named = f", or a calibration name ({', '.join(calibrations)})" if calibrations else ""
    raise ApiError(
        400,
        f"model '{model}': expected zooter, zooter:<threshold 0-1>, zooter:λ=<cost weight>{named}",
        param="model",
    )


class Decider:
    """Applies rules to router probabilities ``[queries, candidates]`` for one router and its upstreams.

    ``calibrations``: name → a loaded calibration (an object whose ``rule.choose(probs, candidates)``
    gives one index per row, as :class:`zooter.calibration.Calibration`'s).
    """

    def __init__(
        self,
        candidates: Sequence[str],
        best_single: str | None,
        prices: Mapping[str, float] | None,
        calibrations: Mapping[str, Any] | None = None,
    ) -> None:
        self.candidates = list(candidates)
        self.best_index = None if best_single is None else self.candidates.index(best_single)
        self.costs = None if prices is None else np.array([prices[c] for c in self.candidates])
        self.calibrations = dict(calibrations or {})

    def check(self, rule: Rule) -> None:
        """Refuse, before any model work, a rule this router or these upstreams cannot apply."""
        if rule.threshold is not None and self.best_index is None:
            raise ApiError(
                400,
                f"model '{rule.model}': a threshold needs the best single model, which this checkpoint does not hold",
                param="model",
            )
        if rule.cost_weight != 0 and self.costs is None:
            raise ApiError(
                400,
                f"model '{rule.model}': λ needs a 'price' for every candidate in the upstreams file",
                param="model",
            )

    def decide(self, probs: np.ndarray, rule: Rule) -> tuple[np.ndarray, np.ndarray]:
        """``(choice, fallback)`` per row: the chosen index, and whether the threshold sent it to the best
        single model (never for a calibration's rule)."""
        if rule.calibration is not None:
            choice = self.calibrations[rule.calibration].rule.choose(probs, self.candidates)
            return np.asarray(choice, dtype=np.int64), np.zeros(len(probs), dtype=bool)
        return cost_aware_choice(probs, self.costs, rule.cost_weight, rule.threshold, self.best_index)

    def fallback_order(self, probs: np.ndarray, chosen: int) -> list[str]:
        """The chosen candidate, then the others by decreasing router probability (the order tried
        when upstreams fail); equal probabilities keep the candidate order."""
        rest = [int(k) for k in np.argsort(-probs, kind="stable") if k != chosen]
        return [self.candidates[k] for k in [chosen, *rest]]
