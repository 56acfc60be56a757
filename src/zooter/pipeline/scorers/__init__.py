"""The scorers of ``zooter score --scorer <kind>`` besides the reward model (see :mod:`.base` for the seam).

A new scorer is one module with a dataclass that follows :class:`.base.Scorer`, whose fields are
``zooter score`` flags, plus its entry in :data:`SCORERS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from zooter.pipeline.scorers.base import Scorer
from zooter.pipeline.scorers.code_exec import CodeExec
from zooter.pipeline.scorers.exact_match import ExactMatch
from zooter.pipeline.scorers.llm_judge import LLMJudge

SCORERS: dict[str, type] = {"exact_match": ExactMatch, "code_exec": CodeExec, "llm_judge": LLMJudge}


def build(kind: str, options: Mapping[str, Any]) -> Scorer:
    """The scorer ``kind`` with its settings from ``options`` (``zooter score``'s flags; None: its default)."""
    cls = SCORERS[kind]
    return cls(**{f.name: options[f.name] for f in fields(cls) if f.init and options.get(f.name) is not None})
