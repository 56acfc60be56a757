"""``zooter generate``: every candidate LLM's response to every query, resumably.

Reads the queries (``--queries``: JSON Lines, Parquet or CSV rows with a unique ``id`` and a non-empty
``query``; other fields are kept) and asks each candidate of ``--candidates`` for a response, through
one of two backends:

- ``hf``: a Hugging Face causal LM (hub id or local directory) run in this process, on the GPU in
  bfloat16 when there is one, else on the CPU in float32. The prompt is the tokenizer's chat template
  applied to one user message (with the generation prompt), or the raw query when the tokenizer has
  no template. Prompts are batched by length (``batch_size``) with left padding; one model is
  loaded at a time.
- ``openai``: an OpenAI-compatible server (vLLM, TGI, llama.cpp, a hosted API): ``POST
  {base_url}/chat/completions`` with one user message, ``concurrency`` requests in flight, retries
  with exponential backoff on connection errors, timeouts, HTTP 429 and 5xx (a ``Retry-After``
  header is honoured); any other HTTP error stops the run at once with the server's message.

Sampling follows the paper (temperature 0.7, top-p 1.0, up to 2048 new tokens, seed 0); each
candidate may override any of the four. Settings a request does not name (top-k, repetition
penalty) come from the model's own generation config, for both backends (vLLM's default too).

The run is resumable, unit by unit: each finished (query id, candidate) response is appended at once
to the journal next to the output (``responses.jsonl`` -> ``responses.journal.jsonl``) with a
``spec``, a short hash of the candidate's backend, model, base_url and sampling settings. A rerun
reuses every journal record whose spec matches the current config, ignores the others (say the
model was changed) and generates only the missing units; a kill loses at most the units in flight.
When every unit is done, ``--out`` is written atomically: one row per input query, in input order,
with all its fields and ``responses: {candidate: text}`` (candidates in config order; an input
``responses`` field is replaced). The journal is kept: a later run with an extra candidate generates
only that candidate. Delete it to regenerate everything. Units are keyed by query id: after
changing a query's text under the same id, delete the journal too.

A seeded HF run is reproducible per batch (torch is seeded from the seed, the candidate and the
batch's first id), so with ``batch_size: 1`` a resumed run gives the same responses as an
uninterrupted one; with larger batches, which queries share a batch can differ after a resume.

Example (``configs/generate/example.yaml`` documents every field)::

    zooter generate --config configs/generate/example.yaml --queries queries.jsonl --out responses.jsonl

``zooter generate --candidates.help Candidate`` lists the fields of one candidate.
"""

from __future__ import annotations

import gc
import hashlib
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from zooter.pipeline.hf_lm import (
    chat_prompt,
    context_limit,
    device_and_dtype,
    encode_prompts,
    generate_batch,
    length_batches,
    load_causal_lm,
    pad_left,
)
from zooter.pipeline.journal import Journal, journal_path, read_query_rows, write_rows_atomic
from zooter.table.schema import TableError

BACKENDS = ("hf", "openai")
MAX_BACKOFF_S = 60.0  # cap of the exponential backoff between retries
MAX_RETRY_AFTER_S = 600.0  # cap of a server's Retry-After

DESCRIPTION = (
    "Every candidate LLM's response to every query (backends: hf = transformers in this process, openai = an "
    "OpenAI-compatible server such as vLLM), resumable: finished units go to <out stem>.journal.jsonl at once, "
    "a rerun generates only the missing ones, and --out (the input rows plus responses: {candidate: text}) is "
    "written when all are done. Delete the journal to regenerate. Example: configs/generate/example.yaml; "
    "`zooter generate --candidates.help Candidate` lists the fields of one candidate."
)

Unit = tuple[str, str]  # (query id, query text)
Recorder = Callable[[Sequence[tuple[str, str]]], None]  # finished (id, response) pairs -> journal


class GenerateError(ValueError):
    """A problem the user can act on (config, inputs, a server that refuses); shown without a traceback."""


