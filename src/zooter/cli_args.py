"""The argument parser of the plain ``zooter`` commands (report, cv, sweep, generate, score, tag, route,
add-candidate): jsonargparse's, with bare boolean flags.

jsonargparse makes an argument typed ``bool`` take a value (``--dry_run true``); :class:`PlainParser`
also accepts the bare flag (``--dry_run`` means ``--dry_run true``), as argparse's ``store_true`` does,
while ``--dry_run false`` and ``--dry_run=false`` keep working. A bare flag takes the next word as its
value when there is one that is not an option, so put bare flags after positional arguments
(``zooter sweep FILE --dry_run``).
"""

from __future__ import annotations

from typing import Any, Optional

from jsonargparse import ArgumentParser

_BOOL_TYPES = (bool, Optional[bool])  # noqa: UP045  (the typing form equals ``bool | None`` too)


class PlainParser(ArgumentParser):
    """``jsonargparse.ArgumentParser`` whose ``bool`` and ``bool | None`` options may be given bare."""

    def parse_args(self, *args: Any, **kwargs: Any) -> Any:
        for action in self._actions:
            # jsonargparse keeps an argument's type hint on its action; argparse's nargs="?" with const=True
            # lets the value be left out (jsonargparse still validates a value that is given)
            if action.option_strings and action.nargs is None and getattr(action, "_typehint", None) in _BOOL_TYPES:
                action.nargs, action.const = "?", True
        return super().parse_args(*args, **kwargs)
