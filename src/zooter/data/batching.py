"""Batching: a split as a torch Dataset, the padding collator and the length-grouped training sampler."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class RoutingDataset(Dataset):
    """One split: token ids plus, when the split is judged, training targets (``target`` = s*, ``judged``,
    and ``rewards``: the train judge's standardized rewards, NaN where not judged) and evaluation
    scores per query.

    Item ``i`` is query ``order[i]`` (default: query ``i``); every item carries its query's position
    in the table as ``index``, so outputs map back to rows whatever the order (see :meth:`by_length`).
    """

    def __init__(
        self,
        input_ids: list[list[int]],
        target: np.ndarray | None = None,
        judged: np.ndarray | None = None,
        eval_scores: np.ndarray | None = None,
        best_single_scores: np.ndarray | None = None,
        order: Sequence[int] | None = None,
        rewards: np.ndarray | None = None,
    ) -> None:
        self.input_ids = input_ids
        self.order = None if order is None else [int(i) for i in order]
        if self.order is not None and sorted(self.order) != list(range(len(input_ids))):
            raise ValueError(f"order must be a permutation of the {len(input_ids)} queries")
        self.target = None if target is None else torch.as_tensor(target, dtype=torch.float32)
        self.judged = None if judged is None else torch.as_tensor(judged, dtype=torch.bool)
        self.rewards = None if rewards is None else torch.as_tensor(rewards, dtype=torch.float32)
        # float64, as the report reads them: the metrics of `zooter test` and `zooter report` agree to rounding
        self.eval_scores = None if eval_scores is None else torch.as_tensor(eval_scores, dtype=torch.float64)
        self.best_single_scores = (
            None if best_single_scores is None else torch.as_tensor(best_single_scores, dtype=torch.float64)
        )

    def __len__(self) -> int:
        return len(self.input_ids)

    def by_length(self) -> RoutingDataset:
        """The same queries, longest first (ties in table order): consecutive items have about one
        length, so batches cut in this order carry little padding. Used for prediction, where the
        order is free; ``index`` still names each query's row. Per query, the result changes only in
        float32 rounding (a query's padded length differs), as it does with another batch size."""
        order = sorted(range(len(self.input_ids)), key=lambda i: -len(self.input_ids[i]))
        fields = (self.target, self.judged, self.eval_scores, self.best_single_scores)
        return RoutingDataset(self.input_ids, *fields, order=order, rewards=self.rewards)

    def __getitem__(self, position: int) -> dict[str, Any]:
        index = position if self.order is None else self.order[position]
        item: dict[str, Any] = {"input_ids": self.input_ids[index], "index": index}
        if self.target is not None:
            item["target"] = self.target[index]
            item["judged"] = self.judged[index]
        if self.rewards is not None:
            item["rewards"] = self.rewards[index]
        if self.eval_scores is not None:
            item["eval_scores"] = self.eval_scores[index]
            item["best_single_score"] = self.best_single_scores[index]
        return item


@dataclass
class RoutingCollator:
    """Pads token ids per batch (dynamic padding) and stacks the per-query reward fields beside them.

    ``input_ids`` and ``attention_mask`` are what ``tokenizer.pad`` gives (int64, the tokenizer's pad
    id and ``padding_side``), built with one vectorised fill: about 3x faster than
    ``DataCollatorWithPadding``, which is ~3% of a tiny-deberta training step on CPU. With ``split``
    set, the batch names its split (``batch["split"]``), so routers fitted from the tables can look
    their rows up by ``batch["index"]``.
    """

    tokenizer: PreTrainedTokenizerBase
    split: str | None = None

    def __post_init__(self) -> None:
        if self.tokenizer.pad_token_id is None:
            raise ValueError(f"the tokenizer {type(self.tokenizer).__name__} has no pad token to pad batches with")
        self._pad_id = int(self.tokenizer.pad_token_id)
        self._left = self.tokenizer.padding_side == "left"

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        ids = [item["input_ids"] for item in items]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        width = int(lengths.max(initial=0))
        columns = np.arange(width)
        mask = columns >= (width - lengths)[:, None] if self._left else columns < lengths[:, None]
        input_ids = np.full((len(ids), width), self._pad_id, dtype=np.int64)
        input_ids[mask] = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask.astype(np.int64))}
        for key in items[0]:
            if key != "input_ids":
                values = [item[key] for item in items]
                batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else torch.tensor(values)
        if self.split is not None:
            batch["split"] = self.split
        return batch


class LengthGroupedSampler(DistributedSampler):
    """Training order whose batches each hold queries of about one length (less padding).

    Each epoch: a permutation seeded by ``(seed, epoch)``, cut into mega-batches of ``mega_batches``
    steps; each mega-batch is sorted by length and cut into steps of ``batch_size x num_replicas``
    queries; the steps are shuffled (the one holding the longest query goes first, so a memory peak
    shows at the first step) and a short step (the remainder) stays last. Rank ``r`` of
    ``num_replicas`` takes positions ``r, r + W, r + 2W, ...`` of that order, so its k-th batch of
    ``batch_size`` comes from step k; with one process the DataLoader's batches are exactly the steps.
    Every index comes once per epoch over all ranks (DDP pads the last step with repeats, as
    ``DistributedSampler`` does); Lightning calls :meth:`set_epoch` before each epoch.

    It is a ``DistributedSampler`` (built with explicit ``num_replicas``/``rank``, so no process group
    is needed) because Lightning would otherwise wrap it for DDP in a ``DistributedSamplerWrapper``
    that shuffles the training order again and undoes the grouping.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        mega_batches: int = 50,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1 or mega_batches < 1:
            raise ValueError(f"batch_size and mega_batches must be >= 1, got {batch_size} and {mega_batches}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        super().__init__(self.lengths, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.batch_size = batch_size
        self.mega_batches = mega_batches

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        step = self.batch_size * self.num_replicas
        steps = []
        for start in range(0, len(order), step * self.mega_batches):
            chunk = order[start : start + step * self.mega_batches]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            steps += [chunk[i : i + step] for i in range(0, len(chunk), step)]
        short = [steps.pop()] if steps and len(steps[-1]) < step else []
        steps = [steps[i] for i in rng.permutation(len(steps))]
        if steps:
            longest = max(range(len(steps)), key=lambda i: self.lengths[steps[i]].max())
            steps[0], steps[longest] = steps[longest], steps[0]
        order = np.concatenate([*steps, *short]) if steps or short else order
        order = np.resize(order, self.total_size)  # pads by repeating from the start, like DistributedSampler
        return iter(order[self.rank :: self.num_replicas].tolist())
