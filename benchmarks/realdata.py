"""Real-data benchmark: every router family and every baseline on dcrouter, AlpacaEval and the synthetic table.

    HF_HUB_OFFLINE=1 python benchmarks/realdata.py [--tables dcrouter ...] [--routers zooter knn ...]
                                                  [--seeds 0 1 2] [--epochs 3] [--quick]

Every router is a ``configs/router/<name>.yaml`` run through ``zooter fit`` and ``zooter predict`` (best
checkpoint on ``val/routed_score``), in-process, resumable (a run with predictions is not redone):

- ``dcrouter``: the official split (train -> test; validation cut from train), one run per seed;
- ``alpacaeval_gpt4turbo_to_gpt4`` / ``alpacaeval_gpt4_to_gpt4turbo``: 5 folds (one run per fold), both judge
  directions of ``benchmarks/alpacaeval_cv.py``;
- ``synthetic``: the quickstart table (4,000 queries) trained on the high-noise reward model, one run per seed.

Pretrained-encoder tables use the packaged MiniLM (``configs/model/minilm.yaml``); the synthetic table
uses the quickstart's tiny encoder. Scores come from the saved predictions through
``zooter.eval.functional`` (the definitions of ``zooter test``). Per table and router: mean ± std over
seeds or folds of the test score and gap recovered, the validation score (the one number used to
choose), and a paired bootstrap 95% interval of (router - best single) over test queries (per-query
differences averaged over seeds, or pooled over folds). The framework's best router per table is chosen
by validation score only. Writes ``benchmarks/results/realdata.{md,json}``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import benchutil
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RUNS = REPO / "benchmarks" / "runs" / "realdata"
PEER_RUNS = REPO / "benchmarks" / "runs" / "llmrouter"  # decision files of benchmarks/peer/run_llmrouter.py
RESULTS = REPO / "benchmarks" / "results"
FAMILIES = ("zooter", "routerdc", "mf", "probe", "knn")
FINE_TUNED = {"zooter", "routerdc", "mf"}  # fine-tune the encoder: minutes per epoch on CPU
BASELINES = ("bma", "random", "oracle", "tag_majority", "rmr")
# settings tried beside a family's config, each a candidate for "chosen on validation"; the tables they apply to
VARIANTS: dict[str, tuple[str, list[str], tuple[str, ...]]] = {
    "probe_bce": ("probe", ["--model.init_args.loss", "bce"], ("dcrouter",)),  # 0/1 task scores as probabilities
    "probe_mlp": ("probe", ["--model.init_args.head", "mlp"], ("dcrouter", "alpacaeval", "synthetic")),
}
NOT_CANDIDATES_FOR_BEST = {"oracle", "random", "rmr"}  # not deployable routers (read answers, or no skill)


def table_settings(name: str, epochs: int, max_length: int = 128, probe_epochs: int = 20) -> dict[str, Any]:
    """Base arguments, replicate kind, RMR judge and probe epochs of one benchmark table."""
    return {**_table_settings(name, epochs, max_length), "probe_epochs": probe_epochs}


def _table_settings(name: str, epochs: int, max_length: int) -> dict[str, Any]:
    minilm = ["--config", str(REPO / "configs/trainer/cpu.yaml"), "--config", str(REPO / "configs/model/minilm.yaml"),
              "--data.encoder", "minilm", "--data.max_length", str(max_length), "--data.group_by_length", "true",
              "--trainer.max_epochs", str(epochs)]  # fmt: skip
    if name == "dcrouter":
        data = ["--data.train_path", str(SHARED / "dcrouter/train.jsonl"),
                "--data.test_path", str(SHARED / "dcrouter/test.jsonl"), "--data.val_fraction", "0.1",
                "--data.beta", "0.3", "--data.temperature", "1.0", "--data.standardization", "none"]  # fmt: skip
        return {"args": [*minilm, *data], "replicate": "seed", "rmr_judge": None}
    if name.startswith("alpacaeval"):
        direction = name.removeprefix("alpacaeval_")
        data = benchutil.alpacaeval_data_args(direction, SHARED / "alpacaeval/alpacaeval_main.jsonl", max_length)
        return {
            "args": [*minilm, *data],
            "replicate": "fold",
            "rmr_judge": benchutil.ALPACAEVAL_DIRECTIONS[direction][0],
        }
    if name == "synthetic":
        data = ["--config", str(REPO / "configs/quickstart.yaml"), "--data.train_judge", "rm_high_noise",
                "--trainer.max_epochs", str(epochs)]  # fmt: skip
        return {"args": data, "replicate": "seed", "rmr_judge": "rm_high_noise"}
    raise SystemExit(f"unknown table {name!r}")


def run_one(table: str, router: str, replicate: int, settings: dict[str, Any], save_dir: Path) -> Path | None:
    """fit + predict one router on one seed/fold; the predict run directory (``None``: config missing)."""
    from zooter.cli import main

    family, variant_args, _ = VARIANTS.get(router, (router, [], ()))
    config = REPO / "configs" / "router" / f"{family}.yaml"
    if not config.is_file():
        print(f"realdata: no {config.relative_to(REPO)}, skipped", flush=True)
        return None
    name = f"{router}-{settings['replicate']}{replicate}"
    predict_dir = save_dir / table / name / "predict"
    if (predict_dir / "predictions.jsonl").is_file():
        return predict_dir
    extra = (
        ["--seed_everything", str(replicate)] if settings["replicate"] == "seed" else ["--data.fold", str(replicate)]
    )
    if router == "rmr":
        extra += ["--model.judge", settings["rmr_judge"]]
    if family == "probe":  # an epoch of a head on cached embeddings costs a second
        extra += ["--trainer.max_epochs", str(settings["probe_epochs"])]
    extra += variant_args
    args = [*settings["args"], "--config", str(config), *extra, "--data.cache_dir", str(REPO / ".zooter_cache"),
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.logger.init_args.save_dir", str(save_dir / table),
            "--trainer.logger.init_args.name", name]  # fmt: skip
    started = time.perf_counter()
    with benchutil.argv([]):  # LightningCLI warns when it is given args and sees this script's too
        main(["fit", *args, "--trainer.logger.init_args.version", "fit"])
        ckpt = next((save_dir / table / name / "fit" / "checkpoints").glob("best-*.ckpt"))
        main(["predict", *args, "--trainer.logger.init_args.version", "predict", "--ckpt_path", str(ckpt)])
    print(f"realdata: {table} {name} in {time.perf_counter() - started:.0f} s", flush=True)
    return predict_dir


def best_val(fit_dir: Path) -> float:
    """The best ``val/routed_score`` of a fit (the monitored value of its best checkpoint)."""
    with (fit_dir / "metrics.csv").open() as f:
        values = [float(row["val/routed_score"]) for row in csv.DictReader(f) if row.get("val/routed_score")]
    return max(values)


@functools.cache
def load_run(predict_dir: Path) -> tuple[Any, Any, Any, Any]:
    """A predict run, its split spec and its test and train tables (read once: the peer library's rows
    score several decision files on the same BMA run)."""
    from zooter.eval.report import Run
    from zooter.table.splits import SplitSpec, load_splits

    run = Run.load(predict_dir)
    spec = SplitSpec.from_mapping(run.data)
    tables = load_splits(spec, cache_dir=REPO / ".zooter_cache")
    return run, spec, tables["test"], tables["train"]


def per_query(predict_dir: Path, decisions: dict[str, str] | None = None, val: float | None = None) -> dict[str, Any]:
    """Per-query expected test scores of the router and of BMA, the oracle, and the validation score.

    ``decisions`` (test id -> candidate) and ``val`` replace the run's own routing and validation score: how a
    peer library's decisions on the same split are scored with the same definitions.
    """
    from zooter.eval import functional as F

    run, spec, test, train = load_run(predict_dir)
    evals = test.judge(spec.eval_judge)
    if decisions is None:
        scores = run.table_scores(test)
    else:  # one-hot on each query's chosen candidate
        scores = np.zeros_like(evals)
        scores[np.arange(len(test)), [test.candidates.index(decisions[i]) for i in test.ids]] = 1.0
    routed = F.expected_scores(F.decision_weights(scores, evals), evals)
    bma = F.expected_scores(F.decision_weights(F.best_single_scores(train.judge(spec.eval_judge)), evals), evals)
    return {"ids": test.ids, "routed": routed, "bma": bma, "oracle": F.oracle_scores(evals),
            "val": best_val(predict_dir.parent / "fit") if val is None else val}  # fmt: skip


def peer_rows(table: str, kind: str, replicates: list[int], runs: Path) -> dict[str, Any]:
    """Rows ``llmrouter:<router>`` of llmrouter-lib's routers (``benchmarks/peer/``) from their decision files,
    scored on the test split of this script's BMA run of the same replicate."""
    rows: dict[str, Any] = {}
    names = sorted({f.name.rsplit("-", 1)[0] for f in (PEER_RUNS / table).glob(f"*-{kind}*.json")})
    for name in names:
        files = [(k, PEER_RUNS / table / f"{name}-{kind}{k}.json") for k in replicates]
        reference = [runs / table / f"bma-{kind}{k}" / "predict" for k, _ in files]
        if not all(f.is_file() for _, f in files) or not all(r.is_dir() for r in reference):
            continue
        replicate_rows = []
        for (_, path), predict_dir in zip(files, reference, strict=True):
            peer = json.loads(path.read_text())
            val = peer.get("val_score_eval", peer["val_score"])  # validation score on the eval judge, as ours
            replicate_rows.append(per_query(predict_dir, peer["decisions"], val))
        rows[f"llmrouter:{name}"] = summarise(replicate_rows, kind)
    return rows


