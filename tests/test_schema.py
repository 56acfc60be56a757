"""Routing-table validation: every error names file:line (or id) and field; nulls stay NaN."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import row
from zooter.table.schema import TableError, load_table, write_jsonl


def test_reads_rows_candidates_in_first_seen_order_and_nulls_as_nan(table_file):
    path = table_file([row(0, {"b": 2.0, "a": None, "c": 1.0}), row(1, {"a": 0.5, "b": 1.5, "c": 0.0})])
    table = load_table(path)
    assert table.candidates == ["b", "a", "c"]
    assert table.ids == ["q0", "q1"]
    scores = table.judge("scores")
    assert scores[0, 0] == 2.0 and math.isnan(scores[0, 1]) and scores[0, 2] == 1.0
    np.testing.assert_array_equal(scores[1], [1.5, 0.5, 0.0])


def test_explicit_candidate_order_is_kept(table_file):
    table = load_table(table_file([row(0, {"a": 1.0, "b": 2.0})]), candidates=["b", "a"])
    np.testing.assert_array_equal(table.judge("scores")[0], [2.0, 1.0])


def test_scores_by_judge_are_separate_judges(table_file):
    r = row(0, scores_by_judge={"rm": {"a": 3.0, "b": 4.0}})
    table = load_table(table_file([r]), required_judges=["scores", "rm"])
    assert table.judges == ["scores", "rm"]
    np.testing.assert_array_equal(table.judge("rm")[0], [3.0, 4.0])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"query": ""}, r"table.jsonl:2 \(id='q1'\): field 'query': expected non-empty text, got empty"),
        ({"query": None}, r"table.jsonl:2 \(id='q1'\): field 'query': expected non-empty text, got missing"),
        ({"id": "q0"}, r"table.jsonl:2: field 'id': duplicate id 'q0' \(first seen at .*table.jsonl:1\)"),
        ({"id": ""}, r"table.jsonl:2: field 'id': missing or empty"),
        (
            {"scores": {"a": "high", "b": 0.0}},
            r"table.jsonl:2 \(id='q1'\): field 'scores.a': expected a number or null, got 'high'",
        ),
        (
            {"scores": {"a": float("nan"), "b": 0.0}},
            r"table.jsonl:2 \(id='q1'\): field 'scores.a': expected a finite number, got nan",
        ),
        ({"scores": {"a": float("inf"), "b": 0.0}}, r"field 'scores.a': expected a finite number, got inf"),
        (
            {"scores": {"a": 1.0, "b": 0.0, "zz": 1.0}},
            r"table.jsonl:2 \(id='q1'\): field 'scores.zz': unknown candidate 'zz'",
        ),
        ({"tags": "math"}, r"table.jsonl:2 \(id='q1'\): field 'tags': expected a list of strings, got 'math'"),
        ({"tags": ["math", 3]}, r"field 'tags': expected a list of strings, got \['math', 3\]"),
        (
            {"scores": {"a": 1.0, "b": None}},
            r"table.jsonl:2 \(id='q1'\): field 'scores': 1 judged candidate\(s\), at least 2 needed",
        ),
        ({"scores": None}, r"table.jsonl:2 \(id='q1'\): field 'scores': missing"),
        (
            {"costs": {"a": "cheap"}},
            r"table.jsonl:2 \(id='q1'\): field 'costs.a': expected a number or null, got 'cheap'",
        ),
        ({"costs": {"a": True}}, r"field 'costs.a': expected a number or null, got True"),
        (
            {"costs": {"b": -0.5}},
            r"table.jsonl:2 \(id='q1'\): field 'costs.b': expected a finite number >= 0, got -0.5",
        ),
        ({"costs": {"a": float("inf")}}, r"field 'costs.a': expected a finite number >= 0, got inf"),
        ({"costs": {"a": float("nan")}}, r"field 'costs.a': expected a finite number >= 0, got nan"),
        (
            {"costs": {"a": 1.0, "zz": 2.0}},
            r"table.jsonl:2 \(id='q1'\): field 'costs.zz': unknown candidate 'zz'; candidates are \['a', 'b'\]",
        ),
        ({"costs": [0.1, 0.2]}, r"table.jsonl:2 \(id='q1'\): field 'costs': expected an object"),
    ],
)
def test_validation_errors_name_line_id_and_field(table_file, bad, message):
    rows = [row(0), {**row(1), **bad}]
    with pytest.raises(TableError, match=message):
        load_table(table_file(rows), candidates=["a", "b"])


def test_bad_json_line_is_named(table_file):
    with pytest.raises(TableError, match=r"table.jsonl:2: not valid JSON"):
        load_table(table_file([row(0), '{"id": "q1", "query": ']))


def test_unknown_judge_lists_the_known_ones(table_file):
    with pytest.raises(TableError, match=r"unknown judge 'rm'; the table has judges \['scores'\]"):
        load_table(table_file([row(0)]), required_judges=["scores", "rm"])


def test_judge_missing_from_one_row(table_file):
    rows = [row(0, scores_by_judge={"rm": {"a": 1.0, "b": 2.0}}), row(1)]
    with pytest.raises(TableError, match=r"table.jsonl:2 \(id='q1'\): field 'scores_by_judge.rm': missing"):
        load_table(table_file(rows), required_judges=["rm"])


def test_underjudged_rows_can_be_skipped_and_are_counted(table_file):
    rows = [row(0), row(1, {"a": 1.0, "b": None}), row(2, {"a": None, "b": None}), row(3)]
    table = load_table(table_file(rows), skip_underjudged=True)
    assert table.ids == ["q0", "q3"]
    assert len(table.skipped) == 2
    assert "id='q1'" in table.skipped[0] and "id='q2'" in table.skipped[1]
    np.testing.assert_array_equal(table.judge("scores"), [[1.0, 0.0], [1.0, 0.0]])


def test_unreadable_or_unknown_format(tmp_path):
    with pytest.raises(TableError, match="no such file"):
        load_table(tmp_path / "missing.jsonl")
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(TableError, match=r"unsupported format '.txt'"):
        load_table(tmp_path / "t.txt")


def test_jsonl_round_trip_keeps_content(table_file, tmp_path):
    rows = [row(0, {"a": 1.25, "b": None, "c": -3.0}, tags=["x", "y"]), row(1, {"a": 0.0, "b": 2.0, "c": 1.0})]
    table = load_table(table_file(rows))
    again = load_table(write_jsonl(table, tmp_path / "copy.jsonl"))
    assert again.ids == table.ids and again.queries == table.queries and again.tags == table.tags
    np.testing.assert_array_equal(again.judge("scores"), table.judge("scores"))


def cost_rows() -> list[dict]:
    """Three rows over a, b, c: known costs, a null and a missing candidate, and a row without costs."""
    return [
        row(0, {"a": 1.0, "b": 0.0, "c": 2.0}, costs={"a": 0.0012, "b": None, "c": 3}),
        row(1, {"a": 0.5, "b": 1.0, "c": 0.0}, costs={"c": 0.5, "a": 2.5e-05}),
        row(2, {"a": 0.0, "b": 1.0, "c": 1.0}),
    ]


COST_MATRIX = [[0.0012, np.nan, 3.0], [2.5e-05, np.nan, 0.5], [np.nan, np.nan, np.nan]]


def test_costs_round_trip_through_jsonl_with_nan_where_null_or_missing(table_file, tmp_path):
    table = load_table(table_file(cost_rows()))
    np.testing.assert_array_equal(table.costs, COST_MATRIX)
    rows = list(table.to_rows())
    assert rows[0]["costs"] == {"a": 0.0012, "b": None, "c": 3.0}
    assert rows[2]["costs"] == {"a": None, "b": None, "c": None}
    again = load_table(write_jsonl(table, tmp_path / "copy.jsonl"))
    np.testing.assert_array_equal(again.costs, COST_MATRIX)
    assert load_table(table_file([row(0), row(1)], name="plain.jsonl")).costs is None  # no row has the field
    assert "costs" not in next(load_table(tmp_path / "plain.jsonl").to_rows())


def test_costs_follow_subset_and_candidate_order(table_file):
    table = load_table(table_file(cost_rows()))
    np.testing.assert_array_equal(table.subset([1, 0]).costs, [COST_MATRIX[1], COST_MATRIX[0]])
    reordered = table.with_candidates(["c", "a", "b"])
    np.testing.assert_array_equal(reordered.costs[0], [3.0, 0.0012, np.nan])
    np.testing.assert_array_equal(
        load_table(table_file(cost_rows()), candidates=["c", "a", "b"]).costs, reordered.costs
    )


def test_skipped_rows_drop_their_costs(table_file):
    rows = [*cost_rows(), row(3, {"a": 1.0, "b": None, "c": None}, costs={"a": 9.0})]
    table = load_table(table_file(rows), skip_underjudged=True)
    assert table.ids == ["q0", "q1", "q2"]
    np.testing.assert_array_equal(table.costs, COST_MATRIX)


def test_parquet_and_csv_through_datasets(table_file, tmp_path):
    import json

    import datasets

    rows = [row(0, {"a": 1.0, "b": None}, scores_by_judge={"rm": {"a": 2.0, "b": 3.0}}), row(1, {"a": 0.5, "b": 1.5})]
    rows[1]["scores_by_judge"] = {"rm": {"a": 0.0, "b": 1.0}}
    rows[0]["scores"]["c"] = 4.0
    rows[1]["scores"]["c"] = 5.0
    rows[0]["scores_by_judge"]["rm"]["c"] = 6.0
    rows[1]["scores_by_judge"]["rm"]["c"] = 7.0
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "t.parquet"))
    csv_rows = [
        {k: json.dumps(v) if k in ("tags", "scores", "scores_by_judge") else v for k, v in r.items()} for r in rows
    ]
    datasets.Dataset.from_list(csv_rows).to_csv(str(tmp_path / "t.csv"), index=False)
    expected = load_table(table_file(rows), required_judges=["scores", "rm"])
    for name in ("t.parquet", "t.csv"):
        table = load_table(tmp_path / name, required_judges=["scores", "rm"])
        assert table.ids == expected.ids and table.tags == expected.tags and table.candidates == ["a", "b", "c"]
        np.testing.assert_array_equal(table.judge("scores"), expected.judge("scores"))
        np.testing.assert_array_equal(table.judge("rm"), expected.judge("rm"))


def test_costs_through_parquet_and_csv(tmp_path):
    import datasets

    rows = cost_rows()
    rows[2]["costs"] = None  # datasets needs the column in every row; null = no costs
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "t.parquet"))
    csv_rows = [{k: json.dumps(v) if k in ("tags", "scores", "costs") else v for k, v in r.items()} for r in rows]
    datasets.Dataset.from_list(csv_rows).to_csv(str(tmp_path / "t.csv"), index=False)
    for name in ("t.parquet", "t.csv"):
        np.testing.assert_array_equal(load_table(tmp_path / name).costs, COST_MATRIX)
    bad = [{**csv_rows[0], "costs": json.dumps({"a": -1})}]
    datasets.Dataset.from_list(bad).to_csv(str(tmp_path / "bad.csv"), index=False)
    with pytest.raises(TableError, match=r"bad.csv:2 \(id='q0'\): field 'costs.a': expected a finite number >= 0"):
        load_table(tmp_path / "bad.csv")


def _same_table(a, b) -> None:
    assert (a.ids, a.queries, a.tags, a.candidates, a.source, a.skipped) == (
        b.ids,
        b.queries,
        b.tags,
        b.candidates,
        b.source,
        b.skipped,
    )
    assert list(a.scores) == list(b.scores)
    for judge in a.scores:
        np.testing.assert_array_equal(a.scores[judge], b.scores[judge])
    assert a.fields == b.fields and list(a.fields) == list(b.fields)
    assert (a.costs is None) == (b.costs is None)
    if a.costs is not None:
        np.testing.assert_array_equal(a.costs, b.costs)


def test_plain_jsonl_takes_the_columnar_path(table_file):
    from zooter.table.schema import _load_jsonl_columns

    rows = [row(i, {"a": float(i), "b": None if i else 0.5, "c": 2}, source="x", n=i, ok=True) for i in range(5)]
    path = table_file(rows)
    fast = _load_jsonl_columns(path, str(path), None, ["scores"], 2, True)
    assert fast is not None
    _same_table(fast, load_table(path))
    for r in rows:
        r["costs"] = {"c": 0.5, "a": r["n"] or None}
    fast = _load_jsonl_columns(table_file(rows), str(path), None, ["scores"], 2, True)
    assert fast is not None
    np.testing.assert_array_equal(fast.costs[:2], [[np.nan, np.nan, 0.5], [1.0, np.nan, 0.5]])
    _same_table(fast, load_table(path))
    assert fast.fields == {"source": ["x"] * 5, "n": list(range(5)), "ok": [True] * 5}


def _rows():
    """Mostly valid tables (so the columnar path runs), with now and then a defect of any kind."""
    from hypothesis import strategies as st

    rare = st.sampled_from([None, float("nan"), float("inf"), True, "x", 10**20])
    cost = st.sampled_from([None, 0, 0.5, 2, 1.25] * 8 + [-1.0, "x", float("inf"), 10**20])
    kinds = (rare, st.none(), st.integers(-5, 5), st.floats(-10, 10, allow_nan=False, allow_infinity=False))
    cell = st.sampled_from([0] + [1] * 4 + [2] * 10 + [3] * 25).flatmap(kinds.__getitem__)

    @st.composite
    def table(draw):
        order = draw(st.permutations(["a", "b", "c"]))
        n = draw(st.integers(1, 4))
        extra = draw(st.sampled_from([None, "s", 1, True, 1.5, ["l"], {"d": 1}, "mixed"]))
        costed = draw(st.sampled_from(["none", "all", "all", "some"]))
        rows = []
        for i in range(n):
            present = [c for c in order if draw(st.integers(0, 9)) > 0]
            r = {"id": draw(st.sampled_from([f"q{i}"] * 40 + ["q0", "", 7])), "query": f"query {i}"}
            if draw(st.integers(0, 49)) == 0:
                r["query"] = draw(st.sampled_from([" ", None, 3]))
            tags = draw(st.sampled_from([None, [], ["t"], ["t", "t", "u"], ["u", "t"], "missing"] * 4 + [["t", 1]]))
            if tags != "missing":
                r["tags"] = tags
            r["scores"] = {c: draw(cell) for c in present}
            if draw(st.integers(0, 49)) == 0:
                r["scores"] = None
            judge = draw(st.sampled_from(["rm"] * 40 + ["scores", "none", "missing"]))
            if judge == "none":
                r["scores_by_judge"] = {"rm": None}
            elif judge != "missing":
                r["scores_by_judge"] = {judge: {c: draw(cell) for c in present}}
            if extra == "mixed":
                r["source"] = draw(st.sampled_from(["s", 1, None, 2.5]))
            elif extra is not None:
                r["source"] = extra
            if costed == "all" or (costed == "some" and draw(st.booleans())):
                names = draw(st.sampled_from([present, order, [*order, "d"]] if draw(st.integers(0, 19)) else [None]))
                r["costs"] = None if names is None else {c: draw(cost) for c in names}
            rows.append(r)
        return rows

    return table()


def test_columnar_and_row_readers_agree(tmp_path):
    """Whatever the file holds, the fast path gives the row reader's table or hands over to it."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from zooter.table.schema import _check_every_candidate_judged, build_table, read_rows

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(_rows(), st.sampled_from([None, ["a", "b", "c"], ["c", "b", "a"]]), st.sampled_from([["scores"], ["rm"]]))
    def check(rows, candidates, judges):
        path = tmp_path / "t.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        args = dict(candidates=candidates, required_judges=judges, min_judged=2)
        try:
            expected = build_table(read_rows(path), str(path), **args)
            _check_every_candidate_judged(expected, judges)
        except TableError as err:
            with pytest.raises(TableError) as got:
                load_table(path, **args)
            assert str(got.value) == str(err)
            return
        _same_table(load_table(path, **args), expected)

    check()


