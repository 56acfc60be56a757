"""``zooter score``: score every (query, response) with a judge, resumably, into a routing table.

Input: rows with ``id``, ``query`` and ``responses`` ``{candidate: text}`` (what ``zooter generate``
writes; a ``null`` or missing response gets a ``null`` score, counted). Output: the same rows with
``scores_by_judge.<judge>`` ``{candidate: score}`` added (and ``scores`` with ``--as_scores``), so
several judges can be added one after another to the same table and compared.

``--scorer`` picks the judge: ``reward_model`` (the default, below), or one of
:mod:`zooter.pipeline.scorers`: ``exact_match`` (an answer extracted from the response against the row's
reference), ``code_exec`` (the response's code against the row's unit tests, in a separate limited
process) and ``llm_judge`` (an OpenAI-compatible chat model grades the response 1-10 or compares it with
the row's reference in both orders). Those also write ``score_reasons.<judge>`` ``{candidate: reason}``
(``correct: B``, ``failed: AssertionError``, ``unparseable: ...``) and print the verdicts counted by
kind at the end. ``docs/scorers.md`` describes each, its settings and its rules.

The reward model is any Hugging Face sequence-classification model (``AutoModelForSequenceClassification``;
the reward is ``logits[:, score_index]``). When its tokenizer has a chat template the pair is
rendered as a user turn and an assistant turn; otherwise it is encoded as a text pair (query, response).
Pairs are sorted by token length and cut into batches of ``batch_size``, so a batch pads little and
the longest batches come first (an out-of-memory error shows at once, not after an hour). The run is
a Lightning ``predict``: ``--devices``/``--strategy`` spread the batches over GPUs (or CPU processes),
``--precision`` defaults to ``bf16-true`` on a GPU that supports it and ``32-true`` elsewhere, and
Lightning draws the progress bar.

Resumable, for every scorer: each scored pair is appended to a journal (``<out stem>.<judge>.journal.jsonl``,
one per rank for the reward model) as soon as its batch is done, with a hash of the settings that decide
its score; a rerun with the same settings scores only the pairs that are missing. The output file is
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
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zooter.pipeline.hf_lm import cuda_bf16, ensure_pad_token, has_chat_template
from zooter.pipeline.journal import Journal, journal_path, read_query_rows, write_rows_atomic
from zooter.table.schema import SCORES_JUDGE, TableError

if TYPE_CHECKING:
    from zooter.pipeline.scorers.base import Scorer

Key = tuple[str, str]  # (query id, candidate)


def _pending(
    rows: list[dict[str, Any]], candidates: list[str], done: Mapping[Key, Any]
) -> tuple[list[tuple[dict[str, Any], str, str]], int]:
    """The (row, candidate, response) pairs still to score, and how many pairs have no response (null)."""
    pending, missing = [], 0
    for row in rows:
        for candidate in candidates:
            response = row["responses"].get(candidate)
            if response is None:
                missing += 1
            elif (row["id"], candidate) not in done:
                pending.append((row, candidate, response))
    return pending, missing


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
    scorer: str = "reward_model",
    reward_model: str | None = None,
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
    mode: str | None = None,
    reference_field: str | None = None,
    tests_field: str | None = None,
    time_limit_s: float | None = None,
    memory_limit_mb: int | None = None,
    workers: int | None = None,
    base_url: str | None = None,
    judge_model: str | None = None,
    api_key_env: str | None = None,
    prompt_file: str | None = None,
    temperature: float | None = None,
    max_new_tokens: int | None = None,
    parse_retries: int | None = None,
    max_retries: int | None = None,
    timeout_s: float | None = None,
    retry_backoff_s: float | None = None,
) -> Path:
    """Score every response with a judge and write the routing table (docs/scorers.md has the details).

    Args:
        responses: rows with ``id``, ``query`` and ``responses`` {candidate: text} (e.g. from ``zooter generate``).
        scorer: ``reward_model`` (a sequence-classification reward model), ``exact_match`` (an extracted
            answer against a reference), ``code_exec`` (unit tests in a separate process) or ``llm_judge``
            (an OpenAI-compatible chat model grades or compares).
        reward_model: reward_model: a Hugging Face hub id or local directory of a sequence-classification model.
        out: the routing table to write (.jsonl); default: ``responses`` itself (the judge is added in place).
        judge: the judge name under ``scores_by_judge`` (default: the reward model's directory or repo name,
            else ``exact_match_<mode>``, ``code_exec``, ``llm_judge_<mode>``).
        as_scores: also write the scores as the top-level ``scores`` judge.
        overwrite: replace the judge's scores if the input already has them.
        batch_size: reward_model: pairs per batch (pairs are sorted by length first).
        max_length: reward_model: longest (query, response) in tokens; longer pairs are truncated.
        score_index: reward_model: which output of the model is the reward (0 for single-output models).
        accelerator: reward_model: Lightning accelerator (``auto``, ``cpu``, ``gpu``).
        devices: reward_model: Lightning devices (e.g. 4 for four GPUs).
        strategy: reward_model: Lightning strategy (``auto``; ``ddp`` for several devices).
        precision: reward_model: Lightning precision; default ``bf16-true`` on a GPU with bf16, else ``32-true``.
        num_workers: reward_model: DataLoader workers.
        mode: exact_match (required): ``choice``, ``number``, ``text`` or ``f1``; llm_judge: ``grade``
            (default, 1-10) or ``pairwise`` (against the reference, both orders).
        reference_field: exact_match, llm_judge pairwise: the row field with the reference answer (default ``answer``).
        tests_field: code_exec: the row field with the unit tests (default ``tests``).
        time_limit_s: code_exec: wall-time limit of one run in seconds (default 10).
        memory_limit_mb: code_exec: address-space limit of one run in MiB (default 1024).
        workers: code_exec: processes at once; llm_judge: units judged at once (default 4).
        base_url: llm_judge: the judge's API root, e.g. ``http://localhost:8000/v1``.
        judge_model: llm_judge: the model name the judge's server serves.
        api_key_env: llm_judge: environment variable holding the judge's API key (default: none sent).
        prompt_file: llm_judge: the prompt template (default ``configs/judges/<mode>.txt``).
        temperature: llm_judge: the judge's sampling temperature (default 0).
        max_new_tokens: llm_judge: the longest judge answer in tokens (default 1024).
        parse_retries: llm_judge: further requests when an answer does not parse, then null (default 2).
        max_retries: llm_judge: retries after a connection error, timeout, HTTP 429 or 5xx (default 5).
        timeout_s: llm_judge: seconds to wait for one answer (default 600).
        retry_backoff_s: llm_judge: the first retry's wait in seconds, doubling after (default 1).
    """
    started = time.perf_counter()
    responses = Path(responses)
    out = Path(out) if out is not None else responses
    if scorer == "reward_model":
        if not reward_model:
            raise ValueError("--scorer reward_model needs --reward_model (a hub id or a local directory)")
        judge = judge or Path(reward_model.rstrip("/")).name.lower()
        rows = read_query_rows(responses)
        candidates = _check_rows(rows, responses, judge, as_scores, overwrite)
        reward_options = {"max_length": max_length, "score_index": score_index, "batch_size": batch_size}
        lightning = {"accelerator": accelerator, "devices": devices, "strategy": strategy, "precision": precision}
        return _score_with_reward_model(
            rows, candidates, reward_model, out, judge, as_scores, started, **reward_options, **lightning,
            num_workers=num_workers,
        )  # fmt: skip

    from zooter.pipeline.scorers import SCORERS, build

    if scorer not in SCORERS:
        raise ValueError(f"--scorer: unknown scorer {scorer!r}; expected one of {['reward_model', *SCORERS]}")
    if reward_model:
        raise ValueError(f"--reward_model is for --scorer reward_model, not {scorer}")
    options = {
        "mode": mode, "reference_field": reference_field, "tests_field": tests_field, "time_limit_s": time_limit_s,
        "memory_limit_mb": memory_limit_mb, "workers": workers, "base_url": base_url, "judge_model": judge_model,
        "api_key_env": api_key_env, "prompt_file": prompt_file, "temperature": temperature,
        "max_new_tokens": max_new_tokens, "parse_retries": parse_retries, "max_retries": max_retries,
        "timeout_s": timeout_s, "retry_backoff_s": retry_backoff_s,
    }  # fmt: skip
    built = build(scorer, options)
    judge = judge or built.name
    rows = read_query_rows(responses)
    candidates = _check_rows(rows, responses, judge, as_scores, overwrite)
    built.check(rows, responses)
    return _score_with(scorer, built, rows, candidates, out, judge, as_scores, started)


def _load_done(out: Path, judge: str, spec: str) -> tuple[dict[Key, dict[str, Any]], int, int]:
    """The journal records of ``judge`` under ``spec`` by pair, records of other settings, lines cut by a kill."""
    done: dict[Key, dict[str, Any]] = {}
    other_spec = dropped = 0
    for journal in judge_journals(out, judge):
        for record in journal.load():
            if record.get("spec") == spec:
                done[(record["id"], record["candidate"])] = record
            else:
                other_spec += 1
        dropped += journal.dropped_tail
    return done, other_spec, dropped


def _resume_note(other_spec: int, dropped: int) -> str:
    return (f"; ignored {other_spec} journal records of other settings" if other_spec else "") + (
        f"; dropped {dropped} journal line(s) cut short by a kill" if dropped else ""
    )


def _write_table(
    rows: list[dict[str, Any]],
    candidates: list[str],
    scores: dict[Key, float | None],
    reasons: dict[Key, str] | None,
    judge: str,
    as_scores: bool,
    out: Path,
) -> None:
    """The rows with ``scores_by_judge.<judge>`` (and ``score_reasons.<judge>``, ``scores``), atomically."""
    for row in rows:
        by_candidate = {c: scores.get((row["id"], c)) for c in candidates}
        row["scores_by_judge"] = {**(row.get("scores_by_judge") or {}), judge: by_candidate}
        if reasons is not None:
            why = {c: reasons.get((row["id"], c)) for c in candidates}
            row["score_reasons"] = {**(row.get("score_reasons") or {}), judge: why}
        if as_scores:
            row["scores"] = by_candidate
    write_rows_atomic(rows, out)


def _score_with(
    kind: str,
    scorer: Scorer,
    rows: list[dict[str, Any]],
    candidates: list[str],
    out: Path,
    judge: str,
    as_scores: bool,
    started: float,
) -> Path:
    """Score the missing pairs with a scorer of :mod:`zooter.pipeline.scorers`, journaling each batch."""
    from tqdm.auto import tqdm

    from zooter.pipeline.scorers.base import Unit, Verdict

    spec = _hash({"scorer": kind, **scorer.spec()})
    records, other_spec, dropped = _load_done(out, judge, spec)
    done = {key: Verdict(r["score"], r.get("reason", "")) for key, r in records.items()}
    pending, missing_responses = _pending(rows, candidates, done)
    units = [Unit(row["id"], candidate, row["query"], response, row) for row, candidate, response in pending]
    total = len(rows) * len(candidates) - missing_responses
    print(
        f"zooter score: {len(rows)} queries x {len(candidates)} candidates, judge {judge!r} ({kind}: "
        f"{scorer.describe()}): {total - len(units)} pairs already in the journal, {len(units)} to score, "
        f"{missing_responses} without a response" + _resume_note(other_spec, dropped),
        flush=True,
    )
    journal = Journal(rank_journal(out, judge, 0))
    with tqdm(total=len(units), desc=f"score {judge}", unit="pair", disable=None) as bar:
        try:
            for batch in scorer.score(units):
                journal.append(
                    {"id": k[0], "candidate": k[1], "score": v.score, "reason": v.reason, "spec": spec}
                    for k, v in batch
                )
                done.update(batch)
                bar.update(len(batch))
        except (ValueError, OSError) as err:
            finished = sum(key in done for key in _pairs(rows, candidates))
            raise ValueError(
                f"{err}\n{finished} of {total} pairs are scored and kept in {journal.path}; "
                "rerun the same command to go on"
            ) from err
    verdicts = {key: done[key] for key in _pairs(rows, candidates) if key in done}
    _write_table(
        rows, candidates, {k: v.score for k, v in verdicts.items()}, {k: v.reason for k, v in verdicts.items()},
        judge, as_scores, out,
    )  # fmt: skip
    print(
        f"zooter score: {len(units)} pairs scored in {time.perf_counter() - started:.1f}s; {_summary(verdicts)}; "
        f"table with judge {judge!r} -> {out}",
        flush=True,
    )
    return out


def _pairs(rows: list[dict[str, Any]], candidates: list[str]) -> list[Key]:
    return [(row["id"], c) for row in rows for c in candidates]


def _summary(verdicts: dict[Key, Any]) -> str:
    """Verdicts counted by kind, and the mean of the scores that are not null."""
    kinds = Counter(verdict.kind for verdict in verdicts.values())
    scores = [v.score for v in verdicts.values() if v.score is not None]
    mean = f"mean score {sum(scores) / len(scores):.4g} over {len(scores)}" if scores else "no score"
    nulls = len(verdicts) - len(scores)
    counted = ", ".join(f"{kind} {n}" for kind, n in kinds.most_common())
    return f"{counted}; {mean}" + (f", {nulls} null" if nulls else "")


def _score_with_reward_model(
    rows: list[dict[str, Any]],
    candidates: list[str],
    reward_model: str,
    out: Path,
    judge: str,
    as_scores: bool,
    started: float,
    *,
    batch_size: int,
    max_length: int,
    score_index: int,
    accelerator: str,
    devices: int | str,
    strategy: str,
    precision: str | None,
    num_workers: int,
) -> Path:
    """The reward model as a Lightning predict over the missing pairs, journaled per rank and batch."""
    from lightning.pytorch import Trainer
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer

    from zooter.pipeline.reward_scoring import JournalWriter, LengthBatches, RewardScorer, encode_pair

    tokenizer = AutoTokenizer.from_pretrained(reward_model)
    ensure_pad_token(tokenizer)
    spec = _spec(reward_model, max_length, score_index, has_chat_template(tokenizer))

    records, other_spec, dropped = _load_done(out, judge, spec)
    done: dict[Key, float] = {key: record["score"] for key, record in records.items()}
    pending, missing_responses = _pending(rows, candidates, done)
    keys: list[Key] = [(row["id"], candidate) for row, candidate, _ in pending]
    texts = [(row["query"], response) for row, _, response in pending]
    print(
        f"zooter score: {len(rows)} queries x {len(candidates)} candidates, judge {judge!r}: "
        f"{len(done)} pairs already in the journal, {len(keys)} to score, {missing_responses} without a response"
        + _resume_note(other_spec, dropped),
        flush=True,
    )

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
        done.update((key, record["score"]) for key, record in _load_done(out, judge, spec)[0].items())

    lost = [key for key in keys if key not in done]
    if lost:
        raise RuntimeError(f"{len(lost)} pair(s) have no score after the run, e.g. {lost[:3]}; rerun to finish them")
    _write_table(rows, candidates, done, None, judge, as_scores, out)
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


def _hash(settings: dict[str, Any]) -> str:
    """A journal record's ``spec``: a short hash of the settings that decide its score."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def _spec(reward_model: str, max_length: int, score_index: int, chat_template: bool) -> str:
    return _hash({"reward_model": reward_model, "max_length": max_length, "index": score_index, "chat": chat_template})


def main(argv: list[str]) -> None:
    """``zooter score RESPONSES [--scorer KIND] [--reward_model M] [--out TABLE] [--judge NAME] ...``"""
    from jsonargparse import CLI

    from zooter.cli_args import PlainParser

    try:
        CLI(score, args=argv, parser_class=PlainParser, prog="zooter score")
    except (TableError, ValueError, OSError) as err:
        sys.exit(f"zooter score: {err}")
