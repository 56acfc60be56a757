"""Train and run the peer library llmrouter-lib's routers on zooter's exported splits (runs in ``.venv-peer``).

    bash benchmarks/peer/setup_llmrouter.sh
    HF_HUB_OFFLINE=1 .venv-peer/bin/python benchmarks/peer/run_llmrouter.py [--routers knn svm mlp mf] [--tables ...]

Reads ``benchmarks/runs/llmrouter/<table>/<seed|fold><k>.npz`` (written by ``export_splits.py``) and writes
``benchmarks/runs/llmrouter/<table>/<router>-<seed|fold><k>.json``: the chosen candidate of every test query
(``decisions``), the mean train-judge score of the choices on validation (``val_score``), the settings and
the training time. Added for convenience: ``val_score_eval`` (the same on the eval judge, the judge of
``benchmarks/realdata.py``'s val column) and ``test_score`` (mean eval-judge score of the test choices; unjudged
choices are left out, counted in ``test_unjudged``).

Only data plumbing is ours: each router is built by llmrouter-lib's own class from a YAML config and data
files in its own formats (routing records ``{query, model_name, performance, embedding_id}`` for the judged
cells of the training split, a ``.pt`` tensor of MiniLM query embeddings), trained by its own trainer, and
the saved model is reloaded and applied with llmrouter-lib's code; only the query embedding is ours (MiniLM
instead of its Longformer, which would be downloaded). Hyperparameters are the library's defaults (its
``configs/model_config_train/*.yaml``); kNN's ``n_neighbors``, which its documentation says to tune, is
chosen on validation. RouterDC is not run: see ``benchmarks/peer/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
RUNS = REPO / "benchmarks" / "runs" / "llmrouter"
TABLES = ("dcrouter", "alpacaeval_gpt4turbo_to_gpt4", "alpacaeval_gpt4_to_gpt4turbo")
KNN_CHOICES = (1, 3, 5, 10, 20)

# llmrouter-lib's default hyperparameters (configs/model_config_train/<router>.yaml of its repository)
DEFAULTS: dict[str, dict[str, Any]] = {
    "knn": {"n_neighbors": 5, "weights": "uniform", "algorithm": "auto", "leaf_size": 30, "p": 2,
            "metric": "minkowski", "n_jobs": 1},  # n_jobs: -1 upstream; 1 keeps CPU use modest, same result
    "svm": {"kernel": "rbf", "C": 1.0, "gamma": "scale", "probability": True},
    "mlp": {"hidden_layer_sizes": [128, 64], "activation": "relu", "lr": 0.001, "epochs": 100, "batch_size": 32,
            "alpha": 0.0001},
    "mf": {"latent_dim": 128, "text_dim": 768, "lr": 0.001, "epochs": 5, "noise_alpha": 0.0},
}  # fmt: skip


def record_order(scores: np.ndarray, order: str) -> list[int]:
    """Candidate columns in the order each query's routing records are written: llmrouter-lib labels a query
    with the first of its tied best candidates (pandas ``idxmax``), so this order decides ties. ``train_mean``:
    best mean training score first; ``table``: the table's candidate order."""
    if order == "table":
        return list(range(scores.shape[1]))
    return [int(i) for i in np.argsort(-np.nanmean(scores, axis=0), kind="stable")]