def typo_rows(n: int, typo_rows: tuple[int, ...]) -> list[dict]:
    """``n`` rows over model_a/b/c; in the rows at ``typo_rows``, model_b is misspelt ``modl_b``."""
    rows = [row(i, {"model_a": 1.0, "model_b": float(i % 3), "model_c": 0.5}) for i in range(n)]
    for i in typo_rows:
        rows[i]["scores"] = {"model_a": 1.0, "modl_b": 2.0, "model_c": 0.5}
    return rows


def test_a_candidate_misspelt_in_one_row_is_refused_with_its_row_and_the_close_name(table_file):
    path = table_file(typo_rows(300, (41,)))
    assert load_table(path).candidates == ["model_a", "model_b", "model_c", "modl_b"]  # the check is opt-in here
    with pytest.raises(TableError) as refused:
        load_table(path, min_candidate_share=0.05)
    message = str(refused.value)
    assert message.startswith(f"{path}: candidate 'modl_b' is scored in only 1 of 300 rows (did you mean 'model_b'?)")
    assert "rows (did you mean 'model_b'?): line 42 (id='q41'). A candidate" in message
    assert "fewer than 5% as many rows as the most-scored one ('model_a', 300 rows)" in message
    assert "data.candidates" in message and "data.min_candidate_share 0" in message


def test_candidate_share_rule_names_the_first_rows_and_counts_the_rest(table_file, tmp_path):
    path = table_file(typo_rows(300, (3, 10, 20, 30, 40, 50, 60, 70)))
    shown = r"line 4 \(id='q3'\), line 11 \(id='q10'\), .*, line 41 \(id='q40'\) and 3 more\."
    with pytest.raises(TableError, match=r"in only 8 of 300 rows \(did you mean 'model_b'\?\): " + shown):
        load_table(path, min_candidate_share=0.05)
    # the rule is relative: 15 of 300 rows (5%) pass, and so do candidates that are all sparse
    assert len(load_table(table_file(typo_rows(300, tuple(range(15)))), min_candidate_share=0.05).candidates) == 4
    sparse = [row(i, {f"m{i % 40}": 1.0, f"m{(i + 1) % 40}": 0.0}) for i in range(400)]  # each in 5% of rows
    assert len(load_table(table_file(sparse, "sparse.jsonl"), min_candidate_share=0.05).candidates) == 40
    # explicit candidates: the user named them, nothing is refused
    named = ["model_a", "model_b", "model_c", "modl_b"]
    assert load_table(path, candidates=named, min_candidate_share=0.05).candidates == named
