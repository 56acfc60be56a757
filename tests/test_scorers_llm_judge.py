"""``--scorer llm_judge`` against a fake OpenAI-compatible judge on 127.0.0.1: grades, pairwise in both orders,
parse failures retried then null, HTTP retries, resumption, and the command end to end."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, write_rows
from fake_openai import answer, fake_server, no_proxy  # noqa: F401  (no_proxy: an autouse fixture)
from zooter.cli import main
from zooter.pipeline.scorers.llm_judge import fill, parse_rating, parse_verdict

EXAMPLES = REPO / "examples" / "scorers"
KEY_ENV = "ZOOTER_TEST_JUDGE_KEY"
SECTION = r"\[The Start of {0}\]\n(.*?)\n\[The End of {0}\]"


def section(prompt: str, name: str) -> str:
    return re.search(SECTION.format(re.escape(name)), prompt, re.DOTALL).group(1)


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("The answer is correct and concise.\n\nRating: [[7]]", 7.0),
        ("Rating: [[8.5]]", 8.5),
        ("I first thought [[3]], but on reflection: Rating: [[6]]", 6.0),
        ("Rating: 9", 9.0),
        ("rating: [4]", 4.0),
        ("Rating: [[11]]", None),
        ("Rating: [[0]]", None),
        ("The answer is good.", None),
    ],
)
def test_parse_rating(text: str, rating: float | None) -> None:
    assert parse_rating(text) == rating


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Assistant A explains the cause. [[A]]", "A"),
        ("[[ B ]]", "B"),
        ("Both are equally good. [[C]]", "C"),
        ("A is better than B in depth, so [[A]]. Final verdict: [[A]]", "A"),
        ("Unlike [[A]] I prefer [[B]]", None),  # two different verdicts: no guess
        ("Assistant A is better.", None),
    ],
)
def test_parse_verdict(text: str, verdict: str | None) -> None:
    assert parse_verdict(text) == verdict


def test_fill_replaces_each_placeholder_once() -> None:
    template = "Q: {query}\nA: {response}\nKeep {braces} and {{this}}"
    filled = fill(template, {"query": "what is {response}?", "response": "42"})
    assert filled == "Q: what is {response}?\nA: 42\nKeep {braces} and {{this}}"


def judge_args(url: str, *extra: str) -> list[str]:
    return ["--scorer", "llm_judge", "--base_url", url, "--judge_model", "judge-1", "--api_key_env", KEY_ENV, *extra]


def read_table(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def grade_rows() -> list[dict[str, Any]]:
    return [
        {"id": "q1", "query": "Name a prime.", "responses": {"a": "7 is prime.", "b": "9"}},
        {"id": "q2", "query": "Say hi.", "responses": {"a": "Hello there!", "b": "no"}},
    ]


def grading_judge(ratings: dict[str, str]) -> Any:
    """A judge that answers with ``ratings[response]`` (the response is read back from the prompt)."""

    def respond(model: str, prompt: str, n: int) -> Any:
        return answer(ratings[section(prompt, "the Assistant's Answer")])

    return respond


def test_grade_mode(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(KEY_ENV, "sekrit")
    source = write_rows(tmp_path / "in.jsonl", grade_rows())
    out = tmp_path / "scored.jsonl"
    ratings = {"7 is prime.": "Correct. Rating: [[9]]", "9": "Wrong. Rating: [[2]]", "Hello there!": "Rating: 8"}
    ratings["no"] = "Not an answer. Rating: [[1]]"
    with fake_server(grading_judge(ratings)) as (url, state):
        main(["score", str(source), "--out", str(out), *judge_args(url, "--workers", "2")])
    rows = read_table(out)
    assert [r["scores_by_judge"]["llm_judge_grade"] for r in rows] == [{"a": 9.0, "b": 2.0}, {"a": 8.0, "b": 1.0}]
    assert rows[0]["score_reasons"]["llm_judge_grade"] == {"a": "rated: 9", "b": "rated: 2"}
    assert sum(state.counts.values()) == 4
    body = state.bodies[0]
    assert body["model"] == "judge-1" and body["temperature"] == 0.0 and body["max_tokens"] == 1024
    prompt = body["messages"][0]["content"]  # the shipped prompt, filled in
    template = (REPO / "configs" / "judges" / "grade.txt").read_text()
    assert prompt in {
        fill(template, {"query": r["query"], "response": t}) for r in grade_rows() for t in r["responses"].values()
    }
    assert set(state.auth) == {"Bearer sekrit"}
    assert "rated 4; mean score 5 over 4" in capsys.readouterr().out


def test_parse_failure_is_retried_then_null(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(KEY_ENV, "sekrit")
    source = write_rows(tmp_path / "in.jsonl", grade_rows())
    out = tmp_path / "scored.jsonl"

    def respond(model: str, prompt: str, n: int) -> Any:
        response = section(prompt, "the Assistant's Answer")
        if response == "9":  # never parses
            return answer("I would rather not give a number.")
        if response == "no" and n < 3:  # parses on the third try
            return answer("Hmm." if n == 1 else "Rating: [[12]]")
        return answer("Rating: [[5]]")

    with fake_server(respond) as (url, state):
        main(["score", str(source), "--out", str(out), *judge_args(url, "--parse_retries", "2")])
    rows = read_table(out)
    assert [r["scores_by_judge"]["llm_judge_grade"] for r in rows] == [{"a": 5.0, "b": None}, {"a": 5.0, "b": 5.0}]
    assert rows[0]["score_reasons"]["llm_judge_grade"]["b"] == (
        "unparseable: rating after 3 tries: 'I would rather not give a number.'"
    )
    by_response = Counter(section(b["messages"][0]["content"], "the Assistant's Answer") for b in state.bodies)
    assert by_response == {"7 is prime.": 1, "9": 3, "Hello there!": 1, "no": 3}
    seeds = [b["seed"] for b in state.bodies if section(b["messages"][0]["content"], "the Assistant's Answer") == "9"]
    assert sorted(seeds) == [0, 1, 2]  # each retry asks with another seed
    assert "rated 3, unparseable 1; mean score 5 over 3, 1 null" in capsys.readouterr().out


def pairwise_judge(prefer: dict[str, str]) -> Any:
    """A judge with a fixed preference per response (``better``, ``worse``, ``tie``) and a position bias for A
    on ``first``: it always says [[A]], so both orders together give a tie."""

    def respond(model: str, prompt: str, n: int) -> Any:
        a, b = section(prompt, "Assistant A's Answer"), section(prompt, "Assistant B's Answer")
        reference_is_a = a.startswith("REF")
        response = b if reference_is_a else a
        kind = prefer[response]
        if kind == "first":
            return answer("[[A]]")
        if kind == "tie":
            return answer("Equally good. [[C]]")
        if kind == "unparseable":
            return answer("Both have merits.")
        response_wins = kind == "better"
        return answer("[[B]]" if response_wins == reference_is_a else "[[A]]")

    return respond


def test_pairwise_mode_judges_both_orders(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(KEY_ENV, "sekrit")
    rows = [
        {"id": "p1", "query": "Q1", "answer": "REF one", "responses": {"a": "good", "b": "bad"}},
        {"id": "p2", "query": "Q2", "answer": "REF two", "responses": {"a": "same", "b": "biased"}},
        {"id": "p3", "query": "Q3", "answer": "REF three", "responses": {"a": "vague", "b": None}},
    ]
    source = write_rows(tmp_path / "in.jsonl", rows)
    out = tmp_path / "scored.jsonl"
    prefer = {"good": "better", "bad": "worse", "same": "tie", "biased": "first", "vague": "unparseable"}
    with fake_server(pairwise_judge(prefer)) as (url, state):
        main(["score", str(source), "--out", str(out), *judge_args(url, "--mode", "pairwise", "--parse_retries", "1")])
    table = read_table(out)
    assert [r["scores_by_judge"]["llm_judge_pairwise"] for r in table] == [
        {"a": 1.0, "b": 0.0},
        {"a": 0.5, "b": 0.5},  # a position-biased judge: win in one order, loss in the other
        {"a": None, "b": None},
    ]
    assert [r["score_reasons"]["llm_judge_pairwise"] for r in table] == [
        {"a": "judged: win, win", "b": "judged: loss, loss"},
        {"a": "judged: tie, tie", "b": "judged: win, loss"},
        {"a": "unparseable: verdict (response first) after 2 tries: 'Both have merits.'", "b": None},
    ]
    prompts = [b["messages"][0]["content"] for b in state.bodies]
    good = [(section(p, "Assistant A's Answer"), section(p, "Assistant B's Answer")) for p in prompts if "good" in p]
    assert sorted(good) == [("REF one", "good"), ("good", "REF one")]  # both orders
    assert len(prompts) == 2 * 4 + 2  # two orders per judged pair; the unparseable one: 2 tries, first order only
    assert "1 without a response" in capsys.readouterr().out


def test_http_errors_retry_and_a_failure_stops_the_run_keeping_finished_units(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sekrit")
    rows = [{"id": f"q{i}", "query": f"question {i}", "responses": {"a": f"a{i}", "b": f"b{i}"}} for i in range(4)]
    source = write_rows(tmp_path / "in.jsonl", rows)
    out = tmp_path / "scored.jsonl"
    broken = {"b3"}

    def respond(model: str, prompt: str, n: int) -> Any:
        response = section(prompt, "the Assistant's Answer")
        if response == "a1" and n == 1:
            return 503, {"Retry-After": "0"}, {"error": {"message": "busy"}}
        if response in broken:
            return 500, {}, {"error": {"message": "judge down"}}
        return answer("Rating: [[6]]")

    argv = ["score", str(source), "--out", str(out), *judge_args("URL", "--max_retries", "1", "--retry_backoff_s", "0")]
    with fake_server(respond) as (url, state):
        argv = [url if a == "URL" else a for a in argv]
        with pytest.raises(SystemExit) as failed:
            main([*argv, "--workers", "1"])
        message = str(failed.value.code)
        assert "candidate 'b', id 'q3'" in message and "HTTP 500" in message and "judge down" in message
        assert "7 of 8 pairs are scored and kept in" in message and "rerun the same command" in message
        assert not out.exists()
        broken.clear()  # the judge is back: only the missing pair is asked
        before = sum(state.counts.values())
        main(argv)
        assert sum(state.counts.values()) - before == 1
    assert all(r["scores_by_judge"]["llm_judge_grade"] == {"a": 6.0, "b": 6.0} for r in read_table(out))


def test_settings_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ZOOTER_NO_KEY", raising=False)
    source = write_rows(tmp_path / "in.jsonl", grade_rows())
    no_placeholder = tmp_path / "prompt.txt"
    no_placeholder.write_text("Judge {query} please")
    for argv, message in [
        (["--scorer", "llm_judge", "--judge_model", "m"], "--scorer llm_judge needs --base_url"),
        (
            judge_args("http://x/v1", "--mode", "rank"),
            r"--mode: --scorer llm_judge takes one of \['grade', 'pairwise'\]",
        ),
        (
            [
                "--scorer",
                "llm_judge",
                "--base_url",
                "http://x/v1",
                "--judge_model",
                "m",
                "--api_key_env",
                "ZOOTER_NO_KEY",
            ],
            "--api_key_env: the environment variable 'ZOOTER_NO_KEY' is not set",
        ),
        (
            [
                "--scorer",
                "llm_judge",
                "--base_url",
                "http://x/v1",
                "--judge_model",
                "m",
                "--prompt_file",
                str(no_placeholder),
            ],
            r"prompt\.txt: a grade prompt needs the placeholder\(s\) \{response\}",
        ),
        (
            ["--scorer", "llm_judge", "--base_url", "http://x/v1", "--judge_model", "m", "--mode", "pairwise"],
            r"in\.jsonl \(id='q1'\): field 'answer': missing",
        ),
    ]:
        with pytest.raises(SystemExit, match=message):
            main(["score", str(source), "--out", str(tmp_path / "o.jsonl"), *argv])


def test_score_command_end_to_end_with_the_example_judge(tmp_path: Path, monkeypatch, capsys) -> None:
    """examples/scorers/open.jsonl with the example's stand-in judge (it judges by length)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fake_judge", EXAMPLES / "fake_judge.py")
    fake_judge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake_judge)

    def respond(model: str, prompt: str, n: int) -> Any:
        return answer(fake_judge.judge(prompt))

    monkeypatch.setenv(KEY_ENV, "sekrit")
    with fake_server(respond) as (url, _):
        for mode in ("grade", "pairwise"):
            argv = ["score", str(EXAMPLES / "open.jsonl"), "--out", str(tmp_path / f"{mode}.jsonl")]
            main([*argv, *judge_args(url, "--mode", mode)])
    grade = {r["id"]: r["scores_by_judge"]["llm_judge_grade"] for r in read_table(tmp_path / "grade.jsonl")}
    # 1 + words // 8, words: o1 3 and 46, o2 24 and 4, o3 "???" (no verdict) and 14
    assert grade == {
        "o1": {"small": 1.0, "large": 6.0},
        "o2": {"small": 4.0, "large": 1.0},
        "o3": {"small": None, "large": 2.0},
    }
    # the longer answer wins unless within 20%; references: o1 26 words, o2 25, o3 16
    pairwise = {r["id"]: r["scores_by_judge"]["llm_judge_pairwise"] for r in read_table(tmp_path / "pairwise.jsonl")}
    assert pairwise == {
        "o1": {"small": 0.0, "large": 1.0},
        "o2": {"small": 0.5, "large": 0.0},
        "o3": {"small": None, "large": 0.5},
    }
    assert capsys.readouterr().out.count("unparseable 1") == 2