@dataclass
class Candidate:
    """One candidate LLM.

    Args:
        name: unique name of the candidate; its column in the routing table (``responses.<name>``,
            later ``scores.<name>``).
        model: ``hf``: a Hugging Face hub id or a local directory; ``openai``: the model name the
            server serves (vLLM: the ``--served-model-name``, by default the path it was started with).
        backend: ``hf`` (transformers in this process) or ``openai`` (an OpenAI-compatible server).
        base_url: ``openai`` only: the API root, e.g. ``http://localhost:8000/v1``.
        api_key_env: ``openai`` only, optional: the name of an environment variable holding the API key,
            sent as ``Authorization: Bearer <key>``.
        temperature: this candidate's sampling temperature (default: the top-level ``temperature``).
        top_p: this candidate's nucleus sampling threshold (default: the top-level ``top_p``).
        max_new_tokens: this candidate's response length limit in tokens (default: the top-level one).
        seed: this candidate's sampling seed (default: the top-level ``seed``).
        chat_template: ``hf`` only, optional: a Jinja chat-template file for a model whose tokenizer has
            none (or the wrong one), e.g. Vicuna's or Alpaca's prompt format; it replaces the tokenizer's
            own. (``openai``: the server applies its template, e.g. vLLM's ``--chat-template``.)
    """

    name: str
    model: str
    backend: str = "hf"
    base_url: str | None = None
    api_key_env: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    seed: int | None = None
    chat_template: str | None = None

    def template_text(self) -> str | None:
        """The chat template file's text (None: the tokenizer's own)."""
        return None if self.chat_template is None else Path(self.chat_template).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Sampling:
    """The sampling settings of one candidate, after applying its overrides."""

    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int


