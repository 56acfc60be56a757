"""The bad-input catalogue: each case gives an error naming file, line or id and field, or a counted skip.

The per-row cases (empty or missing query, duplicate id, non-numeric / NaN / infinite score, unknown
candidate, wrong tag type, too few judged candidates, a judge missing from one row, bad JSON) are in
``test_schema.py``; the checkpoint whose candidates differ from the table and the config key typo in
``test_cli.py``; the sweep file with unknown parameter names in ``test_sweep.py``. The README's
"Reliability" section lists them all. Here: the file-level cases, a candidate nobody scored, a
candidate name misspelt in one row, splits that end up empty, and the property-based test of
validation and targets.
"""

from __future__ import annotations

import json
import pathlib
import tempfile

import numpy as np
import pytest

from conftest import row, write_rows
from zooter.data import targets
from zooter.table.schema import TableError, load_table
from zooter.table.splits import SplitSpec, load_splits


def test_a_directory_instead_of_a_file(tmp_path):
    (tmp_path / "table.jsonl").mkdir()
    with pytest.raises(TableError, match=r"table.jsonl: is a directory, expected a table file"):
        load_table(tmp_path / "table.jsonl")


def test_an_unreadable_file_names_the_file_and_the_reason(table_file, monkeypatch):
    path = table_file([row(0), row(1)])

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "open", refuse)  # tests run as root, where chmod 000 still reads
    with pytest.raises(TableError, match=r"table.jsonl: cannot read: Permission denied"):
        load_table(path)


