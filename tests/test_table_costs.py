"""Per-query costs resolved against a cost file (values derived by hand), and the shipped AlpacaEval price tables."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ALPACAEVAL, REPO, requires_alpacaeval, row
from zooter.table.costs import CandidateCosts, cost_matrix, load_costs
from zooter.table.schema import TableError, load_table
from zooter.table.splits import SplitSpec, load_splits

# q0 knows a and c, q1 a and b (c missing), q2 gives no costs.
ROWS = [
    row(0, {"a": 1.0, "b": 0.0, "c": 0.5}, costs={"a": 1.0, "b": None, "c": 4.0}),
    row(1, {"a": 0.0, "b": 1.0, "c": 0.5}, costs={"a": 3.0, "b": 2.0}),
    row(2, {"a": 0.5, "b": 0.5, "c": 1.0}),
]
FILE = CandidateCosts(["c", "a", "b"], np.array([30.0, 10.0, 20.0]), "price", "pool.yaml")  # not the table's order


def test_without_a_file_unknown_cells_take_the_candidates_mean_known_cost(table_file):
    table = load_table(table_file(ROWS))
    costs = cost_matrix(table, None)
    # means of the known cells: a (1 + 3) / 2 = 2, b 2, c 4
    np.testing.assert_array_equal(costs.values, [[1.0, 2.0, 4.0], [3.0, 2.0, 4.0], [2.0, 2.0, 4.0]])
    assert costs.unit == "table" and costs.filled == 5  # q0.b, q1.c and the three cells of q2
    assert costs.source == f"{table.source} (costs)"


def test_with_a_file_unknown_cells_take_its_cost_matched_by_name(table_file):
    table = load_table(table_file(ROWS))
    costs = cost_matrix(table, FILE)
    np.testing.assert_array_equal(costs.values, [[1.0, 20.0, 4.0], [3.0, 2.0, 30.0], [10.0, 20.0, 30.0]])
    assert costs.unit == "price" and costs.filled == 5
    assert costs.source == f"{table.source} (costs) + pool.yaml"
    reordered = cost_matrix(table.with_candidates(["b", "c", "a"]), FILE)
    np.testing.assert_array_equal(reordered.values, costs.values[:, [1, 2, 0]])


def test_a_table_without_costs_takes_the_file_for_every_cell(table_file, tmp_path):
    table = load_table(table_file([row(0, {"a": 1.0, "b": 0.0}), row(1)]))
    path = tmp_path / "pool.yaml"
    path.write_text("candidates:\n  b: {params_b: 2}\n  a: {params_b: 1}\n")
    # FLOPs proxy with 100 + 400 tokens: 2 * params * 1e9 * 500 = params * 1e12
    costs = cost_matrix(table, load_costs(path, candidates=table.candidates))
    np.testing.assert_array_equal(costs.values, [[1e12, 2e12], [1e12, 2e12]])
    assert (costs.unit, costs.source, costs.filled) == ("flops", str(path), 4)


def test_fully_given_costs_fill_nothing(table_file):
    rows = [row(i, costs={"a": 0.5 * i, "b": 1.0}) for i in range(3)]
    costs = cost_matrix(load_table(table_file(rows)), CandidateCosts(["a", "b"], np.array([9.0, 9.0]), "price", "f"))
    np.testing.assert_array_equal(costs.values, [[0.0, 1.0], [0.5, 1.0], [1.0, 1.0]])
    assert costs.filled == 0 and costs.source.endswith("(costs)")


def test_a_candidate_with_no_cost_anywhere_is_named(table_file):
    rows = [row(0, {"a": 1.0, "b": 0.0, "c": 0.5}, costs={"a": 1.0}), row(1, {"a": 1.0, "b": 0.0, "c": 0.5})]
    with pytest.raises(TableError, match=r"table.jsonl: no cost for candidate\(s\) \['b', 'c'\]: no row gives"):
        cost_matrix(load_table(table_file(rows)), None)
    with pytest.raises(TableError, match=r"no cost for candidate\(s\) \['a', 'b'\]"):
        cost_matrix(load_table(table_file([row(0), row(1)], name="plain.jsonl")), None)


def test_a_file_for_another_pool_is_refused(table_file):
    table = load_table(table_file(ROWS))
    other = CandidateCosts(["a", "b", "d"], np.array([1.0, 2.0, 3.0]), "price", "other.yaml")
    with pytest.raises(
        TableError, match=r"other.yaml: candidates do not match .*: no cost for \['c'\]; \['d'\] not in"
    ):
        cost_matrix(table, other)


def test_splits_keep_each_rows_costs(table_file):
    rows = [row(i, costs={"a": float(i), "b": 100.0 + i}) for i in range(20)]
    splits = load_splits(SplitSpec(path=str(table_file(rows)), val_fraction=0.25, test_fraction=0.25))
    for table in splits.values():
        expected = [[float(i), 100.0 + i] for i in (int(row_id[1:]) for row_id in table.ids)]
        np.testing.assert_array_equal(table.costs, expected)


def test_alpacaeval_price_by_hand():
    costs = load_costs(REPO / "configs/costs/alpacaeval.yaml").as_dict()
    # claude-2: (100 tokens x $11.02 + 1069 / 4 = 267.25 tokens x $32.68) / 1e6
    assert costs["claude-2"] == pytest.approx((100 * 11.02 + 267.25 * 32.68) / 1e6)
    # alpaca-7b, Together's 4.1-8B tier: (100 + 396 / 4 = 99) tokens x $0.20 / 1e6
    assert costs["alpaca-7b"] == pytest.approx(199 * 0.2 / 1e6)


@requires_alpacaeval
@pytest.mark.parametrize(
    ("data", "prices"),
    [("alpacaeval_main.jsonl", "alpacaeval.yaml"), ("alpacaeval_claude_judge.jsonl", "alpacaeval_claude.yaml")],
)
def test_alpacaeval_price_tables_cover_exactly_the_data_candidates(data, prices):
    table = load_table(ALPACAEVAL.parent / data)
    costs = load_costs(REPO / "configs/costs" / prices, candidates=table.candidates)  # refuses extra or missing
    assert costs.unit == "price" and sorted(load_costs(REPO / "configs/costs" / prices).candidates) == sorted(
        table.candidates
    )
    assert len(table.candidates) == 12 and (costs.per_query > 0).all()
