"""The ``zooter`` command.

- ``zooter fit|validate|test|predict``: LightningCLI over :class:`~zooter.routers.base.RouterModule`
  subclasses and :class:`~zooter.data.datamodule.ZooterDataModule` (``--config`` repeatable,
  ``--print_config``; see :mod:`zooter.lightning_cli`).
- ``zooter synth``: write a synthetic routing table (see :mod:`zooter.table.synth`).
- ``zooter report|cv|sweep|generate|score|tag|route|add-candidate``: plain commands, each the ``main(argv)`` of its
  module (see :data:`PLAIN_COMMANDS`).

Each subcommand imports only what it needs: ``zooter synth`` and ``zooter report`` never load
Lightning or transformers unless their work does.
"""

from __future__ import annotations

import importlib
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zooter.table.synth import SynthConfig

# subcommands that are plain functions, not LightningCLI runs: name -> module with ``main(argv)``
PLAIN_COMMANDS = {
    "report": "zooter.eval.report",
    "cv": "zooter.runs.cv",
    "sweep": "zooter.runs.sweep",
    "generate": "zooter.pipeline.generate",
    "score": "zooter.pipeline.score",
    "tag": "zooter.pipeline.tag",
    "route": "zooter.inference",
    "add-candidate": "zooter.runs.add_candidate",
}


def synth(out: Path = Path("data/synth.jsonl"), table: SynthConfig | None = None) -> Path:
    """Write a synthetic routing table as JSON Lines.

    Args:
        out: output file (.jsonl).
        table: generator settings (sizes, noise levels, seed), e.g. ``--table.num_queries 48000``.
    """
    from zooter.table.schema import write_jsonl
    from zooter.table.synth import SynthConfig, generate

    started = time.perf_counter()
    table = generate(table or SynthConfig())
    path = write_jsonl(table, out)
    tags = {t for row_tags in table.tags for t in row_tags}
    print(
        f"zooter synth: {len(table)} queries x {len(table.candidates)} candidates, {len(tags)} tags, "
        f"judges {table.judges} -> {path} ({time.perf_counter() - started:.1f}s)"
    )
    return path


def main(args: list[str] | dict | None = None) -> None:
    """Entry point of the ``zooter`` console script (``args`` for calling it from Python and tests)."""
    # a deprecation inside Lightning itself, printed on every run; nothing a user can act on
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] == "synth":
        from jsonargparse import CLI

        from zooter.table.synth import SynthConfig  # noqa: F401  (resolves the annotation of synth())

        CLI(synth, args=argv[1:])
        return
    if argv and argv[0] in PLAIN_COMMANDS:
        importlib.import_module(PLAIN_COMMANDS[argv[0]]).main(argv[1:])
        return
    from zooter.lightning_cli import make_cli

    make_cli(args)


if __name__ == "__main__":
    main()
