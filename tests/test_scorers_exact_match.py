"""``--scorer exact_match``: extraction on real-looking answers, references, and the command end to end."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from conftest import REPO, write_rows
from zooter.cli import main
from zooter.pipeline.scorers.exact_match import (
    ExactMatch,
    extract_choice,
    extract_number,
    extract_text,
    normalize_answer,
    token_f1,
)

EXAMPLES = REPO / "examples" / "scorers"


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        ("The answer is (B).", "B"),
        ("B.", "B"),
        ("**B**", "B"),
        ("Answer: b", "B"),
        ("(c)", "C"),
        ("D", "D"),
        ("B. Paris is the capital of France.", "B"),
        ("(C) 42, because 6 x 7 = 42.", "C"),
        ("Mars looks red because of iron oxide.\n\n**B**", "B"),
        ("The correct answer is: **(D)**", "D"),
        ("ANSWER: C", "C"),
        ("The answer is B because a stack is last-in, first-out.", "B"),
        ("Answer: b\nGold's symbol comes from the Latin aurum.", "B"),
        ("Option A is wrong. The answer is C.", "C"),  # the last answer cue wins over an earlier option
        ("Let me think. The answer is a bit subtle: (C) is right and (C) only.", "C"),  # "a bit" is no letter
        ("I think **C** is correct, as (C) says.", "C"),
        ("Both (A) and (C) look plausible.", None),  # two different marked letters: no guess
        ("I'm not sure, it could be a queue or a stack.", None),
        ("The answer is always the same.", None),
    ],
)
def test_choice_extraction(response: str, letter: str | None) -> None:
    assert extract_choice(response) == letter


@pytest.mark.parametrize(
    ("response", "value"),
    [
        ("3 trays of 24 is 72 cookies. After selling 50 there are 72 - 50 = 22 cookies left.", Fraction(22)),
        ("Total: 3 × 24 = 72. Left: 72 − 50 = 22.\n#### 22", Fraction(22)),
        ("Natalia sold 48/2 = 24 clips in May.\n#### 72\nSo 72 in all.", Fraction(72)),  # #### wins over later numbers
        ("20% of $1,250 is $250, so the sale price is $1,000.00.", Fraction(1000)),
        ("The answer is $12.50.", Fraction(25, 2)),
        ("The answer is 18 (3 boxes of 6).", Fraction(18)),  # the first number after the cue
        ("Final answer: 12 apples", Fraction(12)),
        ("5 - 12 = -7, so it is -7 degrees.", Fraction(-7)),
        ("The answer is: −7", Fraction(-7)),  # a Unicode minus
        ("It costs -$3 per unit.", Fraction(-3)),
        ("Between 5-6 hours", Fraction(6)),  # a range: the hyphen after a digit is no sign
        ("1/4 = 2/8, so together 3/8 + 2/8 = 5/8 of the pizza.", Fraction(5, 8)),
        (r"So the total is \boxed{42} and we check 6 * 7.", Fraction(42)),
        ("The population grew to 1,234,567 people.", Fraction(1234567)),
        ("About 0.75 of them, i.e. 75%.", Fraction(75)),
        ("It is 42.", Fraction(42)),  # a full stop is not a decimal point
        ("They ate most of the pizza together.", None),
        ("forty-two", None),
    ],
)
def test_number_extraction(response: str, value: Fraction | None) -> None:
    assert extract_number(response) == value


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("Jane Austen.", "jane austen"),
        ("The answer is: The Beatles!\nThey formed in Liverpool.", "beatles"),
        ("Answer: an apple", "apple"),
        ("The capital of Australia is Canberra.", "capital of australia is canberra"),
        ("  Carbon   dioxide (CO2). ", "carbon dioxide co2"),
        ("...", None),
        ("The", None),
    ],
)
def test_text_extraction(response: str, answer: str | None) -> None:
    assert extract_text(response) == answer


def test_normalization_and_token_f1_by_hand() -> None:
    assert normalize_answer("The  Eiffel-Tower, Paris!") == "eiffeltower paris"
    assert normalize_answer("¿Qué? «Sí»") == "qué sí"  # Unicode punctuation too
    # pred: capital of australia is canberra (5 tokens), gold: canberra (1): P = 1/5, R = 1, F1 = 2 * 0.2 / 1.2
    assert token_f1("capital of australia is canberra", "canberra") == pytest.approx(1 / 3)
    assert token_f1("carbon dioxide co2", "carbon dioxide") == pytest.approx(0.8)  # P = 2/3, R = 1
    assert token_f1("new new york", "new york") == pytest.approx(0.8)  # counts clip: common 2, P = 2/3, R = 1
    assert token_f1("oxygen", "carbon dioxide") == 0.0


def scorer(mode: str, rows: list[dict], tmp_path: Path) -> ExactMatch:
    built = ExactMatch(mode=mode)
    built.check(rows, tmp_path / "t.jsonl")
    return built


def test_references_parse_like_responses_and_errors_name_the_row(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "answer": 1},  # an index, as in Hugging Face's MMLU rows
        {"id": "b", "answer": "(C)"},
        {"id": "c", "answer": ["A", "d"]},
    ]
    built = scorer("choice", rows, tmp_path)
    assert built.verdict("The answer is (B).", ["B"]) == (1.0, "correct: B")
    assert built._references == {"a": ["B"], "b": ["C"], "c": ["A", "D"]}
    assert built.verdict("**D**", built._references["c"]) == (1.0, "correct: D")
    assert built.verdict("I'm not sure.", ["B"]) == (0.0, "unparseable")
    number = scorer("number", [{"id": "m", "answer": "48 + 24 = 72\n#### 72"}], tmp_path)
    assert number.verdict("The answer is 72.5", number._references["m"]) == (0.0, "wrong: 145/2 (72.5)")
    source = tmp_path / "t.jsonl"
    for rows, message in [
        ([{"id": "x"}], r"t\.jsonl \(id='x'\): field 'answer': missing"),
        ([{"id": "x", "answer": "none of these"}], r"\(id='x'\): field 'answer': no choice answer can be extracted"),
        ([{"id": "x", "answer": 11}], r"\(id='x'\): field 'answer': choice index 11 is not in 0..9"),
        ([{"id": "x", "answer": []}], r"\(id='x'\): field 'answer': an empty list"),
        ([{"id": "x", "answer": {"a": 1}}], r"\(id='x'\): field 'answer': expected text or a number"),
    ]:
        with pytest.raises(Exception, match=message):
            ExactMatch(mode="choice").check(rows, source)
    with pytest.raises(ValueError, match=r"needs --mode, one of \['choice', 'number', 'text', 'f1'\]; none was given"):
        ExactMatch()


def read_table(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("table", "mode", "expected"),
    [
        (
            "choice.jsonl",
            "choice",
            {
                "mc1": {"small": 1.0, "large": 1.0},
                "mc2": {"small": 0.0, "large": 1.0},
                "mc3": {"small": 0.0, "large": 1.0},
            },
        ),
        (
            "number.jsonl",
            "number",
            {
                "m1": {"small": 1.0, "large": 1.0},
                "m2": {"small": 1.0, "large": 0.0},
                "m3": {"small": 1.0, "large": 0.0},  # "7 degrees below zero" gives 7: the rule is the last number
                "m4": {"small": 1.0, "large": 0.0},
            },
        ),
        (
            "short.jsonl",
            "text",
            {
                "s1": {"small": 1.0, "large": 0.0},
                "s2": {"small": 0.0, "large": 1.0},
                "s3": {"small": 0.0, "large": 0.0},
            },
        ),
        (
            "short.jsonl",
            "f1",
            {
                "s1": {"small": 1.0, "large": 0.0},
                "s2": {"small": 1 / 3, "large": 1.0},
                "s3": {"small": 0.8, "large": 0.0},
            },
        ),
    ],
)
def test_score_command_end_to_end(tmp_path: Path, capsys, table: str, mode: str, expected: dict) -> None:
    out = tmp_path / "scored.jsonl"
    main(["score", str(EXAMPLES / table), "--scorer", "exact_match", "--mode", mode, "--out", str(out)])
    judge = f"exact_match_{mode}"
    rows = read_table(out)
    got = {row["id"]: row["scores_by_judge"][judge] for row in rows}
    assert got.keys() == expected.keys()
    for row_id, scores in expected.items():
        assert got[row_id] == pytest.approx(scores)
    printed = capsys.readouterr().out
    unparseable = sum(reason == "unparseable" for row in rows for reason in row["score_reasons"][judge].values())
    assert (f"unparseable {unparseable}" in printed) == bool(unparseable)
    if mode == "choice":
        assert rows[2]["score_reasons"][judge] == {"small": "unparseable", "large": "correct: C"}
        assert "correct 4, unparseable 1, wrong 1" in printed or "correct 4, wrong 1, unparseable 1" in printed


def test_resumes_from_the_journal_and_settings_change_rescores(tmp_path: Path, capsys) -> None:
    source = write_rows(tmp_path / "in.jsonl", read_table(EXAMPLES / "number.jsonl"))
    out = tmp_path / "scored.jsonl"
    argv = ["score", str(source), "--scorer", "exact_match", "--mode", "number", "--out", str(out)]
    main(argv)
    journal = tmp_path / "scored.exact_match_number.journal.jsonl"
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert len(records) == 8 and {r["reason"] for r in records} >= {"correct: 22", "unparseable"}
    # a killed run: three records kept, one with a score a fresh run would not give (so reuse is visible)
    kept = [{**records[0], "score": 0.25}, records[1], records[2]]
    journal.write_text("".join(json.dumps(r) + "\n" for r in kept))
    out.unlink()
    capsys.readouterr()
    main(argv)
    printed = capsys.readouterr().out
    assert "3 pairs already in the journal, 5 to score" in printed
    assert read_table(out)[0]["scores_by_judge"]["exact_match_number"][records[0]["candidate"]] == 0.25
    assert len(journal.read_text().splitlines()) == 8
    # another reference field is another setting: nothing is reused
    rows = [{**row, "gold": row["answer"]} for row in read_table(source)]
    write_rows(source, rows)
    main([*argv, "--reference_field", "gold", "--overwrite"])
    assert "0 pairs already in the journal, 8 to score, 0 without a response; ignored 8 journal records of other" in (
        capsys.readouterr().out
    )


def test_command_errors(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "in.jsonl", read_table(EXAMPLES / "choice.jsonl"))
    for argv, message in [
        (["--scorer", "exact_match"], "needs --mode"),
        (["--scorer", "exact_match", "--mode", "number"], r"\(id='mc1'\): field 'answer': no number answer"),
        (["--scorer", "exact_match", "--mode", "choice", "--reference_field", "gold"], r"field 'gold': missing"),
        (["--scorer", "bleu"], r"unknown scorer 'bleu'; expected one of \['reward_model', 'exact_match'"),
        (["--scorer", "exact_match", "--mode", "choice", "--reward_model", "m"], "--reward_model is for"),
        ([], "--scorer reward_model needs --reward_model"),
    ]:
        with pytest.raises(SystemExit, match=message):
            main(["score", str(source), "--out", str(tmp_path / "o.jsonl"), *argv])
