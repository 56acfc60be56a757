"""``zooter calibrate``: choose a checkpoint's routing rule on its run's validation split for a target.

    zooter calibrate --ckpt_path RUN/checkpoints/best.ckpt --target share=0.5 [--weak A] [--strong B]
    zooter calibrate --ckpt_path C --target budget=2e13 --costs configs/costs/dcrouter.yaml
    zooter calibrate --ckpt_path C --target match_best_single --costs configs/costs/dcrouter.yaml
    zooter calibrate --ckpt_path C --target share=0.5 --weak A --queries traffic_sample.jsonl

The run's splits are rebuilt from its saved ``config.yaml`` (``data:``; default: the one next to the
checkpoint's ``checkpoints/`` folder), the router's probabilities on the validation split come from
:meth:`zooter.Router.probabilities`, and decisions are scored with the run's eval judge. Targets and
rules are in :mod:`zooter.calibration`: ``share=S`` (two-model rule; strong default: the checkpoint's
best single model, weak default: the cheapest candidate by ``--costs``, the better on train among
equally cheap), ``budget=B`` (mean cost per query in the cost file's unit) and ``match_best_single``
(both λ rules, need ``--costs``). A share needs no labels: with ``--queries`` (rows with ``id`` and
``query``, e.g. a sample of the traffic the router will serve) its threshold is set on those queries
instead of the validation split, for when traffic differs from the training data (the validation
figures then show how far the validation share moves). The chosen rule is then run on the test split as a check (never
used to choose), target and achieved figures are printed for both splits, and the calibration file
is written (default ``RUN/calibration-<checkpoint stem>-<target>.json``) for ``zooter route
--calibration`` and ``Router.from_checkpoint(..., calibration=...)``.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from zooter.calibration import (
    FORMAT,
    VERSION,
    CostWeightRule,
    PairRule,
    Rule,
    Target,
    choose_for_budget,
    choose_to_match,
    file_sha256,
    rule_figures,
    single_quality,
    split_sha256,
    write_calibration,
)
from zooter.eval.cost_quality import cheapest_candidate, cost_weight_grid

# Not typing.TYPE_CHECKING: jsonargparse may execute those blocks, which would load torch for --help.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from zooter.inference import Router
    from zooter.table.schema import RoutingTable


@dataclasses.dataclass
class Split:
    """One split as the router sees it: probabilities and eval scores in the router's candidate order."""

    name: str
    ids: list[str]
    probs: np.ndarray
    evals: np.ndarray


def run_dir(ckpt_path: Path) -> Path:
    """The run directory of ``<run>/checkpoints/<ckpt>`` (else the checkpoint's own folder)."""
    folder = ckpt_path.resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def run_config(ckpt_path: Path, config: Path | None) -> tuple[Path, dict[str, Any]]:
    """The run's saved config (``config``, default ``<run>/config.yaml``) and its ``data:`` section."""
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"{ckpt_path}: no such checkpoint")
    path = config if config is not None else run_dir(ckpt_path) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no run config; give --config, the config.yaml saved by the `zooter fit` that wrote {ckpt_path}"
        )
    data = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("data")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: no 'data:' section to rebuild the run's splits from")
    return path, data


def router_split(name: str, table: RoutingTable, router: Router, eval_judge: str) -> Split:
    """The split's rows with the router's probabilities, columns in the router's candidate order."""
    if sorted(table.candidates) != sorted(router.candidates):
        raise ValueError(
            f"the run's {name} split ({table.source}) has candidates {table.candidates}, "
            f"the checkpoint routes over {router.candidates}"
        )
    table = table.with_candidates(router.candidates)
    return Split(name, table.ids, router.probabilities(table.queries), table.judge(eval_judge))


def choose_rule(
    target: Target,
    val: Split,
    candidates: list[str],
    bma: str,
    costs: np.ndarray | None,
    weak: str | None,
    strong: str | None,
    train_evals: np.ndarray,
    share_probs: np.ndarray | None = None,
) -> tuple[Rule, dict[str, Any]]:
    """The rule for ``target`` chosen on ``val`` (a share: on ``share_probs`` when given, the router's
    probabilities on unlabeled queries), and what the search tried (see :mod:`zooter.calibration`)."""
    if target.kind == "share":
        strong = strong or bma
        if weak is None:
            if costs is None:
                raise ValueError("a share target needs --weak (the cheap candidate), or --costs to take the cheapest")
            weak = cheapest_candidate(costs, train_evals, candidates)
        probs = val.probs if share_probs is None else share_probs
        rule = PairRule.for_share(probs, candidates, weak, strong, float(target.value or 0.0))
        return rule, {}
    from zooter.eval.cost_quality import decision_curve

    assert costs is not None  # main checks
    grid = cost_weight_grid(costs)
    curve = decision_curve(val.probs, val.evals, costs, cost_weights=grid)
    if target.kind == "budget":
        index = choose_for_budget(curve, float(target.value or 0.0))
    else:
        index = choose_to_match(curve, single_quality(val.evals, candidates.index(bma)))
    search = {"cost_weights_tried": len(grid), "cost_weight_max": float(grid[-1])}
    return CostWeightRule(float(grid[index]), dict(zip(candidates, map(float, costs), strict=True))), search


