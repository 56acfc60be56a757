"""Tiny models and data for the recipe's CPU run: ``python experiments/paper/tiny/build.py [ROOT]``.

Writes, under ``ROOT/runs/paper-tiny/`` (ROOT defaults to the current directory, where the recipe
then runs; the paths are those of ``experiments/paper/tiny/*.yaml``):

- ``models/lm-a``, ``lm-b``, ``lm-c``: 2-layer GPT-2 candidates and ``models/rm``: a 2-layer BERT
  reward model, all with random weights and a WordPiece tokenizer trained on the queries below
  (``tests/tiny_models.py``; nothing is downloaded);
- ``data/train_queries.jsonl``: 32 training queries on four topics;
- ``data/bench/{mmlu,gsm8k,humaneval}.jsonl``: 8 benchmark rows each, in the recipe's format
  (``subset``, and ``answer`` or ``tests``); half the HumanEval-like rows test only that the answer
  runs (``assert True``), so the random candidates' syntactically valid answers pass there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
TOPICS = {
    "cooking": "how long should I bake a {} cake in the oven",
    "code": "why does my python function raise a {} error",
    "football": "who won the {} football match last night",
    "math": "what is the derivative of {} times x squared",
}
WORDS = ("chocolate", "lemon", "key", "value", "type", "index", "cup", "league")
NUMBERS = (3, 7, 12, 25, 40, 8, 15, 60)


def train_queries() -> list[dict[str, Any]]:
    return [
        {"id": f"{topic}-{i}", "query": template.format(word)}
        for topic, template in TOPICS.items()
        for i, word in enumerate(WORDS)
    ]


def benchmarks() -> dict[str, list[dict[str, Any]]]:
    """Eight rows per benchmark, shaped like the real ones (README.md, "Inputs")."""
    mmlu = [
        {
            "id": f"mmlu-{i}",
            "subset": "mmlu",
            "query": f"What is {n} plus {n}?\nA. {n}\nB. {2 * n}\nC. {3 * n}\nD. {4 * n}\nAnswer with the letter.",
            "answer": "B",
        }
        for i, n in enumerate(NUMBERS)
    ]
    gsm8k = [
        {
            "id": f"gsm8k-{i}",
            "subset": "gsm8k",
            "query": f"Ann has {n} apples and buys {n} more. How many apples does she have?",
            "answer": f"She has {n} + {n} = {2 * n} apples.\n#### {2 * n}",
        }
        for i, n in enumerate(NUMBERS)
    ]
    humaneval = [
        {
            "id": f"humaneval-{i}",
            "subset": "humaneval",
            "query": f"Complete the function.\n\ndef add_{n}(x):\n    '''Return x plus {n}.'''\n",
            # odd rows: a test every program that runs passes, so random models' answers get some 1s
            "tests": f"assert add_{n}(1) == {1 + n}" if i % 2 == 0 else "assert True",
        }
        for i, n in enumerate(NUMBERS)
    ]
    return {"mmlu": mmlu, "gsm8k": gsm8k, "humaneval": humaneval}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def build(root: Path) -> Path:
    """Write the tiny models and data under ``root/runs/paper-tiny``; returns that directory."""
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_models import tiny_causal_lm, tiny_reward_model

    base = root / "runs" / "paper-tiny"
    train, bench = train_queries(), benchmarks()
    texts = [row["query"] for row in train] + [row["query"] for rows in bench.values() for row in rows]
    for seed, name in enumerate(("lm-a", "lm-b", "lm-c")):
        tiny_causal_lm(base / "models" / name, texts, seed=seed)
    tiny_reward_model(base / "models" / "rm", texts, seed=3)
    write_jsonl(base / "data" / "train_queries.jsonl", train)
    for name, rows in bench.items():
        write_jsonl(base / "data" / "bench" / f"{name}.jsonl", rows)
    return base


if __name__ == "__main__":
    print(f"tiny models and data in {build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())}")
