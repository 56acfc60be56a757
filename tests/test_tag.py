"""``zooter tag``: the cluster assignment rule, the InsTag answer parser, both methods end to end, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import write_rows
from tiny_models import tiny_causal_lm
from zooter.cli import main as cli_main
from zooter.pipeline import tag
from zooter.pipeline.tag import INSTAG_PROMPT, assign_clusters, parse_instag_output

TOPICS = {
    "cooking": [
        "How long should I bake a chicken lasagna recipe in the oven?",
        "What is a good recipe for homemade tomato pasta sauce?",
        "How do I bake soft chocolate chip cookies?",
        "Give me a vegetarian curry recipe with chickpeas and rice.",
        "How much salt and butter should go into bread dough when baking?",
        "What spices should I use to cook a beef stew recipe?",
        "How do I cook fluffy pancakes for breakfast?",
        "Suggest a quick dinner recipe with salmon and garlic.",
    ],
    "python": [
        "Why does Python raise TypeError: 'NoneType' object is not subscriptable?",
        "How do I fix ModuleNotFoundError: No module named numpy in Python?",
        "Python IndentationError: unexpected indent, what does it mean?",
        "Why do I get KeyError when reading a Python dictionary?",
        "How to fix IndexError: list index out of range in a Python loop?",
        "Python pip install fails with a permission error, how do I fix it?",
        "What causes RecursionError: maximum recursion depth exceeded in Python?",
        "How do I debug AttributeError: 'str' object has no attribute 'append' in Python?",
    ],
    "football": [
        "Who won the football match between Real Madrid and Barcelona last season?",
        "How many goals did Messi score in the World Cup final match?",
        "Which team won the Premier League football title in 2016?",
        "When is the next Champions League football final being played?",
        "Who scored the winning goal in the Liverpool versus Chelsea match?",
        "What was the score of the Manchester United and Arsenal football game?",
        "Which football club has won the most Champions League trophies?",
        "How does the offside rule work in a football match?",
    ],
}
TOPIC_ROWS = [
    {"id": f"{topic}-{i}", "query": query, "source": topic, "scores": {"a": float(i), "b": None}}
    for topic, queries in TOPICS.items()
    for i, query in enumerate(queries)
]


def run_tag(*args: str | Path) -> None:
    cli_main(["tag", *map(str, args), "--progress", "false"])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------------------- pure functions


def test_assign_clusters_by_hand():
    similarities = np.array(
        [
            [0.90, 0.10, 0.85, 0.82],  # 0 nearest; 2 and 3 within 0.1
            [0.20, 0.50, 0.45, 0.30],  # 1 nearest; 2 within 0.1
            [0.30, 0.30, 0.10, 0.95],  # 3 nearest, nothing close
            [0.70, 0.60, 0.65, 0.68],  # all four within 0.1 (0.60 exactly at the margin): capped at 3
        ]
    )
    assert assign_clusters(similarities, margin=0.0, max_tags=3) == [[0], [1], [3], [0]]
    assert assign_clusters(similarities, margin=0.1, max_tags=3) == [[0, 2, 3], [1, 2], [3], [0, 3, 2]]
    assert assign_clusters(similarities, margin=0.1, max_tags=2) == [[0, 2], [1, 2], [3], [0, 3]]
    assert assign_clusters(similarities, margin=0.1, max_tags=4) == [[0, 2, 3], [1, 2], [3], [0, 3, 2, 1]]
    ties = np.array([[0.5, 0.5, 0.1]])
    assert assign_clusters(ties, margin=0.0, max_tags=3) == [[0]]  # margin 0: one cluster, even on a tie
    assert assign_clusters(ties, margin=1e-6, max_tags=3) == [[0, 1]]
    with pytest.raises(ValueError):
        assign_clusters(similarities, margin=-0.1, max_tags=3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[{"tag": "Cooking", "explanation": "a recipe"}, {"tag": "food", "explanation": "x"}]', ["cooking", "food"]),
        (
            'Here are the tags:\n```json\n[{"tag": "Python  Error", "explanation": "e"}]\n```\nHope it helps [1].',
            ["python error"],
        ),
        ('["Math", " word   problem ", "math", "MATH"]', ["math", "word problem"]),
        ('[{"tag": "A"}, {"tag": "a"}, {"explanation": "no tag"}, 3, {"tag": " B\tc "}]', ["a", "b c"]),
        ('see [begin] the query [end]: [{"tag": "roleplay"}]', ["roleplay"]),
        ('[{"tag": "sport", "explanation": "football"}, {"tag": "history", "expl', ["sport", "history"]),  # cut off
        ("no json here at all ###", None),
        ("[1, 2, 3] and [not json", None),
        ("[]", None),
        ('{"tag": "math", "explanation": "an object, not a list"}', None),
        ("", None),
    ],
)
def test_parse_instag_output(text, expected):
    assert parse_instag_output(text) == expected


# ------------------------------------------------------------------------------------------ end to end


def test_cluster_tags_three_topics(tmp_path, capsys):
    kept = [
        {"id": "kept-0", "query": "Translate hello into French.", "tags": ["manual", "translation"]},
        {"id": "kept-1", "query": "Summarise this article.", "tags": ["manual"]},
    ]
    rows = [*TOPIC_ROWS[:3], kept[0], *TOPIC_ROWS[3:20], kept[1], *TOPIC_ROWS[20:]]
    rows[5] = {**rows[5], "tags": []}  # empty tags: tagged like rows without the field
    source = write_rows(tmp_path / "queries.jsonl", rows)
    out = tmp_path / "out" / "tagged.jsonl"
    run_tag(source, "--out", out, "--num_tags", "3", "--seed", "0")
    printed = capsys.readouterr().out

    tagged = read_jsonl(out)
    assert [r["id"] for r in tagged] == [r["id"] for r in rows]
    for before, after in zip(rows, tagged, strict=True):
        assert {k: v for k, v in after.items() if k != "tags"} == {k: v for k, v in before.items() if k != "tags"}
    by_id = {r["id"]: r for r in tagged}
    assert by_id["kept-0"]["tags"] == ["manual", "translation"] and by_id["kept-1"]["tags"] == ["manual"]
    topic_tags = {}
    for topic in TOPICS:
        tags = {tuple(r["tags"]) for r in tagged if r.get("source") == topic}
        assert len(tags) == 1, (topic, tags)  # every query of a topic carries the same single tag
        topic_tags[topic] = tags.pop()[0]
    assert len(set(topic_tags.values())) == 3, topic_tags
    assert all(name.startswith(("c00:", "c01:", "c02:")) for name in topic_tags.values())
    assert "recipe" in topic_tags["cooking"] and "python" in topic_tags["python"], topic_tags
    assert "football" in topic_tags["football"] or "match" in topic_tags["football"], topic_tags
    assert "24 tagged, 2 kept their tags, 0 without tags" in printed

    report = json.loads((tmp_path / "out" / "tagged.tags.json").read_text())
    assert (report["rows"], report["tagged"], report["kept"], report["untagged"]) == (26, 24, 2, 0)
    counts = {entry["tag"]: entry["count"] for entry in report["tags"]}
    assert counts == {**{name: 8 for name in topic_tags.values()}, "manual": 2, "translation": 1}
    assert sum(counts.values()) == sum(len(r["tags"]) for r in tagged)
    assert [e["count"] for e in report["tags"]] == sorted(counts.values(), reverse=True)
    assert all(1 <= len(e["examples"]) <= 3 for e in report["tags"])
    assert report["tags"][0]["share"] == pytest.approx(8 / 26)
    markdown = (tmp_path / "out" / "tagged.tags.md").read_text()
    assert all(f"`{name}` | 8 |" in markdown for name in topic_tags.values())

    # keep_existing false: the kept rows are clustered too, with several tags per query allowed
    again = tmp_path / "again.jsonl"
    options = ["--keep_existing", "false", "--margin", "2", "--max_tags_per_query", "2"]
    run_tag(source, "--out", again, "--num_tags", "3", *options)
    assert all(len(r["tags"]) == 2 and not r["tags"][0].startswith("manual") for r in read_jsonl(again))


def test_instag_tiny_model(tmp_path, capsys, monkeypatch):
    rows = TOPIC_ROWS[::4]  # 6 rows
    source = write_rows(tmp_path / "queries.jsonl", rows)
    model = tiny_causal_lm(tmp_path / "lm", [*(r["query"] for r in rows), INSTAG_PROMPT])
    out = tmp_path / "tagged.jsonl"
    common = ["--method", "instag", "--model", str(model), "--max_new_tokens", "8", "--batch_size", "4"]

    run_tag(source, "--out", out, *common)  # random weights: gibberish, nothing parses
    printed = capsys.readouterr().out
    tagged = read_jsonl(out)
    assert [r["id"] for r in tagged] == [r["id"] for r in rows] and all(r["tags"] == [] for r in tagged)
    assert f"{len(rows)} of {len(rows)} tagger answers had no parseable tags" in printed
    report = json.loads((tmp_path / "tagged.tags.json").read_text())
    assert report["unparseable"]["count"] == len(rows) and report["tags"] == []

    def fake_generate(prompts, **kwargs):
        assert all(p.startswith("<|user|> You are a helpful assistant") for p in prompts)  # the chat template
        answers = []
        for i, prompt in enumerate(prompts):
            topic = "football" if "match" in prompt or "football" in prompt.lower() else "other"
            payload = [{"tag": topic.title(), "explanation": "x"}, {"tag": f"Only {i}", "explanation": "y"}]
            answers.append(f"Sure! ```json\n{json.dumps(payload)}\n```")
        answers[0] = "I cannot tag this."
        return answers

    monkeypatch.setattr(tag, "generate_texts", fake_generate)
    run_tag(source, "--out", out, *common, "--min_tag_count", "2")
    printed = capsys.readouterr().out
    tagged = read_jsonl(out)
    assert tagged[0]["tags"] == []
    assert all(r["tags"] == (["football"] if r["source"] == "football" else ["other"]) for r in tagged[1:])
    assert "1 of 6 tagger answers had no parseable tags" in printed and rows[0]["id"] in printed
    assert "removed 5 tags given to fewer than 2 queries (5 assignments)" in printed
    counts = {e["tag"]: e["count"] for e in json.loads((tmp_path / "tagged.tags.json").read_text())["tags"]}
    assert counts == {"other": 3, "football": 2}


# ---------------------------------------------------------------------------------------------- errors


def test_errors(tmp_path):
    source = write_rows(tmp_path / "queries.jsonl", TOPIC_ROWS[:4])
    out = str(tmp_path / "tagged.jsonl")
    with pytest.raises(SystemExit, match=r"zooter tag: --num_tags 5 is larger than the number of queries to tag \(4\)"):
        run_tag(source, "--out", out, "--num_tags", "5")
    with pytest.raises(SystemExit, match=r"zooter tag: .*missing\.jsonl: no such file"):
        run_tag(tmp_path / "missing.jsonl", "--out", out)
    with pytest.raises(SystemExit, match=r"zooter tag: --out must be a \.jsonl file"):
        run_tag(source, "--out", tmp_path / "tagged.csv")
    with pytest.raises(SystemExit, match=r"cannot load the InsTag model 'zooter-test/no-such-model'.*--method cluster"):
        run_tag(source, "--out", out, "--method", "instag", "--model", "zooter-test/no-such-model")
    assert not Path(out).exists()