def write_inputs(work: Path, data: dict[str, np.ndarray], hparam: dict[str, Any], order: str) -> Path:
    """llmrouter-lib's input files for the training split and a router YAML naming them; the YAML's path."""
    embeddings, scores, ids, candidates = data["train_emb"], data["train_scores"], data["train_ids"], data["candidates"]
    torch.save(torch.from_numpy(embeddings), work / "query_embeddings.pt")
    columns = record_order(scores, order)
    with (work / "routing_train.jsonl").open("w") as f:
        for row, query_id in enumerate(ids):
            for column, candidate in ((j, candidates[j]) for j in columns):
                if not np.isnan(scores[row, column]):  # unjudged: no routing record
                    record = {"query": str(query_id), "model_name": str(candidate),
                              "performance": float(scores[row, column]), "embedding_id": row}  # fmt: skip
                    f.write(json.dumps(record) + "\n")
    config = {
        "data_path": {"query_embedding_data": str(work / "query_embeddings.pt"),
                      "routing_data_train": str(work / "routing_train.jsonl")},
        "model_path": {"ini_model_path": "", "save_model_path": str(work / "model.pkl"),
                       "load_model_path": str(work / "model.pkl")},
        "metric": {"weights": {"performance": 1, "cost": 0, "llm_judge": 0}},
        "hparam": hparam,
    }  # fmt: skip
    path = work / "router.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def train_predict(name: str, config: Path) -> Callable[[np.ndarray], list[str]]:
    """Build and train llmrouter-lib router ``name`` from ``config``; a function from embeddings to choices."""
    from llmrouter import models
    from llmrouter.utils import load_model

    if name in ("knn", "svm"):
        pair = {"knn": (models.KNNRouter, models.KNNRouterTrainer), "svm": (models.SVMRouter, models.SVMRouterTrainer)}
        router_cls, trainer_cls = pair[name]
        router = router_cls(str(config))
        trainer_cls(router, device="cpu").train()
        fitted = load_model(router.cfg["model_path"]["load_model_path"])  # what route_single loads
        return lambda x: [str(c) for c in fitted.predict(list(x))]
    if name == "mlp":
        router = models.MLPRouter(str(config))
        models.MLPTrainer(router, device="cpu").train()
        router.load_model_path = router.cfg["model_path"]["load_model_path"]
        model, kind = router._load_mlp_model()
        assert kind == "pytorch"
        return lambda x: [router.idx_to_model[int(i)] for i in model.predict(torch.from_numpy(x).float())]
    if name == "mf":
        router = models.MFRouter(str(config))
        models.MFRouterTrainer(router, device="cpu").train()
        router.load_model_path = router.cfg["model_path"]["load_model_path"]
        model = router._load_mf_model()

        def route(x: np.ndarray) -> list[str]:  # route_single's scoring, on our embedding of each query
            with torch.no_grad():
                best = [int(torch.argmax(model.score_all(model.project_text(torch.from_numpy(q).float())))) for q in x]
            return [router.idx_to_model[i] for i in best]

        return route
    raise SystemExit(f"unknown router {name!r}")


def mean_score(choices: list[str], scores: np.ndarray, candidates: list[str]) -> tuple[float, int]:
    """Mean score of the chosen candidates over the queries whose choice was judged, and the unjudged count."""
    values = np.array([scores[i, candidates.index(c)] for i, c in enumerate(choices)])
    judged = ~np.isnan(values)
    return float(values[judged].mean()), int((~judged).sum())


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(name: str, data: dict[str, np.ndarray], seed: int, order: str) -> dict[str, Any]:
    """Train ``name`` on the training split (choosing kNN's k on validation) and route val and test."""
    candidates = [str(c) for c in data["candidates"]]
    hparam = dict(DEFAULTS[name], text_dim=int(data["train_emb"].shape[1])) if name == "mf" else dict(DEFAULTS[name])
    options = [dict(hparam, n_neighbors=k) for k in KNN_CHOICES] if name == "knn" else [hparam]
    best: dict[str, Any] | None = None
    for option in options:
        seed_all(seed)
        with tempfile.TemporaryDirectory(prefix=f"llmrouter-{name}-") as work:
            started = time.perf_counter()
            route = train_predict(name, write_inputs(Path(work), data, option, order))
            seconds = time.perf_counter() - started
            val_choices = route(data["val_emb"])
            val_score, _ = mean_score(val_choices, data["val_scores"], candidates)
            if best is None or val_score > best["val_score"]:
                best = {"settings": option, "val_score": val_score, "seconds": seconds, "route": route,
                        "val_choices": val_choices}  # fmt: skip
            print(f"llmrouter: {name} {option} val {val_score:.4f} ({seconds:.1f} s)", flush=True)
    assert best is not None
    test_choices = best["route"](data["test_emb"])
    test_score, unjudged = mean_score(test_choices, data["test_scores"], candidates)
    val_score_eval, _ = mean_score(best["val_choices"], data["val_scores_eval"], candidates)
    settings = dict(best["settings"], embeddings="minilm (zooter packaged, mean-pooled)", seed=seed,
                    llmrouter_lib=version("llmrouter-lib"), train_judge=str(data["train_judge"]),
                    eval_judge=str(data["eval_judge"]), tie_order=order,
                    record_order=[candidates[j] for j in record_order(data["train_scores"], order)])  # fmt: skip
    if name == "knn":
        settings["n_neighbors_choices"] = list(KNN_CHOICES)
    return {
        "router": f"llmrouter_{name}" + ("_tableorder" if order == "table" else ""),
        "candidates": candidates,
        "val_score": best["val_score"],
        "decisions": {str(i): c for i, c in zip(data["test_ids"], test_choices, strict=True)},
        "settings": settings,
        "seconds": best["seconds"],
        "val_score_eval": val_score_eval,
        "test_score": test_score,
        "test_unjudged": unjudged,
    }