def test_a_binary_file_names_its_line(table_file):
    path = table_file([row(0)])
    with path.open("ab") as f:
        f.write(b'{"id": "q1", "query": "caf\xe9"}\n')  # Latin-1, not UTF-8
    with pytest.raises(TableError, match=r"table.jsonl:2: not UTF-8 text \(byte 27 of the line\)"):
        load_table(path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"], ids=["empty", "blank lines"])
def test_a_file_without_rows(tmp_path, content):
    (tmp_path / "table.jsonl").write_text(content)
    with pytest.raises(TableError, match=r"table.jsonl: the table has no rows"):
        load_table(tmp_path / "table.jsonl")


def test_a_candidate_with_no_scores_at_all(table_file):
    path = table_file([row(0), row(1), row(2)])
    with pytest.raises(TableError, match=r"candidate\(s\) \['c'\] have no score under judge 'scores' in any of the 3"):
        load_table(path, candidates=["a", "b", "c"])
    rows = [row(0, scores_by_judge={"rm": {"a": 1.0, "b": None}}), row(1, scores_by_judge={"rm": {"a": 2.0}})]
    with pytest.raises(TableError, match=r"candidate\(s\) \['b'\] have no score under judge 'rm'"):
        load_table(table_file(rows), required_judges=["rm"], min_judged=1)


def test_skipping_every_row_is_an_error_not_an_empty_split(table_file):
    rows = [row(0, {"a": 1.0, "b": None}), row(1, {"a": None, "b": 2.0})]
    with pytest.raises(TableError, match=r"table.jsonl: no rows left after skipping 2 under-judged row\(s\)"):
        load_table(table_file(rows), skip_underjudged=True)


def test_a_split_left_empty_by_the_fractions(table_file):
    path = table_file([row(i) for i in range(3)])
    with pytest.raises(TableError, match=r"the val split is empty \(.*table.jsonl\); adjust the split fractions"):
        load_splits(SplitSpec(path=str(path), val_fraction=0.1, test_fraction=0.34))  # round(0.3) = 0 val rows


def test_skipped_rows_are_counted_in_the_split_report(table_file):
    rows = [row(i) for i in range(10)] + [row(10, {"a": 1.0, "b": None})]
    tables = load_splits(SplitSpec(path=str(table_file(rows)), skip_underjudged=True, test_fraction=0.0))
    assert len(tables["train"].skipped) == 1 and "id='q10'" in tables["train"].skipped[0]
    assert sum(len(t) for t in tables.values()) == 10


def misspelt_table(table_file) -> pathlib.Path:
    """300 rows over model_a/b/c; row 42 (id q41) scores ``modl_b`` instead of model_b."""
    rows = [row(i, {"model_a": 1.0, "model_b": float(i % 3), "model_c": 0.5}) for i in range(300)]
    rows[41]["scores"] = {"model_a": 1.0, "modl_b": 2.0, "model_c": 0.5}
    return table_file(rows)


def test_fit_refuses_a_candidate_misspelt_in_one_row(table_file, tmp_path, capsys):
    """Through the real command: the error names the candidate, its row and the close name (no new candidate)."""
    from conftest import cli_args
    from zooter.cli import main

    path = misspelt_table(table_file)
    try:
        main(["fit", *cli_args(tmp_path, "configs/own_data.yaml"), "--data.path", str(path)])
    except SystemExit as exit_:  # a user error printed on stderr
        assert exit_.code not in (0, None)
        message = capsys.readouterr().err
    except TableError as error:
        message = str(error)
    else:
        pytest.fail("zooter fit accepted a candidate scored in 1 row of 300")
    assert f"{path}: candidate 'modl_b' is scored in only 1 of 300 rows (did you mean 'model_b'?): " in message
    assert "line 42 (id='q41')" in message and "data.min_candidate_share 0" in message
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.ckpt"))


@pytest.mark.parametrize(
    "accept", [{"candidates": ["model_a", "model_b", "model_c", "modl_b"]}, {"min_candidate_share": 0.0}]
)
def test_a_rare_candidate_is_accepted_when_asked_for(table_file, tmp_path, accept):
    from zooter.data.datamodule import ZooterDataModule

    dm = ZooterDataModule(
        path=str(misspelt_table(table_file)), cache_dir=str(tmp_path / "cache"), tokenizer_vocab_size=100, **accept
    )
    assert dm.candidates == ["model_a", "model_b", "model_c", "modl_b"]


# ------------------------------------------------------------------------ property-based test
def hand_tag_targets(labels: np.ndarray, tags: list[list[str]], judged: np.ndarray, beta: float) -> np.ndarray:
    """The paper's formula by brute force, with the null rule of zooter.data.targets: s_t[c] is the mean
    of s(q')[c] over the rows (the training split) with tag t that judged c, renormalised; the query's
    tag mean averages, per candidate, the tags that know it, restricted to its judged candidates and
    renormalised, mixed with weight beta."""
    out = labels.copy()
    n = labels.shape[1]
    for i, query_tags in enumerate(tags):
        if not query_tags:
            continue
        tag_vectors = []
        for t in query_tags:
            rows = [j for j in range(len(tags)) if t in tags[j]]
            means = [np.mean([labels[j, c] for j in rows if judged[j, c]]) if any(judged[j, c] for j in rows)
                     else np.nan for c in range(n)]  # fmt: skip
            tag_vectors.append(np.array(means) / np.nansum(means))
        per_candidate = [[v[c] for v in tag_vectors if np.isfinite(v[c])] for c in range(n)]
        mean = np.array([np.mean(v) if v and judged[i, c] else 0.0 for c, v in enumerate(per_candidate)])
        if mean.sum() > 0:
            out[i] = beta * labels[i] + (1 - beta) * mean / mean.sum()
    return out


def test_random_tables_through_validation_and_targets():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    candidates = ["m0", "m1", "m2", "m3"]
    score = st.one_of(st.none(), st.floats(-20, 20, allow_nan=False))
    query_row = st.tuples(
        st.lists(score, min_size=4, max_size=4).filter(lambda s: sum(x is not None for x in s) >= 2),
        st.lists(st.sampled_from(["math", "code", "chat", "poem"]), unique=True, max_size=3),
    )

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(query_row, min_size=1, max_size=12).filter(
            lambda rows: all(any(r[0][k] is not None for r in rows) for k in range(4))  # each candidate judged once
        ),
        st.floats(0, 1),
        st.floats(0.25, 4.0),
        st.permutations(range(4)),
    )
    def check(rows, beta, temperature, permutation):
        with tempfile.TemporaryDirectory() as tmp:
            lines = [
                {"id": f"q{i}", "query": f"query {i}", "tags": tags, "scores": dict(zip(candidates, s, strict=True))}
                for i, (s, tags) in enumerate(rows)
            ]
            path = write_rows(pathlib.Path(tmp) / "t.jsonl", [json.dumps(line) for line in lines])
            table = load_table(path, candidates=candidates)
        rewards = np.array([[np.nan if x is None else x for x in s] for s, _ in rows])
        np.testing.assert_array_equal(table.judge("scores"), rewards)  # validation keeps every value, nulls as NaN
        assert table.tags == [tags for _, tags in rows]

        judged = np.isfinite(rewards)
        tag_table = targets.tag_table(targets.soft_labels(rewards, temperature), table.tags, judged=judged)
        target = targets.build_targets(rewards, table.tags, tag_table, beta, temperature)
        # every row a distribution over its judged candidates
        assert np.all(target >= 0) and np.all(target[~judged] == 0)
        np.testing.assert_allclose(target.sum(axis=1), 1.0, atol=1e-9)
        # beta = 1: the sample label s(q); beta = 0: the tag mean (restricted to judged candidates)
        labels = targets.soft_labels(rewards, temperature)
        np.testing.assert_allclose(targets.build_targets(rewards, table.tags, tag_table, 1.0, temperature), labels)
        np.testing.assert_allclose(
            targets.build_targets(rewards, table.tags, tag_table, 0.0, temperature),
            hand_tag_targets(labels, table.tags, judged, 0.0),
            atol=1e-9,
        )
        np.testing.assert_allclose(target, hand_tag_targets(labels, table.tags, judged, beta), atol=1e-9)
        # permuting the candidates permutes the targets
        order = list(permutation)
        labels_p = targets.soft_labels(rewards[:, order], temperature)
        permuted_table = targets.tag_table(labels_p, table.tags, judged=judged[:, order])
        permuted = targets.build_targets(rewards[:, order], table.tags, permuted_table, beta, temperature)
        np.testing.assert_allclose(permuted, target[:, order], atol=1e-12)

    check()