@dataclass
class GenerateConfig:
    """Settings of ``zooter generate``.

    Args:
        queries: the input rows (.jsonl, .parquet or .csv), each with a unique ``id`` and a non-empty
            ``query``; other fields are copied to the output.
        out: the output file (.jsonl): the input rows plus ``responses: {candidate: text}``. Its journal
            of finished units is ``<out stem>.journal.jsonl`` next to it.
        candidates: the candidate LLMs, in output order: a list of ``Candidate`` (``name``, ``model``,
            ``backend``, ``base_url``, ``api_key_env`` and optional ``temperature``, ``top_p``,
            ``max_new_tokens``, ``seed`` overrides); see ``--candidates.help Candidate``.
        temperature: sampling temperature (paper: 0.7); 0 means greedy decoding.
        top_p: nucleus sampling threshold (paper: 1.0, i.e. off).
        max_new_tokens: the most tokens per response (paper: 2048); ``max_tokens`` for ``openai``.
        seed: sampling seed; ``hf`` seeds torch per batch from it, ``openai`` sends it with each request.
        batch_size: ``hf``: prompts per ``generate`` call.
        concurrency: ``openai``: requests in flight at once, per candidate.
        max_retries: ``openai``: retries of one request after a connection error, a timeout, HTTP 429 or
            5xx, before the run stops.
        timeout_s: ``openai``: seconds to wait for one response.
        retry_backoff_s: ``openai``: the first retry waits about this long, each further one twice as
            long (plus up to 10% jitter, at most 60 s); a server's ``Retry-After`` takes precedence.
        progress: show a progress bar per candidate.
    """

    queries: str
    out: str
    candidates: list[Candidate]
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 2048
    seed: int = 0
    batch_size: int = 8
    concurrency: int = 8
    max_retries: int = 5
    timeout_s: float = 600.0
    retry_backoff_s: float = 1.0
    progress: bool = True

    def __post_init__(self) -> None:
        self.candidates = [c if isinstance(c, Candidate) else Candidate(**c) for c in self.candidates]

    def sampling(self, candidate: Candidate) -> Sampling:
        """The candidate's sampling settings: its overrides, else the top-level ones."""

        def pick(name: str) -> Any:
            value = getattr(candidate, name)
            return getattr(self, name) if value is None else value

        return Sampling(
            temperature=float(pick("temperature")),
            top_p=float(pick("top_p")),
            max_new_tokens=int(pick("max_new_tokens")),
            seed=int(pick("seed")),
        )

    def validate(self) -> None:
        """Raise :class:`GenerateError` naming the field of the first problem."""
        for name, low in (("batch_size", 1), ("concurrency", 1), ("max_retries", 0)):
            if getattr(self, name) < low:
                raise GenerateError(f"field {name!r}: expected at least {low}, got {getattr(self, name)}")
        if self.timeout_s <= 0:
            raise GenerateError(f"field 'timeout_s': expected a positive number, got {self.timeout_s}")
        if self.retry_backoff_s < 0:
            raise GenerateError(f"field 'retry_backoff_s': expected at least 0, got {self.retry_backoff_s}")
        if not self.candidates:
            raise GenerateError("field 'candidates': at least one candidate is needed")
        seen: dict[str, int] = {}
        for index, candidate in enumerate(self.candidates):
            where = f"candidates[{index}]"
            if not isinstance(candidate.name, str) or not candidate.name.strip():
                raise GenerateError(f"{where}: field 'name': expected a non-empty name, got {candidate.name!r}")
            if candidate.name in seen:
                raise GenerateError(
                    f"{where}: field 'name': duplicate candidate name {candidate.name!r} "
                    f"(also candidates[{seen[candidate.name]}])"
                )
            seen[candidate.name] = index
            where = f"{where} ({candidate.name!r})"
            if candidate.backend not in BACKENDS:
                raise GenerateError(
                    f"{where}: field 'backend': unknown backend {candidate.backend!r}; expected one of {list(BACKENDS)}"
                )
            if not isinstance(candidate.model, str) or not candidate.model.strip():
                raise GenerateError(f"{where}: field 'model': expected a model name, got {candidate.model!r}")
            if candidate.backend == "openai" and not candidate.base_url:
                raise GenerateError(
                    f"{where}: field 'base_url': an openai candidate needs the server's API root, "
                    "e.g. http://localhost:8000/v1"
                )
            if candidate.backend == "hf":
                for key in ("base_url", "api_key_env"):
                    if getattr(candidate, key):
                        raise GenerateError(f"{where}: field {key!r}: only for openai candidates")
            if candidate.chat_template is not None:
                if candidate.backend != "hf":
                    raise GenerateError(
                        f"{where}: field 'chat_template': only for hf candidates (an openai server applies its own "
                        "template, e.g. vLLM's --chat-template)"
                    )
                if not Path(candidate.chat_template).is_file():
                    raise GenerateError(f"{where}: field 'chat_template': no such file {candidate.chat_template!r}")
            sampling = self.sampling(candidate)
            if sampling.temperature < 0:
                raise GenerateError(f"{where}: field 'temperature': expected >= 0, got {sampling.temperature}")
            if not 0 < sampling.top_p <= 1:
                raise GenerateError(f"{where}: field 'top_p': expected 0 < top_p <= 1, got {sampling.top_p}")
            if sampling.max_new_tokens < 1:
                raise GenerateError(
                    f"{where}: field 'max_new_tokens': expected at least 1, got {sampling.max_new_tokens}"
                )


