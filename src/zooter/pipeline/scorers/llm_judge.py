"""``--scorer llm_judge``: an LLM behind an OpenAI-compatible chat endpoint judges each response.

The judge is asked through :class:`zooter.pipeline.generate.OpenAIClient`, with the retry rules of
``zooter generate``: ``--max_retries`` retries with exponential backoff from ``--retry_backoff_s`` after a
connection error, a timeout (``--timeout_s``), HTTP 429 or 5xx (a ``Retry-After`` header is honoured);
any other HTTP error, or a unit still failing after its retries, stops the run (finished units are kept
in the journal; rerun to go on). ``--api_key_env`` names an environment variable holding the key, sent
as ``Authorization: Bearer <key>``. ``--workers`` units are judged at once. Sampling: ``--temperature``
(default 0), ``--max_new_tokens``, top-p 1; the seed is the attempt number (0, then 1, 2 on parse
retries), so a retry can give another answer even at a fixed seed.

Modes (``--mode``):

- ``grade`` (MT-Bench's single-answer grading): the judge rates the response from 1 to 10 and the
  score is the rating. The rating is the number in the last ``[[...]]`` of the judge's answer
  (``Rating: [[7]]``, ``[[8.5]]``), else after the last ``Rating:`` (``Rating: 7``, ``Rating: [7]``);
  outside 1..10 it does not parse. The reason is ``rated: <rating>``. The default prompt is
  ``configs/judges/grade.txt``; ``configs/judges/grade_with_reference.txt`` also shows the reference
  answer (MT-Bench's prompt for maths and reasoning).
- ``pairwise`` (AlpacaEval's win rate against a reference): the judge compares the response with the
  row's reference answer (``--reference_field``, default ``answer``) twice, once with the response as
  assistant A and once as assistant B, to cancel the judge's position bias. Each order gives win 1,
  tie 0.5 or loss 0 from the response's side; the score is their mean (0, 0.25, 0.5, 0.75 or 1). The
  verdict is the one tag among ``[[A]]``, ``[[B]]`` and ``[[C]]`` (a tie) in the judge's answer; none, or
  several different ones, does not parse. The reason is ``judged: <response first>, <reference first>``,
  e.g. ``judged: win, tie``. The default prompt is ``configs/judges/pairwise.txt``.

An answer that does not parse is asked again, up to ``--parse_retries`` more times; then the unit's
score is null with the reason ``unparseable: <where>: <the start of the last answer>``. Nulls are kept
in the journal like any verdict: a rerun does not ask again (delete the journal, or change a setting).

A prompt (``--prompt_file``) is the text of one user message, with placeholders replaced by the row's
values: ``{query}`` and ``{response}`` for ``grade`` (and ``{reference}`` when the grade needs the
reference answer), ``{query}``, ``{answer_a}`` and ``{answer_b}`` for ``pairwise``. Any other braces are
left as they are. The prompt's text is part of the journal's settings: an edited prompt rescores all.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zooter.pipeline.generate import Candidate, OpenAIClient, Sampling, _Stopped
from zooter.pipeline.scorers.base import Key, Stopped, Unit, Verdict, row_field, run_parallel
from zooter.table.schema import TableError

MODES = ("grade", "pairwise")
PROMPTS = Path(__file__).resolve().parents[4] / "configs" / "judges"  # the defaults, in a source checkout
PLACEHOLDERS = {"grade": ("query", "response"), "pairwise": ("query", "answer_a", "answer_b")}
_PLACEHOLDER = re.compile(r"\{(query|response|reference|answer_a|answer_b)\}")
_BRACKETED = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_RATING = re.compile(r"rating\s*[:：]?\s*\[?\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")
OUTCOMES = {"win": 1.0, "tie": 0.5, "loss": 0.0}


def parse_rating(text: str) -> float | None:
    """The 1-10 rating in a judge's answer: the last ``[[n]]``, else the last ``Rating: n``; else None."""
    found = _BRACKETED.findall(text) or _RATING.findall(text)
    if not found:
        return None
    rating = float(found[-1])
    return rating if 1 <= rating <= 10 else None


def parse_verdict(text: str) -> str | None:
    """``A``, ``B`` or ``C`` (tie): the one verdict tag in a judge's answer; None for none or several."""
    tags = set(_VERDICT.findall(text))
    return tags.pop() if len(tags) == 1 else None


