"""Resumable work: an append-only JSON Lines journal of finished units, and the row files around it.

``zooter generate`` and ``zooter score`` do one unit of work per (query id, candidate). Each finished
unit is appended to a journal next to the output (``<out stem>.journal.jsonl``) and flushed to disk
at once, so a killed run loses at most the units in flight. A rerun reads the journal, skips every
unit already there and only then writes the output file, atomically, when all units are done: a
file under the output name is always complete.

A kill can cut the journal's last line short; :meth:`Journal.load` drops that line (it is counted
and reported, its unit is simply redone) and truncates the file back to its last complete line. A
malformed line anywhere else is an error naming the line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zooter.files import atomic_path
from zooter.table.schema import TableError, read_rows


def journal_path(out: str | Path) -> Path:
    """The journal that belongs to an output file: ``dir/name.jsonl`` -> ``dir/name.journal.jsonl``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.journal.jsonl")


@dataclass
class Journal:
    """Finished units, one JSON object per line, appended and fsynced as they complete."""

    path: Path
    dropped_tail: int = field(default=0, init=False)  # lines cut short by a kill, found by load()

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def load(self) -> list[dict[str, Any]]:
        """Every complete record; a truncated last line is dropped (and cut from the file)."""
        if not self.path.is_file():
            return []
        data = self.path.read_bytes()
        records: list[dict[str, Any]] = []
        keep = 0  # bytes of complete lines
        for number, line in enumerate(data.split(b"\n"), start=1):
            complete = keep + len(line) < len(data)  # a newline follows
            if line.strip():
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if not isinstance(record, dict):
                    if not complete:  # the last write was cut short by a kill: redo its unit
                        self.dropped_tail = 1
                        break
                    raise TableError(f"{self.path}:{number}: corrupt journal line; delete it to go on")
                records.append(record)
            keep += len(line) + (1 if complete else 0)
        if keep < len(data) or (keep and not data[:keep].endswith(b"\n")):
            with self.path.open("r+b") as f:
                f.truncate(keep)
                if keep and not data[:keep].endswith(b"\n"):
                    f.seek(keep)
                    f.write(b"\n")
        return records

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records and force them to disk before returning."""
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())


def read_query_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows with a unique non-empty ``id`` and a non-empty ``query`` (other fields are kept as they are)."""
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for location, row in read_rows(path):
        raw_id = row.get("id")
        if raw_id is None or isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not str(raw_id).strip():
            raise TableError(f"{location}: field 'id': expected a non-empty string, got {raw_id!r}")
        row_id = str(raw_id)
        query = row.get("query")
        if not isinstance(query, str) or not query.strip():
            raise TableError(f"{location} (id={row_id!r}): field 'query': expected non-empty text, got {query!r}")
        if row_id in seen:
            raise TableError(f"{location}: field 'id': duplicate id {row_id!r} (first seen at {seen[row_id]})")
        seen[row_id] = location
        rows.append({**row, "id": row_id})
    if not rows:
        raise TableError(f"{path}: no rows")
    return rows


def write_rows_atomic(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as JSON Lines under a temporary name, then rename into place."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return Path(path)