def candidate_spec(candidate: Candidate, sampling: Sampling) -> str:
    """A short hash of everything that decides a candidate's responses (not its name or API key)."""
    base_url = candidate.base_url.rstrip("/") if candidate.base_url else None
    payload = {"backend": candidate.backend, "model": candidate.model, "base_url": base_url, **asdict(sampling)}
    template = candidate.template_text()
    if template is not None:  # a template changes the prompts, so the responses (absent: the spec as before)
        payload["chat_template"] = hashlib.sha256(template.encode()).hexdigest()
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def batch_seed(seed: int, candidate: str, first_id: str) -> int:
    """The torch seed of one HF batch: fixed by the seed, the candidate and the batch's first query id."""
    digest = hashlib.sha256(f"{seed}\0{candidate}\0{first_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _api_key(index: int, candidate: Candidate) -> str | None:
    if not candidate.api_key_env:
        return None
    key = os.environ.get(candidate.api_key_env)
    if not key:
        raise GenerateError(
            f"candidates[{index}] ({candidate.name!r}): field 'api_key_env': "
            f"the environment variable {candidate.api_key_env!r} is not set"
        )
    return key


# ---------------------------------------------------------------------------------------------- journal


@dataclass
class Resume:
    """What a run takes over from the journal."""

    done: dict[tuple[str, str], str] = field(default_factory=dict)  # (id, candidate) -> response
    other_spec: dict[str, int] = field(default_factory=dict)  # candidate -> records with another spec
    unused: int = 0  # records of candidates or ids not in this run
    dropped_tail: int = 0
    new: bool = False  # no journal yet

    def describe(self, journal: Path) -> str:
        if self.new:
            return f"new journal {journal}"
        parts = [f"{len(self.done)} response(s) reused from {journal}"]
        if self.other_spec:
            changed = ", ".join(f"{name!r}: {n}" for name, n in self.other_spec.items())
            parts.append(
                f"{sum(self.other_spec.values())} record(s) ignored because the candidate's backend, model, "
                f"base_url or sampling changed ({changed})"
            )
        if self.unused:
            parts.append(f"{self.unused} record(s) of other candidates or ids ignored")
        if self.dropped_tail:
            parts.append("a truncated last line (a killed write) dropped; its unit is redone")
        return "; ".join(parts)


def load_resume(journal: Journal, ids: set[str], specs: dict[str, str]) -> Resume:
    """The journal's finished units that fit this run: known id, known candidate, same spec."""
    resume = Resume(new=not journal.path.is_file())
    for number, record in enumerate(journal.load(), start=1):
        values = [record.get(key) for key in ("id", "candidate", "response", "spec")]
        if not all(isinstance(value, str) for value in values):
            raise TableError(
                f"{journal.path}: record {number}: expected string fields id, candidate, response and spec; "
                "delete the journal to start over"
            )
        unit_id, candidate, response, spec = values
        if candidate not in specs or unit_id not in ids:
            resume.unused += 1
        elif spec != specs[candidate]:
            resume.other_spec[candidate] = resume.other_spec.get(candidate, 0) + 1
        else:
            resume.done.setdefault((unit_id, candidate), response)
    resume.dropped_tail = journal.dropped_tail
    return resume


# ---------------------------------------------------------------------------------------------- hf


def _load_hf(candidate: Candidate) -> tuple[Any, Any]:
    """The candidate's tokenizer (left padding) and model, on the GPU in bfloat16 when there is one."""
    try:
        tokenizer, model = load_causal_lm(candidate.model, *device_and_dtype())
    except OSError as err:
        raise GenerateError(f"candidate {candidate.name!r}: cannot load model {candidate.model!r}: {err}") from err
    if not pad_left(tokenizer):
        raise GenerateError(
            f"candidate {candidate.name!r}: the tokenizer of {candidate.model!r} has neither a pad nor an "
            "eos token to pad batches with"
        )
    template = candidate.template_text()
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer, model


def generate_hf(
    candidate: Candidate, sampling: Sampling, units: Sequence[Unit], batch_size: int, record: Recorder
) -> None:
    """Generate the units with a Hugging Face causal LM, longest prompts first, ``batch_size`` at a time."""
    import torch

    tokenizer, model = _load_hf(candidate)
    try:
        prompts = [chat_prompt(tokenizer, query) for _, query in units]
        add_special = prompts[0][1]
        texts = [text for text, _ in prompts]
        lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=add_special)["input_ids"]]
        limit = context_limit(model)
        warned = False
        for batch in length_batches(lengths, batch_size):
            batch_ids = [units[i][0] for i in batch]
            inputs = encode_prompts(tokenizer, [texts[i] for i in batch], add_special, model.device)
            prompt_length = inputs["input_ids"].shape[1]
            max_new_tokens = sampling.max_new_tokens
            if limit is not None and prompt_length + max_new_tokens > limit:
                max_new_tokens = limit - prompt_length
                if max_new_tokens < 1:
                    raise GenerateError(
                        f"candidate {candidate.name!r}, id {batch_ids[0]!r}: the prompt has {prompt_length} tokens, "
                        f"the model's context only {limit}"
                    )
                if not warned:
                    print(
                        f"zooter generate: candidate {candidate.name!r}: responses of long prompts are cut to the "
                        f"model's context of {limit} tokens",
                        file=sys.stderr,
                    )
                    warned = True
            options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": sampling.temperature > 0}
            if options["do_sample"]:
                options.update(temperature=sampling.temperature, top_p=sampling.top_p)
            torch.manual_seed(batch_seed(sampling.seed, candidate.name, batch_ids[0]))
            responses = generate_batch(model, tokenizer, inputs, **options)
            record([(uid, text.strip()) for uid, text in zip(batch_ids, responses, strict=True)])
    finally:
        del model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------- openai


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Stopped(Exception):
    """The run is stopping (another unit failed): this unit was not requested or not finished."""