def fill(template: str, values: Mapping[str, str]) -> str:
    """The template with each ``{name}`` of ``values`` replaced (in one pass: values are never re-read)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), template)


@dataclass
class LLMJudge:
    """An OpenAI-compatible chat model as the judge.

    Args:
        base_url: the judge's API root, e.g. ``http://localhost:8000/v1``.
        judge_model: the model name the judge's server serves.
        api_key_env: the environment variable holding the judge's API key (none: no key is sent).
        mode: ``grade`` (1-10) or ``pairwise`` (against the reference, both orders).
        prompt_file: the prompt template (default: ``configs/judges/<mode>.txt``).
        reference_field: the row field with the reference answer (``pairwise``, or a ``{reference}`` prompt).
        temperature: the judge's sampling temperature.
        max_new_tokens: the longest judge answer, in tokens.
        parse_retries: further requests when an answer does not parse, before the score is null.
        max_retries: retries of one request after a connection error, timeout, HTTP 429 or 5xx.
        timeout_s: seconds to wait for one answer.
        retry_backoff_s: the first retry's wait; each further one doubles (``Retry-After`` wins).
        workers: units judged at once.
    """

    base_url: str = ""
    judge_model: str = ""
    api_key_env: str | None = None
    mode: str = "grade"
    prompt_file: str | None = None
    reference_field: str = "answer"
    temperature: float = 0.0
    max_new_tokens: int = 1024
    parse_retries: int = 2
    max_retries: int = 5
    timeout_s: float = 600.0
    retry_backoff_s: float = 1.0
    workers: int = 4
    template: str = field(init=False, repr=False)
    client: OpenAIClient = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"--mode: --scorer llm_judge takes one of {list(MODES)}, got {self.mode!r}")
        for flag in ("base_url", "judge_model"):
            if not getattr(self, flag):
                raise ValueError(f"--scorer llm_judge needs --{flag}")
        for flag, low in (("parse_retries", 0), ("max_retries", 0), ("workers", 1), ("max_new_tokens", 1)):
            if getattr(self, flag) < low:
                raise ValueError(f"--{flag}: expected at least {low}, got {getattr(self, flag)}")
        if self.timeout_s <= 0 or self.retry_backoff_s < 0 or self.temperature < 0:
            raise ValueError("--timeout_s must be positive, --retry_backoff_s and --temperature at least 0")
        self.template = self._read_template()
        api_key = None
        if self.api_key_env:
            api_key = os.environ.get(self.api_key_env)
            if not api_key:
                raise ValueError(f"--api_key_env: the environment variable {self.api_key_env!r} is not set")
        judge = Candidate(name=self.judge_model, model=self.judge_model, backend="openai", base_url=self.base_url)
        sampling = Sampling(temperature=self.temperature, top_p=1.0, max_new_tokens=self.max_new_tokens, seed=0)
        self.client = OpenAIClient(judge, sampling, api_key, self.timeout_s, self.max_retries, self.retry_backoff_s)

    def _read_template(self) -> str:
        path = Path(self.prompt_file) if self.prompt_file else PROMPTS / f"{self.mode}.txt"
        if not path.is_file():
            hint = "" if self.prompt_file else " (the default prompt is not there: give --prompt_file)"
            raise ValueError(f"--prompt_file: no such file: {path}{hint}")
        template = path.read_text(encoding="utf-8")
        missing = [f"{{{name}}}" for name in PLACEHOLDERS[self.mode] if f"{{{name}}}" not in template]
        if missing:
            raise ValueError(f"{path}: a {self.mode} prompt needs the placeholder(s) {', '.join(missing)}")
        return template

    @property
    def needs_reference(self) -> bool:
        return self.mode == "pairwise" or "{reference}" in self.template

    @property
    def name(self) -> str:
        return f"llm_judge_{self.mode}"

    def spec(self) -> dict[str, Any]:
        prompt = hashlib.sha256(self.template.encode()).hexdigest()[:12]
        settings = {"mode": self.mode, "model": self.judge_model, "base_url": self.base_url.rstrip("/")}
        settings.update(prompt=prompt, temperature=self.temperature, max_new_tokens=self.max_new_tokens)
        return {**settings, "reference_field": self.reference_field if self.needs_reference else None}

    def describe(self) -> str:
        return f"judge {self.judge_model!r} at {self.base_url}, {self.workers} unit(s) at once"

    def check(self, rows: Sequence[Mapping[str, Any]], source: Path) -> None:
        if not self.needs_reference:
            return
        for row in rows:
            value = row_field(row, self.reference_field, source, "the reference answer (text)")
            if not isinstance(value, str):
                raise TableError(
                    f"{source} (id={row['id']!r}): field {self.reference_field!r}: expected text, got {value!r}"
                )

    def ask(self, unit: Unit, prompt: str, parse: Callable[[str], Any], stop: threading.Event) -> tuple[Any, str]:
        """The parsed judge answer (None after ``parse_retries`` more tries) and the last answer's text."""
        client = replace(self.client, candidate=replace(self.client.candidate, name=unit.candidate))
        text = ""
        for attempt in range(self.parse_retries + 1):
            attempt_client = replace(client, sampling=replace(client.sampling, seed=attempt))
            try:
                text = attempt_client.complete(unit.id, prompt, stop)
            except _Stopped as err:
                raise Stopped from err
            parsed = parse(text)
            if parsed is not None:
                return parsed, text
        return None, text

    def _unparseable(self, where: str, text: str) -> Verdict:
        tries = self.parse_retries + 1
        return Verdict(None, f"unparseable: {where} after {tries} tries: {' '.join(text.split())[:200]!r}")

    def _grade(self, unit: Unit, stop: threading.Event) -> Verdict:
        values = {"query": unit.query, "response": unit.response}
        if self.needs_reference:
            values["reference"] = unit.row[self.reference_field]
        rating, text = self.ask(unit, fill(self.template, values), parse_rating, stop)
        return self._unparseable("rating", text) if rating is None else Verdict(rating, f"rated: {rating:g}")

    def _pairwise(self, unit: Unit, stop: threading.Event) -> Verdict:
        reference = unit.row[self.reference_field]
        outcomes = []
        for order, (a, b), response_tag in (
            ("response first", (unit.response, reference), "A"),
            ("reference first", (reference, unit.response), "B"),
        ):
            values = {"query": unit.query, "answer_a": a, "answer_b": b}
            verdict, text = self.ask(unit, fill(self.template, values), parse_verdict, stop)
            if verdict is None:
                return self._unparseable(f"verdict ({order})", text)
            outcomes.append("tie" if verdict == "C" else "win" if verdict == response_tag else "loss")
        score = sum(OUTCOMES[o] for o in outcomes) / len(outcomes)
        return Verdict(score, f"judged: {', '.join(outcomes)}")

    def score(self, units: Sequence[Unit]) -> Iterator[list[tuple[Key, Verdict]]]:
        return run_parallel(self._grade if self.mode == "grade" else self._pairwise, units, self.workers)
