"""A cache of validated routing tables: a second run with the same file skips reading and validating it.

An entry is keyed by the file's path and bytes, the load arguments and the validating code (zooter's
version and the source of :mod:`zooter.table.schema`), so a change to any of them misses the cache. At the
paper's scale (48k queries) a hit costs ~0.1 s (hashing the file, unpickling) against ~0.3 s for a read.
Entries are pickles written atomically under the data module's ``cache_dir``; unpickling runs code, so
only use a cache dir that you (or your runs) wrote.
"""

from __future__ import annotations

import hashlib
import pickle
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

from zooter.files import atomic_path
from zooter.table import schema
from zooter.table.schema import RoutingTable, load_table, paused_gc


@cache
def _code_key() -> bytes:
    return f"{version('zooter')}\0".encode() + hashlib.sha256(Path(schema.__file__).read_bytes()).digest()


def load_table_cached(path: str | Path, cache_dir: str | Path | None, **load_args: Any) -> RoutingTable:
    """:func:`~zooter.table.schema.load_table` through the cache in ``cache_dir`` (``None``: no cache)."""
    if cache_dir is None:
        return load_table(path, **load_args)
    try:
        content = Path(path).read_bytes()
    except OSError:
        return load_table(path, **load_args)  # which names the problem
    key = hashlib.sha256(_code_key())
    key.update(f"\0{Path(path).resolve()}\0{sorted(load_args.items())!r}\0".encode())
    key.update(content)
    entry = Path(cache_dir) / f"table-{key.hexdigest()[:24]}.pkl"
    if entry.is_file():
        with paused_gc(), entry.open("rb") as f:
            return pickle.load(f)
    table = load_table(path, **load_args)
    with atomic_path(entry) as tmp, tmp.open("wb") as f:
        pickle.dump(table, f, protocol=pickle.HIGHEST_PROTOCOL)
    return table
