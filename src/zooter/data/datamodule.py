"""ZooterDataModule: routing tables -> validated splits -> cached tokens -> batches with reward targets.

Where the work happens:

- ``__init__`` (every process): read and validate the tables, split them, build the tokenizer. This
  fixes ``candidates`` and ``vocab_size`` before the model is built (the CLI links them to the model).
- ``prepare_data`` (one process per node): tokenize every table once and save the tokens under
  ``cache_dir``, keyed by (queries, tokenizer, max_length). A second run, or a sweep over ``beta``,
  ``temperature`` or ``standardization``, loads them back and never re-tokenizes.
- ``setup`` (every process): load the tokens, compute targets (standardize, the optional cost penalty,
  softmax, tag table from the TRAINING split only, beta mixing; see :mod:`zooter.data.targets`) and the
  best single model on average (chosen on train). Targets are never cached: a sweep over ``cost_weight``
  reuses the tokens too.

``batch_size`` is per process: under DDP each of ``devices x num_nodes`` processes takes
``batch_size`` queries per step, so the effective batch is ``batch_size x world size x
accumulate_grad_batches``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from zooter.data import targets
from zooter.data.batching import LengthGroupedSampler, RoutingCollator, RoutingDataset
from zooter.eval.functional import best_single, best_single_scores, decision_weights, expected_scores
from zooter.files import atomic_path
from zooter.routers import encoders
from zooter.table.costs import CandidateCosts, load_costs
from zooter.table.schema import MIN_CANDIDATE_SHARE, SCORES_JUDGE, RoutingTable, TableError, paused_gc
from zooter.table.splits import SplitSpec, load_splits
from zooter.table.synth import SynthConfig

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def _tokenize(batch: dict[str, list[str]], tokenizer: PreTrainedTokenizerBase, max_length: int) -> dict:
    return tokenizer(batch["query"], truncation=True, max_length=max_length)


class ZooterDataModule(LightningDataModule):
    """Routing tables for training and evaluating a router.

    Args:
        path: one table, split into train/val/test by ``val_fraction``/``test_fraction`` and ``split_seed``
            (or by ``folds``/``fold``). Leave all paths empty to use the embedded synthetic data.
        train_path: a training table (instead of ``path``); ``val_path``/``test_path`` are then optional
            (without ``val_path`` the validation split is cut from the training table).
        val_path: validation table for ``train_path``.
        test_path: test table for ``train_path``.
        predict_path: queries to route with ``zooter predict`` (scores optional); default: the test split.
        synth: the generator config used when no path is given.
        candidates: the candidate order; ``None`` takes it from the data (order of first appearance;
            rare names are refused, see ``min_candidate_share``).
        train_judge: the judge whose scores train the router (``scores`` = the top-level field).
        eval_judge: the judge that scores routing decisions in the metrics.
        val_fraction: share of the queries held out for validation.
        test_fraction: share of the queries held out for testing (ignored with ``folds``).
        split_seed: seed of the split permutation.
        folds: k for k-fold cross-validation over ``path`` (0 = off): fold ``fold`` is the test split.
        fold: which fold is the test split.
        min_judged: fewest judged candidates a query needs under the train and eval judges.
        skip_underjudged: skip (count and report) such queries instead of raising.
        min_candidate_share: with ``candidates`` unset, a candidate scored in fewer than this share of
            the rows of the most-scored candidate is refused as a likely misspelt name, naming its rows
            and the closest candidate (see :func:`zooter.table.schema.check_candidate_shares`); 0
            accepts every candidate the table names, as does listing them in ``candidates``.
        beta: weight of the sample-level label in ``s* = beta * s + (1 - beta) * tag mean``; default 0.3,
            the paper's Zooter. 1 uses the rewards alone and ignores tags (the paper's ablation,
            ``experiments/sample_only.yaml``); 0 uses the tag means alone.
        temperature: softmax temperature over (standardized) rewards; default 1, as in the paper.
        standardization: per-query reward standardization before the softmax.
        min_tag_count: tags seen on fewer training queries are left out of the tag table.
        costs: a candidate cost file (``configs/costs/*.yaml``, see :mod:`zooter.table.costs`) covering
            exactly the table's candidates; needed by ``cost_weight`` > 0.
        cost_weight: lambda >= 0 of training for cost: the soft labels become
            ``softmax((r - lambda * cost / max cost) / temperature)``, so lambda is in (standardized)
            reward units whatever the cost unit; 0 (default) trains on the rewards alone.
        encoder: encoder name (see :mod:`zooter.routers.encoders`); linked to the model's encoder.
        tokenizer_vocab_size: vocabulary size of the tokenizer trained for ``tiny-deberta``.
        max_length: longest tokenized query (longer ones are truncated).
        batch_size: queries per step PER PROCESS.
        num_workers: DataLoader worker processes.
        group_by_length: draw training batches of queries of about one length (see
            :class:`LengthGroupedSampler`), so batches carry less padding; the order is still random,
            seeded by the global seed (``seed_everything``, else ``split_seed``) and the epoch. Off by
            default: on the quickstart it cut padding from 23% to 1% of the tokens but lowered
            test/routed_score by 0.005 on average over 5 seeds (batches of one length are less varied);
            worth it where lengths spread widely (AlpacaEval: 72% padding down to 8%), see
            ``benchmarks/results/padding.md``.
        cache_dir: where tokenizers and tokenized tables are cached.
    """

    def __init__(
        self,
        path: str | None = None,
        train_path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        predict_path: str | None = None,
        synth: SynthConfig | None = None,
        candidates: list[str] | None = None,
        train_judge: str = SCORES_JUDGE,
        eval_judge: str = SCORES_JUDGE,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        folds: int = 0,
        fold: int = 0,
        min_judged: int = 2,
        skip_underjudged: bool = False,
        min_candidate_share: float = MIN_CANDIDATE_SHARE,
        beta: float = targets.PAPER_BETA,
        temperature: float = targets.PAPER_TEMPERATURE,
        standardization: targets.Standardization = "none",
        min_tag_count: int = 1,
        costs: str | None = None,
        cost_weight: float = 0.0,
        encoder: str = encoders.TINY_DEBERTA,
        tokenizer_vocab_size: int = 4096,
        max_length: int = 128,
        batch_size: int = 32,
        num_workers: int = 0,
        group_by_length: bool = False,
        cache_dir: str = ".zooter_cache",
    ) -> None:
        super().__init__()
        # the resolved candidate list is logged with the model's hparams (it is linked there)
        self.save_hyperparameters(ignore=["candidates"])
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"data.beta must be in [0, 1], got {beta}")
        if not cost_weight >= 0:
            raise ValueError(f"data.cost_weight must be >= 0, got {cost_weight}")
        if cost_weight > 0 and costs is None:
            raise ValueError(
                f"data.cost_weight={cost_weight} needs data.costs, a candidate cost file "
                "(e.g. configs/costs/dcrouter.yaml); none was given"
            )
        self.tables = load_splits(
            SplitSpec.from_mapping({**self.hparams, "candidates": candidates}), cache_dir=self.hparams.cache_dir
        )
        for table in self.tables.values():
            if table.skipped:
                example = table.skipped[0]
                rank_zero_info(f"zooter: skipped {len(table.skipped)} under-judged row(s) of {table.source}: {example}")
        self.candidates: list[str] = list(self.tables["train"].candidates)
        self.costs: CandidateCosts | None = None if costs is None else load_costs(costs, candidates=self.candidates)
        self.cost_penalty = None if self.costs is None else targets.cost_penalty(self.costs.per_query, cost_weight)
        self.tokenizer = encoders.build_tokenizer(
            encoder, self.tables["train"].queries, tokenizer_vocab_size, cache_dir
        )
        self.vocab_size = len(self.tokenizer)
        self.tokenizer_fingerprint = encoders.tokenizer_fingerprint(self.tokenizer)
        self.datasets: dict[str, RoutingDataset] = {}
        self.best_single: str | None = None

    # ----------------------------------------------------------------------------------- caching
    def _cache_path(self, table: RoutingTable) -> Path:
        key = hashlib.sha256()
        key.update(f"{self.tokenizer_fingerprint}\0{self.hparams.max_length}\0".encode())
        key.update("".join(f"{query}\0" for query in table.queries).encode())  # query, NUL, query, NUL, ...
        return Path(self.hparams.cache_dir) / f"tokens-{key.hexdigest()[:16]}"

    def prepare_data(self) -> None:
        """Tokenize every table once and save the tokens (skipped when the cache already has them)."""
        import datasets

        for table in self.tables.values():
            target = self._cache_path(table)
            if (target / "dataset_info.json").is_file():
                continue
            tokens = datasets.Dataset.from_dict({"query": table.queries}).map(
                _tokenize,
                batched=True,
                remove_columns=["query"],
                fn_kwargs={"tokenizer": self.tokenizer, "max_length": self.hparams.max_length},
                desc=f"tokenizing {len(table)} queries",
            )
            with atomic_path(target) as tmp:
                tokens.select_columns(["input_ids"]).save_to_disk(str(tmp))

    def _load_tokens(self, table: RoutingTable) -> list[list[int]]:
        import datasets

        target = self._cache_path(table)
        if not (target / "dataset_info.json").is_file():
            self.prepare_data()
        with paused_gc():  # tens of thousands of lists: see paused_gc
            return datasets.load_from_disk(str(target))["input_ids"][:]

    # ----------------------------------------------------------------------------------- targets
    def setup(self, stage: str | None = None) -> None:
        """Load cached tokens and compute targets; beta/temperature/standardization/cost_weight apply here only."""
        if self.datasets:
            return
        hp = self.hparams
        train = self.tables["train"]
        labels = targets.sample_labels(
            train.judge(hp.train_judge), hp.temperature, hp.standardization, self.cost_penalty
        )
        train_judged = np.isfinite(train.judge(hp.train_judge))
        self.tag_table = targets.tag_table(labels, train.tags, hp.min_tag_count, train_judged)
        train_eval = train.judge(hp.eval_judge)
        self.best_single = best_single(train_eval, self.candidates)  # the routing fallback's one name
        bma_scores = best_single_scores(train_eval)  # the metrics' BMA (ties shared, next best if unscored)
        for split, table in self.tables.items():
            tokens = self._load_tokens(table)
            if split == "predict":  # routed longest first: less padding, same rows out (see by_length)
                self.datasets[split] = RoutingDataset(tokens).by_length()
                continue
            target = targets.build_targets(
                table.judge(hp.train_judge),
                table.tags,
                self.tag_table,
                hp.beta,
                hp.temperature,
                hp.standardization,
                self.cost_penalty,
            )
            rewards = targets.standardize(table.judge(hp.train_judge), hp.standardization)
            eval_scores = table.judge(hp.eval_judge)
            bma = decision_weights(bma_scores, eval_scores)
            self.datasets[split] = RoutingDataset(
                tokens, target, np.isfinite(rewards), eval_scores, expected_scores(bma, eval_scores), rewards=rewards
            )
        if "predict" not in self.datasets and "test" in self.datasets:
            self.datasets["predict"] = self.datasets["test"].by_length()
            self.tables["predict"] = self.tables["test"]
        self._check_ranks_agree()
        self._report(labels)

    # ------------------------------------------------------------------------------ checkpoints
    def routing_state(self) -> dict[str, Any]:
        """What a router needs from the data to route without it, written into the router's checkpoint
        section (see :mod:`zooter.routers.base`): the tokenizer's files (the tiny-deberta tokenizer is
        trained on the training queries), ``max_length`` and the best single model on average (the
        fallback of an unsure router)."""
        state: dict[str, Any] = {"tokenizer_files": encoders.tokenizer_files(self.tokenizer)}
        state["max_length"] = self.hparams.max_length
        if self.best_single is not None:
            state["best_single"] = self.best_single
        return state

    def eval_scores(self, split: str) -> np.ndarray | None:
        """The eval judge's ``[rows, candidates]`` scores of a split's table (``None``: not scored by it)."""
        table = self.tables[split]
        return table.scores.get(self.hparams.eval_judge)

    def fingerprint(self) -> str:
        """A hash of what every DDP rank must agree on: candidates, tokenizer, splits, tag table and cost penalty."""
        digest = hashlib.sha256()
        digest.update(json.dumps([self.candidates, self.tokenizer_fingerprint, self.tag_table.tags]).encode())
        digest.update(np.ascontiguousarray(self.tag_table.means).tobytes())
        if self.cost_penalty is not None:
            digest.update(np.ascontiguousarray(self.cost_penalty).tobytes())
        for split in sorted(self.tables):
            digest.update(f"{split}:{','.join(self.tables[split].ids)}".encode())
        return digest.hexdigest()[:16]

    def _check_ranks_agree(self) -> None:
        """Under DDP, every rank compares its fingerprint with all others' and all fail together on a mismatch."""
        trainer = self.trainer
        if trainer is None or trainer.world_size < 2 or not torch.distributed.is_initialized():
            return
        fingerprints: list[str | None] = [None] * trainer.world_size
        torch.distributed.all_gather_object(fingerprints, self.fingerprint())
        if len(set(fingerprints)) > 1:
            raise RuntimeError(
                f"DDP ranks built different data (candidates, tokenizer, splits, tag table or costs): {fingerprints}"
            )

    def _report(self, labels: np.ndarray) -> None:
        sizes = ", ".join(f"{split} {len(ds)}" for split, ds in self.datasets.items())
        train_target = self.datasets["train"].target.numpy()
        hp = self.hparams
        source = hp.path or hp.train_path or "the embedded synthetic table (no data.path or data.train_path given)"
        rank_zero_info(
            f"zooter data: {source}: {sizes} queries; {len(self.candidates)} candidates; "
            f"{len(self.tag_table.tags)} tags; best single on train: {self.best_single}; "
            f"mean entropy H(s)={targets.entropy(labels).mean():.3f}, H(s*)={targets.entropy(train_target).mean():.3f} "
            f"nats (max {np.log(len(self.candidates)):.3f}); targets: beta {hp.beta}, temperature {hp.temperature}, "
            f"standardization {hp.standardization}, {self._cost_summary(labels)}"
        )

    def _cost_summary(self, labels: np.ndarray) -> str:
        """The cost setting, and how far it moves the training labels towards cheap candidates."""
        hp = self.hparams
        if self.costs is None:
            return f"cost_weight {hp.cost_weight} (no data.costs)"
        relative = targets.cost_penalty(self.costs.per_query, 1.0)  # cost / max cost
        plain = targets.sample_labels(self.tables["train"].judge(hp.train_judge), hp.temperature, hp.standardization)
        return (
            f"cost_weight {hp.cost_weight} over {self.costs.source} ({self.costs.unit}): mean cost/max under "
            f"s {(labels @ relative).mean():.3f} ({(plain @ relative).mean():.3f} at cost_weight 0)"
        )

    # ----------------------------------------------------------------------------------- loaders
    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        if split not in self.datasets:
            raise TableError(f"there is no {split} split: give data.{split}_path, or a {split} fraction > 0")
        sampler = None
        if split == "train" and shuffle and self.hparams.group_by_length:
            ranks = (self.trainer.world_size, self.trainer.global_rank) if self.trainer is not None else (1, 0)
            sampler = LengthGroupedSampler(
                [len(ids) for ids in self.datasets[split].input_ids],
                self.hparams.batch_size,
                seed=int(os.environ.get("PL_GLOBAL_SEED", self.hparams.split_seed)),
                num_replicas=ranks[0],
                rank=ranks[1],
            )
            shuffle = False
        elif split in ("val", "test") and self.trainer is not None and self.trainer.world_size > 1:
            # each query exactly once over all ranks, so metrics equal a single-process run
            # (Lightning's default sampler pads ranks with repeated queries)
            sampler = UnrepeatedDistributedSampler(
                self.datasets[split], num_replicas=self.trainer.world_size, rank=self.trainer.global_rank, shuffle=False
            )
        return DataLoader(
            self.datasets[split],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.hparams.num_workers,
            collate_fn=RoutingCollator(self.tokenizer, split),
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")
