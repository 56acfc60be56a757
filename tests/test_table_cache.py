"""The validated-table cache: a hit gives the same table; any change to the file or the arguments misses."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from conftest import row, write_rows
from zooter.table import cache as table_cache
from zooter.table.schema import TableError


def entries(cache):
    return sorted(p.name for p in cache.glob("table-*.pkl"))


def test_a_hit_skips_validation_and_gives_the_same_table(table_file, tmp_path, monkeypatch):
    path = table_file([row(0), row(1, {"a": 0.5, "b": None, "c": 2.0}), row(2)])
    cache = tmp_path / "cache"
    first = table_cache.load_table_cached(path, cache, candidates=None, min_judged=1)
    assert len(entries(cache)) == 1

    monkeypatch.setattr(table_cache, "load_table", lambda *a, **k: pytest.fail("a cache hit validated the file"))
    second = table_cache.load_table_cached(path, cache, candidates=None, min_judged=1)
    assert second.ids == first.ids and second.queries == first.queries and second.tags == first.tags
    assert second.candidates == first.candidates == ["a", "b", "c"]
    np.testing.assert_array_equal(second.judge("scores"), first.judge("scores"))


def test_changed_content_or_arguments_miss(table_file, tmp_path):
    path = table_file([row(0), row(1)])
    cache = tmp_path / "cache"
    table_cache.load_table_cached(path, cache)
    write_rows(path, [row(0), row(1, {"a": 3.0, "b": 4.0})])  # same path, new scores
    assert table_cache.load_table_cached(path, cache).judge("scores")[1].tolist() == [3.0, 4.0]
    reordered = table_cache.load_table_cached(path, cache, candidates=["b", "a"])
    assert reordered.candidates == ["b", "a"] and reordered.judge("scores")[1].tolist() == [4.0, 3.0]
    assert len(entries(cache)) == 3


def test_bad_files_still_fail_and_are_not_cached(table_file, tmp_path):
    path = table_file([row(0), {**row(1), "query": ""}])
    cache = tmp_path / "cache"
    for _ in range(2):
        with pytest.raises(TableError, match=r"table.jsonl:2 \(id='q1'\): field 'query'"):
            table_cache.load_table_cached(path, cache)
    with pytest.raises(TableError, match="no such file"):
        table_cache.load_table_cached(tmp_path / "missing.jsonl", cache)
    assert entries(cache) == []


def test_costs_survive_a_hit_and_entries_of_other_code_are_not_read(table_file, tmp_path, monkeypatch):
    path = table_file([row(0, costs={"a": 0.25, "b": None}), row(1)])
    cache = tmp_path / "cache"
    monkeypatch.setattr(table_cache, "_code_key", lambda: b"older schema code")
    stale = table_cache.load_table_cached(path, cache)
    stale.costs = None  # what a table pickled before the costs field would give
    entry = cache / entries(cache)[0]
    entry.write_bytes(pickle.dumps(stale))
    monkeypatch.undo()
    fresh = table_cache.load_table_cached(path, cache)  # the schema's source is in the key: a miss, not the stale entry
    np.testing.assert_array_equal(fresh.costs, [[0.25, np.nan], [np.nan, np.nan]])
    monkeypatch.setattr(table_cache, "load_table", lambda *a, **k: pytest.fail("a cache hit validated the file"))
    np.testing.assert_array_equal(table_cache.load_table_cached(path, cache).costs, fresh.costs)
    assert len(entries(cache)) == 2