def summary(tables: list[str]) -> str:
    """Markdown table: per table and router, the mean ± std over replicates of the test score, and the means of
    the validation scores."""
    lines = ["| table | router | test score | val score (train judge) | val score (eval judge) | n |",
             "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for table in tables:
        by_router: dict[str, list[dict[str, Any]]] = {}
        for path in sorted((RUNS / table).glob("*-*.json")):
            result = json.loads(path.read_text())
            by_router.setdefault(result["router"], []).append(result)
        for router, results in sorted(by_router.items()):
            keys = ("test_score", "val_score", "val_score_eval")
            test, val, val_eval = (np.array([r[k] for r in results]) for k in keys)
            std = float(test.std(ddof=1)) if len(test) > 1 else 0.0
            cells = [table, router, f"{test.mean():.4f} ± {std:.4f}", f"{val.mean():.4f}", f"{val_eval.mean():.4f}"]
            lines.append("| " + " | ".join([*cells, str(len(test))]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--routers", nargs="+", default=list(DEFAULTS), choices=list(DEFAULTS))
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--tie-order", choices=["train_mean", "table"], default="train_mean",
                        help="order of each query's routing records, which decides llmrouter-lib's tied labels; "
                        "'table' writes <router>_tableorder-<k>.json")  # fmt: skip
    parser.add_argument("--summary", action="store_true", help="only print the summary of existing results")
    parser.add_argument("--force", action="store_true", help="redo replicates whose decisions exist")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    for table in [] if args.summary else args.tables:
        exports = sorted((RUNS / table).glob("*.npz"))
        if not exports:
            print(f"llmrouter: no exported split under {RUNS / table}, {table} skipped", flush=True)
        for export in exports:
            replicate = export.stem
            data = dict(np.load(export))
            for name in args.routers:
                suffix = "_tableorder" if args.tie_order == "table" else ""
                out = RUNS / table / f"{name}{suffix}-{replicate}.json"
                if out.is_file() and not args.force:
                    print(f"llmrouter: {out.relative_to(REPO)} exists", flush=True)
                    continue
                print(f"llmrouter: {table} {name}{suffix} {replicate}", flush=True)
                result = run(name, data, int(replicate.removeprefix("seed").removeprefix("fold")), args.tie_order)
                out.write_text(json.dumps(result, indent=1) + "\n")
                scores = f"val {result['val_score']:.4f}, test {result['test_score']:.4f}"
                print(f"llmrouter: {table} {name}{suffix} {replicate}: {scores} ({result['test_unjudged']} unjudged) "
                      f"-> {out.name}", flush=True)  # fmt: skip

    print(summary(args.tables), flush=True)


if __name__ == "__main__":
    main()
