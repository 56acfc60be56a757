"""The resumable-work journal: records survive, a tail cut short by a kill is dropped and repaired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zooter.pipeline.journal import Journal, journal_path, read_query_rows, write_rows_atomic
from zooter.table.schema import TableError


def test_journal_path_sits_next_to_the_output(tmp_path: Path) -> None:
    assert journal_path(tmp_path / "responses.jsonl") == tmp_path / "responses.journal.jsonl"


def test_append_then_load_round_trips(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    assert journal.load() == []
    journal.append([{"id": "a", "x": 1}, {"id": "b", "x": "é"}])
    journal.append([])
    journal.append([{"id": "c", "x": None}])
    assert journal.load() == [{"id": "a", "x": 1}, {"id": "b", "x": "é"}, {"id": "c", "x": None}]
    assert journal.dropped_tail == 0


def test_truncated_last_line_is_dropped_and_cut_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "resp')
    journal = Journal(path)
    assert journal.load() == [{"id": "a"}, {"id": "b"}]
    assert journal.dropped_tail == 1
    assert path.read_text() == '{"id": "a"}\n{"id": "b"}\n'
    journal.append([{"id": "c"}])  # appending after the repair gives clean lines
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"id": "a"}, {"id": "b"}, {"id": "c"}]


def test_complete_last_record_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}')
    assert Journal(path).load() == [{"id": "a"}, {"id": "b"}]
    assert path.read_text() == '{"id": "a"}\n{"id": "b"}\n'


def test_corrupt_line_in_the_middle_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(TableError, match=r"j\.jsonl:2: corrupt journal line"):
        Journal(path).load()


def test_read_query_rows_keeps_extra_fields_and_checks_ids(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    write_rows_atomic([{"id": 7, "query": "hi", "tags": ["x"], "responses": {"a": "yo"}}], path)
    assert read_query_rows(path) == [{"id": "7", "query": "hi", "tags": ["x"], "responses": {"a": "yo"}}]
    write_rows_atomic([{"id": "a", "query": "hi"}, {"id": "a", "query": "ho"}], path)
    with pytest.raises(TableError, match=r"q\.jsonl:2: field 'id': duplicate id 'a' \(first seen at .*q\.jsonl:1\)"):
        read_query_rows(path)
    write_rows_atomic([{"id": "a", "query": " "}], path)
    with pytest.raises(TableError, match=r"q\.jsonl:1 \(id='a'\): field 'query': expected non-empty text"):
        read_query_rows(path)
