"""User errors of the ``zooter`` command: one short message on stderr and a non-zero exit, never a traceback.

:func:`run_command` runs one subcommand. A user error (a bad table, a missing file, a checkpoint for other
candidates, a config value zooter refuses, a command line that does not parse) ends it with
``zooter <command>: error: <message>`` on stderr and exit status 1 (2 for a command line or config that
does not parse); any other exception is a bug and keeps its full traceback. ``ZOOTER_DEBUG=1`` shows the
traceback of every error. This module imports nothing heavy: the command's own modules are loaded by then.
"""

from __future__ import annotations

import difflib
import linecache
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

PACKAGE_DIR = Path(__file__).resolve().parent
# exception classes that are user errors wherever they are raised: (module, name), matched once loaded
USER_ERROR_CLASSES = (
    ("zooter.table.schema", "TableError"),
    ("zooter.routers.base", "CheckpointMismatchError"),
    ("zooter.pipeline.generate", "GenerateError"),
    ("lightning.fabric.utilities.exceptions", "MisconfigurationException"),  # Lightning's bad trainer settings
)
FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
# spelled-out names of abbreviated arguments, for suggestions difflib cannot make ("learning_rate" -> "lr")
ABBREVIATIONS = {"learning_rate": "lr"}


class UsageError(Exception):
    """A command line or config that does not parse (unknown key, wrong type): exit status 2."""


def debug_enabled() -> bool:
    """``ZOOTER_DEBUG`` set to anything but empty, ``0``, ``false`` or ``no``: show full tracebacks."""
    return os.environ.get("ZOOTER_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _raised_by_zooter(err: BaseException) -> bool:
    """Whether a ``raise`` statement in zooter's own code raised ``err`` (a deliberate message, not a bug
    such as a failed unpacking inside zooter or a ValueError deep in numpy)."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = tb.tb_frame.f_code.co_filename
    try:
        Path(filename).resolve().relative_to(PACKAGE_DIR)
    except ValueError:
        return False
    return linecache.getline(filename, tb.tb_lineno).lstrip().startswith("raise ")


def user_error_message(err: BaseException) -> str | None:
    """The message to show for a user error, or ``None`` when ``err`` is a bug (show its traceback)."""
    if isinstance(err, UsageError):
        return str(err)
    for module, name in USER_ERROR_CLASSES:
        cls = getattr(sys.modules.get(module), name, None)  # not loaded: err cannot be one
        if isinstance(cls, type) and isinstance(err, cls):
            return str(err)
    if isinstance(err, FILE_ERRORS):
        if err.filename is not None and err.strerror:
            return f"{err.filename}: {err.strerror.lower()}"
        return str(err)
    if isinstance(err, UnicodeDecodeError):
        return f"a file is not UTF-8 text: {err}"
    if isinstance(err, ValueError) and _raised_by_zooter(err):
        return str(err)
    return None


def run_command(name: str, command: Callable[[], T]) -> T:
    """Run ``command`` (the subcommand ``name``): a user error becomes one message on stderr and
    ``SystemExit`` (status 2 for :class:`UsageError`, else 1); other exceptions propagate."""
    if debug_enabled():
        return command()
    try:
        return command()
    except Exception as err:
        message = user_error_message(err)
        if message is None:
            raise
        prefix = f"zooter {name}: error: " if name else "zooter: error: "
        sys.stderr.write(prefix + message.strip().replace("\n", "\n  ") + "\n")
        sys.stderr.flush()
        raise SystemExit(2 if isinstance(err, UsageError) else 1) from None


def _plain(key: str) -> str:
    """A dotted key without ``init_args`` parts (jsonargparse accepts ``--model.lr`` for ``--model.init_args.lr``)."""
    return ".".join(part for part in key.split(".") if part != "init_args")


def closest_option(unknown: str, known: Iterable[str]) -> str | None:
    """The known dotted key closest to ``unknown`` (both without ``--``), or ``None``.

    The group (all but the last part) is matched first, exactly or by :func:`difflib.get_close_matches`;
    then the last part among that group's keys: by difflib, else by a spelled-out name of an abbreviation
    (``learning_rate`` -> ``lr``, also matched by difflib, so ``learning_rat`` finds ``lr``).
    """
    by_plain: dict[str, str] = {}
    for key in sorted(set(known), key=lambda k: (k.count("init_args"), k)):  # prefer the spelling with init_args
        by_plain.setdefault(_plain(key), key)
    group, _, leaf = _plain(unknown).rpartition(".")
    groups = {key.rpartition(".")[0] for key in by_plain}
    if group not in groups:
        close = difflib.get_close_matches(group, groups, n=1, cutoff=0.6)
        if not close:
            return None
        group = close[0]
    leaves = {key.rpartition(".")[2]: key for key in by_plain if key.rpartition(".")[0] == group}
    if leaf in leaves:  # only the group was misspelt
        return by_plain[leaves[leaf]]
    match = difflib.get_close_matches(leaf, leaves, n=1, cutoff=0.6)
    if not match:
        spelled = {long: short for long, short in ABBREVIATIONS.items() if short in leaves}
        match = [spelled[m] for m in difflib.get_close_matches(leaf, spelled, n=1, cutoff=0.6)]
    return by_plain[leaves[match[0]]] if match else None
