"""Why does a router beat (or not beat) the best single model on AlpacaEval? A fast diagnostic.

    python benchmarks/alpacaeval_probe.py

Trains a linear head on FROZEN mean-pooled MiniLM embeddings (seconds per setting on CPU) with
zooter's own targets and KL loss, over the same 5 folds as the router benchmark, and varies what the
paper leaves open: the tag mixing beta, the standardization of the train judge's rewards and the
temperature. Scored with the eval judge against BMA and oracle. Writes benchmarks/results/alpacaeval_probe.md.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import torch

from zooter.data import targets
from zooter.eval.functional import decision_weights, expected_scores
from zooter.eval.report import Embedder
from zooter.routers import baseline_scores as baselines
from zooter.routers.losses import kl_divergence
from zooter.table.splits import SplitSpec, load_splits

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO.parent / "shared" / "data" / "alpacaeval" / "alpacaeval_main.jsonl"
TRAIN_JUDGE, EVAL_JUDGE = "gpt4turbo_vs_gpt4preview", "gpt4_vs_davinci003"
GRID = {"beta": [0.0, 0.3, 1.0], "standardization": ["logit", "zscore", "rank"], "temperature": [0.25, 1.0]}


def fit_probe(
    x: np.ndarray, target: np.ndarray, judged: np.ndarray, epochs: int = 300, seed: int = 0
) -> torch.nn.Linear:
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], target.shape[1])
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-2)
    inputs, goal, mask = torch.tensor(x), torch.tensor(target, dtype=torch.float32), torch.tensor(judged)
    for _ in range(epochs):
        optimizer.zero_grad()
        kl_divergence(head(inputs), goal, mask).mean().backward()
        optimizer.step()
    return head


def main() -> None:
    if not TABLE.is_file():
        raise SystemExit(f"{TABLE} is absent: this diagnostic needs the real AlpacaEval table")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    embed = Embedder("minilm")
    folds = []
    for fold in range(5):
        spec = SplitSpec(path=str(TABLE), train_judge=TRAIN_JUDGE, eval_judge=EVAL_JUDGE, folds=5, fold=fold)
        tables = load_splits(spec)
        train = _concat(tables["train"], tables["val"])  # the probe needs no validation split: train on both
        folds.append((train, tables["test"], embed(train.queries), embed(tables["test"].queries)))

    rows = []
    for beta, standardization, temperature in itertools.product(*GRID.values()):
        scores, bmas, oracles, entropies = [], [], [], []
        for train, test, x_train, x_test in folds:
            rewards = train.judge(TRAIN_JUDGE)
            labels = targets.soft_labels(targets.standardize(rewards, standardization), temperature)
            table = targets.tag_table(labels, train.tags)
            target = targets.build_targets(rewards, train.tags, table, beta, temperature, standardization)
            head = fit_probe(x_train, target, np.isfinite(rewards))
            with torch.no_grad():
                prefs = head(torch.tensor(x_test)).numpy()
            evals = test.judge(EVAL_JUDGE)
            scores.append(expected_scores(decision_weights(prefs, evals), evals).mean())
            bma = baselines.best_single(train.judge(EVAL_JUDGE), len(test))
            bmas.append(expected_scores(decision_weights(bma, evals), evals).mean())
            oracles.append(np.nanmax(evals, axis=1).mean())
            entropies.append(targets.entropy(target).mean())
        gap = (np.mean(scores) - np.mean(bmas)) / (np.mean(oracles) - np.mean(bmas))
        rows.append(
            (
                beta,
                standardization,
                temperature,
                np.mean(entropies),
                np.mean(scores),
                np.std(scores),
                gap,
                np.mean(bmas),
            )
        )
        print(rows[-1], flush=True)

    lines = [
        "# AlpacaEval diagnostic: linear probe on frozen MiniLM embeddings",
        "",
        f"Train judge `{TRAIN_JUDGE}`, eval judge `{EVAL_JUDGE}`, 5 folds (train = train + val split of each fold), "
        "KL(s* || probe), AdamW lr 1e-2, 300 full-batch steps. Command: `python benchmarks/alpacaeval_probe.py`.",
        "",
        "| beta | standardization | temperature | mean H(s*) (nats) | score (mean ± std over folds) "
        "| gap recovered | BMA |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for beta, std, temp, entropy, score, spread, gap, bma in rows:
        lines.append(
            f"| {beta} | {std} | {temp} | {entropy:.3f} | {score:.4f} ± {spread:.4f} | {gap:+.3f} | {bma:.4f} |"
        )
    (REPO / "benchmarks" / "results" / "alpacaeval_probe.md").write_text("\n".join(lines) + "\n")
    print("wrote benchmarks/results/alpacaeval_probe.md")


def _concat(first, second):
    from zooter.table.schema import RoutingTable

    return RoutingTable(
        ids=first.ids + second.ids,
        queries=first.queries + second.queries,
        tags=first.tags + second.tags,
        candidates=first.candidates,
        scores={j: np.vstack([first.judge(j), second.judge(j)]) for j in first.judges},
        source=first.source,
    )


if __name__ == "__main__":
    main()