def extra_rows(table: str, kind: str, spec: str) -> dict[str, Any]:
    """Rows ``<router> [LABEL]`` of finished runs made elsewhere (``LABEL=DIR``, e.g. on a lent GPU), laid out
    as this script's: ``DIR/<table>/<router>-<seed|fold><k>/predict``; their config paths must be local."""
    label, _, directory = spec.partition("=")
    runs: dict[str, list[Path]] = {}
    for predict in sorted(Path(directory, table).glob(f"*-{kind}*/predict")):
        if (predict / "predictions.jsonl").is_file():
            runs.setdefault(predict.parent.name.rsplit("-", 1)[0], []).append(predict)
    return {f"{router} [{label}]": summarise([per_query(d) for d in dirs], kind) for router, dirs in runs.items()}


def summarise(replicates: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    from zooter.eval.functional import gap_recovered, paired_bootstrap

    scores = np.array([r["routed"].mean() for r in replicates])
    gaps = np.array([gap_recovered(r["routed"].mean(), r["bma"].mean(), r["oracle"].mean()) for r in replicates])
    vals = np.array([r["val"] for r in replicates])
    if kind == "seed":  # the same test queries: average each query's difference over seeds
        diff = np.mean([r["routed"] - r["bma"] for r in replicates], axis=0)
    else:  # folds: every query is tested once
        diff = np.concatenate([r["routed"] - r["bma"] for r in replicates])
    std = lambda a: float(a.std(ddof=1)) if len(a) > 1 else 0.0  # noqa: E731
    low, high = paired_bootstrap(diff)
    return {
        "mean": float(scores.mean()), "std": std(scores), "n_seeds": len(replicates),
        "gap_recovered": float(gaps.mean()), "gap_recovered_std": std(gaps),
        "val_mean": float(vals.mean()), "minus_bma": float(diff.mean()), "minus_bma_ci95": [low, high],
        "bma": float(np.mean([r["bma"].mean() for r in replicates])),
        "oracle": float(np.mean([r["oracle"].mean() for r in replicates])),
    }  # fmt: skip


def markdown(results: dict[str, Any], command: str, minutes: float) -> str:
    lines = ["# Real-data benchmark: router families and baselines", "",
             f"Command: `{command}`; wall time {minutes:.1f} min on {platform.machine()}, {os.cpu_count()} CPU cores "
             f"(runs already on disk are reused). Test scores: mean ± std over seeds (dcrouter, synthetic) or folds "
             "(AlpacaEval). `- BMA [95% CI]`: paired bootstrap over test queries of (router − best single). "
             "The best router per table is chosen on validation score only (oracle, random, RMR and the peer "
             "library's rows excluded). Rows `[LABEL]` are runs made elsewhere (`--extra-runs`), rows "
             "`llmrouter:` are llmrouter-lib's routers (`benchmarks/peer/`). Goals, what was tried and caveats: "
             "[realdata_findings.md](realdata_findings.md).",
             ""]  # fmt: skip
    for table, routers in results.items():
        if not routers:
            continue
        ours = [r for r in routers if r not in NOT_CANDIDATES_FOR_BEST and not r.startswith("llmrouter:")]
        best = max(ours, key=lambda r: routers[r]["val_mean"])
        first = next(iter(routers.values()))
        lines += [f"## {table}", "", f"Best single (BMA) {first['bma']:.4f}, oracle {first['oracle']:.4f}. "
                  f"Chosen on validation: **{best}**.", "",
                  "| router | test score | gap recovered | − BMA [95% CI] | val score | n |",
                  "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for name, r in sorted(routers.items(), key=lambda kv: -kv[1]["mean"]):
            low, high = r["minus_bma_ci95"]
            mark = " (chosen)" if name == best else ""
            lines.append(
                f"| {name}{mark} | {r['mean']:.4f} ± {r['std']:.4f} | {r['gap_recovered']:.3f} | "
                f"{r['minus_bma']:+.4f} [{low:+.4f}, {high:+.4f}] | {r['val_mean']:.4f} | {r['n_seeds']} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", default=["dcrouter", "alpacaeval_gpt4turbo_to_gpt4",
                                                         "alpacaeval_gpt4_to_gpt4turbo", "synthetic"])  # fmt: skip
    parser.add_argument("--routers", nargs="+", default=[*FAMILIES, *VARIANTS, *BASELINES])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the fine-tuned families")
    parser.add_argument("--probe-epochs", type=int, default=20, help="epochs of the probes on cached embeddings")
    parser.add_argument("--fine-tune-replicates", type=int, default=None,
                        help="run the fine-tuned MiniLM families (zooter, routerdc, mf on the real tables) on the "
                             "first K seeds/folds only (CPU budget); the n column says how many ran")  # fmt: skip
    parser.add_argument("--max-length", type=int, default=128, help="tokens per query (MiniLM tables)")
    parser.add_argument("--extra-runs", nargs="*", default=[], metavar="LABEL=DIR",
                        help="finished runs made elsewhere, as rows '<router> [LABEL]' (e.g. "
                             "'h200 len 512=benchmarks/runs/realdata_gpu')")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS / "realdata")
    parser.add_argument("--runs", type=Path, default=RUNS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for table in args.tables:
        settings = table_settings(table, args.epochs, args.max_length, args.probe_epochs)
        needs = SHARED / ("dcrouter" if table == "dcrouter" else "alpacaeval")
        if table != "synthetic" and not needs.is_dir():
            print(f"realdata: {needs} is absent, {table} skipped", flush=True)
            continue
        replicates = args.seeds if settings["replicate"] == "seed" else args.folds
        results[table] = {}
        for router in args.routers:
            if router == "rmr" and settings["rmr_judge"] is None:
                continue  # one judge only: RMR with it is the oracle
            if router in VARIANTS and not table.startswith(VARIANTS[router][2]):
                continue  # a setting that does not apply to this table's rewards
            family = VARIANTS.get(router, (router,))[0]
            limited = family in FINE_TUNED and table != "synthetic"  # synthetic: the tiny encoder, seconds an epoch
            chosen = replicates[: args.fine_tune_replicates] if limited else replicates
            dirs = [run_one(table, router, k, settings, args.runs) for k in chosen]
            if dirs and all(d is not None for d in dirs):
                results[table][router] = summarise([per_query(d) for d in dirs], settings["replicate"])
        for spec in args.extra_runs:
            results[table].update(extra_rows(table, settings["replicate"], spec))
        results[table].update(peer_rows(table, settings["replicate"], replicates, args.runs))
    command = "python benchmarks/realdata.py " + shlex.join(sys.argv[1:])
    minutes = (time.perf_counter() - started) / 60
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results, command.strip(), minutes) + "\n")
    print(markdown(results, command.strip(), minutes))


if __name__ == "__main__":
    main()
