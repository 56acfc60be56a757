"""Calibrated routing rules: choosing a threshold or λ on validation for a target, and the calibration file.

Numpy and JSON only (no torch): ``zooter calibrate`` (:mod:`zooter.runs.calibrate`) chooses with these
functions; :class:`zooter.Router` loads a :class:`Calibration` and applies its rule.

Targets (chosen on the validation split, never on test):

- ``share=S``: the two-model rule (:func:`zooter.eval.decisions.pair_choice`, RouteLLM's setting) with
  the threshold :func:`~zooter.eval.decisions.threshold_for_share` of the validation pair scores, so a
  share ``S`` of queries goes to the strong candidate (more when pair scores tie at the threshold);
- ``budget=B``: the λ rule (:func:`~zooter.eval.decisions.cost_aware_choice`); of the λ on
  :func:`~zooter.eval.cost_quality.cost_weight_grid` whose validation mean cost is at most ``B`` (the
  cost file's unit, per query), the one of best validation quality; equal qualities (within ``TIE_TOLERANCE``) go to the
  cheaper, then to the smaller λ;
- ``match_best_single``: the λ rule with the lowest validation mean cost whose validation quality is at
  least the best single model's (BMA, chosen on train), within ``TIE_TOLERANCE``; equal costs go to the
  better quality, then to the smaller λ.

Figures (:func:`rule_figures`) score a rule's decisions as the metrics score any decision
(:func:`~zooter.eval.functional.decision_weights`: a pick the eval judge did not score is shared by
the query's judged candidates), so validation quality and mean cost equal those of
:func:`~zooter.eval.cost_quality.decision_curve`; ``shares`` and ``strong_share`` count the calls
themselves (the share of queries sent to each candidate).

The calibration file (JSON, ``"format": "zooter-calibration"``, ``"version": 1``) records the checkpoint
(path and sha256), the data (split settings and a hash of the validation ids and eval scores), the
target, the rule (``{"kind": "pair_threshold", "weak", "strong", "threshold"}`` or
``{"kind": "cost_weight", "cost_weight", "costs": {candidate: cost}}``) and the validation and test
figures. A router refuses a calibration made for another checkpoint (another sha256).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from zooter.eval.cost_quality import DecisionCurve
from zooter.eval.decisions import cost_aware_choice, pair_choice, pair_scores, threshold_for_share
from zooter.eval.functional import TIE_TOLERANCE, expected_scores, oracle_scores, pick_weights
from zooter.files import write_text_atomic

FORMAT = "zooter-calibration"
VERSION = 1
TARGET_KINDS = ("share", "budget", "match_best_single")
BUDGET_SLACK = 1e-9  # relative: a mean cost equal to the budget up to float rounding is within it


@dataclass(frozen=True)
class Target:
    """What to calibrate for: ``kind`` in :data:`TARGET_KINDS`; ``value`` the share or budget (None for
    ``match_best_single``); ``text`` as given (for file names)."""

    kind: str
    value: float | None
    text: str

    @classmethod
    def parse(cls, text: str) -> Target:
        """``share=S`` (0 ≤ S ≤ 1), ``budget=B`` (B ≥ 0, finite) or ``match_best_single``."""
        kind, sep, value = text.strip().partition("=")
        usage = "give share=S (0 <= S <= 1), budget=B (mean cost per query) or match_best_single"
        if kind not in TARGET_KINDS:
            raise ValueError(f"unknown target {text!r}: {usage}")
        if kind == "match_best_single":
            if sep:
                raise ValueError(f"target match_best_single takes no value, got {text!r}")
            return cls(kind, None, kind)
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"target {text!r}: {value!r} is not a number; {usage}") from None
        if not math.isfinite(number) or number < 0 or (kind == "share" and number > 1):
            bound = "0 <= S <= 1" if kind == "share" else "a finite number >= 0"
            raise ValueError(f"target {text!r}: {kind} must be {bound}")
        return cls(kind, number, text.strip())

    @property
    def slug(self) -> str:
        """A file-name piece: ``share-0.5``, ``budget-3e12``, ``match_best_single``."""
        if self.value is None:
            return self.kind
        return f"{self.kind}-{re.sub(r'[^A-Za-z0-9.+-]', '', self.text.partition('=')[2])}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value}


def choose_for_budget(curve: DecisionCurve, budget: float) -> int:
    """Index of the setting with the best quality among those with mean cost ≤ ``budget`` (module docstring)."""
    within = np.flatnonzero(curve.mean_cost <= budget + BUDGET_SLACK * abs(budget))
    if len(within) == 0:
        cheapest = int(np.argmin(curve.mean_cost))
        raise ValueError(
            f"budget {budget:g} per query is below every λ tried: the cheapest reaches {curve.mean_cost[cheapest]:g} "
            f"per query on validation (λ={curve.values[cheapest]:g}); raise the budget to at least that"
        )
    quality = curve.mean_quality[within]
    best = within[quality >= quality.max() - TIE_TOLERANCE]
    return int(best[np.argmin(curve.mean_cost[best])])  # argmin: the first (smallest λ) of equal costs


def choose_to_match(curve: DecisionCurve, quality: float) -> int:
    """Index of the cheapest setting whose quality is at least ``quality`` (module docstring)."""
    enough = np.flatnonzero(curve.mean_quality >= quality - TIE_TOLERANCE)
    if len(enough) == 0:
        best = int(np.argmax(curve.mean_quality))
        raise ValueError(
            f"no λ tried reaches the best single model's validation quality {quality:.4f}: the best is "
            f"{curve.mean_quality[best]:.4f} (λ={curve.values[best]:g}); the router does not beat the BMA here"
        )
    cost = curve.mean_cost[enough]
    cheapest = enough[cost <= cost.min()]
    return int(cheapest[np.argmax(curve.mean_quality[cheapest])])


def single_quality(evals: np.ndarray, index: int) -> float:
    """Mean quality of sending every query to candidate ``index``, scored as the metrics score it."""
    evals = np.asarray(evals, dtype=np.float64)
    return float(expected_scores(pick_weights(np.full(len(evals), index), evals), evals).mean())


def rule_figures(
    choice: np.ndarray, evals: np.ndarray, candidates: Sequence[str], strong: str, bma: str, costs: np.ndarray | None
) -> dict[str, Any]:
    """The figures of one rule's decisions ``choice`` (index per query) on one split (module docstring):
    ``queries``, ``strong``, ``strong_share``, ``mean_cost`` (None without ``costs``), ``quality``,
    ``bma_quality``, ``oracle_quality``, ``shares`` (per candidate)."""
    evals = np.asarray(evals, dtype=np.float64)
    weights = pick_weights(choice, evals)
    calls = np.bincount(choice, minlength=len(candidates)) / len(choice)
    return {
        "queries": len(choice),
        "strong": strong,
        "strong_share": float(calls[list(candidates).index(strong)]),
        "mean_cost": None if costs is None else float((weights * np.asarray(costs)).sum(axis=1).mean()),
        "quality": float(expected_scores(weights, evals).mean()),
        "bma_quality": single_quality(evals, list(candidates).index(bma)),
        "oracle_quality": float(oracle_scores(evals).mean()),
        "shares": {c: float(s) for c, s in zip(candidates, calls, strict=True)},
    }


def _index(candidates: Sequence[str], name: str, role: str) -> int:
    if name not in candidates:
        raise ValueError(f"the {role} candidate {name!r} is not one of the router's candidates {list(candidates)}")
    return list(candidates).index(name)


@dataclass(frozen=True)
class PairRule:
    """The two-model rule: ``strong`` where ``p_strong − p_weak ≥ threshold``, else ``weak``."""

    weak: str
    strong: str
    threshold: float
    kind: ClassVar[str] = "pair_threshold"

    @classmethod
    def for_share(cls, probs: np.ndarray, candidates: Sequence[str], weak: str, strong: str, share: float) -> PairRule:
        """The rule sending the share ``share`` of these queries to ``strong`` (:func:`threshold_for_share`)."""
        rule = cls(weak, strong, float("nan"))
        return cls(weak, strong, threshold_for_share(pair_scores(probs, *rule.columns(candidates)), share))

    def columns(self, candidates: Sequence[str]) -> tuple[int, int]:
        """``(weak, strong)`` indices among ``candidates`` (ValueError when one is not there, or both are one)."""
        if self.weak == self.strong:
            raise ValueError(f"weak and strong must be two candidates, got {self.weak!r} for both")
        return _index(candidates, self.weak, "weak"), _index(candidates, self.strong, "strong")

    def choose(self, probs: np.ndarray, candidates: Sequence[str]) -> np.ndarray:
        return pair_choice(probs, *self.columns(candidates), self.threshold)

    def as_dict(self) -> dict[str, Any]:
        # +inf (share 0: nothing goes strong) is written as null: strict JSON has no Infinity
        threshold = self.threshold if math.isfinite(self.threshold) else None
        return {"kind": self.kind, "weak": self.weak, "strong": self.strong, "threshold": threshold}


@dataclass(frozen=True)
class CostWeightRule:
    """The λ rule: argmax of ``p_i − cost_weight·costs[i]``."""

    cost_weight: float
    costs: dict[str, float]
    kind: ClassVar[str] = "cost_weight"

    def columns(self, candidates: Sequence[str]) -> np.ndarray:
        """The costs in ``candidates`` order (ValueError unless they name exactly those candidates)."""
        missing = [c for c in candidates if c not in self.costs]
        unknown = [c for c in self.costs if c not in candidates]
        if missing or unknown:
            raise ValueError(
                f"the calibration's costs must name the router's candidates: missing {missing}, unknown {unknown}"
            )
        return np.array([float(self.costs[c]) for c in candidates])

    def choose(self, probs: np.ndarray, candidates: Sequence[str]) -> np.ndarray:
        return cost_aware_choice(probs, self.columns(candidates), self.cost_weight)[0]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "cost_weight": self.cost_weight, "costs": dict(self.costs)}


Rule = PairRule | CostWeightRule
TOP_KEYS = ("format", "version", "checkpoint", "data", "target", "rule")
CHECKPOINT_KEYS = ("path", "sha256")
RULE_KEYS = {PairRule.kind: ("weak", "strong", "threshold"), CostWeightRule.kind: ("cost_weight", "costs")}


def _missing(section: Any, keys: Sequence[str], prefix: str) -> list[str]:
    return [prefix + key for key in keys if not isinstance(section, dict) or key not in section]


def file_sha256(path: str | Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def split_sha256(ids: Sequence[str], candidates: Sequence[str], evals: np.ndarray) -> str:
    """The hex sha256 of a split's ids, candidate order and eval scores (NaN as null)."""
    scores = [[None if math.isnan(v) else v for v in row] for row in np.asarray(evals, dtype=np.float64).tolist()]
    payload = json.dumps({"ids": list(ids), "candidates": list(candidates), "scores": scores}, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class Calibration:
    """A loaded calibration file: the rule and the checkpoint it was calibrated for; ``record`` is the
    whole file and ``source`` where it came from."""

    rule: Rule
    checkpoint_path: str
    checkpoint_sha256: str
    record: dict[str, Any]
    source: Path | None = None

    @classmethod
    def from_record(cls, record: Any, source: Path | None = None) -> Calibration:
        """Check a parsed calibration file (format, version, keys) and build it."""
        where = f"{source}: " if source is not None else ""
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError(f'{where}not a zooter calibration file (it needs "format": "{FORMAT}")')
        if record.get("version") != VERSION:
            raise ValueError(
                f"{where}calibration format version {record.get('version')!r} is not supported "
                f"(this zooter reads version {VERSION}); recalibrate with `zooter calibrate`"
            )
        missing = _missing(record, TOP_KEYS, "") + _missing(record.get("checkpoint"), CHECKPOINT_KEYS, "checkpoint.")
        rule = record.get("rule", {})
        kind = rule.get("kind") if isinstance(rule, dict) else None
        if "rule" in record and kind not in RULE_KEYS:
            raise ValueError(f"{where}unknown rule kind {kind!r}; expected one of {list(RULE_KEYS)}")
        missing += _missing(rule, RULE_KEYS.get(kind, ()), "rule.")
        if missing:
            raise ValueError(f"{where}calibration file lacks {missing}")
        try:
            built: Rule = (
                PairRule(
                    str(rule["weak"]),
                    str(rule["strong"]),
                    math.inf if rule["threshold"] is None else float(rule["threshold"]),
                )
                if kind == PairRule.kind
                else CostWeightRule(float(rule["cost_weight"]), {str(k): float(v) for k, v in rule["costs"].items()})
            )
        except (TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"{where}malformed rule {rule}: {err}") from None
        checkpoint = record["checkpoint"]
        return cls(built, str(checkpoint["path"]), str(checkpoint["sha256"]), record, source)

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read a calibration file written by ``zooter calibrate``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such calibration file")
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not a zooter calibration file (not JSON: {err})") from None
        return cls.from_record(record, path)

    def check_checkpoint(self, path: str | Path, sha256: str) -> None:
        """Refuse a checkpoint other than the one calibrated for (by sha256), naming both files."""
        if sha256 != self.checkpoint_sha256:
            raise ValueError(
                f"calibration {self.source or '<memory>'} was made for checkpoint {self.checkpoint_path} "
                f"(sha256 {self.checkpoint_sha256[:12]}…), not for {path} (sha256 {sha256[:12]}…); "
                "recalibrate this checkpoint with `zooter calibrate`"
            )


def write_calibration(path: str | Path, record: Mapping[str, Any]) -> Path:
    """Check ``record`` loads as a calibration, then write it as indented JSON (atomically)."""
    Calibration.from_record(dict(record))
    return write_text_atomic(path, json.dumps(record, indent=2) + "\n")