def _server_message(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or "(empty body)"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        for value in (error, data.get("message"), data.get("detail")):
            if isinstance(value, str):
                return value
    return text[:500]


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


@dataclass
class OpenAIClient:
    """``POST {base_url}/chat/completions`` for one candidate, with retries."""

    candidate: Candidate
    sampling: Sampling
    api_key: str | None
    timeout_s: float
    max_retries: int
    retry_backoff_s: float

    @property
    def url(self) -> str:
        return f"{self.candidate.base_url.rstrip('/')}/chat/completions"

    def payload(self, query: str) -> bytes:
        return json.dumps(
            {
                "model": self.candidate.model,
                "messages": [{"role": "user", "content": query}],
                "temperature": self.sampling.temperature,
                "top_p": self.sampling.top_p,
                "max_tokens": self.sampling.max_new_tokens,
                "seed": self.sampling.seed,
            }
        ).encode("utf-8")

    def request_once(self, query: str) -> str:
        """One request: the response text, or :class:`_Retryable`, or :class:`GenerateError`."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=self.payload(query), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            message = f"HTTP {err.code} from {self.url}: {_server_message(err.read())}"
            if err.code == 429 or err.code >= 500:
                raise _Retryable(message, _retry_after(err.headers.get("Retry-After"))) from err
            raise GenerateError(f"{message} (not retried)") from err
        except (OSError, http.client.HTTPException) as err:  # refused, reset, timed out, cut short
            reason = getattr(err, "reason", None) or err
            raise _Retryable(f"{type(err).__name__} from {self.url}: {reason}") from err
        try:
            content = json.loads(body)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise GenerateError(
                f"unexpected answer from {self.url} (no choices[0].message.content): {body[:300]!r}"
            ) from err
        if content is None:  # e.g. a reasoning model that spent max_tokens before answering
            return ""
        if not isinstance(content, str):
            raise GenerateError(f"unexpected answer from {self.url}: message content {content!r} is not text")
        return content.strip()

    def complete(self, unit_id: str, query: str, stop: threading.Event) -> str:
        """The response to one query, retried; raises :class:`GenerateError` naming candidate and id."""
        where = f"candidate {self.candidate.name!r}, id {unit_id!r}"
        for attempt in range(self.max_retries + 1):
            if stop.is_set():
                raise _Stopped
            try:
                return self.request_once(query)
            except GenerateError as err:
                raise GenerateError(f"{where}: {err}") from err
            except _Retryable as err:
                if attempt == self.max_retries:
                    raise GenerateError(f"{where}: gave up after {attempt + 1} attempts; last error: {err}") from err
                if err.retry_after is not None:
                    delay = err.retry_after
                else:
                    delay = min(self.retry_backoff_s * 2**attempt, MAX_BACKOFF_S) * (1 + random.uniform(0, 0.1))
                if stop.wait(delay):
                    raise _Stopped from err
        raise AssertionError("unreachable")


def generate_openai(client: OpenAIClient, units: Sequence[Unit], concurrency: int, record: Recorder) -> None:
    """Generate the units with ``concurrency`` requests in flight; the first unit that fails stops the run.

    Responses that finish before or while the run stops are still recorded.
    """
    stop = threading.Event()

    def one(unit_id: str, query: str) -> tuple[str, str]:
        try:
            return unit_id, client.complete(unit_id, query, stop)
        except _Stopped:
            raise
        except BaseException:
            stop.set()  # no further requests from any worker
            raise

    failure: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"zooter-{client.candidate.name}")
    try:
        futures = [pool.submit(one, unit_id, query) for unit_id, query in units]
        for future in as_completed(futures):
            if future.cancelled():
                continue
            error = future.exception()
            if error is None:
                record([future.result()])
            elif not isinstance(error, _Stopped) and failure is None:
                failure = error
                stop.set()
                for other in futures:  # the ones not started yet; those in flight finish and are recorded
                    other.cancel()
    except BaseException:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    if failure is not None:
        raise failure


# ---------------------------------------------------------------------------------------------- run


def run_generate(config: GenerateConfig) -> Path:
    """Generate every missing (query, candidate) response, then write ``config.out``; returns its path."""
    started = time.perf_counter()
    config.validate()
    queries_path = Path(config.queries)
    if not queries_path.is_file():
        raise GenerateError(f"field 'queries': no such file: {queries_path}")
    rows = read_query_rows(queries_path)
    api_keys = {c.name: _api_key(i, c) for i, c in enumerate(config.candidates)}
    samplings = {c.name: config.sampling(c) for c in config.candidates}
    specs = {c.name: candidate_spec(c, samplings[c.name]) for c in config.candidates}

    out = Path(config.out)
    journal = Journal(journal_path(out))
    resume = load_resume(journal, {row["id"] for row in rows}, specs)
    done = dict(resume.done)
    total = len(rows) * len(config.candidates)
    print(
        f"zooter generate: {len(rows)} queries x {len(config.candidates)} candidates = {total} responses; "
        f"{resume.describe(journal.path)}; {total - len(done)} to generate",
        flush=True,
    )

    from tqdm.auto import tqdm

    def recorder(name: str, bar: Any) -> Recorder:
        def record(results: Sequence[tuple[str, str]]) -> None:
            journal.append(
                {"id": uid, "candidate": name, "response": text, "spec": specs[name]} for uid, text in results
            )
            done.update(((uid, name), text) for uid, text in results)
            bar.update(len(results))

        return record

    for candidate in config.candidates:
        units = [(row["id"], row["query"]) for row in rows if (row["id"], candidate.name) not in done]
        if not units:
            continue
        sampling = samplings[candidate.name]
        desc = f"generate {candidate.name}"
        with tqdm(total=len(units), desc=desc, unit="response", disable=not config.progress) as bar:
            record = recorder(candidate.name, bar)
            try:
                if candidate.backend == "hf":
                    generate_hf(candidate, sampling, units, config.batch_size, record)
                else:
                    client = OpenAIClient(
                        candidate,
                        sampling,
                        api_keys[candidate.name],
                        config.timeout_s,
                        config.max_retries,
                        config.retry_backoff_s,
                    )
                    generate_openai(client, units, config.concurrency, record)
            except GenerateError as err:
                raise GenerateError(
                    f"{err}\n{len(done)} of {total} responses are done and kept in {journal.path}; "
                    "rerun the same command to go on"
                ) from err

    names = [c.name for c in config.candidates]
    output = [{**row, "responses": {name: done[(row["id"], name)] for name in names}} for row in rows]
    write_rows_atomic(output, out)
    print(
        f"zooter generate: {total - len(resume.done)} generated, {len(resume.done)} reused, "
        f"in {time.perf_counter() - started:.1f}s -> {out} (journal: {journal.path})",
        flush=True,
    )
    return out


def main(argv: list[str]) -> None:
    """``zooter generate --config FILE [--queries ROWS] [--out OUT.jsonl] [...]``"""
    from jsonargparse import ActionConfigFile

    from zooter.cli_args import PlainParser

    parser = PlainParser(prog="zooter generate", description=DESCRIPTION)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML config (configs/generate/example.yaml)")
    parser.add_class_arguments(GenerateConfig, nested_key=None)
    args = parser.parse_args(argv)
    options = args.as_dict()
    options.pop("config", None)
    options.pop("__path__", None)
    try:
        run_generate(GenerateConfig(**options))
    except (GenerateError, TableError) as err:
        sys.exit(f"zooter generate: {err}")
