"""Which routing table rows train, validate and test a router: one place for every split rule.

The data module and ``zooter report`` both call :func:`load_splits`, so a report rebuilds exactly the
splits a run was trained and tested on from the run's saved config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from zooter.table.cache import load_table_cached
from zooter.table.schema import MIN_CANDIDATE_SHARE, SCORES_JUDGE, RoutingTable, TableError
from zooter.table.synth import SynthConfig, generate


@dataclass
class SplitSpec:
    """The data module's arguments that decide the tables and their splits (see ZooterDataModule)."""

    path: str | None = None
    train_path: str | None = None
    val_path: str | None = None
    test_path: str | None = None
    predict_path: str | None = None
    synth: SynthConfig | dict | None = None
    candidates: list[str] | None = None
    train_judge: str = SCORES_JUDGE
    eval_judge: str = SCORES_JUDGE
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    folds: int = 0
    fold: int = 0
    min_judged: int = 2
    skip_underjudged: bool = False
    min_candidate_share: float = MIN_CANDIDATE_SHARE

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> SplitSpec:
        """The split-deciding entries of a data config (other entries are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in names})

    def check(self) -> None:
        if self.path is not None and self.train_path is not None:
            raise ValueError("give either data.path or data.train_path, not both")
        if self.train_path is None and (self.val_path or self.test_path):
            raise ValueError("data.val_path/data.test_path need data.train_path")
        if self.folds == 1 or self.folds < 0 or (self.folds and not 0 <= self.fold < self.folds):
            raise ValueError(
                f"need folds >= 2 and 0 <= fold < folds (or folds = 0); got folds={self.folds}, fold={self.fold}"
            )


def load_splits(spec: SplitSpec, cache_dir: str | Path | None = None) -> dict[str, RoutingTable]:
    """Read, validate and split the tables: ``train``, ``val``, and ``test``/``predict`` when there are some.

    ``cache_dir``: keep the validated tables there, so the next run with the same files skips validation
    (see :mod:`zooter.table.cache`).
    """
    spec.check()
    load_table = partial(load_table_cached, cache_dir=cache_dir)
    judges = (spec.train_judge, spec.eval_judge)
    load = dict(required_judges=judges, min_judged=spec.min_judged, skip_underjudged=spec.skip_underjudged)
    # candidates taken from the data: refuse rare ones, likely typos (see schema.check_candidate_shares)
    share = spec.min_candidate_share
    if spec.train_path is not None:
        tables = {"train": load_table(spec.train_path, candidates=spec.candidates, min_candidate_share=share, **load)}
        fixed = tables["train"].candidates
        for split, split_path in (("val", spec.val_path), ("test", spec.test_path)):
            if split_path is not None:
                tables[split] = load_table(split_path, candidates=fixed, **load)
        if "val" not in tables:
            tables["train"], tables["val"] = _cut(tables["train"], spec.val_fraction, spec.split_seed)
    else:
        if spec.path is not None:
            full = load_table(spec.path, candidates=spec.candidates, min_candidate_share=share, **load)
        else:
            synth = spec.synth or SynthConfig()
            full = generate(synth if isinstance(synth, SynthConfig) else SynthConfig(**synth))
            if spec.candidates is not None:
                full = full.with_candidates(spec.candidates)
            for judge in judges:  # unknown judge names fail here, as they do for files
                full.judge(judge)
        tables = _split(full, spec)
    if spec.predict_path is not None:
        tables["predict"] = load_table(
            spec.predict_path,
            candidates=tables["train"].candidates,
            required_judges=(),
            min_judged=0,
            needs_scores=False,
        )
    for split, table in tables.items():
        if len(table) == 0:
            raise TableError(f"the {split} split is empty ({table.source}); adjust the split fractions")
    return tables


def _split(full: RoutingTable, spec: SplitSpec) -> dict[str, RoutingTable]:
    order = np.random.default_rng(spec.split_seed).permutation(len(full))
    if spec.folds:
        chunks = np.array_split(order, spec.folds)
        test, rest = chunks[spec.fold], np.concatenate(chunks[: spec.fold] + chunks[spec.fold + 1 :])
    else:
        n_test = round(spec.test_fraction * len(full))
        test, rest = order[:n_test], order[n_test:]
    n_val = round(spec.val_fraction * len(full))
    tables = {"val": full.subset(rest[:n_val]), "train": full.subset(rest[n_val:])}
    if len(test):
        tables["test"] = full.subset(test)
    tables["train"].skipped = full.skipped
    return tables


def _cut(table: RoutingTable, fraction: float, seed: int) -> tuple[RoutingTable, RoutingTable]:
    """Split a training table into (train, val) when no validation table is given."""
    order = np.random.default_rng(seed).permutation(len(table))
    n_cut = round(fraction * len(table))
    if n_cut == 0:
        raise TableError(f"{table.source}: val_fraction={fraction} leaves no validation queries")
    return table.subset(order[n_cut:]), table.subset(order[:n_cut])
