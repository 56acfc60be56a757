"""The argument parser of the plain ``zooter`` commands (report, cv, sweep, generate, score, tag, route,
add-candidate): jsonargparse's, with bare boolean flags.

jsonargparse makes an argument typed ``bool`` take a value (``--dry_run true``); :class:`PlainParser`
also accepts the bare flag (``--dry_run`` means ``--dry_run true``), as argparse's ``store_true`` does,
while ``--dry_run false`` and ``--dry_run=false`` keep working. A bare flag takes the next word as its
value when there is one that is not an option, so put bare flags after positional arguments
(``zooter sweep FILE --dry_run``).

A list option takes its items as separate words too (``--names a b``, as argparse's ``nargs="+"``), up
to the next option; the list syntax (``--names '[a, b]'``) and ``--names+ a`` keep working.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Sequence
from typing import Any, Optional

from jsonargparse import ArgumentParser

_BOOL_TYPES = (bool, Optional[bool])  # noqa: UP045  (the typing form equals ``bool | None`` too)


def _is_list(hint: Any) -> bool:
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return any(typing.get_origin(option) is list for option in options)


def _item(word: str) -> Any:
    for kind in (int, float):
        try:
            return kind(word)
        except ValueError:
            pass
    return word


class PlainParser(ArgumentParser):
    """``jsonargparse.ArgumentParser`` whose ``bool`` and ``bool | None`` options may be given bare, and
    whose list options take their items as separate words."""

    def parse_args(self, args: Sequence[str] | None = None, *rest: Any, **kwargs: Any) -> Any:
        if args is not None:
            args = self._join_list_items(list(args))
        for action in self._actions:
            # jsonargparse keeps an argument's type hint on its action; argparse's nargs="?" with const=True
            # lets the value be left out (jsonargparse still validates a value that is given)
            if action.option_strings and action.nargs is None and getattr(action, "_typehint", None) in _BOOL_TYPES:
                action.nargs, action.const = "?", True
        return super().parse_args(args, *rest, **kwargs)

    def _join_list_items(self, argv: list[str]) -> list[str]:
        """``--opt a b`` → ``--opt '["a", "b"]'`` for list-typed options (one word starting with "[" is kept)."""
        lists = {o for a in self._actions if _is_list(getattr(a, "_typehint", None)) for o in a.option_strings}
        out, i = [], 0
        while i < len(argv):
            out.append(argv[i])
            i += 1
            if out[-1] in lists and not out[-1].endswith("+"):
                end = i
                while end < len(argv) and not argv[end].startswith("-"):
                    end += 1
                words = argv[i:end]
                if words and not (len(words) == 1 and words[0].lstrip().startswith("[")):
                    out.append(json.dumps([_item(w) for w in words]))
                    i = end
        return out
