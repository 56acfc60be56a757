"""``zooter report``: routers against every baseline, as a table and as pictures.

Each RUN is a run directory written by ``zooter predict`` (it holds ``config.yaml`` and
``predictions.jsonl``). The report rebuilds that run's splits from its saved data config, scores the
router's picks and every baseline with the eval judge on the same test split, and, when runs of the
same name cover several folds, aggregates mean ± std over folds. Outputs in ``--out``:
``report.json``, ``report.md`` and PNG plots (``methods.png``, ``subsets.png``, ``entropy.png``,
``shares.png``, and with ``--costs`` or per-query costs in the table ``cost_quality.png``).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from zooter.data import targets
from zooter.eval.cost import CostModel
from zooter.eval.cost_report import CURVE_KEYS, aggregate_cost_quality, check_pair_names, fold_cost_quality
from zooter.eval.functional import (
    best_single_scores,
    candidate_means,
    candidate_mtr,
    decision_weights,
    entropy_bins,
    expected_scores,
    mtr_and_uplift,
    subsets_from_labels,
    summarize,
)
from zooter.eval.render import log_to_wandb, to_markdown, write_plots
from zooter.files import write_text_atomic
from zooter.routers import baseline_scores as baselines
from zooter.table.costs import CostMatrix, cost_matrix, load_costs
from zooter.table.schema import SCORES_JUDGE, RoutingTable
from zooter.table.splits import SplitSpec, load_splits
from zooter.table.synth import SynthConfig

SPLIT_KEYS = (
    "path",
    "train_path",
    "val_path",
    "test_path",
    "synth",
    "split_seed",
    "folds",
    "val_fraction",
    "test_fraction",
    "eval_judge",
    "candidates",
)


@dataclass
class ReportOptions:
    """Settings of ``zooter report``.

    Args:
        out: output directory.
        names: one display name per run (default: the run's logger name, e.g. ``runs/<name>/version_3``).
        baselines: also compute random, RMR, tag-majority and kNN (BMA and oracle are always there: the
            reference lines of every score).
        rmr_judges: judges for reward-model ranking baselines (default: every judge of the table).
        subset_field: a row field whose values define subsets (default: the tags).
        min_subset_size: subsets with fewer test queries are left out of per-subset tables and MTR.
        entropy_bins: equal-count bins of the training reward entropy H(s(q)) (paper Figure 3).
        knn_encoder: encoder whose mean-pooled embeddings the kNN baseline uses (``None``: no kNN).
        knn_k: the k values kNN chooses from on the validation split.
        cost: parameter and token counts for the relative inference cost (FLOPs).
        costs: a cost file (``configs/costs/*.yaml``) for the cost–quality section: curves, Pareto frontier,
            AIQ, APGR, CPT and the cost to match the best single model (:mod:`zooter.eval.cost_report`).
            A table with per-query ``costs`` gets the section without it (the file fills unknown cells).
        weak: the cheap model of the two-model setting (APGR, CPT; default: the cheapest candidate).
        strong: the strong model of that setting (default: the best single model on train).
        wandb_project: also log the tables and plots to this W&B project (``WANDB_MODE=offline`` works).
    """

    out: str = "reports/latest"
    names: list[str] | None = None
    baselines: bool = True
    rmr_judges: list[str] | None = None
    subset_field: str | None = None
    min_subset_size: int = 5
    entropy_bins: int = 5
    knn_encoder: str | None = "minilm"
    knn_k: list[int] = field(default_factory=lambda: list(baselines.DEFAULT_K))
    cost: CostModel = field(default_factory=CostModel)
    costs: str | None = None
    weak: str | None = None
    strong: str | None = None
    wandb_project: str | None = None


@dataclass
class Run:
    """One prediction run: its name, saved data config and the router's scores by query id."""

    name: str
    directory: Path
    data: dict[str, Any]
    candidates: list[str]
    scores: dict[str, list[float]]
    probs: dict[str, list[float]] | None = None  # the router's distribution, what `zooter route` decides on

    @classmethod
    def load(cls, directory: str | Path, name: str | None = None) -> Run:
        """Read ``config.yaml`` and ``predictions.jsonl``: the ``scores`` the metrics decided on (files
        written before zooter stored scores hold only ``probs``, which decide the same way up to ties)."""
        directory = Path(directory)
        config_path, predictions_path = directory / "config.yaml", directory / "predictions.jsonl"
        for needed in (config_path, predictions_path):
            if not needed.is_file():
                raise FileNotFoundError(f"{needed}: missing; a report reads the run directory of `zooter predict`")
        config = yaml.safe_load(config_path.read_text())
        rows = [json.loads(line) for line in predictions_path.read_text().splitlines() if line.strip()]
        if not rows:
            raise ValueError(f"{predictions_path}: no predictions")
        field = "scores" if "scores" in rows[0] else "probs"
        candidates = list(rows[0][field])

        def by_id(key: str) -> dict[str, list[float]]:
            return {
                row["id"]: [float("nan") if row[key][c] is None else row[key][c] for c in candidates] for row in rows
            }

        return cls(
            name=name or directory.parent.name,
            directory=directory,
            data=config.get("data", {}),
            candidates=candidates,
            scores=by_id(field),
            probs=by_id("probs") if "probs" in rows[0] else None,
        )

    def split_key(self) -> str:
        """What must agree between runs of one report; a synthetic table's settings with every default
        filled in, so runs saved before a generator knob existed match runs that show it at its default."""
        key = {k: self.data.get(k) for k in SPLIT_KEYS}
        if isinstance(key["synth"], dict):
            with suppress(TypeError, ValueError):  # settings this version does not know: compared as saved
                key["synth"] = asdict(SynthConfig(**key["synth"]))
        return json.dumps(key, sort_keys=True, default=str)

    def table_scores(self, table: RoutingTable, probs: bool = False) -> np.ndarray:
        """The router's scores (or, with ``probs``, its probabilities where stored, else its scores) of the
        table's rows, columns in the table's candidate order."""
        values = self.probs if probs and self.probs is not None else self.scores
        if sorted(self.candidates) != sorted(table.candidates):
            raise ValueError(f"{self.directory}: predicts over {self.candidates}, the table has {table.candidates}")
        missing = [i for i in table.ids if i not in values]
        if missing:
            raise ValueError(f"{self.directory}: no prediction for {len(missing)} test queries, e.g. {missing[0]!r}")
        columns = [self.candidates.index(c) for c in table.candidates]
        return np.array([values[i] for i in table.ids], dtype=np.float64)[:, columns]


def build_report(runs: list[Run], options: ReportOptions) -> dict[str, Any]:
    """Score every run and baseline per fold, then aggregate over folds."""
    by_fold: dict[int, dict[str, Run]] = defaultdict(dict)
    keys = {run.split_key() for run in runs}
    if len(keys) > 1:
        raise ValueError(
            "runs must share the table, split settings and eval judge (all but data.fold); got "
            + "; ".join(f"{r.directory}: {r.split_key()}" for r in runs)
        )
    for run in runs:
        fold = int(run.data.get("fold") or 0)
        if run.name in by_fold[fold]:
            raise ValueError(
                f"two runs named {run.name!r} for fold {fold}: {by_fold[fold][run.name].directory}, "
                f"{run.directory}; pass --names"
            )
        by_fold[fold][run.name] = run
    cache_dir = runs[0].data.get("cache_dir", ".zooter_cache")
    embedder = Embedder(options.knn_encoder, cache_dir) if options.knn_encoder else None
    folds = {fold: evaluate_fold(fold_runs, options, embedder) for fold, fold_runs in sorted(by_fold.items())}
    return aggregate(folds, options)


class Embedder:
    """Mean-pooled sentence embeddings for the kNN baseline, cached on disk by
    :func:`zooter.routers.encoders.cached_embeddings` (the function the kNN router uses too)."""

    def __init__(self, encoder: str, cache_dir: str | Path | None = None) -> None:
        self.encoder = encoder
        self.cache_dir = cache_dir

    def __call__(self, texts: list[str]) -> np.ndarray:
        from zooter.routers import encoders

        return encoders.cached_embeddings(list(texts), self.encoder, self.cache_dir, progress=False)


def evaluate_fold(runs: dict[str, Run], options: ReportOptions, embedder: Embedder | None) -> dict[str, Any]:
    """Every method's numbers on one fold's test split."""
    spec = SplitSpec.from_mapping(next(iter(runs.values())).data)
    tables = load_splits(spec)
    train, val, test = tables["train"], tables["val"], tables["test"]
    eval_judge = spec.eval_judge
    evals, train_evals = test.judge(eval_judge), train.judge(eval_judge)
    matrix = fold_costs(test, options.costs)  # before the baselines' work: a bad cost file or name fails at once
    if matrix is not None:
        check_pair_names(test.candidates, options.weak, options.strong)

    scores: dict[str, np.ndarray] = {name: run.table_scores(test) for name, run in runs.items()}
    scores["best single (BMA)"] = baselines.best_single(train_evals, len(test))
    scores["oracle"] = baselines.oracle(evals)
    chosen_k = None
    if options.baselines:
        scores["random"] = baselines.random_choice(len(test), len(test.candidates))
        for judge in rmr_judges(test, options.rmr_judges):
            scores[f"RMR {judge}"] = baselines.reward_model_ranking(test.judge(judge))
        scores["tag-majority"] = baselines.tag_majority(train.tags, train_evals, test.tags)
    if options.baselines and embedder is not None:
        train_emb, val_emb = embedder(train.queries), embedder(val.queries)
        chosen_k = baselines.choose_k(train_emb, train_evals, val_emb, val.judge(eval_judge), options.knn_k)
        scores["kNN"] = baselines.knn(train_emb, train_evals, embedder(test.queries), chosen_k)

    weights = {name: decision_weights(s, evals) for name, s in scores.items()}
    per_query = {name: expected_scores(w, evals) for name, w in weights.items()}
    bma = expected_scores(decision_weights(best_single_scores(train_evals), evals), evals)
    methods = {name: summarize(w, evals, bma, test.candidates) for name, w in weights.items()}

    if options.subset_field and options.subset_field not in test.fields:
        raise ValueError(
            f"subset_field {options.subset_field!r} is not a row field of {test.source}: {list(test.fields)}"
        )
    labels = [[str(v)] for v in test.fields[options.subset_field]] if options.subset_field else test.tags
    subsets = subsets_from_labels(labels, options.min_subset_size)
    subset_means = {name: {s: float(q[rows].mean()) for s, rows in subsets.items()} for name, q in per_query.items()}
    candidate_table = np.stack([candidate_means(evals[rows]) for rows in subsets.values()]) if subsets else None
    if candidate_table is not None:
        for name in methods:
            method_means = np.array([subset_means[name][s] for s in subsets])
            methods[name]["mtr"], methods[name]["uplift"] = mtr_and_uplift(method_means, candidate_table)
        mtr, uplift = candidate_mtr(candidate_table)
        candidates = {
            c: {
                "mtr": float(mtr[k]),
                "uplift": float(uplift[k]),
                "subsets": {s: float(candidate_table[j, k]) for j, s in enumerate(subsets)},
            }
            for k, c in enumerate(test.candidates)
        }
    else:
        candidates = {}

    cost_quality = None
    if matrix is not None:
        utilities = {
            name: runs[name].table_scores(test, probs=True) if name in runs else s for name, s in scores.items()
        }
        cost_quality = fold_cost_quality(
            utilities,
            evals,
            matrix.values,
            test.candidates,
            train_evals,
            float(bma.mean()),
            rmr=[name for name in scores if name.startswith("RMR ")],
            routers=list(runs),
            weak=options.weak,
            strong=options.strong,
        )
        filled = matrix.filled if test.costs is not None else 0  # only a table with per-query costs fills cells
        cost_quality.update(unit=matrix.unit, source=matrix.source, filled=filled)

    hp = next(iter(runs.values())).data
    train_judge = hp.get("train_judge", SCORES_JUDGE)
    reward_labels = targets.soft_labels(
        targets.standardize(test.judge(train_judge), hp.get("standardization", "none")), hp.get("temperature", 1.0)
    )
    entropy = targets.entropy(reward_labels)
    bins = entropy_bins(entropy, options.entropy_bins)
    shown = [*runs, f"RMR {train_judge}", "best single (BMA)", "oracle"]
    entropy_table = {
        "bins": [[float(entropy[b].min()), float(entropy[b].max())] for b in bins],
        "scores": {name: [float(per_query[name][b].mean()) for b in bins] for name in shown if name in per_query},
        "train_judge": train_judge,
    }
    return {
        "test_queries": len(test),
        "train_queries": len(train),
        "source": test.source,
        "eval_judge": eval_judge,
        "candidates_order": test.candidates,
        "knn_k": chosen_k,
        "methods": methods,
        "subsets": {"names": list(subsets), "sizes": {s: len(r) for s, r in subsets.items()}, "scores": subset_means},
        "candidates": candidates,
        "entropy": entropy_table,
        "cost_quality": cost_quality,
    }


def fold_costs(table: RoutingTable, path: str | None) -> CostMatrix | None:
    """The test split's cost matrix: the table's per-query costs and/or the cost file (None: neither)."""
    if path is None and table.costs is None:
        return None
    return cost_matrix(table, None if path is None else load_costs(path, table.candidates))


def rmr_judges(table: RoutingTable, wanted: list[str] | None) -> list[str]:
    """The judges to rank with; ``scores`` is left out where it equals a named judge."""
    if wanted is not None:
        for judge in wanted:
            table.judge(judge)
        return list(wanted)
    judges = [j for j in table.judges if j != SCORES_JUDGE]
    if SCORES_JUDGE in table.judges and not any(
        np.array_equal(table.judge(SCORES_JUDGE), table.judge(j), equal_nan=True) for j in judges
    ):
        judges.insert(0, SCORES_JUDGE)
    return judges


def _mean_std(values: list[float]) -> dict[str, Any]:
    """Mean and std over the folds where the value is defined (finite: e.g. ``gap_recovered`` is NaN on a
    fold where the oracle gains nothing over BMA); NaN when it is defined in none. ``folds`` keeps all."""
    array = np.array(values, dtype=float)
    defined = array[np.isfinite(array)]
    mean = float(defined.mean()) if defined.size else float("nan")
    std = float(defined.std(ddof=1)) if defined.size > 1 else (0.0 if defined.size else float("nan"))
    return {"mean": mean, "std": std, "folds": [float(v) for v in array]}


def aggregate(folds: dict[int, dict[str, Any]], options: ReportOptions) -> dict[str, Any]:
    """Mean ± std over folds of every method metric, subset score, and entropy-bin score."""
    first = next(iter(folds.values()))
    names = list(first["methods"])
    metric_keys = list(first["methods"][names[0]])
    methods = {
        name: {
            key: _mean_std([f["methods"][name][key] for f in folds.values() if key in f["methods"][name]])
            for key in metric_keys
        }
        for name in names
    }
    subset_names = sorted({s for f in folds.values() for s in f["subsets"]["names"]})
    subset_sizes = {s: sum(f["subsets"]["sizes"].get(s, 0) for f in folds.values()) for s in subset_names}
    subset_scores = {
        name: {
            s: _mean_std([f["subsets"]["scores"][name][s] for f in folds.values() if s in f["subsets"]["names"]])
            for s in subset_names
        }
        for name in names
    }
    candidates = {
        c: {
            key: _mean_std([f["candidates"][c][key] for f in folds.values() if c in f["candidates"]])
            for key in ("mtr", "uplift")
        }
        for c in first["candidates"]
    }
    entropy = {
        name: [
            _mean_std([f["entropy"]["scores"][name][b] for f in folds.values()])["mean"]
            for b in range(len(first["entropy"]["bins"]))
        ]
        for name in first["entropy"]["scores"]
    }
    num_candidates = len(first["candidates_order"])
    cost = options.cost
    return {
        "folds": sorted(folds),
        "source": first["source"],
        "eval_judge": first["eval_judge"],
        "candidates": first["candidates_order"],
        "test_queries": [f["test_queries"] for f in folds.values()],
        "knn_k": [f["knn_k"] for f in folds.values()],
        "methods": methods,
        "subsets": {"names": subset_names, "sizes": subset_sizes, "scores": subset_scores},
        "candidate_ranks": candidates,
        "entropy": {
            "bins": first["entropy"]["bins"],
            "train_judge": first["entropy"]["train_judge"],
            "scores": entropy,
        },
        "cost": {
            "model": asdict(cost),
            "flops_per_query": {
                "routed": cost.routed(),
                "single LLM": cost.single(),
                "RMR": cost.reward_model_ranking(num_candidates),
            },
            "rmr_over_routed": cost.reward_model_ranking(num_candidates) / cost.routed(),
        },
        "cost_quality": _aggregate_costs([f["cost_quality"] for f in folds.values()]),
        "per_fold": folds,
    }


def _aggregate_costs(folds: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    if folds[0] is None:
        return None
    out = aggregate_cost_quality(folds, _mean_std)
    out.update(unit=folds[0]["unit"], source=folds[0]["source"], filled=sum(f["filled"] for f in folds))
    for fold in folds:  # per fold, report.json keeps the numbers; the curves are averaged in `out`
        for numbers in fold["methods"].values():
            for key in CURVE_KEYS:
                numbers.pop(key, None)
    return out


def write_report(runs: list[str | Path], options: ReportOptions) -> Path:
    """Build the report and write report.json, report.md and the plots into ``options.out``."""
    names = options.names or [None] * len(runs)
    if len(names) != len(runs):
        raise ValueError(f"--names gives {len(names)} names for {len(runs)} runs")
    loaded = [Run.load(run, name) for run, name in zip(runs, names, strict=True)]
    report = build_report(loaded, options)
    report["routers"] = list(dict.fromkeys(run.name for run in loaded))
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "report.json", json.dumps(report, indent=2, default=_jsonable) + "\n")
    markdown = to_markdown(report)
    write_text_atomic(out / "report.md", markdown)
    plots = write_plots(report, out)
    if options.wandb_project:
        log_to_wandb(report, plots, options.wandb_project, out)
    print(markdown.split("## Per subset")[0].rstrip())
    print(f"\nzooter report: {out / 'report.md'}, report.json and {len(plots)} plots in {out}")
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def main(argv: list[str]) -> None:
    """``zooter report RUN [RUN ...] [--out DIR] [--names A B ...] ...``"""
    from zooter.cli_args import PlainParser

    parser = PlainParser(prog="zooter report", description=__doc__)
    parser.add_argument("runs", nargs="+", help="run directories of `zooter predict` (config.yaml + predictions.jsonl)")
    parser.add_class_arguments(ReportOptions, nested_key=None)
    args = parser.parse_args(argv)
    options = parser.instantiate_classes(args)
    runs = options.pop("runs")
    try:
        write_report(runs, ReportOptions(**{k: v for k, v in options.items() if k != "config"}))
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"zooter report: {err}")
