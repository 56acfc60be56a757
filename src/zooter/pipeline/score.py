"""``zooter score``: score every (query, response) with a reward model, resumably, into a routing table.

Input: rows with ``id``, ``query`` and ``responses`` ``{candidate: text}`` (what ``zooter generate``
writes; a ``null`` or missing response gets a ``null`` score, counted). Output: the same rows with
``scores_by_judge.<judge>`` ``{candidate: reward}`` added (and ``scores`` with ``--as_scores``), so
several reward models can be added one after another to the same table and compared as judges.

The reward model is any Hugging Face sequence-classification model (``AutoModelForSequenceClassification``;
the reward is ``logits[:, score_index]``). When its tokenizer has a chat template the pair is
rendered as a user turn and an assistant turn; otherwise it is encoded as a text pair (query, response).
Pairs are sorted by token length and cut into batches of ``batch_size``, so a batch pads little and
the longest batches come first (an out-of-memory error shows at once, not after an hour). The run is
a Lightning ``predict``: ``--devices``/``--strategy`` spread the batches over GPUs (or CPU processes),
``--precision`` defaults to ``bf16-true`` on a GPU that supports it and ``32-true`` elsewhere, and
Lightning draws the progress bar.

Resumable: each scored pair is appended to a journal (``<out stem>.<judge>.journal.jsonl``, one per rank)
as soon as its batch is done; a rerun scores only the pairs that are missing. The output file is
written, atomically, when every pair has a score.

torch, Lightning and transformers are imported inside :func:`score` (the model, batches and journal
writer are in :mod:`zooter.pipeline.reward_scoring`), so ``zooter score --help`` answers at once.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from zooter.pipeline.hf_lm import cuda_bf16, ensure_pad_token, has_chat_template
from zooter.pipeline.journal import Journal, journal_path, read_query_rows, write_rows_atomic
from zooter.table.schema import SCORES_JUDGE, TableError

Key = tuple[str, str]  # (query id, candidate)


def rank_journal(out: Path, judge: str, rank: int) -> Path:
    """Where rank ``rank`` records ``judge``'s rewards: ``<out stem>.<judge>.journal[.rank<r>].jsonl``."""
    path = journal_path(out.with_name(f"{out.stem}.{judge}{out.suffix}"))
    return path if rank == 0 else path.with_name(f"{path.stem}.rank{rank}.jsonl")


def judge_journals(out: Path, judge: str) -> list[Journal]:
    """Every rank's journal of ``judge`` found next to ``out`` (the world size may change between runs)."""
    first = rank_journal(out, judge, 0)
    return [Journal(first), *(Journal(p) for p in sorted(out.parent.glob(f"{first.stem}.rank*.jsonl")))]


