"""Crash-safe writes."""

from __future__ import annotations

import pytest

from zooter.files import atomic_path, write_text_atomic


def test_file_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed while writing")
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]
    write_text_atomic(target, "new")
    assert target.read_text() == "new"


def test_directory_published_once_when_two_writers_race(tmp_path):
    target = tmp_path / "tokens"
    with atomic_path(target) as first:
        first.mkdir()
        (first / "data").write_text("from the first writer")
    with atomic_path(target) as second:
        second.mkdir()
        (second / "data").write_text("from the second writer")
    assert (target / "data").read_text() == "from the first writer"
    assert [p.name for p in tmp_path.iterdir()] == ["tokens"]
