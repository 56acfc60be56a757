"""Shared fixtures: offline hub, small routing tables written to temporary files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "offline")

REPO = Path(__file__).resolve().parents[1]
ALPACAEVAL = REPO.parent / "shared" / "data" / "alpacaeval" / "alpacaeval_main.jsonl"


def write_rows(path: Path, rows: list[Any]) -> Path:
    """Write rows (dicts, or raw strings for malformed lines) as JSON Lines."""
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def row(i: int, scores: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    base = {"id": f"q{i}", "query": f"query number {i}", "tags": ["t"], "scores": scores or {"a": 1.0, "b": 0.0}}
    base.update(fields)
    return base


@pytest.fixture
def table_file(tmp_path: Path):
    """A factory: ``table_file(rows)`` writes them to ``tmp_path/table.jsonl`` and returns the path."""

    def make(rows: list[Any], name: str = "table.jsonl") -> Path:
        return write_rows(tmp_path / name, rows)

    return make


def cli_args(tmp_path: Path, *configs: str) -> list[str]:
    """``--config`` for each repo config, caches and runs under ``tmp_path``, no progress bars."""
    args = [arg for config in configs for arg in ("--config", str(REPO / config))]
    return [
        *args,
        "--data.cache_dir", str(tmp_path / "cache"),
        "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
        "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip


requires_alpacaeval = pytest.mark.skipif(
    not ALPACAEVAL.is_file(), reason=f"real data not available: {ALPACAEVAL} is absent (it ships outside the repo)"
)
