"""Cost–quality numbers on hand-made points (values derived by hand in the comments), and cost files."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from conftest import REPO
from zooter.eval.cost import CostModel
from zooter.eval.cost_quality import (
    aiq,
    apgr,
    cost_to_reach,
    cpt,
    decision_curve,
    pair_curve,
    pareto_frontier,
    random_mixture_line,
    upper_hull,
)
from zooter.eval.decisions import cost_aware_choice, pair_choice, pair_scores, threshold_for_share
from zooter.table.costs import INPUT_TOKENS, OUTPUT_TOKENS, load_costs
from zooter.table.schema import TableError

# Three points on a concave curve plus one dominated point (index 3).
COSTS = [0.0, 1.0, 2.0, 1.5]
QUALS = [0.0, 1.0, 1.5, 0.5]


def test_frontier_hull_and_aiq_of_three_points_and_a_dominated_one():
    # (1.5, 0.5) costs more than (1, 1) and gives less: dominated. Frontier by cost: 0, 1, 2.
    np.testing.assert_array_equal(pareto_frontier(COSTS, QUALS), [0, 1, 2])
    # Chord (0,0)-(2,1.5) at cost 1 is 0.75 < 1, so (1,1) is a vertex; (1.5,0.5) lies below 1.25.
    hx, hy = upper_hull(COSTS, QUALS)
    np.testing.assert_allclose(hx, [0, 1, 2])
    np.testing.assert_allclose(hy, [0, 1, 1.5])
    # Area: 0..1 (0+1)/2 = 0.5, 1..2 (1+1.5)/2 = 1.25; total 1.75 over the range 2 -> 0.875.
    assert aiq(COSTS, QUALS) == pytest.approx(0.875)


def test_hull_skips_a_point_under_a_chord_and_stays_flat_after_the_best():
    costs, quals = [0.0, 1.0, 2.0, 3.0], [0.0, 0.2, 1.0, 0.8]
    # (1, 0.2) is not dominated, so it is on the frontier; (3, 0.8) is dominated by (2, 1).
    np.testing.assert_array_equal(pareto_frontier(costs, quals), [0, 1, 2])
    # Chord (0,0)-(2,1) at cost 1 is 0.5 > 0.2: the hull skips (1, 0.2); after (2, 1) it is flat to cost 3.
    hx, hy = upper_hull(costs, quals)
    np.testing.assert_allclose(hx, [0, 2, 3])
    np.testing.assert_allclose(hy, [0, 1, 1])
    # Area: 0..2 (0+1)/2*2 = 1, 2..3 flat 1 = 1; total 2 over 3 (keeping (1,0.2) would give 1.7/3).
    assert aiq(costs, quals) == pytest.approx(2 / 3)
    # Range (1, 4): hull at 1 = 0.5; 1..2 (0.5+1)/2 = 0.75, 2..4 flat 1 = 2; total 2.75 over 3.
    assert aiq(costs, quals, cost_range=(1.0, 4.0)) == pytest.approx(2.75 / 3)


def test_equal_costs_keep_the_best_quality_and_identical_points_count_once():
    # At cost 1 only (1, 0.9) counts; hull (0,0)-(1,0.9); AIQ = 0.45. The duplicate of index 1 is dropped.
    costs, quals = [0.0, 1.0, 1.0, 1.0], [0.0, 0.3, 0.9, 0.3]
    np.testing.assert_array_equal(pareto_frontier(costs, quals), [0, 2])
    np.testing.assert_allclose(upper_hull(costs, quals)[1], [0.0, 0.9])
    assert aiq(costs, quals) == pytest.approx(0.45)
    np.testing.assert_array_equal(pareto_frontier([1.0, 1.0], [0.5, 0.5]), [0])


def test_single_point_and_bad_inputs():
    # One point: one vertex, and AIQ over a zero-width range is the point's quality (the limit of the mean).
    hx, hy = upper_hull([2.0], [0.7])
    assert hx.tolist() == [2.0] and hy.tolist() == [0.7]
    assert aiq([2.0], [0.7]) == pytest.approx(0.7)
    np.testing.assert_array_equal(pareto_frontier([2.0], [0.7]), [0])
    with pytest.raises(ValueError, match=r"below the cheapest point \(0.0\)"):
        aiq(COSTS, QUALS, cost_range=(-1.0, 1.0))
    with pytest.raises(ValueError, match="is reversed"):
        aiq(COSTS, QUALS, cost_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="differ in length: 2 vs 1"):
        pareto_frontier([0.0, 1.0], [0.5])
    with pytest.raises(ValueError, match="no points"):
        upper_hull([], [])
    with pytest.raises(ValueError, match="must be finite"):
        aiq([0.0, 1.0], [0.5, math.nan])


def test_random_mixture_line_is_linear_and_its_aiq_is_the_mean():
    costs, quals = random_mixture_line(1.0, 0.5, 3.0, 0.9, n=3)
    np.testing.assert_allclose(costs, [1, 2, 3])
    np.testing.assert_allclose(quals, [0.5, 0.7, 0.9])
    assert aiq(costs, quals) == pytest.approx(0.7)  # a straight hull from 0.5 to 0.9: mean 0.7
    with pytest.raises(ValueError, match="at least 2"):
        random_mixture_line(1.0, 0.5, 3.0, 0.9, n=1)


WEAK, STRONG = 0.4, 0.8  # gap 0.4: PGR = (q - 0.4) / 0.4


def test_apgr_of_the_straight_line_is_one_half():
    # PGR from (0,0) to (1,1) in a straight line (random routing between the two): area 0.5.
    assert apgr([0.0, 0.5, 1.0], [0.4, 0.6, 0.8], WEAK, STRONG) == pytest.approx(0.5)
    # No points inside: the curve is its two ends, the same line.
    assert apgr([0.0], [0.4], WEAK, STRONG) == pytest.approx(0.5)


def test_cpt_interpolates_where_pgr_crosses_the_target_and_apgr_adds_the_trapezoids():
    # q 0.5 at share 0.2 -> PGR 0.25; q 0.7 at share 0.6 -> PGR 0.75; ends (0,0) and (1,1) added.
    shares, quals = [0.6, 0.2], [0.7, 0.5]  # unsorted on purpose
    # PGR 0.5 is halfway from 0.25 to 0.75: share 0.2 + 0.5 * 0.4 = 0.4.
    assert cpt(shares, quals, WEAK, STRONG, 0.5) == pytest.approx(0.4)
    # PGR 0.8 on the last segment (0.6, 0.75)-(1, 1): 0.6 + (0.05 / 0.25) * 0.4 = 0.68.
    assert cpt(shares, quals, WEAK, STRONG, 0.8) == pytest.approx(0.68)
    # Target 0 is met at share 0 (all weak).
    assert cpt(shares, quals, WEAK, STRONG, 0.0) == 0.0
    # 0..0.2: 0.125 * 0.2 = 0.025; 0.2..0.6: 0.5 * 0.4 = 0.2; 0.6..1: 0.875 * 0.4 = 0.35; total 0.575.
    assert apgr(shares, quals, WEAK, STRONG) == pytest.approx(0.575)


def test_pgr_is_not_clipped_and_an_unreached_target_is_nan():
    # q 1.0 at share 0.5 -> PGR 1.5; 0..0.5: 0.75 * 0.5 = 0.375; 0.5..1: 1.25 * 0.5 = 0.625; APGR 1.0
    # (clipping PGR at 1 would give 0.75).
    assert apgr([0.5], [1.0], WEAK, STRONG) == pytest.approx(1.0)
    # Its own point at share 1 with PGR 0.6 (q 0.64) replaces the (1, 1) end: CPT(50%) = 0.5 / 0.6, CPT(80%) NaN.
    assert cpt([1.0], [0.64], WEAK, STRONG, 0.5) == pytest.approx(0.5 / 0.6)
    assert math.isnan(cpt([1.0], [0.64], WEAK, STRONG, 0.8))


def test_equal_weak_and_strong_give_nan_and_bad_shares_raise():
    assert math.isnan(apgr([0.5], [0.6], 0.5, 0.5))
    assert math.isnan(cpt([0.5], [0.6], 0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\], got \[1.5\]"):
        apgr([0.2, 1.5], [0.5, 0.6], WEAK, STRONG)


# Cost files.

DCROUTER = {
    "codegemma-7b": 7,
    "gemma-2-9b-it": 9,
    "llama-3.1-8b-instruct": 8,
    "llama-3.1-nemotron-51b-instruct": 51,
    "llama-3.3-nemotron-super-49b-v1": 49,
    "llama3-chatqa-1.5-70b": 70,
    "llama3-chatqa-1.5-8b": 8,
    "mistral-7b-instruct-v0.3": 7,
    "qwen2.5-7b-instruct": 7,
}


def test_dcrouter_costs_are_the_flops_proxy_of_the_nominal_sizes():
    costs = load_costs(REPO / "configs/costs/dcrouter.yaml", candidates=sorted(DCROUTER))
    assert costs.unit == "flops" and costs.candidates == sorted(DCROUTER)
    # 2 * params * (100 + 400) tokens, e.g. 2 * 7e9 * 500 = 7e12 for codegemma-7b.
    assert costs.as_dict() == {name: pytest.approx(2 * b * 1e9 * 500) for name, b in DCROUTER.items()}
    assert costs.as_dict()["codegemma-7b"] == pytest.approx(7e12)
    # The same formula and defaults as zooter.eval.cost.CostModel.single.
    assert (CostModel.prompt_tokens, CostModel.response_tokens) == (INPUT_TOKENS, OUTPUT_TOKENS)
    assert costs.as_dict()["llama3-chatqa-1.5-70b"] == pytest.approx(CostModel(llm_params=70e9).single())


def test_prices_round_trip_through_yaml_and_json(tmp_path):
    content = {
        "candidates": {
            "a": {"price_in_per_mtok": 1.0, "price_out_per_mtok": 3.0},
            "b": {"price_in_per_mtok": 0.5, "price_out_per_mtok": 1.0, "mean_output_tokens": 200, "params_b": 7},
        }
    }
    (tmp_path / "c.json").write_text(json.dumps(content))
    (tmp_path / "c.yaml").write_text(
        "candidates:\n  a: {price_in_per_mtok: 1.0, price_out_per_mtok: 3.0}\n"
        "  b: {price_in_per_mtok: 0.5, price_out_per_mtok: 1.0, mean_output_tokens: 200, params_b: 7}\n"
    )
    for name in ("c.json", "c.yaml"):
        costs = load_costs(tmp_path / name, candidates=["b", "a"], input_tokens=1000, output_tokens=500)
        assert costs.unit == "price" and costs.candidates == ["b", "a"]
        # b: (1000 * 0.5 + 200 * 1.0) / 1e6 = 7e-4; a: (1000 * 1 + 500 * 3) / 1e6 = 2.5e-3.
        np.testing.assert_allclose(costs.per_query, [7e-4, 2.5e-3])
    assert load_costs(tmp_path / "c.json").candidates == ["a", "b"]  # default: the file's order


def _file(a: str, b: str | None = "{params_b: 1}") -> str:
    """A cost file with candidate a's entry and (unless None) candidate b's."""
    return f"candidates:\n  a: {a}\n" + (f"  b: {b}\n" if b else "")


NUMBER = "field 'params_b': expected a finite number >= 0, got"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_file("{params_b: 7}") + "  x: {params_b: 1}\n", "candidate 'x' is not in the pool ['a', 'b']"),
        (_file("{params_b: 7}", "null") + "  bb: {params_b: 1}\n", "candidate 'bb' is not in the pool"),
        (_file("{params_b: 7}", None) + "  bb: {params_b: 1}\n", "(did you mean 'b'?)"),
        (_file("{params_b: 7}", None), "no cost for candidate(s) ['b']"),
        (_file("{params_b: -7}"), f"candidate 'a': {NUMBER} -7"),
        (_file("{params_b: seven}"), f"candidate 'a': {NUMBER} 'seven'"),
        (_file("{params_b: true}"), f"candidate 'a': {NUMBER} True"),
        (_file("{params_b: .nan}"), f"candidate 'a': {NUMBER} nan"),
        (_file("{param_b: 7}"), "candidate 'a': unknown field 'param_b' (did you mean 'params_b'?)"),
        (_file("{price_in_per_mtok: 1}"), "candidate 'a': field 'price_out_per_mtok' missing"),
        (_file("{mean_output_tokens: 9}"), "candidate 'a': no cost"),
        (_file("{price_in_per_mtok: 1, price_out_per_mtok: 2}"), "costs mix units: ['b'] have no prices and ['a'] no"),
        (_file("7"), "candidate 'a': expected a mapping"),
        (_file("{params_b: 7}", "null"), "candidate 'b': expected a mapping"),
        ("models:\n  a: {params_b: 7}\n", "expected a mapping 'candidates:"),
        ("candidates: [a, b\n", "not valid YAML"),
    ],
)
def test_cost_file_errors_name_the_file_candidate_and_field(tmp_path, text, message):
    path = tmp_path / "costs.yaml"
    path.write_text(text)
    with pytest.raises(TableError, match=re.escape(f"{path}: ") + ".*" + re.escape(message)):
        load_costs(path, candidates=["a", "b"])


def test_missing_cost_file_is_named(tmp_path):
    with pytest.raises(TableError, match=re.escape(f"{tmp_path / 'none.yaml'}: no such cost file")):
        load_costs(tmp_path / "none.yaml")


@pytest.mark.parametrize("path", sorted((REPO / "configs/costs").glob("*")), ids=lambda p: p.name)
def test_every_shipped_cost_file_loads(path):
    costs = load_costs(path)
    assert len(costs.candidates) > 0 and (costs.per_query > 0).all()


# Decisions: 4 queries x 2 candidates, 0 = strong (cost 1.0), 1 = cheap (cost 0.1); top p 0.9, 0.6, 0.7, 0.55.
PROBS = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.55, 0.45]])
EVALS = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [1.0, 0.2]])
PRICES = np.array([1.0, 0.1])


def test_cost_aware_choice_trades_probability_against_cost_and_falls_back_below_the_threshold():
    # λ = 0: argmax [0, 0, 1, 0]. λ = 0.5: p0 - p1 - 0.5 * 0.9 = 0.35, -0.25, -0.85, -0.35 -> [0, 1, 1, 1].
    choice, fell_back = cost_aware_choice(PROBS)
    assert choice.tolist() == [0, 0, 1, 0] and not fell_back.any()
    assert cost_aware_choice(PROBS, PRICES, 0.5)[0].tolist() == [0, 1, 1, 1]
    # Threshold 0.65: rows 1 (0.6) and 3 (0.55) go to the fallback; at 0.6, row 1 stays (strictly below only).
    choice, fell_back = cost_aware_choice(PROBS, threshold=0.65, fallback=1)
    assert choice.tolist() == [0, 1, 1, 1] and fell_back.tolist() == [False, True, False, True]
    assert cost_aware_choice(PROBS, threshold=0.6, fallback=1)[1].tolist() == [False, False, False, True]
    with pytest.raises(ValueError, match="needs a fallback"):
        cost_aware_choice(PROBS, threshold=0.5)
    with pytest.raises(ValueError, match="fallback index 2 is out of range"):
        cost_aware_choice(PROBS, threshold=0.5, fallback=2)
    with pytest.raises(ValueError, match=r"cost_weight=0\.5 needs costs"):
        cost_aware_choice(PROBS, cost_weight=0.5)
    with pytest.raises(ValueError, match="costs must be"):
        cost_aware_choice(PROBS, np.ones(3), 0.5)


def test_decision_curve_over_cost_weights_by_hand():
    curve = decision_curve(PROBS, EVALS, PRICES, cost_weights=[0.0, 0.5, 1.0])
    assert curve.parameter == "cost_weight" and curve.values.tolist() == [0.0, 0.5, 1.0]
    # λ = 0, argmax [0, 0, 1, 0]: quality (1 + 0.5 + 1 + 1) / 4 = 0.875, cost (1 + 1 + 0.1 + 1) / 4 = 0.775.
    # λ = 0.5, [0, 1, 1, 1]: quality (1 + 0.5 + 1 + 0.2) / 4 = 0.675, cost (1 + 0.3) / 4 = 0.325.
    # λ = 1: row 0's 0.9 - 0.1 = 0.8 < 0.9 * 1, so every query goes cheap: quality (0 + 0.5 + 1 + 0.2) / 4
    # = 0.425, cost 0.1.
    np.testing.assert_allclose(curve.mean_quality, [0.875, 0.675, 0.425])
    np.testing.assert_allclose(curve.mean_cost, [0.775, 0.325, 0.1])
    np.testing.assert_allclose(curve.shares, [[0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])
    np.testing.assert_allclose(curve.fallback_share, [0, 0, 0])
    # Per-query costs [queries, candidates] give the same numbers when every row is the same.
    same = decision_curve(PROBS, EVALS, np.tile(PRICES, (4, 1)), cost_weights=[0.0, 0.5, 1.0])
    np.testing.assert_allclose(same.mean_cost, curve.mean_cost)


def test_decision_curve_over_thresholds_sends_the_rows_below_to_the_fallback():
    # To the cheap candidate (1): threshold 0 -> argmax (0.875, 0.775); 0.6 -> row 3 only, [0, 0, 1, 1]:
    # quality (1 + 0.5 + 1 + 0.2) / 4 = 0.675, cost (1 + 1 + 0.1 + 0.1) / 4 = 0.55; 0.65 -> rows 1 and 3,
    # [0, 1, 1, 1]: 0.675 and 0.325.
    curve = decision_curve(PROBS, EVALS, PRICES, thresholds=[0.0, 0.6, 0.65], fallback=1)
    assert curve.parameter == "threshold"
    np.testing.assert_allclose(curve.fallback_share, [0.0, 0.25, 0.5])
    np.testing.assert_allclose(curve.mean_quality, [0.875, 0.675, 0.675])
    np.testing.assert_allclose(curve.mean_cost, [0.775, 0.55, 0.325])
    np.testing.assert_allclose(curve.shares[1], [0.5, 0.5])
    # To the best single model (0) at 0.75: rows 1, 2, 3 fall back, all strong: (1 + 0.5 + 0 + 1) / 4, cost 1.
    best = decision_curve(PROBS, EVALS, PRICES, thresholds=[0.75], fallback=0)
    assert best.mean_quality.tolist() == [0.625] and best.mean_cost.tolist() == [1.0]
    with pytest.raises(ValueError, match="exactly one of cost_weights"):
        decision_curve(PROBS, EVALS, PRICES, cost_weights=[0.0], thresholds=[0.5], fallback=0)


def test_decision_curve_scores_an_unjudged_pick_as_the_metrics_do():
    # Row 2's cheap answer is unjudged: λ = 1 picks it, and the metrics never make a pick they cannot
    # score, so row 2 goes to its only judged candidate (strong: quality 0, cost 1). Quality
    # (0 + 0.5 + 0 + 0.2) / 4 = 0.175, cost (0.1 * 3 + 1) / 4 = 0.325, shares [0.25, 0.75].
    evals = EVALS.copy()
    evals[2, 1] = np.nan
    curve = decision_curve(PROBS, evals, PRICES, cost_weights=[1.0])
    np.testing.assert_allclose(curve.mean_quality, [0.175])
    np.testing.assert_allclose(curve.mean_cost, [0.325])
    np.testing.assert_allclose(curve.shares, [[0.25, 0.75]])


def test_pair_rule_sends_the_top_share_of_pair_scores_to_the_strong_candidate():
    probs = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3], [0.3, 0.3, 0.4], [0.1, 0.2, 0.7]])
    pair = pair_scores(probs, weak=0, strong=2)  # p2 - p0
    assert pair == pytest.approx([0.1, -0.3, 0.1, 0.6])
    assert threshold_for_share(pair, 0.25) == pytest.approx(0.6)
    assert pair_choice(probs, 0, 2, 0.6).tolist() == [0, 0, 0, 2]
    assert threshold_for_share(pair, 0.0) == math.inf
    assert pair_choice(probs, 0, 2, math.inf).tolist() == [0, 0, 0, 0]
    assert threshold_for_share(pair, 1.0) == pytest.approx(-0.3)
    assert pair_choice(probs, 0, 2, -0.3).tolist() == [2, 2, 2, 2]
    # rows tied at the threshold all go strong: share 0.5 asks for 2 rows, the two at 0.1 tie with the 2nd
    assert pair_choice(probs, 0, 2, 0.1 - 1e-12).tolist() == [2, 0, 2, 2]
    with pytest.raises(ValueError, match="weak and strong must be two candidates"):
        pair_scores(probs, 1, 1)
    with pytest.raises(ValueError, match="strong index 3 is out of range"):
        pair_scores(probs, 0, 3)
    with pytest.raises(ValueError, match=r"share must lie in \[0, 1\]"):
        threshold_for_share(pair, 1.5)


def test_cost_to_reach_interpolates_along_the_hull():
    # Hull (1, .5) -> (2, .8) -> (4, .9): .85 lies half-way up the second segment, at cost 2 + 0.5 * 2 = 3.
    costs, qualities = [1.0, 2.0, 4.0, 3.0], [0.5, 0.8, 0.9, 0.6]
    assert cost_to_reach(costs, qualities, 0.85) == pytest.approx(3.0)
    assert cost_to_reach(costs, qualities, 0.8) == pytest.approx(2.0)
    assert cost_to_reach(costs, qualities, 0.4) == pytest.approx(1.0)  # the cheapest point already does
    assert math.isnan(cost_to_reach(costs, qualities, 0.95))


def test_pair_curve_moves_tied_pair_scores_together():
    # Pair scores [.6, .1, .1, -.3]; strong - weak gains [1, -1, .5, 0]; all weak = (0 + 1 + .5 + 1) / 4.
    # Top 1 strong: + 1 -> 3.5 / 4; the two tied at .1 go together: + 1 - 1 + .5 -> 3 / 4; all: 3 / 4.
    shares, qualities = pair_curve([0.1, 0.6, -0.3, 0.1], [1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(shares, [0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(qualities, [0.625, 0.875, 0.75, 0.75])
    # PGR against weak .625 and strong .75: 0, 2, 1, 1; APGR = .25 * 1 + .5 * 1.5 + .25 * 1 = 1.25.
    assert apgr(shares, qualities, 0.625, 0.75) == pytest.approx(1.25)
    assert cpt(shares, qualities, 0.625, 0.75, 0.5) == pytest.approx(0.0625)
    with pytest.raises(ValueError, match="must be finite"):
        pair_curve([0.1], [np.nan], [1.0])
