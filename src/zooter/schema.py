"""The routing-table format: read, validate and hold one table of queries x candidates x judges.

One row per query::

    {"id": "q-1", "query": "text", "tags": ["math"],
     "scores": {"model_a": 0.7, "model_b": null},
     "scores_by_judge": {"rm_a": {"model_a": 1.2, "model_b": -0.3}}}

``scores`` is itself a judge, named ``"scores"``. A ``null`` score means "not judged": it is stored as
NaN and masked out of targets and metrics, never treated as zero. JSON Lines files are read line by
line so every error names its line; Parquet and CSV files are read through ``datasets`` (in CSV the
``tags``, ``scores`` and ``scores_by_judge`` columns hold JSON text).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zooter.files import atomic_path

SCORES_JUDGE = "scores"
JSON_COLUMNS = ("tags", "scores", "scores_by_judge")
KNOWN_FIELDS = ("id", "query", *JSON_COLUMNS)


class TableError(ValueError):
    """A routing table that does not follow the format; the message names file, line or id, and field."""


@dataclass
class RoutingTable:
    """A validated routing table held as arrays: ``scores[judge]`` is float64 ``[rows, candidates]``."""

    ids: list[str]
    queries: list[str]
    tags: list[list[str]]
    candidates: list[str]
    scores: dict[str, np.ndarray]
    source: str = "<memory>"
    skipped: list[str] = field(default_factory=list)
    fields: dict[str, list[Any]] = field(default_factory=dict)  # other scalar row fields, e.g. "source"

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def judges(self) -> list[str]:
        return list(self.scores)

    def judge(self, name: str) -> np.ndarray:
        """The ``[rows, candidates]`` score matrix of one judge (NaN where not judged)."""
        if name not in self.scores:
            raise TableError(f"{self.source}: unknown judge {name!r}; this table has {self.judges}")
        return self.scores[name]

    def subset(self, rows: Sequence[int] | np.ndarray) -> RoutingTable:
        """The rows at the given positions, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        return RoutingTable(
            ids=[self.ids[i] for i in rows],
            queries=[self.queries[i] for i in rows],
            tags=[self.tags[i] for i in rows],
            candidates=list(self.candidates),
            scores={judge: matrix[rows] for judge, matrix in self.scores.items()},
            source=self.source,
            fields={name: [values[i] for i in rows] for name, values in self.fields.items()},
        )

    def with_candidates(self, candidates: Sequence[str]) -> RoutingTable:
        """The same table with its score columns in another candidate order."""
        if sorted(candidates) != sorted(self.candidates) or len(set(candidates)) != len(candidates):
            raise TableError(f"{self.source}: candidates {list(candidates)} do not match the table's {self.candidates}")
        columns = [self.candidates.index(c) for c in candidates]
        scores = {judge: matrix[:, columns] for judge, matrix in self.scores.items()}
        return RoutingTable(
            self.ids, self.queries, self.tags, list(candidates), scores, self.source, self.skipped, self.fields
        )

    def to_rows(self) -> Iterator[dict[str, Any]]:
        """Rows in the file format (NaN written back as ``null``)."""

        def as_dict(values: np.ndarray) -> dict[str, float | None]:
            return {c: (None if math.isnan(v) else float(v)) for c, v in zip(self.candidates, values, strict=True)}

        by_judge = [j for j in self.judges if j != SCORES_JUDGE]
        for i, row_id in enumerate(self.ids):
            row: dict[str, Any] = {"id": row_id, "query": self.queries[i], "tags": self.tags[i]}
            row.update({name: values[i] for name, values in self.fields.items()})
            if SCORES_JUDGE in self.scores:
                row["scores"] = as_dict(self.scores[SCORES_JUDGE][i])
            if by_judge:
                row["scores_by_judge"] = {j: as_dict(self.scores[j][i]) for j in by_judge}
            yield row


