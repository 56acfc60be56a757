"""The torch / Lightning / transformers half of ``zooter score``: pair encoding, length batches, the
reward model as a ``LightningModule`` and the journal writer.

:mod:`zooter.pipeline.score` imports this module inside :func:`~zooter.pipeline.score.score`, so
``zooter score --help`` and its argument errors load none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import Dataset
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerBase

from zooter.pipeline.hf_lm import chat_prompt, has_chat_template, length_batches
from zooter.pipeline.journal import Journal
from zooter.pipeline.score import Key, rank_journal


def encode_pair(tokenizer: PreTrainedTokenizerBase, query: str, response: str, max_length: int) -> list[int]:
    """Token ids of one (query, response) for a reward model: its chat template if it has one, else a text pair."""
    if not has_chat_template(tokenizer):
        return tokenizer(query, response, truncation=True, max_length=max_length)["input_ids"]
    text, add_special = chat_prompt(tokenizer, query, response)
    return tokenizer(text, add_special_tokens=add_special, truncation=True, max_length=max_length)["input_ids"]


class LengthBatches(Dataset):
    """Pairs sorted by token length (longest first) and cut into batches; each item is one batch."""

    def __init__(self, keys: Sequence[Key], input_ids: Sequence[list[int]], batch_size: int, pad: Any) -> None:
        self.batches = length_batches([len(ids) for ids in input_ids], batch_size)
        self.keys, self.input_ids, self.pad = list(keys), list(input_ids), pad

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rows = self.batches[index]
        batch = dict(self.pad({"input_ids": [self.input_ids[i] for i in rows]}, return_tensors="pt"))
        batch["keys"] = [self.keys[i] for i in rows]
        return batch


class RewardScorer(LightningModule):
    """A sequence-classification reward model; ``predict_step`` returns one reward per pair."""

    def __init__(self, reward_model: str, score_index: int = 0, pad_token_id: int | None = None) -> None:
        super().__init__()
        self.model = AutoModelForSequenceClassification.from_pretrained(reward_model)
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = pad_token_id
        labels = self.model.config.num_labels
        if not -labels <= score_index < labels:
            raise ValueError(f"score_index {score_index} is out of range: {reward_model} has {labels} output(s)")
        self.score_index = score_index

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return {"keys": batch["keys"], "scores": logits[:, self.score_index].float().cpu().tolist()}


class JournalWriter(BasePredictionWriter):
    """Appends each batch's rewards to this rank's journal as soon as the batch is done."""

    def __init__(self, out: Path, judge: str, spec: str) -> None:
        super().__init__(write_interval="batch")
        self.out, self.judge, self.spec = out, judge, spec

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        records = [
            {"id": key[0], "candidate": key[1], "score": value, "spec": self.spec}
            for key, value in zip(prediction["keys"], prediction["scores"], strict=True)
        ]
        Journal(rank_journal(self.out, self.judge, trainer.global_rank)).append(records)
