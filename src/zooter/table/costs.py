"""Candidate costs as data: one small YAML or JSON file per model pool.

::

    candidates:
      model_a: {params_b: 7}                                      # FLOPs proxy
      model_b: {price_in_per_mtok: 0.5, price_out_per_mtok: 1.5, mean_output_tokens: 250}

Fields (each optional, all finite non-negative numbers, at least one cost per candidate):
``params_b`` (billions of parameters), ``price_in_per_mtok`` and ``price_out_per_mtok`` (price per
million input/output tokens, given together), ``mean_output_tokens`` (this candidate's mean answer
length; default ``output_tokens``).

Cost per query, one unit for the whole pool:

- ``"price"`` when every candidate has both prices:
  ``(input_tokens · price_in_per_mtok + output_tokens · price_out_per_mtok) / 1e6``;
- otherwise ``"flops"`` when every candidate has ``params_b``: the forward-pass proxy
  ``2 · params_b · 1e9 · (input_tokens + output_tokens)``, as :meth:`zooter.eval.cost.CostModel.single`;
- otherwise an error (the two units cannot be compared).

Every problem raises :class:`~zooter.table.schema.TableError` naming the file, the candidate and the field.

A routing table may also carry per-query costs (its ``costs`` field); :func:`cost_matrix` combines them
with a cost file into one ``[queries, candidates]`` matrix.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from zooter.table.schema import COSTS_FIELD, RoutingTable, TableError

FIELDS = ("params_b", "price_in_per_mtok", "price_out_per_mtok", "mean_output_tokens")
PRICES = ("price_in_per_mtok", "price_out_per_mtok")
INPUT_TOKENS = 100  # tokens per query and per answer by default: zooter.eval.cost.CostModel's (a test checks);
OUTPUT_TOKENS = 400  # table/ sits below eval/ and does not import it


@dataclass
class CandidateCosts:
    """Cost per query of each candidate, in ``candidates`` order; ``unit`` is ``"price"`` or ``"flops"``."""

    candidates: list[str]
    per_query: np.ndarray
    unit: str
    source: str

    def as_dict(self) -> dict[str, float]:
        return {c: float(v) for c, v in zip(self.candidates, self.per_query, strict=True)}


def _read(path: Path) -> Any:
    if not path.is_file():
        raise TableError(f"{path}: no such cost file")
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise TableError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {e}") from None


def _number(path: Path, name: str, key: str, value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    if not ok:
        raise TableError(f"{path}: candidate {name!r}: field {key!r}: expected a finite number >= 0, got {value!r}")
    return float(value)


def load_costs(
    path: str | Path,
    candidates: Sequence[str] | None = None,
    input_tokens: float = INPUT_TOKENS,
    output_tokens: float = OUTPUT_TOKENS,
) -> CandidateCosts:
    """Read a cost file and return each candidate's cost per query (the formula in the module docstring).

    ``candidates``: the pool's names, which the file must cover exactly (default: the file's, in order).
    ``input_tokens``/``output_tokens``: tokens per query and answer (defaults: ``CostModel``'s, 100 and 400);
    a candidate's ``mean_output_tokens`` replaces ``output_tokens``."""
    path = Path(path)
    data = _read(path)
    entries = data.get("candidates") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise TableError(f"{path}: expected a mapping 'candidates: {{name: {{field: value}}}}', got {data!r}")
    names = list(entries) if candidates is None else list(candidates)
    for name in entries:
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TableError(f"{path}: candidate {name!r} is not in the pool {names}{hint}")
    missing = [n for n in names if n not in entries]
    if missing:
        raise TableError(f"{path}: no cost for candidate(s) {missing}")

    fields: dict[str, dict[str, float]] = {}
    for name in names:
        entry = entries[name]
        if not isinstance(entry, dict) or not entry:
            raise TableError(f"{path}: candidate {name!r}: expected a mapping of {list(FIELDS)}, got {entry!r}")
        for key in entry:
            if key not in FIELDS:
                close = difflib.get_close_matches(str(key), FIELDS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TableError(f"{path}: candidate {name!r}: unknown field {key!r}{hint}; fields: {list(FIELDS)}")
        values = {key: _number(path, name, key, value) for key, value in entry.items()}
        given = [p for p in PRICES if p in values]
        if len(given) == 1:
            lacking = next(p for p in PRICES if p not in values)
            raise TableError(f"{path}: candidate {name!r}: field {lacking!r} missing: {given[0]!r} needs it")
        if not given and "params_b" not in values:
            raise TableError(f"{path}: candidate {name!r}: no cost: give 'params_b' or both {list(PRICES)}")
        fields[name] = values

    outputs = [fields[n].get("mean_output_tokens", output_tokens) for n in names]
    if all(PRICES[0] in fields[n] for n in names):
        unit = "price"
        per_query = [
            (input_tokens * fields[n][PRICES[0]] + out * fields[n][PRICES[1]]) / 1e6
            for n, out in zip(names, outputs, strict=True)
        ]
    elif all("params_b" in fields[n] for n in names):
        unit = "flops"
        per_query = [
            2 * fields[n]["params_b"] * 1e9 * (input_tokens + out) for n, out in zip(names, outputs, strict=True)
        ]
    else:
        unpriced = [n for n in names if PRICES[0] not in fields[n]]
        no_params = [n for n in names if "params_b" not in fields[n]]
        raise TableError(
            f"{path}: costs mix units: {unpriced} have no prices and {no_params} no 'params_b'; "
            "give every candidate prices, or every candidate 'params_b'"
        )
    return CandidateCosts(names, np.asarray(per_query, dtype=np.float64), unit, str(path))


@dataclass
class CostMatrix:
    """Each query's cost for each candidate, ``values`` float64 ``[queries, candidates]`` in the table's
    candidate order. ``unit``: the cost file's (``"price"`` or ``"flops"``), or ``"table"`` when only the
    table's per-query costs were used; ``filled``: how many cells the table did not give per query."""

    values: np.ndarray
    unit: str
    source: str
    filled: int


def cost_matrix(table: RoutingTable, file_costs: CandidateCosts | None = None) -> CostMatrix:
    """The table's per-query costs where known; each unknown cell gets the candidate's cost from
    ``file_costs`` (read with ``load_costs(path, candidates=table.candidates)``; matched by name), or
    without a file the mean of that candidate's known per-query costs.

    Per-query costs are taken to be in the file's unit. A candidate with no cost at all (no file and no
    row giving one), or a file whose candidates are not the table's, is a :class:`TableError`."""
    given = np.full((len(table), len(table.candidates)), np.nan) if table.costs is None else table.costs
    known = np.isfinite(given)
    filled = int((~known).sum())
    from_table = f"{table.source} ({COSTS_FIELD})"
    if file_costs is not None:
        fallback = _file_costs_in_order(table, file_costs)
        unit = file_costs.unit
        sources = [from_table] * bool(known.any()) + [file_costs.source] * bool(filled)
        source = " + ".join(sources)
    else:
        uncosted = [c for c, seen in zip(table.candidates, known.any(axis=0), strict=True) if not seen]
        if uncosted:
            raise TableError(
                f"{table.source}: no cost for candidate(s) {uncosted}: no row gives '{COSTS_FIELD}.<candidate>' "
                "for them and no cost file is given"
            )
        fallback = np.nansum(given, axis=0) / known.sum(axis=0)
        unit, source = "table", from_table
    values = np.where(known, given, fallback[None, :])
    return CostMatrix(values=values.astype(np.float64), unit=unit, source=source, filled=filled)


def _file_costs_in_order(table: RoutingTable, file_costs: CandidateCosts) -> np.ndarray:
    """The file's per-query costs in the table's candidate order."""
    costs = file_costs.as_dict()
    missing = [c for c in table.candidates if c not in costs]
    extra = [c for c in file_costs.candidates if c not in table.candidates]
    if missing or extra:
        problems = [f"no cost for {missing}"] * bool(missing) + [f"{extra} not in the table"] * bool(extra)
        raise TableError(
            f"{file_costs.source}: candidates do not match the table {table.source}'s: {'; '.join(problems)} "
            "(read the file with load_costs(path, candidates=table.candidates))"
        )
    return np.array([costs[c] for c in table.candidates], dtype=np.float64)
