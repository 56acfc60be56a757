"""``zooter score``: rewards equal the model's own output pair by pair, judges accumulate, runs resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# imported here, not first inside a test: Lightning gives its logger a handler on the sys.stderr of that moment,
# and a capsys stream is closed when its test ends (later tests' Lightning logs would fail to write)
import lightning.pytorch  # noqa: F401
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import write_rows
from tiny_models import tiny_reward_model
from zooter.cli import main
from zooter.pipeline.journal import Journal
from zooter.pipeline.score import rank_journal
from zooter.table.schema import load_table

TOPICS = ("a recipe for soup", "a python error", "a football match", "the proof of a theorem")


def response_rows(n: int) -> list[dict]:
    return [
        {
            "id": f"q{i}",
            "query": f"question {i} about {TOPICS[i % 4]}",
            "tags": [TOPICS[i % 4].split()[-1]],
            "source": "test",
            "responses": {"a": "short", "b": " ".join(["longer answer"] * (1 + i % 7)), "c": None if i == 2 else "ok"},
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def reward_models(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("rm")
    texts = [r["query"] for r in response_rows(8)]
    return tiny_reward_model(tmp / "rm", texts, seed=1), tiny_reward_model(
        tmp / "rm-chat", texts, 2, chat_template=True
    )


def reward_by_hand(model_dir: Path, query: str, response: str) -> float:
    """One pair through the model alone (no batching, no padding)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": query}, {"role": "assistant", "content": response}], tokenize=False
        )
        assert text.startswith("<|user|> " + query)
        encoded = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    else:
        encoded = tokenizer(query, response, return_tensors="pt")
    with torch.inference_mode():
        return float(model(**encoded).logits[0, 0])


def test_scores_match_the_model_pair_by_pair_and_judges_accumulate(tmp_path, reward_models, capsys) -> None:
    rm, rm_chat = reward_models
    rows = response_rows(10)
    source = write_rows(tmp_path / "responses.jsonl", rows)
    table_path = tmp_path / "table.jsonl"
    main(["score", str(source), "--reward_model", str(rm), "--out", str(table_path), "--batch_size", "3"])
    assert "29 to score, 1 without a response" in capsys.readouterr().out
    main(["score", str(table_path), "--reward_model", str(rm_chat), "--judge", "chat", "--as_scores", "true"])
    written = [json.loads(line) for line in table_path.open()]
    assert [r["id"] for r in written] == [r["id"] for r in rows]
    for before, after in zip(rows, written, strict=True):
        assert {k: after[k] for k in before} == before  # every input field kept as it was
        assert set(after["scores_by_judge"]) == {"rm", "chat"}
        assert after["scores"] == after["scores_by_judge"]["chat"]
        for judge, model_dir in (("rm", rm), ("chat", rm_chat)):
            for candidate, response in before["responses"].items():
                got = after["scores_by_judge"][judge][candidate]
                if response is None:
                    assert got is None  # no response: not judged, never a zero
                else:
                    assert got == pytest.approx(reward_by_hand(model_dir, before["query"], response), abs=1e-5)
    table = load_table(table_path, required_judges=["rm", "chat"])
    assert table.candidates == ["a", "b", "c"] and table.judges[:2] == ["rm", "chat"]


def test_errors_name_the_row_and_field(tmp_path, reward_models) -> None:
    rm, _ = reward_models
    rows = response_rows(3)
    rows[1]["responses"] = ["not", "an", "object"]
    source = write_rows(tmp_path / "bad.jsonl", rows)
    with pytest.raises(SystemExit, match=r"bad\.jsonl \(id='q1'\): field 'responses': expected an object"):
        main(["score", str(source), "--reward_model", str(rm), "--out", str(tmp_path / "t.jsonl")])
    rows = response_rows(3)
    rows[0]["responses"]["b"] = 3
    source = write_rows(tmp_path / "bad.jsonl", rows)
    with pytest.raises(SystemExit, match=r"\(id='q0'\): field 'responses.b': expected text or null, got 3"):
        main(["score", str(source), "--reward_model", str(rm), "--out", str(tmp_path / "t.jsonl")])
    source = write_rows(tmp_path / "one.jsonl", [{"id": "x", "query": "q", "responses": {"a": "r"}}])
    with pytest.raises(SystemExit, match=r"at least 2 candidates, found \['a'\]"):
        main(["score", str(source), "--reward_model", str(rm), "--out", str(tmp_path / "t.jsonl")])
    source = write_rows(tmp_path / "ok.jsonl", response_rows(3))
    main(["score", str(source), "--reward_model", str(rm)])  # in place
    with pytest.raises(SystemExit, match=r"3 row\(s\) already have 'scores_by_judge.rm'; choose another --judge"):
        main(["score", str(source), "--reward_model", str(rm)])


