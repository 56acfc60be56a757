"""The seam of ``zooter score --scorer <kind>``: a scorer turns (query, response, row) units into verdicts.

A scorer is a dataclass whose fields are its ``zooter score`` flags (``build`` in
:mod:`zooter.pipeline.scorers` fills them from the command line). It has

- ``name``: the default judge name (the key under ``scores_by_judge``);
- ``describe()``: one line on how it scores, printed at the start of a run;
- ``spec()``: the settings that decide its scores; a journal record counts as done only under the same
  settings, so changing one rescores everything;
- ``check(rows, source)``: raise :class:`~zooter.table.schema.TableError` naming the id and field of a row
  it cannot score (a missing reference or tests field), before any work;
- ``score(units)``: yield batches of ``(key, Verdict)``; :mod:`zooter.pipeline.score` appends each batch
  to the journal as soon as it is yielded, so a killed run redoes only units not yet yielded.

A verdict is a score (``None`` where the scorer could not decide, e.g. a judge whose answer never parsed)
and a reason, ``"<kind>"`` or ``"<kind>: <detail>"``; the run counts verdicts by kind at the end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from zooter.table.schema import TableError

Key = tuple[str, str]  # (query id, candidate)


@dataclass(frozen=True)
class Unit:
    """One response to score: its query id, candidate, query, response and the whole row (references, tests)."""

    id: str
    candidate: str
    query: str
    response: str
    row: Mapping[str, Any]

    @property
    def key(self) -> Key:
        return (self.id, self.candidate)


class Verdict(NamedTuple):
    """A unit's score (``None``: undecided) and why: ``"<kind>"`` or ``"<kind>: <detail>"``."""

    score: float | None
    reason: str

    @property
    def kind(self) -> str:
        return self.reason.split(":", 1)[0]


class Scorer(Protocol):
    """What :mod:`zooter.pipeline.score` needs of a scorer."""

    @property
    def name(self) -> str: ...

    def describe(self) -> str: ...

    def spec(self) -> dict[str, Any]: ...

    def check(self, rows: Sequence[Mapping[str, Any]], source: Path) -> None: ...

    def score(self, units: Sequence[Unit]) -> Iterator[list[tuple[Key, Verdict]]]: ...


class Stopped(Exception):
    """The run is stopping (another unit failed): this unit was not finished."""


def run_parallel(
    work: Callable[[Unit, threading.Event], Verdict], units: Sequence[Unit], workers: int
) -> Iterator[list[tuple[Key, Verdict]]]:
    """``work`` on ``workers`` threads; each verdict is yielded as soon as it is ready.

    The first unit that raises stops the run: units not started are cancelled, ``work`` is told through
    the event (it should raise :class:`Stopped` when it sees it), the verdicts of units in flight that
    still finish are yielded, and then the error is raised.
    """
    stop = threading.Event()
    failure: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zooter-score")
    try:
        futures: dict[Future[Verdict], Unit] = {pool.submit(work, unit, stop): unit for unit in units}
        for future in as_completed(futures):
            if future.cancelled():
                continue
            error = future.exception()
            if error is None:
                yield [(futures[future].key, future.result())]
            elif failure is None and not isinstance(error, Stopped):
                failure = error
                stop.set()
                for other in futures:
                    other.cancel()
    finally:
        stop.set()  # also when the caller stops early: nothing further starts
        pool.shutdown(wait=True, cancel_futures=True)
    if failure is not None:
        raise failure


def row_field(row: Mapping[str, Any], field: str, source: Path, expected: str) -> Any:
    """``row[field]``, or a TableError naming the file, id and field."""
    value = row.get(field)
    if value is None:
        raise TableError(f"{source} (id={row['id']!r}): field {field!r}: missing; expected {expected}")
    return value
