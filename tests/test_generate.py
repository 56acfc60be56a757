"""``zooter generate``: HF and OpenAI-compatible backends, resumable by (query id, candidate).

Offline: the HF candidates are tiny random GPT-2s saved to a temporary directory, the OpenAI-compatible
server is a ``ThreadingHTTPServer`` on 127.0.0.1 started by the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, write_rows
from fake_openai import fake_server, no_proxy  # noqa: F401  (no_proxy: an autouse fixture)
from tiny_models import tiny_causal_lm
from zooter.cli import main as zooter
from zooter.pipeline import generate

TEXTS = ["query number about math code and writing", "answer the question in one word"]
KEY_ENV = "ZOOTER_TEST_API_KEY"


def queries(n: int) -> list[dict[str, Any]]:
    """Rows with extra fields and prompt lengths that differ, so length-sorted batches reorder them."""
    return [
        {"id": f"q{i}", "query": f"query number {i}" + " about math" * (i % 4), "tags": ["t"], "source": f"s{i % 2}"}
        for i in range(n)
    ]


def write_config(path: Path, **config: Any) -> Path:
    path.write_text(yaml.safe_dump({"progress": False, **config}))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def exit_message(argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        zooter(["generate", *argv])
    assert isinstance(exc.value.code, str), exc.value.code
    assert exc.value.code.startswith("zooter generate: ")
    return exc.value.code


@pytest.fixture(scope="module")
def tiny_lms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lms")
    return (
        tiny_causal_lm(root / "chat", TEXTS, seed=1, chat_template=True),
        tiny_causal_lm(root / "plain", TEXTS, seed=2, chat_template=False),
    )


def hf_candidates(tiny_lms: tuple[Path, Path]) -> list[dict[str, Any]]:
    chat, plain = tiny_lms  # "plain" decodes greedily (temperature 0): the do_sample=False path
    return [{"name": "chat", "model": str(chat)}, {"name": "plain", "model": str(plain), "temperature": 0.0}]


# ---------------------------------------------------------------------------------------------- hf


def test_hf_backend_end_to_end(tmp_path: Path, tiny_lms: tuple[Path, Path], monkeypatch, capsys) -> None:
    rows = queries(6)
    source = write_rows(tmp_path / "queries.jsonl", rows)
    out = tmp_path / "responses.jsonl"
    config = write_config(
        tmp_path / "generate.yaml", queries=str(source), out=str(out), candidates=hf_candidates(tiny_lms)
    )
    prompts: list[tuple[str, str, str, bool]] = []
    original = generate.chat_prompt

    def spy(tokenizer: Any, query: str) -> tuple[str, bool]:
        text, add_special = original(tokenizer, query)
        prompts.append((Path(tokenizer.name_or_path).name, query, text, add_special))
        return text, add_special

    monkeypatch.setattr(generate, "chat_prompt", spy)
    zooter(["generate", "--config", str(config), "--max_new_tokens", "8", "--batch_size", "4"])

    result = read_jsonl(out)
    assert [r["id"] for r in result] == [r["id"] for r in rows]  # input order, despite length-sorted batches
    for got, given in zip(result, rows, strict=True):
        assert {k: v for k, v in got.items() if k != "responses"} == given  # every input field kept
        assert list(got["responses"]) == ["chat", "plain"]
        assert all(isinstance(text, str) for text in got["responses"].values())
    # the chat template wraps the query for the model that has one; the other gets the raw query
    assert sorted(p[1:] for p in prompts if p[0] == "chat") == sorted(
        (r["query"], f"<|user|> {r['query']} <|assistant|>", False) for r in rows
    )
    assert sorted(p[1:] for p in prompts if p[0] == "plain") == sorted((r["query"], r["query"], True) for r in rows)
    records = read_jsonl(tmp_path / "responses.journal.jsonl")
    assert len(records) == 12 and {r["spec"] for r in records if r["candidate"] == "chat"} != {
        r["spec"] for r in records if r["candidate"] == "plain"
    }
    assert "12 generated, 0 reused" in capsys.readouterr().out

    # a rerun finds every unit in the journal: no model is loaded, the same output is written again
    monkeypatch.setattr(generate, "_load_hf", lambda *a: pytest.fail("a finished run loaded a model"))
    out.unlink()
    zooter(["generate", "--config", str(config), "--max_new_tokens", "8"])
    assert read_jsonl(out) == result
    assert "0 generated, 12 reused" in capsys.readouterr().out


def test_a_candidate_chat_template_formats_a_model_without_one(tmp_path: Path, tiny_lms, monkeypatch) -> None:
    template = tmp_path / "inst.jinja"
    template.write_text("{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}")
    rows = queries(3)
    plain = {"name": "plain", "model": str(tiny_lms[1]), "temperature": 0.0}
    prompts: list[str] = []
    original = generate.chat_prompt
    monkeypatch.setattr(generate, "chat_prompt", lambda tok, q: prompts.append(original(tok, q)[0]) or original(tok, q))
    specs = []
    for name, candidate in (("raw", plain), ("templated", {**plain, "chat_template": str(template)})):
        config = write_config(
            tmp_path / f"{name}.yaml",
            queries=str(write_rows(tmp_path / "queries.jsonl", rows)),
            out=str(tmp_path / f"{name}.jsonl"),
            candidates=[candidate],
        )
        zooter(["generate", "--config", str(config), "--max_new_tokens", "4"])
        specs.append(read_jsonl(tmp_path / f"{name}.journal.jsonl")[0]["spec"])
    assert sorted(prompts[:3]) == sorted(r["query"] for r in rows)  # no template of its own: the raw query
    assert sorted(prompts[3:]) == sorted(f"[INST] {r['query']} [/INST]" for r in rows)
    assert specs[0] != specs[1]  # the template is part of what decides the responses


def journal_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def test_killed_run_resumes_from_the_journal(tmp_path: Path, tiny_lms: tuple[Path, Path], capsys) -> None:
    rows = queries(30)
    total = 2 * len(rows)
    source = write_rows(tmp_path / "queries.jsonl", rows)
    out = tmp_path / "responses.jsonl"
    journal = tmp_path / "responses.journal.jsonl"
    config = write_config(
        tmp_path / "generate.yaml",
        queries=str(source),
        out=str(out),
        candidates=hf_candidates(tiny_lms),
        max_new_tokens=6,
        batch_size=1,
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
    }
    log = tmp_path / "run.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "zooter", "generate", "--config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + 120
            while journal_lines(journal) < 3:
                assert process.poll() is None, f"generate ended before it was killed:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "no journal lines after 120 s"
                time.sleep(0.005)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()  # the output appears only when every unit is done
    complete = [line for line in journal.read_text().splitlines(keepends=True) if line.endswith("\n")]
    assert 3 <= len(complete) < total

    # simulate a kill in the middle of a write: the last record is cut in half
    journal.write_text("".join(complete[:-1]) + complete[-1][: len(complete[-1]) // 2])
    before = [json.loads(line) for line in complete[:-1]]
    cut = json.loads(complete[-1])

    # resume in this process; batch_size is not part of a candidate's spec, so it may change
    zooter(["generate", "--config", str(config), "--batch_size", "8"])
    printed = capsys.readouterr().out
    assert f"{len(before)} response(s) reused" in printed
    assert "truncated last line" in printed
    assert f"{total - len(before)} generated, {len(before)} reused" in printed

    result = read_jsonl(out)
    assert [r["id"] for r in result] == [r["id"] for r in rows]
    assert all(list(r["responses"]) == ["chat", "plain"] for r in result)
    records = read_jsonl(journal)
    pairs = [(r["id"], r["candidate"]) for r in records]
    assert len(pairs) == len(set(pairs)) == total  # nothing generated twice
    assert (cut["id"], cut["candidate"]) in pairs  # the cut unit was redone
    by_id = {r["id"]: r["responses"] for r in result}
    for record in before:  # what was finished before the kill is what the output holds
        assert by_id[record["id"]][record["candidate"]] == record["response"]
    assert records[: len(before)] == before


# ---------------------------------------------------------------------------------------------- openai


def openai_candidate(name: str, model: str, url: str, **overrides: Any) -> dict[str, Any]:
    return {"name": name, "backend": "openai", "model": model, "base_url": url, "api_key_env": KEY_ENV, **overrides}


def test_openai_backend_retries_and_runs_concurrently(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sekrit")
    rows = queries(10)
    flaky_500, flaky_429 = rows[2]["query"], rows[5]["query"]

    def respond(model: str, query: str, n: int) -> tuple[int, dict[str, str], dict[str, Any]] | None:
        if query == flaky_500 and n == 1:
            return 500, {}, {"error": {"message": "overloaded"}}
        if query == flaky_429 and n == 1:
            return 429, {"Retry-After": "0"}, {"error": {"message": "slow down"}}
        return None

    with fake_server(respond) as (url, state):
        config = write_config(
            tmp_path / "generate.yaml",
            queries=str(write_rows(tmp_path / "queries.jsonl", rows)),
            out=str(tmp_path / "responses.jsonl"),
            candidates=[
                openai_candidate("gpt-a", "model-a", url),
                openai_candidate("gpt-b", "model-b", url + "/", temperature=0.0, max_new_tokens=5, seed=3),
            ],
            concurrency=4,
            max_retries=3,
            retry_backoff_s=0.001,
        )
        zooter(["generate", "--config", str(config)])

    result = read_jsonl(tmp_path / "responses.jsonl")
    assert [r["id"] for r in result] == [r["id"] for r in rows]
    for got, given in zip(result, rows, strict=True):
        assert got == {
            **given,
            "responses": {
                "gpt-a": f"echo: {given['query']} from model-a",
                "gpt-b": f"echo: {given['query']} from model-b",
            },
        }
    expected = Counter({(m, r["query"]): 1 for m in ("model-a", "model-b") for r in rows})
    for model in ("model-a", "model-b"):
        expected[model, flaky_500] = expected[model, flaky_429] = 2  # each failed once, then retried
    assert state.counts == expected
    assert state.max_in_flight > 1
    assert set(state.auth) == {"Bearer sekrit"}
    sampling = {(b["model"], b["temperature"], b["top_p"], b["max_tokens"], b["seed"]) for b in state.bodies}
    assert sampling == {("model-a", 0.7, 1.0, 2048, 0), ("model-b", 0.0, 1.0, 5, 3)}
    assert all(b["messages"] == [{"role": "user", "content": b["messages"][0]["content"]}] for b in state.bodies)


def test_openai_failure_stops_the_run_and_keeps_finished_units(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sekrit")
    rows = queries(6)
    broken = rows[-1]["query"]
    out = tmp_path / "responses.jsonl"
    journal = tmp_path / "responses.journal.jsonl"

    def always_500(model: str, query: str, n: int) -> tuple[int, dict[str, str], dict[str, Any]] | None:
        return (500, {}, {"error": {"message": "boom"}}) if query == broken else None

    with fake_server(always_500) as (url, state):
        argv = [
            "--config",
            str(
                write_config(
                    tmp_path / "generate.yaml",
                    queries=str(write_rows(tmp_path / "queries.jsonl", rows)),
                    out=str(out),
                    candidates=[openai_candidate("gpt", "model-a", url)],
                    concurrency=2,
                    max_retries=2,
                    retry_backoff_s=0.001,
                )
            ),
        ]
        message = exit_message(argv)
        assert "candidate 'gpt', id 'q5'" in message
        assert "gave up after 3 attempts" in message and "HTTP 500" in message and "boom" in message
        assert state.counts["model-a", broken] == 3
        assert not out.exists()
        kept = {r["id"] for r in read_jsonl(journal)}
        assert kept == {f"q{i}" for i in range(5)}  # every unit that succeeded is in the journal

        state.respond = None  # the server is healthy again
        before = state.counts.copy()
        zooter(["generate", *argv])
        assert state.counts - before == Counter({("model-a", broken): 1})  # only the missing unit is requested
    assert [r["responses"]["gpt"] for r in read_jsonl(out)] == [f"echo: {r['query']} from model-a" for r in rows]


def test_openai_client_error_fails_at_once_with_the_server_message(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sekrit")

    def bad_request(model: str, query: str, n: int) -> tuple[int, dict[str, str], dict[str, Any]]:
        return 400, {}, {"error": {"message": "max_tokens is too large for this model"}}

    with fake_server(bad_request) as (url, state):
        config = write_config(
            tmp_path / "generate.yaml",
            queries=str(write_rows(tmp_path / "queries.jsonl", queries(3))),
            out=str(tmp_path / "responses.jsonl"),
            candidates=[openai_candidate("gpt", "model-a", url)],
            concurrency=1,
            max_retries=5,
            retry_backoff_s=0.001,
        )
        message = exit_message(["--config", str(config)])
    assert "candidate 'gpt', id 'q0'" in message
    assert "HTTP 400" in message and "max_tokens is too large for this model" in message and "not retried" in message
    assert sum(state.counts.values()) == 1  # no retry, and no further request once one failed


def test_changed_and_added_candidates_generate_only_their_units(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(KEY_ENV, "sekrit")
    rows = queries(4)
    with fake_server(delay=0) as (url, state):
        common = {
            "queries": str(write_rows(tmp_path / "queries.jsonl", rows)),
            "out": str(tmp_path / "responses.jsonl"),
        }
        first = [openai_candidate("a", "model-a", url), openai_candidate("b", "model-b", url)]
        zooter(["generate", "--config", str(write_config(tmp_path / "one.yaml", **common, candidates=first))])
        capsys.readouterr()
        # b's model changes, c is new: only they are requested; a is reused
        second = [first[0], openai_candidate("b", "model-b2", url), openai_candidate("c", "model-c", url)]
        before = state.counts.copy()
        zooter(["generate", "--config", str(write_config(tmp_path / "two.yaml", **common, candidates=second))])
        assert {model for model, _ in state.counts - before} == {"model-b2", "model-c"}
    printed = capsys.readouterr().out
    assert "4 response(s) reused" in printed and "4 record(s) ignored" in printed and "'b': 4" in printed
    assert "8 generated, 4 reused" in printed
    result = read_jsonl(tmp_path / "responses.jsonl")
    assert [list(r["responses"]) for r in result] == [["a", "b", "c"]] * len(rows)
    assert result[0]["responses"]["b"] == f"echo: {rows[0]['query']} from model-b2"


# ---------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        (
            [{"name": "a", "model": "m"}, {"name": "a", "model": "m2"}],
            "candidates[1]: field 'name': duplicate candidate name 'a' (also candidates[0])",
        ),
        (
            [{"name": "gpt", "model": "m", "backend": "openai"}],
            "candidates[0] ('gpt'): field 'base_url': an openai candidate needs",
        ),
        (
            [{"name": "a", "model": "m", "backend": "vllm"}],
            "candidates[0] ('a'): field 'backend': unknown backend 'vllm'",
        ),
        (
            [
                {
                    "name": "a",
                    "model": "m",
                    "backend": "openai",
                    "base_url": "http://x/v1",
                    "api_key_env": "ZOOTER_NO_KEY",
                }
            ],
            "candidates[0] ('a'): field 'api_key_env': the environment variable 'ZOOTER_NO_KEY' is not set",
        ),
        ([{"name": "a", "model": "m", "top_p": 0.0}], "candidates[0] ('a'): field 'top_p'"),
        (
            [{"name": "a", "model": "m", "chat_template": "/no/such/template.jinja"}],
            "candidates[0] ('a'): field 'chat_template': no such file '/no/such/template.jinja'",
        ),
        (
            [{"name": "a", "model": "m", "backend": "openai", "base_url": "http://x/v1", "chat_template": "t.jinja"}],
            "candidates[0] ('a'): field 'chat_template': only for hf candidates",
        ),
    ],
)
def test_config_errors_name_the_field(tmp_path: Path, monkeypatch, candidates: list[dict], expected: str) -> None:
    monkeypatch.delenv("ZOOTER_NO_KEY", raising=False)
    config = write_config(
        tmp_path / "generate.yaml",
        queries=str(write_rows(tmp_path / "queries.jsonl", queries(2))),
        out=str(tmp_path / "out.jsonl"),
        candidates=candidates,
    )
    assert expected in exit_message(["--config", str(config)])
    assert not (tmp_path / "out.journal.jsonl").exists()


def test_input_errors_are_messages(tmp_path: Path) -> None:
    candidates = json.dumps([{"name": "a", "model": "m"}])
    missing = exit_message(["--queries", str(tmp_path / "nope.jsonl"), "--out", "o.jsonl", "--candidates", candidates])
    assert "field 'queries': no such file" in missing
    bad = write_rows(tmp_path / "queries.jsonl", [{"id": "q0", "query": "fine"}, {"id": "q0", "query": "again"}])
    duplicate = exit_message(["--queries", str(bad), "--out", str(tmp_path / "o.jsonl"), "--candidates", candidates])
    assert "duplicate id 'q0'" in duplicate


def test_spec_and_retry_after() -> None:
    config = generate.GenerateConfig(queries="q", out="o", candidates=[{"name": "a", "model": "m"}])
    candidate = config.candidates[0]
    spec = generate.candidate_spec(candidate, config.sampling(candidate))
    renamed = generate.Candidate(name="other", model="m", temperature=0.7)  # same settings, other name
    assert generate.candidate_spec(renamed, config.sampling(renamed)) == spec
    for change in ({"model": "m2"}, {"temperature": 0.5}, {"seed": 1}, {"max_new_tokens": 9}):
        changed = generate.Candidate(**{"name": "a", "model": "m", **change})
        assert generate.candidate_spec(changed, config.sampling(changed)) != spec
    assert generate._retry_after("2") == 2.0
    assert generate._retry_after("0") == 0.0
    assert generate._retry_after("soon") is None
    assert generate._retry_after(None) is None
    assert generate._retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: go now
