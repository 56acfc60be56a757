"""The whole chain in one test: queries -> responses -> scores -> tags -> zooter fit -> zooter route.

Every model is tiny and built from a config (two causal LMs as candidates, a sequence-classification
reward model, the tiny DeBERTa router) except the tagger's encoder, the packaged MiniLM; no download.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import REPO, write_rows
from tiny_models import tiny_causal_lm, tiny_reward_model
from zooter import Router
from zooter.cli import main
from zooter.table.schema import load_table

TOPICS = {
    "cooking": "how long should I bake a {} cake in the oven",
    "code": "why does my python function raise a {} error",
    "football": "who won the {} football match last night",
    "math": "what is the derivative of {} times x squared",
}
WORDS = ("chocolate", "lemon", "key", "value", "type", "index", "cup", "league", "three", "seven")


@pytest.mark.slow
def test_queries_to_routing_decisions(tmp_path: Path, capsys) -> None:
    queries = [
        {"id": f"{topic}-{i}", "query": template.format(word)}
        for topic, template in TOPICS.items()
        for i, word in enumerate(WORDS)
    ]
    queries_path = write_rows(tmp_path / "queries.jsonl", queries)
    texts = [q["query"] for q in queries]
    config = {
        "queries": str(queries_path),
        "out": str(tmp_path / "responses.jsonl"),
        "max_new_tokens": 6,
        "batch_size": 8,
        "progress": False,
        "candidates": [
            {"name": "chatty-lm", "backend": "hf", "model": str(tiny_causal_lm(tmp_path / "lm-a", texts, seed=0))},
            {
                "name": "plain-lm",
                "backend": "hf",
                "model": str(tiny_causal_lm(tmp_path / "lm-b", texts, seed=1, chat_template=False)),
            },
        ],
    }
    (tmp_path / "generate.yaml").write_text(yaml.safe_dump(config))
    main(["generate", "--config", str(tmp_path / "generate.yaml")])
    responses = [json.loads(line) for line in (tmp_path / "responses.jsonl").open()]
    assert [r["id"] for r in responses] == [q["id"] for q in queries]
    assert all(set(r["responses"]) == {"chatty-lm", "plain-lm"} for r in responses)

    reward_model = tiny_reward_model(tmp_path / "rm", texts, seed=3)
    table_path = tmp_path / "table.jsonl"
    score_args = ["--reward_model", str(reward_model), "--out", str(table_path), "--as_scores", "true"]
    main(["score", str(tmp_path / "responses.jsonl"), *score_args, "--accelerator", "cpu"])
    main(["tag", str(table_path), "--out", str(tmp_path / "tagged.jsonl"), "--num_tags", "4", "--progress", "false"])
    tagged = [json.loads(line) for line in (tmp_path / "tagged.jsonl").open()]
    tag_of = {row["id"]: row["tags"][0] for row in tagged}
    for topic in TOPICS:  # the clusters are the four topics
        assert len({tag_of[f"{topic}-{i}"] for i in range(len(WORDS))}) == 1
    assert len(set(tag_of.values())) == 4
    table = load_table(tmp_path / "tagged.jsonl", required_judges=["scores", "rm"])
    assert table.candidates == ["chatty-lm", "plain-lm"] and len(table) == 40
    assert all(row["responses"] for row in tagged)  # responses travel along to the training table

    fit_args = [
        "--config", str(REPO / "configs/quickstart.yaml"),
        "--data.path", str(tmp_path / "tagged.jsonl"),
        "--data.tokenizer_vocab_size", "300",
        "--data.batch_size", "8",
        "--data.cache_dir", str(tmp_path / "cache"),
        "--data.train_judge", "rm",
        "--data.eval_judge", "scores",
        "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
        "--trainer.max_epochs", "2",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
    ]  # fmt: skip
    main(["fit", *fit_args])
    ckpt = tmp_path / "runs" / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    capsys.readouterr()

    main(["route", "--ckpt_path", str(ckpt), "--file", str(queries_path), "--out", str(tmp_path / "decisions.jsonl")])
    printed = capsys.readouterr().out
    decisions = [json.loads(line) for line in (tmp_path / "decisions.jsonl").open()]
    assert [d["id"] for d in decisions] == [q["id"] for q in queries]
    assert {d["candidate"] for d in decisions} <= {"chatty-lm", "plain-lm"}
    for decision in decisions:
        assert sum(decision["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        assert decision["probability"] == max(decision["probabilities"].values())
    api = Router.from_checkpoint(ckpt).route(texts)
    assert [d.candidate for d in api] == [d["candidate"] for d in decisions]
    assert "40 decisions" in printed