def write_jsonl(table: RoutingTable, path: str | Path) -> Path:
    """Write a table as JSON Lines (atomically: a temporary file renamed into place)."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for row in table.to_rows():
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return Path(path)


def read_rows(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(location, row)`` for each row of a JSONL, Parquet or CSV file."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".json"}:
        yield from _read_jsonl(path)
    elif suffix in {".parquet", ".csv"}:
        yield from _read_with_datasets(path, suffix.lstrip("."))
    else:
        raise TableError(f"{path}: unsupported format {suffix!r}; use .jsonl, .parquet or .csv")


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise TableError(f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(row, dict):
                raise TableError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            yield f"{path}:{number}", row


def _read_with_datasets(path: Path, fmt: str) -> Iterator[tuple[str, dict[str, Any]]]:
    import datasets

    dataset = datasets.load_dataset(fmt, data_files=str(path), split="train")
    first_data_line = 2 if fmt == "csv" else 0  # CSV: line 1 is the header
    for index, row in enumerate(dataset):
        location = f"{path}:{index + first_data_line}" if fmt == "csv" else f"{path}:row {index}"
        for column in JSON_COLUMNS:
            if fmt == "csv" and isinstance(row.get(column), str):
                try:
                    row[column] = json.loads(row[column])
                except json.JSONDecodeError:
                    raise TableError(f"{location}: field {column!r} is not valid JSON") from None
        yield location, row


def load_table(
    path: str | Path,
    candidates: Sequence[str] | None = None,
    required_judges: Iterable[str] = (SCORES_JUDGE,),
    min_judged: int = 2,
    skip_underjudged: bool = False,
    needs_scores: bool = True,
) -> RoutingTable:
    """Read and validate a routing table.

    Args:
        path: ``.jsonl``, ``.parquet`` or ``.csv`` file.
        candidates: the candidate order; ``None`` takes them from the data in order of first appearance.
        required_judges: judges every row must carry (the train and eval judges).
        min_judged: fewest judged (non-null) candidates a row needs under each required judge.
        skip_underjudged: skip such rows (counted in ``table.skipped``) instead of raising.
        needs_scores: ``False`` accepts rows without scores (queries to route).
    """
    return build_table(
        read_rows(path), str(path), candidates, required_judges, min_judged, skip_underjudged, needs_scores
    )


def build_table(
    rows: Iterable[tuple[str, dict[str, Any]]],
    source: str,
    candidates: Sequence[str] | None = None,
    required_judges: Iterable[str] = (SCORES_JUDGE,),
    min_judged: int = 2,
    skip_underjudged: bool = False,
    needs_scores: bool = True,
) -> RoutingTable:
    """Validate ``(location, row)`` pairs into a :class:`RoutingTable` (see :func:`load_table`)."""
    parsed = [_parse_row(location, row, needs_scores) for location, row in rows]
    if not parsed:
        raise TableError(f"{source}: the table has no rows")
    required = list(dict.fromkeys(required_judges))
    known_judges = list(dict.fromkeys(j for p in parsed for j in p.scores))
    for judge in required:
        if judge not in known_judges:
            raise TableError(f"{source}: unknown judge {judge!r}; the table has judges {known_judges}")
    judges = [j for j in known_judges if j in required] + [j for j in known_judges if j not in required]

    if candidates is None:
        candidates = list(dict.fromkeys(c for p in parsed for scores in p.scores.values() for c in scores))
        if not needs_scores and not candidates:
            raise TableError(f"{source}: a table without scores needs an explicit candidate list")
    else:
        candidates = list(candidates)
        if len(set(candidates)) != len(candidates):
            raise TableError(f"candidate list has duplicates: {candidates}")
    if len(candidates) < 2:
        raise TableError(f"{source}: routing needs at least 2 candidates, found {candidates}")
    column = {c: k for k, c in enumerate(candidates)}

    seen: dict[str, str] = {}
    kept, skipped = [], []
    matrices = {j: np.full((len(parsed), len(candidates)), np.nan) for j in judges}
    for p in parsed:
        if p.id in seen:
            raise TableError(f"{p.location}: field 'id': duplicate id {p.id!r} (first seen at {seen[p.id]})")
        seen[p.id] = p.location
        n = len(kept)
        for judge, scores in p.scores.items():
            for candidate, value in scores.items():
                if candidate not in column:
                    raise TableError(
                        f"{p.location} (id={p.id!r}): field '{_field(judge, candidate)}': unknown candidate "
                        f"{candidate!r}; candidates are {candidates}"
                    )
                matrices[judge][n, column[candidate]] = value
        problem = None
        for judge in required:
            if judge not in p.scores:
                raise TableError(
                    f"{p.location} (id={p.id!r}): field '{_field(judge)}': missing; judge {judge!r} is required"
                )
            judged = int(np.isfinite(matrices[judge][n]).sum())
            if judged < min_judged:
                problem = (
                    f"{p.location} (id={p.id!r}): field '{_field(judge)}': {judged} judged candidate(s), "
                    f"at least {min_judged} needed"
                )
                break
        if problem is not None:
            if not skip_underjudged:
                raise TableError(problem + " (set skip_underjudged to skip such rows)")
            skipped.append(problem)
            for matrix in matrices.values():
                matrix[n] = np.nan
            continue
        kept.append(p)
    if not kept:
        raise TableError(f"{source}: no rows left after skipping {len(skipped)} under-judged row(s)")
    extra_names = list(dict.fromkeys(name for p in kept for name in p.extra))
    return RoutingTable(
        ids=[p.id for p in kept],
        queries=[p.query for p in kept],
        tags=[p.tags for p in kept],
        candidates=candidates,
        scores={j: m[: len(kept)].copy() for j, m in matrices.items()},
        source=source,
        skipped=skipped,
        fields={name: [p.extra.get(name) for p in kept] for name in extra_names},
    )


@dataclass
class _Row:
    location: str
    id: str
    query: str
    tags: list[str]
    scores: dict[str, dict[str, float]]
    extra: dict[str, Any]


def _field(judge: str, candidate: str | None = None) -> str:
    base = SCORES_JUDGE if judge == SCORES_JUDGE else f"scores_by_judge.{judge}"
    return base if candidate is None else f"{base}.{candidate}"


def _parse_row(location: str, row: dict[str, Any], needs_scores: bool = True) -> _Row:
    raw_id = row.get("id")
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        raise TableError(f"{location}: field 'id': missing or empty")
    if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
        raise TableError(f"{location}: field 'id': expected a string, got {type(raw_id).__name__}")
    row_id = str(raw_id)
    where = f"{location} (id={row_id!r})"
    query = row.get("query")
    if not isinstance(query, str) or not query.strip():
        got = "missing" if query is None else ("empty" if isinstance(query, str) else type(query).__name__)
        raise TableError(f"{where}: field 'query': expected non-empty text, got {got}")
    tags = row.get("tags")
    if tags is None:
        tags = []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise TableError(f"{where}: field 'tags': expected a list of strings, got {tags!r}")
    scores: dict[str, dict[str, float]] = {}
    if row.get("scores") is not None:
        scores[SCORES_JUDGE] = _parse_scores(where, SCORES_JUDGE, row["scores"])
    by_judge = row.get("scores_by_judge")
    if by_judge is not None:
        if not isinstance(by_judge, dict):
            raise TableError(f"{where}: field 'scores_by_judge': expected an object of judges")
        for judge, judge_scores in by_judge.items():
            if judge_scores is not None:
                scores[judge] = _parse_scores(where, judge, judge_scores)
    if not scores and needs_scores:
        raise TableError(f"{where}: field 'scores': missing (and no 'scores_by_judge')")
    extra = {k: v for k, v in row.items() if k not in KNOWN_FIELDS and isinstance(v, (str, int, float, bool))}
    return _Row(location, row_id, query, list(dict.fromkeys(tags)), scores, extra)


def _parse_scores(where: str, judge: str, scores: Any) -> dict[str, float]:
    if not isinstance(scores, dict):
        raise TableError(f"{where}: field '{_field(judge)}': expected an object {{candidate: number or null}}")
    parsed = {}
    for candidate, value in scores.items():
        if value is None:
            parsed[candidate] = math.nan
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TableError(f"{where}: field '{_field(judge, candidate)}': expected a number or null, got {value!r}")
        if not math.isfinite(value):
            raise TableError(f"{where}: field '{_field(judge, candidate)}': expected a finite number, got {value}")
        parsed[candidate] = float(value)
    return parsed