def test_a_scorer_and_a_reward_model_judge_the_same_table(tmp_path, reward_models) -> None:
    rm, _ = reward_models
    rows = [
        {"id": "q0", "query": "2 + 2?\nA. 3\nB. 4", "answer": "B", "responses": {"a": "The answer is (B).", "b": "A"}},
        {"id": "q1", "query": "Capital of France?\nA. Paris\nB. Rome", "answer": 0, "responses": {"a": "B", "b": "A."}},
    ]
    table_path = tmp_path / "table.jsonl"
    main(["score", str(write_rows(tmp_path / "in.jsonl", rows)), "--scorer", "exact_match", "--mode", "choice",
          "--out", str(table_path)])  # fmt: skip
    main(["score", str(table_path), "--reward_model", str(rm), "--as_scores"])
    written = [json.loads(line) for line in table_path.open()]
    assert [r["scores_by_judge"]["exact_match_choice"] for r in written] == [{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}]
    assert [r["score_reasons"] for r in written] == [
        {"exact_match_choice": {"a": "correct: B", "b": "wrong: A"}},
        {"exact_match_choice": {"a": "wrong: B", "b": "correct: A"}},
    ]  # the reward model adds no reasons
    for before, after in zip(rows, written, strict=True):
        for candidate, response in before["responses"].items():
            expected = reward_by_hand(rm, before["query"], response)
            assert (
                after["scores"][candidate]
                == after["scores_by_judge"]["rm"][candidate]
                == pytest.approx(expected, abs=1e-5)
            )
    table = load_table(table_path, required_judges=["exact_match_choice", "rm"])
    assert table.judges == ["exact_match_choice", "rm", "scores"]


def run_score(argv: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, "-m", "zooter", "score", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, **kwargs,
    )  # fmt: skip


@pytest.mark.slow
def test_killed_run_resumes_without_lost_or_duplicated_pairs(tmp_path, reward_models) -> None:
    rm, _ = reward_models
    rows = response_rows(400)
    source = write_rows(tmp_path / "responses.jsonl", rows)
    out = tmp_path / "table.jsonl"
    args = [str(source), "--reward_model", str(rm), "--out", str(out), "--batch_size", "1", "--accelerator", "cpu"]
    journal = rank_journal(out, "rm", 0)
    process = run_score(args)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if journal.is_file() and journal.read_text().count("\n") >= 40:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed: " + process.stdout.read()
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists()  # no output until every pair is scored
    before = {(r["id"], r["candidate"]): r["score"] for r in Journal(journal).load()}
    assert 40 <= len(before) < 1199
    with journal.open("a") as f:  # and a line cut short, as a kill during the write leaves it
        f.write('{"id": "q399", "candidate": "a", "sco')

    resumed = run_score(args)
    log = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, log
    assert f"{len(before)} pairs already in the journal, {1199 - len(before)} to score" in log
    assert "dropped 1 journal line(s) cut short by a kill" in log
    records = Journal(journal).load()
    keys = [(r["id"], r["candidate"]) for r in records]
    assert len(keys) == len(set(keys)) == 1199  # every pair with a response, exactly once
    table = [json.loads(line) for line in out.open()]
    assert [r["id"] for r in table] == [r["id"] for r in rows]
    final = {(r["id"], c): s for r in table for c, s in r["scores_by_judge"]["rm"].items() if s is not None}
    assert len(final) == 1199
    assert all(final[key] == value for key, value in before.items())  # scored before the kill: kept, not redone
    probe = rows[123]  # and a pair scored after the resume is right
    assert final[("q123", "b")] == pytest.approx(reward_by_hand(rm, probe["query"], probe["responses"]["b"]), abs=1e-5)


@pytest.mark.slow
def test_two_processes_score_every_pair_once(tmp_path, reward_models) -> None:
    rm, _ = reward_models
    source = write_rows(tmp_path / "responses.jsonl", response_rows(11))
    single, double = tmp_path / "single.jsonl", tmp_path / "double.jsonl"
    common = [str(source), "--reward_model", str(rm), "--batch_size", "2", "--accelerator", "cpu"]
    for out, extra in ((single, []), (double, ["--devices", "2", "--strategy", "ddp"])):
        done = run_score([*common, "--out", str(out), *extra])
        log = done.communicate(timeout=300)[0]
        assert done.returncode == 0, log
    journals = [rank_journal(double, "rm", rank) for rank in (0, 1)]
    keys = [(r["id"], r["candidate"]) for path in journals for r in Journal(path).load()]
    assert all(Journal(path).load() for path in journals)  # both ranks did work
    assert len(set(keys)) == 32
    expected = [json.loads(line) for line in single.open()]
    got = [json.loads(line) for line in double.open()]
    assert [r["id"] for r in got] == [r["id"] for r in expected]
    for a, b in zip(expected, got, strict=True):
        for candidate, value in a["scores_by_judge"]["rm"].items():
            assert b["scores_by_judge"]["rm"][candidate] == (None if value is None else pytest.approx(value, abs=1e-5))
