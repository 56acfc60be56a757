"""Shared fixtures: offline hub, small routing tables written to temporary files, one debug-sized fit."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "offline")

REPO = Path(__file__).resolve().parents[1]
DEBUG = "configs/debug.yaml"  # composed after configs/quickstart.yaml: 240 queries, vocab 400, 1 epoch, quiet
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


def debug_args(tmp_path: Path, *overrides: str) -> list[str]:
    """``cli_args`` for the quickstart at debug size (``configs/debug.yaml``), then ``overrides``."""
    return [*cli_args(tmp_path, "configs/quickstart.yaml", DEBUG), *overrides]


@dataclass(frozen=True)
class FittedRun:
    """A finished ``zooter fit``: the arguments it ran with and its ``version_N`` directory."""

    fit_args: list[str]  # after "fit"; caches under cache_dir, logs under run_dir's save_dir
    run_dir: Path

    @property
    def last(self) -> Path:
        return self.run_dir / "checkpoints" / "last.ckpt"

    @property
    def best(self) -> Path:
        (best,) = (self.run_dir / "checkpoints").glob("best-*.ckpt")
        return best

    def args_in(self, tmp_path: Path) -> list[str]:
        """The fit's arguments with logs under ``tmp_path/runs``: for ``test``/``predict`` runs of a test.

        Their ``version_N`` directories then number from 0 there, whichever tests ran before, and the
        shared run stays as the fit left it. The data cache stays shared (its entries are keyed by content).
        """
        return [*self.fit_args, "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")]


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*")}


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory) -> Iterator[FittedRun]:
    """One debug-sized quickstart fit for the whole session (``debug_args``): read it, never write into it.

    Run ``test``/``predict`` with ``quickstart_run.args_in(tmp_path)``; copy a checkpoint before changing it.
    At the end of the session the fixture checks that nothing under its save_dir was added or rewritten.
    """
    from zooter.cli import main

    root = tmp_path_factory.mktemp("quickstart_run")
    args = debug_args(root)
    main(["fit", *args])
    run = FittedRun(fit_args=args, run_dir=root / "runs" / "quickstart" / "version_0")
    assert run.last.is_file(), f"the shared quickstart fit wrote no {run.last}"
    before = _snapshot(root / "runs")
    yield run
    assert _snapshot(root / "runs") == before, (
        f"a test wrote into the shared quickstart run under {root / 'runs'}: "
        "run stages with quickstart_run.args_in(tmp_path), copy checkpoints before changing them"
    )


requires_alpacaeval = pytest.mark.skipif(
    not ALPACAEVAL.is_file(), reason=f"real data not available: {ALPACAEVAL} is absent (it ships outside the repo)"
)
