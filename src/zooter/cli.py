"""The ``zooter`` command.

- ``zooter fit|validate|test|predict``: LightningCLI over :class:`~zooter.routers.base.RouterModule`
  subclasses and :class:`~zooter.data.datamodule.ZooterDataModule` (``--config`` repeatable, ``--print_config``).
- ``zooter synth``: write a synthetic routing table (see :mod:`zooter.table.synth`).
- ``zooter report|cv|sweep|generate|score|tag|route``: plain commands, each the ``main(argv)`` of its
  module (see :data:`PLAIN_COMMANDS`).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

from jsonargparse import CLI
from lightning.pytorch import Trainer
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO

from zooter.data.datamodule import ZooterDataModule
from zooter.routers.base import RouterModule
from zooter.routers.zooter import ZooterRouter  # noqa: F401  (registers the class for bare names)
from zooter.runs.callbacks import RoutingPredictionWriter, TestMetricsWriter, ZooterSaveConfig
from zooter.runs.resume import AtomicCheckpointIO, RandomStateCheckpoint
from zooter.table.schema import write_jsonl
from zooter.table.synth import SynthConfig, generate

# subcommands that are plain functions, not LightningCLI runs: name -> module with ``main(argv)``
PLAIN_COMMANDS = {
    "report": "zooter.eval.report",
    "cv": "zooter.runs.cv",
    "sweep": "zooter.runs.sweep",
    "generate": "zooter.pipeline.generate",
    "score": "zooter.pipeline.score",
    "tag": "zooter.pipeline.tag",
    "route": "zooter.inference",
}


class ZooterCLI(LightningCLI):
    """LightningCLI with the data-to-model links, zooter's output callbacks, atomic checkpoints and
    random state saved in checkpoints always on (see :mod:`zooter.runs.resume`)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.encoder", "model.init_args.encoder")
        for value in ("candidates", "vocab_size", "tokenizer_fingerprint"):
            parser.link_arguments(f"data.{value}", f"model.init_args.{value}", apply_on="instantiate")
        parser.add_lightning_class_args(TestMetricsWriter, "test_metrics_writer")
        parser.add_lightning_class_args(RoutingPredictionWriter, "prediction_writer")
        parser.add_lightning_class_args(RandomStateCheckpoint, "random_state")
        parser.set_defaults({"model": {"class_path": "zooter.routers.ZooterRouter"}})

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # keep a CheckpointIO the user chose
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer


def synth(out: Path = Path("data/synth.jsonl"), table: SynthConfig | None = None) -> Path:
    """Write a synthetic routing table as JSON Lines.

    Args:
        out: output file (.jsonl).
        table: generator settings (sizes, noise levels, seed), e.g. ``--table.num_queries 48000``.
    """
    started = time.perf_counter()
    table = generate(table or SynthConfig())
    path = write_jsonl(table, out)
    tags = {t for row_tags in table.tags for t in row_tags}
    print(
        f"zooter synth: {len(table)} queries x {len(table.candidates)} candidates, {len(tags)} tags, "
        f"judges {table.judges} -> {path} ({time.perf_counter() - started:.1f}s)"
    )
    return path


def main(args: ArgsType = None) -> None:
    """Entry point of the ``zooter`` console script (``args`` for calling it from Python and tests)."""
    # a deprecation inside Lightning itself, printed on every run; nothing a user can act on
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] == "synth":
        CLI(synth, args=argv[1:])
        return
    if argv and argv[0] in PLAIN_COMMANDS:
        import importlib

        importlib.import_module(PLAIN_COMMANDS[argv[0]]).main(argv[1:])
        return
    make_cli(args)


def make_cli(args: ArgsType = None, run: bool = True) -> ZooterCLI:
    """The ``zooter fit|validate|test|predict`` LightningCLI (``run=False``: parse and build only)."""
    return ZooterCLI(
        RouterModule,
        ZooterDataModule,
        subclass_mode_model=True,
        seed_everything_default=0,
        save_config_callback=ZooterSaveConfig,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={
            "description": "zooter: reward-guided routing of queries across LLMs. "
            "Also: `zooter synth --help` (a synthetic routing table), "
            "`zooter report --help` (routers against baselines), `zooter cv --help` (k-fold cross-validation), "
            "`zooter sweep --help` (W&B sweep files, offline), `zooter generate --help` (candidate responses), "
            "`zooter score --help` (reward-model scores), `zooter tag --help` (query tags), "
            "`zooter route --help` (route queries with a trained checkpoint)."
        },
        run=run,
        args=args,
    )


if __name__ == "__main__":
    main()
