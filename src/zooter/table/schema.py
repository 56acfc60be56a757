"""The routing-table format: read, validate and hold one table of queries x candidates x judges.

One row per query::

    {"id": "q-1", "query": "text", "tags": ["math"],
     "scores": {"model_a": 0.7, "model_b": null},
     "scores_by_judge": {"rm_a": {"model_a": 1.2, "model_b": -0.3}},
     "costs": {"model_a": 0.0012, "model_b": null}}

``scores`` is itself a judge, named ``"scores"``. A ``null`` score means "not judged": it is stored as
NaN and masked out of targets and metrics, never treated as zero. ``costs`` (optional) is each
candidate's cost of answering this query (finite, >= 0; ``null`` or a missing candidate = unknown, NaN);
:func:`zooter.table.costs.cost_matrix` fills the unknown cells. A well-formed JSON Lines file is read
column-wise by Arrow; any file the columnar check does not accept is read line by line, so every error
names its line. Parquet and CSV files are read through ``datasets`` (in CSV the ``tags``, ``scores``,
``scores_by_judge`` and ``costs`` columns hold JSON text).
"""

from __future__ import annotations

import difflib
import gc
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zooter.files import atomic_path

SCORES_JUDGE = "scores"
COSTS_FIELD = "costs"
MIN_CANDIDATE_SHARE = 0.05  # the data module's default for min_candidate_share (see check_candidate_shares)
SHOWN_ROWS = 5  # rows named in a message before "... and N more"
JSON_COLUMNS = ("tags", "scores", "scores_by_judge", COSTS_FIELD)
KNOWN_FIELDS = ("id", "query", *JSON_COLUMNS)


class TableError(ValueError):
    """A routing table that does not follow the format; the message names file, line or id, and field."""


@dataclass
class RoutingTable:
    """A validated routing table held as arrays: ``scores[judge]`` is float64 ``[rows, candidates]``;
    ``costs`` the per-query costs, float64 ``[rows, candidates]`` (NaN = unknown; ``None``: no row has any)."""

    ids: list[str]
    queries: list[str]
    tags: list[list[str]]
    candidates: list[str]
    scores: dict[str, np.ndarray]
    source: str = "<memory>"
    skipped: list[str] = field(default_factory=list)
    fields: dict[str, list[Any]] = field(default_factory=dict)  # other scalar row fields, e.g. "source"
    costs: np.ndarray | None = None

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
        index = rows.tolist()  # Python ints index lists several times faster than NumPy integers
        return RoutingTable(
            ids=[self.ids[i] for i in index],
            queries=[self.queries[i] for i in index],
            tags=[self.tags[i] for i in index],
            candidates=list(self.candidates),
            scores={judge: matrix[rows] for judge, matrix in self.scores.items()},
            source=self.source,
            fields={name: [values[i] for i in index] for name, values in self.fields.items()},
            costs=None if self.costs is None else self.costs[rows],
        )

    def with_candidates(self, candidates: Sequence[str]) -> RoutingTable:
        """The same table with its score (and cost) columns in another candidate order."""
        if sorted(candidates) != sorted(self.candidates) or len(set(candidates)) != len(candidates):
            raise TableError(f"{self.source}: candidates {list(candidates)} do not match the table's {self.candidates}")
        columns = [self.candidates.index(c) for c in candidates]
        scores = {judge: matrix[:, columns] for judge, matrix in self.scores.items()}
        costs = None if self.costs is None else self.costs[:, columns]
        return RoutingTable(
            self.ids, self.queries, self.tags, list(candidates), scores, self.source, self.skipped, self.fields, costs
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
            if self.costs is not None:
                row[COSTS_FIELD] = as_dict(self.costs[i])
            yield row


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while building many small acyclic containers (rows, tag
    lists, token lists). Allocations trigger collections, and once torch and transformers are imported
    each full collection walks millions of objects: without the pause, reading a 48k-row table took
    0.3 s or 0.7 s depending on whether one fell inside it. Reference counting still frees memory."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def write_jsonl(table: RoutingTable, path: str | Path) -> Path:
    """Write a table as JSON Lines (atomically: a temporary file renamed into place)."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for row in table.to_rows():
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return Path(path)


def read_rows(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(location, row)`` for each row of a JSONL, Parquet or CSV file."""
    path = Path(path)
    if path.is_dir():
        raise TableError(f"{path}: is a directory, expected a table file")
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
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise TableError(f"{path}:{number}: not UTF-8 text (byte {err.start + 1} of the line)") from None
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
    min_candidate_share: float = 0.0,
) -> RoutingTable:
    """Read and validate a routing table.

    Args:
        path: ``.jsonl``, ``.parquet`` or ``.csv`` file.
        candidates: the candidate order; ``None`` takes them from the data in order of first appearance.
        required_judges: judges every row must carry (the train and eval judges).
        min_judged: fewest judged (non-null) candidates a row needs under each required judge.
        skip_underjudged: skip such rows (counted in ``table.skipped``) instead of raising.
        needs_scores: ``False`` accepts rows without scores (queries to route).
        min_candidate_share: with ``candidates=None``, refuse a candidate scored in fewer rows than this
            share of the most-scored candidate's rows, as a likely misspelt name (see
            :func:`check_candidate_shares`; 0 = off, the default here; the data module's is 0.05).

    A well-formed JSON Lines file is read by Arrow's multithreaded JSON reader and validated on whole
    columns (about 10x faster than row by row: a 48k-row table in well under a second). Anything the
    fast path does not accept as plainly valid (a parse or type error, a null where a value belongs, a
    duplicate id, an under-judged row, ...) sends the file through the row-by-row reader, which gives
    the same table or the error with its line number.
    """
    required_judges = tuple(required_judges)
    try:
        with paused_gc():
            table = None
            if Path(path).suffix.lower() in {".jsonl", ".json"} and Path(path).is_file():
                try:
                    table = _load_jsonl_columns(
                        Path(path), str(path), candidates, required_judges, min_judged, needs_scores
                    )
                except UnicodeDecodeError:  # Arrow reads bytes unchecked; the row reader names the line
                    table = None
            if table is None:
                table = build_table(
                    read_rows(path), str(path), candidates, required_judges, min_judged, skip_underjudged, needs_scores
                )
    except OSError as err:  # permissions, I/O errors, ...
        raise TableError(f"{path}: cannot read: {err.strerror or err}") from None
    _check_every_candidate_judged(table, required_judges)
    if candidates is None:
        check_candidate_shares(table, min_candidate_share)
    return table