def score(
    responses: Path,
    *,
    reward_model: str,
    out: Path | None = None,
    judge: str | None = None,
    as_scores: bool = False,
    overwrite: bool = False,
    batch_size: int = 8,
    max_length: int = 2048,
    score_index: int = 0,
    accelerator: str = "auto",
    devices: int | str = "auto",
    strategy: str = "auto",
    precision: str | None = None,
    num_workers: int = 0,
) -> Path:
    """Score every response with a reward model and write the routing table.

    Args:
        responses: rows with ``id``, ``query`` and ``responses`` {candidate: text} (e.g. from ``zooter generate``).
        reward_model: a Hugging Face hub id or local directory of a sequence-classification reward model.
        out: the routing table to write (.jsonl); default: ``responses`` itself (the judge is added in place).
        judge: the judge name under ``scores_by_judge`` (default: the model's directory or repo name).
        as_scores: also write the rewards as the top-level ``scores`` judge.
        overwrite: replace the judge's scores if the input already has them.
        batch_size: pairs per batch (pairs are sorted by length first).
        max_length: longest (query, response) in tokens; longer pairs are truncated.
        score_index: which output of the model is the reward (0 for the usual single-output reward models).
        accelerator: Lightning accelerator (``auto``, ``cpu``, ``gpu``).
        devices: Lightning devices (e.g. 4 for four GPUs).
        strategy: Lightning strategy (``auto``; ``ddp`` for several devices).
        precision: Lightning precision; default ``bf16-true`` on a GPU with bf16, else ``32-true``.
        num_workers: DataLoader workers.
    """
    from lightning.pytorch import Trainer
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer

    from zooter.pipeline.reward_scoring import JournalWriter, LengthBatches, RewardScorer, encode_pair

    started = time.perf_counter()
    responses = Path(responses)
    out = Path(out) if out is not None else responses
    judge = judge or Path(reward_model.rstrip("/")).name.lower()
    rows = read_query_rows(responses)
    candidates = _check_rows(rows, responses, judge, as_scores, overwrite)
    tokenizer = AutoTokenizer.from_pretrained(reward_model)
    ensure_pad_token(tokenizer)
    spec = _spec(reward_model, max_length, score_index, has_chat_template(tokenizer))

    done: dict[Key, float] = {}
    other_spec = dropped = 0
    for journal in judge_journals(out, judge):
        for record in journal.load():
            if record.get("spec") == spec:
                done[(record["id"], record["candidate"])] = record["score"]
            else:
                other_spec += 1
        dropped += journal.dropped_tail
    keys: list[Key] = []
    texts: list[tuple[str, str]] = []
    missing_responses = 0
    for row in rows:
        for candidate in candidates:
            response = row["responses"].get(candidate)
            if response is None:
                missing_responses += 1
            elif (row["id"], candidate) not in done:
                keys.append((row["id"], candidate))
                texts.append((row["query"], response))
    print(
        f"zooter score: {len(rows)} queries x {len(candidates)} candidates, judge {judge!r}: "
        f"{len(done)} pairs already in the journal, {len(keys)} to score, {missing_responses} without a response"
        + (f"; ignored {other_spec} journal records of other settings" if other_spec else "")
        + (f"; dropped {dropped} journal line(s) cut short by a kill" if dropped else ""),
        flush=True,
    )

    trainer = None
    if keys:
        input_ids = [encode_pair(tokenizer, q, r, max_length) for q, r in texts]
        loader = DataLoader(
            LengthBatches(keys, input_ids, batch_size, tokenizer.pad),
            batch_size=None,
            num_workers=num_workers,
        )
        if precision is None:
            bf16 = cuda_bf16() and accelerator != "cpu"
            precision = "bf16-true" if bf16 else "32-true"
        trainer = Trainer(
            accelerator=accelerator,
            devices=devices,
            strategy=strategy,
            precision=precision,
            callbacks=[JournalWriter(out, judge, spec)],
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
        )
        model = RewardScorer(reward_model, score_index, tokenizer.pad_token_id)
        with warnings.catch_warnings():  # batches are built by the dataset, so Lightning cannot see indices
            warnings.filterwarnings("ignore", message=".*infer the batch indices.*")
            trainer.predict(model, loader, return_predictions=False)
        trainer.strategy.barrier()
        if not trainer.is_global_zero:
            return out
        for journal in judge_journals(out, judge):
            for record in journal.load():
                if record.get("spec") == spec:
                    done[(record["id"], record["candidate"])] = record["score"]

    lost = [key for key in keys if key not in done]
    if lost:
        raise RuntimeError(f"{len(lost)} pair(s) have no score after the run, e.g. {lost[:3]}; rerun to finish them")
    for row in rows:
        scores = {c: done.get((row["id"], c)) for c in candidates}
        row["scores_by_judge"] = {**(row.get("scores_by_judge") or {}), judge: scores}
        if as_scores:
            row["scores"] = scores
    write_rows_atomic(rows, out)
    print(
        f"zooter score: {len(keys)} pairs scored in {time.perf_counter() - started:.1f}s; "
        f"table with judge {judge!r} -> {out}",
        flush=True,
    )
    return out


def _check_rows(rows: list[dict[str, Any]], source: Path, judge: str, as_scores: bool, overwrite: bool) -> list[str]:
    """The candidates (in order of first appearance); errors name the id and field."""
    candidates: dict[str, None] = {}
    existing = 0
    for row in rows:
        where = f"{source} (id={row['id']!r})"
        responses = row.get("responses")
        if not isinstance(responses, dict):
            raise TableError(f"{where}: field 'responses': expected an object {{candidate: text}}, got {responses!r}")
        for candidate, text in responses.items():
            if text is not None and not isinstance(text, str):
                raise TableError(f"{where}: field 'responses.{candidate}': expected text or null, got {text!r}")
            candidates[candidate] = None
        by_judge = row.get("scores_by_judge") or {}
        existing += int(judge in by_judge or (as_scores and row.get("scores") is not None))
    if existing and not overwrite:
        field = f"scores_by_judge.{judge}" + (f" or {SCORES_JUDGE}" if as_scores else "")
        raise TableError(
            f"{source}: {existing} row(s) already have '{field}'; choose another --judge, or --overwrite true"
        )
    if len(candidates) < 2:
        raise TableError(f"{source}: routing needs responses of at least 2 candidates, found {list(candidates)}")
    return list(candidates)


def _spec(reward_model: str, max_length: int, score_index: int, chat_template: bool) -> str:
    settings = {"reward_model": reward_model, "max_length": max_length, "index": score_index, "chat": chat_template}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def main(argv: list[str]) -> None:
    """``zooter score RESPONSES --reward_model M [--out TABLE] [--judge NAME] ...``"""
    from jsonargparse import CLI

    from zooter.cli_args import PlainParser

    try:
        CLI(score, args=argv, parser_class=PlainParser, prog="zooter score")
    except (TableError, ValueError, OSError) as err:
        sys.exit(f"zooter score: {err}")
