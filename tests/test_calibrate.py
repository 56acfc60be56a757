"""Calibration: choosing a threshold or λ on validation for a target, the calibration file, and
``zooter calibrate`` + ``zooter route --calibration`` on the session's tiny quickstart checkpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import write_rows
from zooter import Router
from zooter.calibration import (
    Calibration,
    CostWeightRule,
    PairRule,
    Target,
    file_sha256,
    rule_figures,
    write_calibration,
)
from zooter.cli import main
from zooter.eval.cost_quality import cost_weight_grid
from zooter.eval.decisions import cost_aware_choice, pair_choice, pair_scores, threshold_for_share
from zooter.runs.calibrate import Split, choose_rule, run_dir
from zooter.table.splits import SplitSpec, load_splits

# Three queries, two candidates: 0 costs 1, 1 costs 0. p0 − p1 = 0.2, 0.8, 0.1, so query 3 leaves
# candidate 0 for λ > 0.1, query 1 for λ > 0.2, query 2 for λ > 0.8 (equal utilities keep the first).
PROBS = np.array([[0.6, 0.4], [0.9, 0.1], [0.55, 0.45]])
EVALS = np.array([[1.0, 0.0], [1.0, 0.5], [0.0, 1.0]])
COSTS = np.array([1.0, 0.0])
# λ ≤ 0.1: all to 0, cost 1, quality 2/3 | (0.1, 0.2]: cost 2/3, quality 1 | (0.2, 0.8]: cost 1/3,
# quality 2/3 | > 0.8: cost 0, quality 0.5.  The best single model (candidate 0) scores 2/3.
CANDIDATES = ["big", "small"]


def split(probs: np.ndarray = PROBS, evals: np.ndarray = EVALS) -> Split:
    return Split("val", [f"q{i}" for i in range(len(probs))], probs, evals)


def first_above(grid: np.ndarray, value: float) -> float:
    return float(grid[grid > value][0])


def test_targets_parse_and_refuse_by_message() -> None:
    assert Target.parse("share=0.5") == Target("share", 0.5, "share=0.5")
    assert Target.parse("budget=3e12").slug == "budget-3e12"
    assert Target.parse("match_best_single").as_dict() == {"kind": "match_best_single", "value": None}
    with pytest.raises(ValueError, match="share must be 0 <= S <= 1"):
        Target.parse("share=1.5")
    with pytest.raises(ValueError, match="unknown target 'cost=1'"):
        Target.parse("cost=1")
    with pytest.raises(ValueError, match="'x' is not a number"):
        Target.parse("budget=x")
    with pytest.raises(ValueError, match="takes no value"):
        Target.parse("match_best_single=1")


def test_cost_weight_grid_spans_argmax_to_always_cheapest() -> None:
    grid = cost_weight_grid(np.array([4.0, 1.0, 2.0]))
    # range 3, smallest gap 1: from 1e-4/3 to 2/1, log10(6e4) = 4.78 decades at 50 a decade -> 240 points
    assert len(grid) == 1 + 240
    assert grid[0] == 0.0
    assert grid[1] == pytest.approx(1e-4 / 3)
    assert grid[-1] == pytest.approx(2.0)
    assert np.allclose(grid[2:] / grid[1:-1], grid[2] / grid[1])  # geometric
    assert cost_weight_grid(np.array([5.0, 5.0])).tolist() == [0.0]


@pytest.mark.parametrize(
    ("budget", "after", "cost", "quality"),
    [
        (0.7, 0.1, 2 / 3, 1.0),  # the best quality within 0.7
        (2 / 3, 0.1, 2 / 3, 1.0),  # a budget equal to the mean cost is within it
        (0.5, 0.2, 1 / 3, 2 / 3),  # 1/3 (2/3) beats 0 (0.5)
        (0.1, 0.8, 0.0, 0.5),
        (5.0, 0.1, 2 / 3, 1.0),  # a loose budget still takes the best quality, not the most cost
    ],
)
def test_budget_takes_the_best_quality_within_it(budget, after, cost, quality) -> None:
    rule, search = choose_rule(Target.parse(f"budget={budget}"), split(), CANDIDATES, "big", COSTS, None, None, EVALS)
    grid = cost_weight_grid(COSTS)
    assert isinstance(rule, CostWeightRule)
    assert rule.cost_weight == first_above(grid, after)  # the smallest λ of the best setting
    assert rule.costs == {"big": 1.0, "small": 0.0}
    assert search == {"cost_weights_tried": len(grid), "cost_weight_max": pytest.approx(2.0)}
    figures = rule_figures(rule.choose(PROBS, CANDIDATES), EVALS, CANDIDATES, "big", "big", COSTS)
    assert (figures["mean_cost"], figures["quality"]) == (pytest.approx(cost), pytest.approx(quality))


def test_budget_below_every_setting_names_the_cheapest_reachable() -> None:
    with pytest.raises(ValueError, match=r"budget 0\.5 per query is below every λ tried: the cheapest reaches 1 "):
        choose_rule(Target.parse("budget=0.5"), split(), CANDIDATES, "big", COSTS + 1, None, None, EVALS)


def test_match_best_single_takes_the_cheapest_rule_at_least_as_good() -> None:
    rule, _ = choose_rule(Target.parse("match_best_single"), split(), CANDIDATES, "big", COSTS, None, None, EVALS)
    assert isinstance(rule, CostWeightRule)
    assert rule.cost_weight == first_above(cost_weight_grid(COSTS), 0.2)  # cost 1/3 at quality 2/3 = BMA's
    worse = np.array([[0.0, 0.0], [1.0, 0.5], [1.0, 1.0]])  # candidate 0 alone: 2/3; no rule beats it by λ
    probs = np.array([[0.4, 0.6], [0.1, 0.9], [0.45, 0.55]])  # the router prefers 1 everywhere: 0.5
    with pytest.raises(
        ValueError, match=r"reaches the best single model's validation quality 0\.6667: the best is 0\.5"
    ):
        choose_rule(Target.parse("match_best_single"), split(probs, worse), CANDIDATES, "big", COSTS, None, None, worse)


def test_share_threshold_by_hand_with_the_cheapest_weak_by_default() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3], [0.4, 0.4, 0.2]])
    candidates = ["strong", "cheap_a", "cheap_b"]
    costs = np.array([5.0, 1.0, 1.0])
    train = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0]])  # cheap_b is the better of the two cheapest on train
    rule, search = choose_rule(Target.parse("share=0.5"), split(probs), candidates, "strong", costs, None, None, train)
    # pair scores p_strong − p_cheap_b = 0.3, −0.3, −0.2, 0.2: share 0.5 of 4 -> the 2nd largest, 0.2
    assert (rule, search) == (PairRule("cheap_b", "strong", pytest.approx(0.2)), {})
    assert rule.choose(probs, candidates).tolist() == [0, 2, 2, 0]
    named, _ = choose_rule(Target.parse("share=0.25"), split(probs), candidates, "strong", None, "cheap_a", None, train)
    assert named == PairRule("cheap_a", "strong", pytest.approx(0.2))  # 0.2, -0.1, -0.5, 0.0: the largest
    with pytest.raises(ValueError, match="a share target needs --weak"):
        choose_rule(Target.parse("share=0.5"), split(probs), candidates, "strong", None, None, None, train)
    with pytest.raises(ValueError, match="weak and strong must be two candidates, got 'strong' for both"):
        choose_rule(Target.parse("share=0.5"), split(probs), candidates, "strong", None, "strong", None, train)


def test_figures_score_an_unjudged_pick_as_the_metrics_do() -> None:
    evals = np.array([[0.0, 1.0], [0.5, np.nan]])
    figures = rule_figures(np.array([0, 1]), evals, ["a", "b"], "b", "b", np.array([2.0, 1.0]))
    # query 2's pick b is unjudged: shared by its judged candidate a (quality 0.5, cost 2); calls stay calls
    assert figures == {
        "queries": 2,
        "strong": "b",
        "strong_share": 0.5,
        "mean_cost": 2.0,
        "quality": 0.25,
        "bma_quality": 0.75,  # b on query 1 (1.0), a in its place on query 2 (0.5)
        "oracle_quality": 0.75,
        "shares": {"a": 0.5, "b": 0.5},
    }


def record(rule: dict, sha256: str = "ab" * 32, path: str = "run/checkpoints/best.ckpt") -> dict:
    return {
        "format": "zooter-calibration",
        "version": 1,
        "created": "2025-01-01T00:00:00+00:00",
        "checkpoint": {"path": path, "sha256": sha256},
        "data": {"split": {"path": "t.jsonl"}, "val_sha256": "cd" * 32},
        "target": {"kind": "share", "value": 0.5},
        "rule": rule,
        "validation": {"strong_share": 0.5},
        "test_check": None,
    }


PAIR = {"kind": "pair_threshold", "weak": "small", "strong": "big", "threshold": 0.15}
LAMBDA = {"kind": "cost_weight", "cost_weight": 0.5, "costs": {"big": 1.0, "small": 0.0}}


@pytest.mark.parametrize("rule", [PAIR, LAMBDA])
def test_calibration_file_round_trip(tmp_path, rule) -> None:
    path = write_calibration(tmp_path / "c.json", record(rule))
    loaded = Calibration.load(path)
    assert loaded.record == record(rule)
    assert loaded.rule.as_dict() == rule
    assert (loaded.checkpoint_path, loaded.checkpoint_sha256, loaded.source) == (
        "run/checkpoints/best.ckpt",
        "ab" * 32,
        path,
    )
    # the rules by hand on PROBS: pair scores p_big − p_small = 0.2, 0.8, 0.1 against 0.15; λ = 0.5 as above
    expected = [0, 0, 1] if rule is PAIR else [1, 0, 1]
    assert loaded.rule.choose(PROBS, CANDIDATES).tolist() == expected
    assert loaded.rule.choose(PROBS[:, ::-1], CANDIDATES[::-1]).tolist() == [1 - k for k in expected]


def test_a_share_of_zero_is_written_as_strict_json_and_sends_nothing_strong(tmp_path) -> None:
    never = {**PAIR, "threshold": None}  # +inf: no pair score reaches it
    path = write_calibration(tmp_path / "c.json", record(never))
    assert '"threshold": null' in path.read_text() and "Infinity" not in path.read_text()
    loaded = Calibration.load(path)
    assert loaded.rule.threshold == float("inf") and loaded.rule.as_dict() == never
    assert loaded.rule.choose(PROBS, CANDIDATES).tolist() == [CANDIDATES.index("small")] * len(PROBS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, r"calibration format version 2 is not supported \(this zooter reads version 1\)"),
        ({"format": "other"}, 'not a zooter calibration file \\(it needs "format": "zooter-calibration"\\)'),
        ({"rule": {"kind": "pair_threshold", "weak": "a"}, "checkpoint": {}},
         r"calibration file lacks \['checkpoint.path', 'checkpoint.sha256', 'rule.strong', 'rule.threshold'\]"),
        ({"rule": {"kind": "mystery"}}, "unknown rule kind 'mystery'"),
        ({"rule": {**PAIR, "threshold": "high"}}, "malformed rule"),
    ],
)  # fmt: skip
def test_calibration_file_errors_name_the_file(tmp_path, change, message) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**record(PAIR), **change}))
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: {message}"):
        Calibration.load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a zooter calibration file \\(not JSON"):
        Calibration.load(path)
    with pytest.raises(FileNotFoundError, match="no such calibration file"):
        Calibration.load(tmp_path / "absent.json")


def test_run_dir_of_a_checkpoint() -> None:
    assert run_dir(Path("/r/run/checkpoints/best.ckpt")) == Path("/r/run")
    assert run_dir(Path("/r/elsewhere/best.ckpt")) == Path("/r/elsewhere")


# ---- end to end on the session's tiny quickstart checkpoint (synthetic data, 24 val / 24 test queries)


@pytest.fixture(scope="module")
def calibrated(quickstart_run, tmp_path_factory) -> tuple[Path, Path, Path]:
    """``zooter calibrate --target share=0.5`` with a cost file: (checkpoint, cost file, calibration file)."""
    tmp = tmp_path_factory.mktemp("calibrate")
    costs = tmp / "costs.yaml"
    sizes = {"generalist": 70, "coder": 7, "mathematician": 13, "writer": 7, "scientist": 30, "chatty": 3}
    costs.write_text(yaml.safe_dump({"candidates": {c: {"params_b": b} for c, b in sizes.items()}}))
    out = tmp / "share.json"
    main(["calibrate", "--ckpt_path", str(quickstart_run.last), "--target", "share=0.5", "--costs", str(costs),
          "--out", str(out)])  # fmt: skip
    return quickstart_run.last, costs, out


def test_calibrate_chooses_on_validation_and_route_applies_it(calibrated, quickstart_run, tmp_path, capsys) -> None:
    ckpt, _, path = calibrated
    calibration = Calibration.load(path)
    router = Router.from_checkpoint(ckpt)
    assert calibration.rule == PairRule("chatty", router.best_single, calibration.rule.threshold)  # chatty: 3B
    assert calibration.checkpoint_sha256 == file_sha256(ckpt)
    # the threshold again from the run's own validation split
    config = yaml.safe_load((quickstart_run.run_dir / "config.yaml").read_text())
    val = load_splits(SplitSpec.from_mapping(config["data"]))["val"].with_candidates(router.candidates)
    weak, strong = router.candidates.index("chatty"), router.candidates.index(router.best_single)
    pair = pair_scores(router.probabilities(val.queries), weak, strong)
    assert calibration.rule.threshold == threshold_for_share(pair, 0.5)
    assert calibration.record["validation"]["strong_share"] == (pair >= calibration.rule.threshold).mean() >= 0.5
    assert calibration.record["validation"]["queries"] == calibration.record["test_check"]["queries"] == 24
    assert calibration.record["target"] == {"kind": "share", "value": 0.5}
    assert calibration.record["data"]["split"]["eval_judge"] == "true"

    queries = ["integrate x squared", "write a poem about rain", "fix this python bug", "what is DNA"]
    expected = pair_choice(router.probabilities(queries), weak, strong, calibration.rule.threshold)
    decisions = router.route(queries, calibration=path)
    assert [d.candidate for d in decisions] == [router.candidates[k] for k in expected]
    assert not any(d.fallback for d in decisions)
    capsys.readouterr()
    main(["route", "--ckpt_path", str(ckpt), "--calibration", str(path), *queries])
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == [d.candidate for d in decisions]


def test_a_share_set_on_unlabeled_queries_sends_that_share_of_them_strong(calibrated, tmp_path, capsys) -> None:
    ckpt, costs, _ = calibrated
    queries = [f"{verb} {thing}" for verb in ("solve", "write", "explain", "debug") for thing in ("x", "a poem")]
    write_rows(tmp_path / "traffic.jsonl", [{"id": f"t{i}", "query": q} for i, q in enumerate(queries)])
    out = tmp_path / "traffic.json"
    main(["calibrate", "--ckpt_path", str(ckpt), "--target", "share=0.25", "--costs", str(costs),
          "--queries", str(tmp_path / "traffic.jsonl"), "--out", str(out)])  # fmt: skip
    calibration = Calibration.load(out)
    router = Router.from_checkpoint(ckpt)
    pair = pair_scores(router.probabilities(queries), *calibration.rule.columns(router.candidates))
    assert calibration.rule.threshold == threshold_for_share(pair, 0.25)  # the 2nd largest of the 8
    strong = [d.candidate == calibration.rule.strong for d in router.route(queries, calibration=out)]
    assert sum(strong) == (pair >= calibration.rule.threshold).sum() >= 2
    assert calibration.record["data"]["share_queries"]["queries"] == 8
    with pytest.raises(SystemExit) as done:
        main(["calibrate", "--ckpt_path", str(ckpt), "--target", "match_best_single", "--costs", str(costs),
              "--queries", str(tmp_path / "traffic.jsonl")])  # fmt: skip
    assert done.value.code == 2 and "--queries applies to share targets only" in capsys.readouterr().err


def test_cost_weight_calibration_routes_with_its_costs(calibrated) -> None:
    ckpt, _, _ = calibrated
    router = Router.from_checkpoint(ckpt)
    costs = {c: float(i) for i, c in enumerate(router.candidates)}
    calibration = Calibration.from_record(record({**LAMBDA, "costs": costs, "cost_weight": 0.05}, file_sha256(ckpt)))
    queries = ["integrate x squared", "write a poem about rain", "fix this python bug"]
    expected, _ = cost_aware_choice(router.probabilities(queries), np.array(list(costs.values())), 0.05)
    calibrated_router = Router.from_checkpoint(ckpt, calibration=calibration)
    assert [d.candidate for d in calibrated_router.route(queries)] == [router.candidates[k] for k in expected]
    with pytest.raises(ValueError, match="sets the routing rule: give no threshold, costs or cost_weight"):
        calibrated_router.route(queries, threshold=0.3)


def test_calibration_of_another_checkpoint_is_refused(calibrated, tmp_path, capsys) -> None:
    ckpt, _, path = calibrated
    other = record(PAIR, sha256="0" * 64, path="elsewhere/other.ckpt")
    bad = write_calibration(tmp_path / "bad.json", {**other, "rule": Calibration.load(path).rule.as_dict()})
    message = re.escape(
        f"calibration {bad} was made for checkpoint elsewhere/other.ckpt (sha256 000000000000…), not for {ckpt}"
    )
    with pytest.raises(ValueError, match=message):
        Router.from_checkpoint(ckpt, calibration=bad)
    with pytest.raises(SystemExit, match=message):
        main(["route", "--ckpt_path", str(ckpt), "--calibration", str(bad), "a query"])
    with pytest.raises(SystemExit) as done:
        main(["route", "--ckpt_path", str(ckpt), "--calibration", str(path), "--threshold", "0.3", "q"])
    assert done.value.code == 2
    assert "--calibration sets the routing rule: leave out --threshold" in capsys.readouterr().err


def test_calibrate_command_errors(calibrated, tmp_path, capsys) -> None:
    ckpt, costs, _ = calibrated
    cases = [
        (["--target", "budget=1"], 2, "--target budget=1 needs --costs"),
        (["--target", "share=2"], 2, "--target: target 'share=2': share must be 0 <= S <= 1"),
        (["--target", "share=0.5"], 1, "a share target needs --weak"),
        (["--target", "budget=1", "--costs", str(costs)], 1, "budget 1 per query is below every λ tried"),
    ]
    for extra, code, message in cases:
        with pytest.raises(SystemExit) as done:
            main(["calibrate", "--ckpt_path", str(ckpt), "--out", str(tmp_path / "c.json"), *extra])
        assert done.value.code == code
        assert message in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()
    with pytest.raises(SystemExit) as done:
        main(["calibrate", "--ckpt_path", str(tmp_path / "gone.ckpt"), "--target", "share=0.5", "--weak", "a"])
    assert done.value.code == 1 and f"{tmp_path / 'gone.ckpt'}: no such checkpoint" in capsys.readouterr().err