def check_candidate_shares(table: RoutingTable, min_share: float = MIN_CANDIDATE_SHARE) -> None:
    """Refuse candidates scored in so few rows that their names are likely typos.

    A name misspelt in a few rows (``modl_b`` for ``model_b``) would otherwise become a candidate of
    its own when the candidate list is taken from the data. The rule: a candidate scored (non-null,
    under any judge) in fewer than ``min_share`` x the rows of the most-scored candidate is refused
    (default 5%: one row of a 300-row table is refused, 20 rows are not; a table whose candidates
    are all sparse is compared with its best-covered candidate, not with its length). The message
    names the candidate, its rows (line and id, the first few and a count) and the closest
    common candidate name. To accept such a candidate deliberately, list the candidates
    (``data.candidates``) or set ``data.min_candidate_share`` to 0.
    """
    if min_share <= 0 or not len(table):
        return
    scored = np.zeros((len(table), len(table.candidates)), dtype=bool)
    for matrix in table.scores.values():
        scored |= np.isfinite(matrix)
    counts = scored.sum(axis=0)
    most = int(counts.max())
    rare = [k for k, count in enumerate(counts) if count < min_share * most]
    if not rare:
        return
    common = [c for k, c in enumerate(table.candidates) if k not in rare]
    problems = []
    for k in rare:
        name = table.candidates[k]
        rows = _rows_naming(table, name, scored[:, k])
        shown = ", ".join(rows[:SHOWN_ROWS]) + (f" and {len(rows) - SHOWN_ROWS} more" if len(rows) > SHOWN_ROWS else "")
        close = difflib.get_close_matches(name, common, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "no common candidate has a similar name"
        problems.append(f"candidate {name!r} is scored in only {counts[k]} of {len(table)} rows ({hint}): {shown}")
    raise TableError(
        f"{table.source}: " + "; ".join(problems) + f". A candidate scored in fewer than {min_share:.0%} as many "
        f"rows as the most-scored one ({table.candidates[int(counts.argmax())]!r}, {most} rows) is likely a "
        "misspelt name: fix it, or accept it by listing the candidates in data.candidates or by setting "
        "data.min_candidate_share 0"
    )


def _rows_naming(table: RoutingTable, name: str, scored: np.ndarray) -> list[str]:
    """``line N (id=...)`` (``row N`` in Parquet) of each row of the table's file that scores candidate
    ``name``; the ids alone for a table without a file."""
    if Path(table.source).is_file():
        try:
            places = [
                (location.removeprefix(f"{table.source}:"), row.get("id"))
                for location, row in read_rows(table.source)
                if _names_candidate(row, name)
            ]
            return [f"{'line ' if at.isdigit() else ''}{at} (id={str(row_id)!r})" for at, row_id in places]
        except TableError:  # the file changed since it was read: fall back to ids
            pass
    return [f"id={table.ids[i]!r}" for i in np.flatnonzero(scored)]


def _names_candidate(row: dict[str, Any], name: str) -> bool:
    judges = [row.get("scores"), *(dict(row.get("scores_by_judge") or {}).values())]
    return any(isinstance(scores, dict) and scores.get(name) is not None for scores in judges)


def _check_every_candidate_judged(table: RoutingTable, judges: Iterable[str]) -> None:
    """A candidate that a required judge scores in no row at all cannot be learned or evaluated."""
    for judge in judges:
        judged = np.isfinite(table.judge(judge)).any(axis=0)
        never = [candidate for candidate, seen in zip(table.candidates, judged, strict=True) if not seen]
        if never:
            raise TableError(
                f"{table.source}: candidate(s) {never} have no score under judge {judge!r} in any of the "
                f"{len(table)} rows; score them, or leave them out of data.candidates"
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
    has_costs = any(p.costs is not None for p in parsed)
    costs = np.full((len(parsed), len(candidates)), np.nan)
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
        for candidate, value in (p.costs or {}).items():
            if candidate not in column:
                raise TableError(
                    f"{p.location} (id={p.id!r}): field '{COSTS_FIELD}.{candidate}': unknown candidate "
                    f"{candidate!r}; candidates are {candidates}"
                )
            costs[n, column[candidate]] = value
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
            for matrix in [*matrices.values(), costs]:
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
        costs=costs[: len(kept)].copy() if has_costs else None,
    )


def _load_jsonl_columns(
    path: Path,
    source: str,
    candidates: Sequence[str] | None,
    required_judges: Iterable[str],
    min_judged: int,
    needs_scores: bool,
) -> RoutingTable | None:
    """The table of a plainly valid JSONL file, read and checked column-wise; ``None`` for anything else.

    ``None`` sends the file to the row-by-row reader (which then builds the same table or names the
    problem), so this path only has to recognise the common case exactly: every row carries the same
    judges (no judge object is null or missing), all judges list their candidates in one order, ids
    and queries are non-empty strings, ids are unique, scores are finite numbers or null, every row
    has enough judged candidates, costs (if any row has them) are in every row as finite numbers >= 0 or
    null, and extra fields are strings, integers or booleans present in every row. Nested extra fields
    are dropped, as the row reader drops them.
    """
    try:
        import pyarrow as pa
        import pyarrow.json as pa_json
    except ImportError:  # pragma: no cover - pyarrow comes with datasets
        return None
    with path.open("rb") as f:
        if f.read(3) == b"\xef\xbb\xbf":  # json.loads refuses a BOM; let the row reader say so
            return None
    try:
        data = pa_json.read_json(path)
    except (pa.ArrowException, OSError, ValueError):
        return None
    if data.num_rows == 0:
        return None
    n = data.num_rows
    columns = {name: data.column(name).combine_chunks() for name in data.column_names}

    def strings(name: str) -> list[str] | None:
        column = columns.get(name)
        if column is None or not pa.types.is_string(column.type) or column.null_count:
            return None
        values = column.to_pylist()
        return values if all(map(str.strip, values)) else None

    ids, queries = strings("id"), strings("query")
    if ids is None or queries is None or len(set(ids)) != n:
        return None
    tags_column = columns.get("tags")
    if tags_column is None or pa.types.is_null(tags_column.type):
        tags: list[list[str]] = [[] for _ in range(n)]
    elif pa.types.is_list(tags_column.type) and (
        pa.types.is_string(tags_column.type.value_type) or pa.types.is_null(tags_column.type.value_type)
    ):  # list<null>: every list is empty (checked next), or holds a null that the row reader refuses
        if tags_column.flatten().null_count:
            return None
        tags = [[] if t is None else list(dict.fromkeys(t)) for t in tags_column.to_pylist()]
    else:
        return None

    def struct(column: Any) -> tuple[bool, Any]:
        """``(usable, column)``: a struct column without null rows; a null-typed column is absent (None)."""
        if pa.types.is_null(column.type):
            return True, None
        return (pa.types.is_struct(column.type) and not column.null_count), column

    judge_columns: dict[str, Any] = {}
    usable, scores_column = struct(columns["scores"]) if "scores" in columns else (True, None)
    if not usable:
        return None
    if scores_column is not None:
        judge_columns[SCORES_JUDGE] = scores_column
    usable, by_judge = struct(columns["scores_by_judge"]) if "scores_by_judge" in columns else (True, None)
    if not usable:
        return None
    if by_judge is not None:
        for field_, child in zip(by_judge.type, by_judge.flatten(), strict=True):
            usable, judge_column = struct(child)
            if not usable or field_.name in judge_columns:  # by_judge "scores" would replace the top-level one
                return None
            if judge_column is not None:
                judge_columns[field_.name] = judge_column
    if not judge_columns and needs_scores:
        return None
    names = {judge: [f.name for f in column.type] for judge, column in judge_columns.items()}
    if candidates is None:
        orders = list(names.values())
        if not orders or any(order != orders[0] for order in orders):
            return None
        candidates = orders[0]
    candidates = list(candidates)
    if len(set(candidates)) != len(candidates) or len(candidates) < 2:
        return None
    position = {c: k for k, c in enumerate(candidates)}
    if any(name not in position for order in names.values() for name in order):
        return None
    required = list(dict.fromkeys(required_judges))
    if any(judge not in judge_columns for judge in required):
        return None

    def matrix_of(column: Any) -> np.ndarray | None:
        """The ``[rows, candidates]`` values of a struct column of finite numbers or nulls; ``None`` otherwise."""
        matrix = np.full((n, len(candidates)), np.nan)
        for field_, child in zip(column.type, column.flatten(), strict=True):
            if field_.name not in position:
                return None
            if pa.types.is_null(child.type):
                continue
            if not (pa.types.is_integer(child.type) or pa.types.is_floating(child.type)):
                return None
            try:
                values = child.cast(pa.float64()).to_numpy(zero_copy_only=False)
            except pa.ArrowException:
                return None
            valid = child.is_valid().to_numpy(zero_copy_only=False)
            if not np.isfinite(values[valid]).all():
                return None
            matrix[:, position[field_.name]] = np.where(valid, values, np.nan)
        return matrix

    scores: dict[str, np.ndarray] = {}
    for judge, column in judge_columns.items():
        matrix = matrix_of(column)
        if matrix is None or (judge in required and (np.isfinite(matrix).sum(axis=1) < min_judged).any()):
            return None
        scores[judge] = matrix
    costs = None
    usable, costs_column = struct(columns[COSTS_FIELD]) if COSTS_FIELD in columns else (True, None)
    if not usable:
        return None
    if costs_column is not None:
        costs = matrix_of(costs_column)
        if costs is None or (costs < 0).any():  # NaN compares False: unknown costs pass
            return None
    judges = [j for j in scores if j in required] + [j for j in scores if j not in required]

    fields: dict[str, list[Any]] = {}
    for name, column in columns.items():
        kind = column.type
        if name in KNOWN_FIELDS or pa.types.is_null(kind) or pa.types.is_nested(kind):
            continue  # the row reader keeps scalar extras only
        if not (pa.types.is_string(kind) or pa.types.is_boolean(kind) or pa.types.is_integer(kind)):
            return None  # floats: Arrow would turn a mix of 1 and 1.5 into 1.0 and 1.5
        if column.null_count:
            return None
        fields[name] = column.to_pylist()
    return RoutingTable(
        ids=ids,
        queries=queries,
        tags=tags,
        candidates=candidates,
        scores={judge: scores[judge] for judge in judges},
        source=source,
        fields=fields,
        costs=costs,
    )


@dataclass
class _Row:
    location: str
    id: str
    query: str
    tags: list[str]
    scores: dict[str, dict[str, float]]
    extra: dict[str, Any]
    costs: dict[str, float] | None = None


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
    costs = None if row.get(COSTS_FIELD) is None else _parse_costs(where, row[COSTS_FIELD])
    extra = {k: v for k, v in row.items() if k not in KNOWN_FIELDS and isinstance(v, (str, int, float, bool))}
    return _Row(location, row_id, query, list(dict.fromkeys(tags)), scores, extra, costs)


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


def _parse_costs(where: str, costs: Any) -> dict[str, float]:
    """A row's ``costs``: finite numbers >= 0, ``null`` (unknown) as NaN."""
    if not isinstance(costs, dict):
        raise TableError(f"{where}: field '{COSTS_FIELD}': expected an object {{candidate: number or null}}")
    parsed = {}
    for candidate, value in costs.items():
        name = f"{COSTS_FIELD}.{candidate}"
        if value is None:
            parsed[candidate] = math.nan
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TableError(f"{where}: field '{name}': expected a number or null, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise TableError(f"{where}: field '{name}': expected a finite number >= 0, got {value}")
        parsed[candidate] = float(value)
    return parsed
