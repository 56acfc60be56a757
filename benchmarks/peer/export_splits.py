"""Export the exact splits of zooter's real-data runs for the peer library (runs in zooter's ``.venv``).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/peer/export_splits.py [--tables dcrouter ...]

For each table and replicate, the split is rebuilt from the saved kNN run
``benchmarks/runs/realdata/<table>/knn-<seed|fold><k>/predict`` (its data config, through
:func:`zooter.table.splits.load_splits`), and ``benchmarks/runs/llmrouter/<table>/<seed|fold><k>.npz`` gets:
``{train,val,test}_ids``, ``{train,val,test}_emb`` (packaged MiniLM query embeddings, cached in
``.zooter_cache``), ``train_scores``/``val_scores`` (the run's train judge), ``val_scores_eval`` and
``test_scores`` (its eval judge), ``candidates``, ``train_judge``, ``eval_judge``. NaN means unjudged.
A replicate whose kNN run is absent is skipped with a message.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
RUNS = REPO / "benchmarks" / "runs"
CACHE = REPO / ".zooter_cache"
TABLES = {
    "dcrouter": ("seed", (0, 1, 2)),
    "alpacaeval_gpt4turbo_to_gpt4": ("fold", (0, 1, 2, 3, 4)),
    "alpacaeval_gpt4_to_gpt4turbo": ("fold", (0, 1, 2, 3, 4)),
}


def export(predict_dir: Path, out: Path) -> None:
    """Write the train/val/test split of one zooter run, with embeddings and score matrices, to ``out``."""
    from zooter.eval.report import Run
    from zooter.routers.encoders import cached_embeddings
    from zooter.table.splits import SplitSpec, load_splits

    spec = SplitSpec.from_mapping(Run.load(predict_dir).data)
    tables = load_splits(spec, cache_dir=CACHE)
    train, val, test = tables["train"], tables["val"], tables["test"]
    assert train.candidates == val.candidates == test.candidates
    arrays: dict[str, np.ndarray] = {}
    for split, table in (("train", train), ("val", val), ("test", test)):
        arrays[f"{split}_ids"] = np.array(table.ids)
        arrays[f"{split}_emb"] = cached_embeddings(table.queries, "minilm", CACHE, progress=False).astype(np.float32)
    arrays |= {
        "train_scores": train.judge(spec.train_judge),
        "val_scores": val.judge(spec.train_judge),
        "val_scores_eval": val.judge(spec.eval_judge),
        "test_scores": test.judge(spec.eval_judge),
        "candidates": np.array(train.candidates),
        "train_judge": np.array(spec.train_judge),
        "eval_judge": np.array(spec.eval_judge),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(out)
    sizes = f"train {len(train)}, val {len(val)}, test {len(test)}, {len(train.candidates)} candidates"
    print(f"export: {out.relative_to(REPO)}: {sizes}, judges {spec.train_judge} -> {spec.eval_judge}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--force", action="store_true", help="rewrite existing exports")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for table in args.tables:
        kind, replicates = TABLES[table]
        for k in replicates:
            predict_dir = RUNS / "realdata" / table / f"knn-{kind}{k}" / "predict"
            out = RUNS / "llmrouter" / table / f"{kind}{k}.npz"
            if not (predict_dir / "predictions.jsonl").is_file():
                print(f"export: no {predict_dir.relative_to(REPO)}, {table} {kind}{k} skipped", flush=True)
            elif out.is_file() and not args.force:
                print(f"export: {out.relative_to(REPO)} exists", flush=True)
            else:
                export(predict_dir, out)


if __name__ == "__main__":
    main()