def print_figures(target: Target, rule: Rule, val: dict[str, Any], test: dict[str, Any] | None, bma: str) -> None:
    """Target against achieved, one column per split (``test`` None: the run has no test split)."""
    if isinstance(rule, PairRule):
        print(f"rule: {rule.strong} where p_strong - p_weak >= {rule.threshold:.6g}, else {rule.weak}")
    else:
        print(f"rule: argmax p_i - λ·cost_i with λ = {rule.cost_weight:.6g}")
    wanted = {
        "strong_share": f"{target.value:.3f}" if target.kind == "share" else "",
        "mean_cost": f"<= {target.value:.4g}" if target.kind == "budget" else "",
        "quality": f">= val BMA {val['bma_quality']:.4f}" if target.kind == "match_best_single" else "",
    }
    splits = [("val", val)] + ([("test", test)] if test is not None else [])
    labels = {
        "strong_share": f"share to {val['strong']}",
        "mean_cost": "mean cost / query",
        "quality": "quality",
        "bma_quality": f"BMA ({bma})",
        "oracle_quality": "oracle",
    }
    width = max(map(len, labels.values())) + 2
    heads = [f"{name} ({f['queries']})" for name, f in splits]
    print(f"{'':<{width}}{'target':>22}" + "".join(f"{head:>14}" for head in heads))
    for key, label in labels.items():
        values = ["-" if f[key] is None else f"{f[key]:.4g}" for _, f in splits]
        print(f"{label:<{width}}{wanted.get(key, ''):>22}" + "".join(f"{v:>14}" for v in values))


def main(argv: list[str]) -> None:
    """``zooter calibrate --ckpt_path C --target share=S|budget=B|match_best_single [...]``"""
    from zooter.cli_args import PlainParser
    from zooter.errors import UsageError

    parser = PlainParser(prog="zooter calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", type=Path, required=True, help="a checkpoint written by zooter fit")
    parser.add_argument("--target", type=str, required=True, help="share=S, budget=B or match_best_single")
    parser.add_argument("--weak", type=str | None, default=None, help="share: the cheap candidate")
    parser.add_argument("--strong", type=str | None, default=None, help="share: the strong candidate (default: BMA)")
    parser.add_argument("--costs", type=Path | None, default=None, help="a cost file (configs/costs/*.yaml)")
    parser.add_argument(
        "--queries", type=Path | None, default=None, help="share: set the threshold on these queries (id, query rows)"
    )
    parser.add_argument("--config", type=Path | None, default=None, help="the run's config.yaml (default: beside)")
    parser.add_argument("--out", type=Path | None, default=None, help="the calibration file to write")
    parser.add_argument("--device", type=str, default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args(argv)
    try:
        target = Target.parse(args.target)
    except ValueError as err:
        raise UsageError(f"--target: {err}") from None
    if target.kind != "share" and args.costs is None:
        raise UsageError(f"--target {target.text} needs --costs (a cost file, e.g. configs/costs/<pool>.yaml)")
    if target.kind != "share" and (args.weak or args.strong):
        raise UsageError("--weak and --strong apply to share targets only")
    if target.kind != "share" and args.queries is not None:
        raise UsageError("--queries applies to share targets only (the λ targets need scored validation queries)")
    if args.weak is not None and args.weak == args.strong:
        raise UsageError(f"--weak and --strong must be two candidates, got {args.weak!r} for both")
    calibrate(target, args)


def calibrate(target: Target, args: Any) -> Path:
    """Choose on validation, check on test, write and print; returns the calibration file's path."""
    from zooter.inference import Router
    from zooter.pipeline.journal import read_query_rows
    from zooter.table.costs import load_costs
    from zooter.table.splits import SplitSpec, load_splits

    config_path, data = run_config(args.ckpt_path, args.config)
    spec = SplitSpec.from_mapping(data)
    tables = load_splits(spec)
    router = Router.from_checkpoint(args.ckpt_path, device=args.device, batch_size=args.batch_size)
    candidates, bma = router.candidates, router.best_single
    if bma is None:
        raise ValueError(f"{args.ckpt_path}: the checkpoint names no best single model (needed as reference)")
    costs = None if args.costs is None else load_costs(args.costs, candidates).per_query
    val = router_split("val", tables["val"], router, spec.eval_judge)
    train_evals = tables["train"].with_candidates(candidates).judge(spec.eval_judge)
    sample = None if args.queries is None else read_query_rows(args.queries)
    share_probs = None if sample is None else router.probabilities([row["query"] for row in sample])
    rule, search = choose_rule(target, val, candidates, bma, costs, args.weak, args.strong, train_evals, share_probs)
    strong = rule.strong if isinstance(rule, PairRule) else bma

    def figures_of(split: Split) -> dict[str, Any]:
        return rule_figures(rule.choose(split.probs, candidates), split.evals, candidates, strong, bma, costs)

    validation = {**figures_of(val), **search}
    test = figures_of(router_split("test", tables["test"], router, spec.eval_judge)) if "test" in tables else None
    record = {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": {"path": str(args.ckpt_path.resolve()), "sha256": file_sha256(args.ckpt_path)},
        "data": {
            "config": str(config_path.resolve()),
            "split": dataclasses.asdict(spec),
            "eval_judge": spec.eval_judge,
            "val_sha256": split_sha256(val.ids, candidates, val.evals),
            "share_queries": None
            if sample is None
            else {"path": str(args.queries.resolve()), "sha256": file_sha256(args.queries), "queries": len(sample)},
        },
        "target": target.as_dict(),
        "rule": rule.as_dict(),
        "validation": validation,
        "test_check": test,
    }
    out = args.out or run_dir(args.ckpt_path) / f"calibration-{args.ckpt_path.stem}-{target.slug}.json"
    chosen_on = f"{len(val.ids)} validation queries" if sample is None else f"{len(sample)} queries of {args.queries}"
    print(f"zooter calibrate: target {target.text} on {chosen_on} (eval judge {spec.eval_judge})")
    print_figures(target, rule, validation, test, bma)
    path = write_calibration(out, record)
    print(f"zooter calibrate: wrote {path}")
    return path
