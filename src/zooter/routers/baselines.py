"""Baselines as routers fitted from the routing tables (no gradient steps).

They wrap the score functions of :mod:`zooter.routers.baseline_scores`, which ``zooter report`` also
calls, so ``zooter fit/test/predict`` work for every baseline exactly as for the paper's router
(``configs/router/<name>.yaml``) and give the report's numbers:

- :class:`BestSingleRouter` (BMA): each candidate's mean training score (the one best-single rule,
  :func:`zooter.eval.functional.best_single_scores`);
- :class:`RandomRouter`: no preference, so the score is the expected value of a uniform pick;
- :class:`OracleRouter`: the eval judge's own scores (an upper bound, not a router you can deploy);
- :class:`RewardModelRankingRouter` (RMR): generate with all N, keep the answer a named judge scores best;
- :class:`TagMajorityRouter`: per tag, each candidate's mean training score; a query averages its
  known tags (a candidate's unknown tag means are left out, never read as 0) and falls back to BMA
  when none of its tags was seen in training;
- :class:`KNNRouter`: the mean training score of the k most similar training queries (cosine over
  mean-pooled embeddings), k chosen on the validation split.

Learned baselines learn from the training split's scores of ``label_judge`` (default: the data's
eval judge, as an evaluator holding those labels would). They take no gradient steps: ``zooter fit``
fits them in ``setup``, runs validation and saves checkpoints as for any router.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zooter.eval.functional import best_single_scores
from zooter.routers.base import RouterModule
from zooter.routers.baseline_scores import (
    DEFAULT_K,
    choose_k,
    knn,
    oracle,
    random_choice,
    reward_model_ranking,
    tag_majority_from_means,
    tag_means,
)
from zooter.table.schema import RoutingTable


class FittedRouter(RouterModule):
    """A router fitted from the routing tables in ``setup`` (no gradient steps): implement
    :meth:`fit` and :meth:`table_scores`; :meth:`query_scores` for queries outside a table.

    Its batches name their split (``batch["split"]``) and rows (``batch["index"]``); the scores of a
    split are computed once from that split's table and looked up per batch.

    Args:
        candidates: candidate names (linked from the data).
        label_judge: the judge whose training scores it learns from (default: the data's eval judge).
    """

    def __init__(self, candidates: list[str] | None = None, label_judge: str | None = None) -> None:
        super().__init__(candidates)
        # one no-op optimizer step per epoch, so Lightning counts a step (ModelCheckpoint saves only after one)
        self.step_anchor = torch.nn.Parameter(torch.zeros(()))
        self.label_judge = label_judge
        self.tables: dict[str, RoutingTable] = {}
        self.eval_judge: str | None = None
        self._split_scores: dict[str, Tensor] = {}
        self._fitted = False

    # ------------------------------------------------------------------ what a fitted router implements
    def fit(self, tables: dict[str, RoutingTable], label_judge: str, eval_judge: str) -> None:
        """Learn from ``tables["train"]`` (and ``tables["val"]`` for choices such as k)."""

    def table_scores(self, table: RoutingTable) -> np.ndarray:
        """Scores ``[rows, candidates]`` of every query of a table (its split's rows, in order)."""
        raise NotImplementedError

    def query_scores(self, batch: dict[str, Any]) -> Tensor:
        """Scores of queries given as text only (``Router.route``); most baselines need table fields."""
        raise ValueError(
            f"{type(self).__name__} routes only queries of a routing table (it needs their tags, scores or "
            "embeddings); route them with `zooter predict --data.predict_path queries.jsonl`"
        )

    # -------------------------------------------------------------------------------- the seam's side
    def setup(self, stage: str) -> None:
        """Take the data module's tables; under ``fit``, an epoch is one no-op batch (nothing to learn), so
        ``zooter fit`` fits, validates and checkpoints as for any router. Fitting waits for the first
        use, so a checkpoint's fitted state (restored after ``setup``) is never computed twice."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "tables"):
            raise ValueError(f"{type(self).__name__} is fitted from the routing tables: train it with ZooterDataModule")
        if stage == "fit":
            self.trainer.limit_train_batches = 1
        self.tables = datamodule.tables
        self.eval_judge = datamodule.hparams.eval_judge
        self._split_scores = {}

    def ensure_fitted(self) -> None:
        if not self._fitted:
            self.fit(self.tables, self.label_judge or self.eval_judge, self.eval_judge)
            self._fitted = True

    def scores(self, batch: dict[str, Any]) -> Tensor:
        split = batch.get("split")
        if split is None:
            return self.query_scores(batch)
        if split not in self._split_scores:
            self.ensure_fitted()
            self._split_scores[split] = torch.as_tensor(self.table_scores(self.tables[split]), dtype=torch.float64)
        return self._split_scores[split][batch["index"].cpu()].to(self.device)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Nothing to train: one zero-loss step per epoch (see :meth:`setup`)."""
        return self.step_anchor * 0.0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([self.step_anchor], lr=0.0)

    def fitted_state(self) -> dict[str, Any]:
        """What :meth:`fit` learned, saved in the checkpoint section (numpy arrays as tensors)."""
        return {}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`fitted_state`."""

    def extra_checkpoint_state(self) -> dict[str, Any]:
        self.ensure_fitted()
        return {"fitted": self.fitted_state()}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        if "fitted" in state:
            self.load_fitted_state(state["fitted"])
            self._fitted = True
            self._split_scores = {}


class BestSingleRouter(FittedRouter):
    """BMA: every query goes to the candidate with the best mean training score (ties shared; where it
    is not scored, the next best). Routes any query.

    Args:
        candidates: candidate names (linked from the data).
        label_judge: the judge whose training scores choose the model (default: the data's eval judge).
    """

    def __init__(self, candidates: list[str] | None = None, label_judge: str | None = None) -> None:
        super().__init__(candidates, label_judge)
        self.means = np.full(len(self.candidates), np.nan)

    def fit(self, tables: dict[str, RoutingTable], label_judge: str, eval_judge: str) -> None:
        self.means = best_single_scores(tables["train"].judge(label_judge))

    def table_scores(self, table: RoutingTable) -> np.ndarray:
        return np.tile(self.means, (len(table), 1))

    def query_scores(self, batch: dict[str, Any]) -> Tensor:
        rows = batch["input_ids"].shape[0]
        return torch.as_tensor(self.means, dtype=torch.float64, device=self.device).expand(rows, -1)

    def fitted_state(self) -> dict[str, Any]:
        return {"means": torch.as_tensor(self.means)}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        self.means = state["means"].numpy()


class RandomRouter(FittedRouter):
    """A uniformly random candidate per query, scored as its expected value (every candidate tied).

    Args:
        candidates: candidate names (linked from the data).
    """

    def __init__(self, candidates: list[str] | None = None) -> None:
        super().__init__(candidates)

    def table_scores(self, table: RoutingTable) -> np.ndarray:
        return random_choice(len(table), len(self.candidates))

    def query_scores(self, batch: dict[str, Any]) -> Tensor:
        return torch.zeros(batch["input_ids"].shape[0], len(self.candidates), device=self.device)


class OracleRouter(FittedRouter):
    """The eval judge's best candidate for each query: the upper bound of routing (reads the answers' scores).

    Args:
        candidates: candidate names (linked from the data).
    """

    def __init__(self, candidates: list[str] | None = None) -> None:
        super().__init__(candidates)

    def table_scores(self, table: RoutingTable) -> np.ndarray:
        return oracle(table.judge(self.eval_judge))


class RewardModelRankingRouter(FittedRouter):
    """RMR: all N candidates answer and ``judge`` keeps the answer it scores best (N generations and N
    reward-model passes per query; ties split).

    Args:
        candidates: candidate names (linked from the data).
        judge: the judge (reward model) that ranks the answers, e.g. ``scores`` or ``rm_low_noise``.
    """

    def __init__(self, candidates: list[str] | None = None, judge: str = "scores") -> None:
        super().__init__(candidates)

    def table_scores(self, table: RoutingTable) -> np.ndarray:
        return reward_model_ranking(table.judge(self.hparams.judge))


class TagMajorityRouter(FittedRouter):
    """Each candidate's mean training score over the training queries of each of the query's tags.

    Args:
        candidates: candidate names (linked from the data).
        label_judge: the judge whose training scores it learns from (default: the data's eval judge).
    """

    def __init__(self, candidates: list[str] | None = None, label_judge: str | None = None) -> None:
        super().__init__(candidates, label_judge)
        self.means: dict[str, np.ndarray] = {}
        self.fallback = np.full(len(self.candidates), np.nan)

    def fit(self, tables: dict[str, RoutingTable], label_judge: str, eval_judge: str) -> None:
        train = tables["train"]
        self.means = tag_means(train.tags, train.judge(label_judge))
        self.fallback = best_single_scores(train.judge(label_judge))

    def table_scores(self, table: RoutingTable) -> np.ndarray:
        return tag_majority_from_means(self.means, self.fallback, table.tags)

    def fitted_state(self) -> dict[str, Any]:
        tags = list(self.means)
        matrix = np.stack([self.means[t] for t in tags]) if tags else np.zeros((0, len(self.candidates)))
        return {"tags": tags, "means": torch.as_tensor(matrix), "fallback": torch.as_tensor(self.fallback)}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        self.means = dict(zip(state["tags"], state["means"].numpy(), strict=True))
        self.fallback = state["fallback"].numpy()


class KNNRouter(FittedRouter):
    """The mean training score of the k nearest training queries (cosine similarity of mean-pooled
    embeddings); k is chosen on the validation split (smallest on ties).

    Args:
        candidates: candidate names (linked from the data).
        label_judge: the judge whose training scores it averages (default: the data's eval judge).
        embedder: the encoder whose embeddings measure similarity (``minilm``: the packaged MiniLM-L6).
        k_choices: the k values tried on the validation split.
        embedding_batch_size: queries per embedding batch.
    """

    def __init__(
        self,
        candidates: list[str] | None = None,
        label_judge: str | None = None,
        embedder: str = "minilm",
        k_choices: list[int] | None = None,
        embedding_batch_size: int = 64,
    ) -> None:
        super().__init__(candidates, label_judge)
        self.k = 0
        self.train_embeddings = np.zeros((0, 0))
        self.train_scores = np.zeros((0, len(self.candidates)))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``, cached under the data module's ``cache_dir``."""
        from zooter.routers import encoders

        cache_dir = self.trainer.datamodule.hparams.cache_dir if self._trainer is not None else None
        return encoders.cached_embeddings(texts, self.hparams.embedder, cache_dir, self.hparams.embedding_batch_size)

    def fit(self, tables: dict[str, RoutingTable], label_judge: str, eval_judge: str) -> None:
        train, val = tables["train"], tables["val"]
        self.train_embeddings = self.embed(train.queries)
        self.train_scores = train.judge(label_judge)
        choices = tuple(self.hparams.k_choices or DEFAULT_K)
        val_embeddings = self.embed(val.queries)
        self.k = choose_k(self.train_embeddings, self.train_scores, val_embeddings, val.judge(eval_judge), choices)
        self.print(f"zooter: kNN chose k={self.k} of {list(choices)} on the validation split")

    def table_scores(self, table: RoutingTable) -> np.ndarray:
        return knn(self.train_embeddings, self.train_scores, self.embed(table.queries), self.k)

    def fitted_state(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "train_embeddings": torch.as_tensor(self.train_embeddings),
            "train_scores": torch.as_tensor(self.train_scores),
        }

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        self.k = int(state["k"])
        self.train_embeddings = state["train_embeddings"].numpy()
        self.train_scores = state["train_scores"].numpy()
