"""``zooter fit|validate|test|predict``: the LightningCLI over every router and the data module.

Routers are chosen in subclass mode (``--model <class_path>``, bare names such as ``KNNRouter`` for
zooter's own routers, or ``--config configs/router/<name>.yaml``); the data module fixes the values
every router needs (candidates, tokenizer) and links them into the model's arguments. A router
without one of the linked arguments ignores that link.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO

import zooter.routers.baselines
import zooter.routers.zooter  # noqa: F401  (imported so bare router class names resolve)
from zooter.data.datamodule import ZooterDataModule
from zooter.routers.base import RouterModule
from zooter.runs.callbacks import RoutingPredictionWriter, TestMetricsWriter, ZooterSaveConfig
from zooter.runs.resume import AtomicCheckpointIO, RandomStateCheckpoint

DESCRIPTION = (
    "zooter: reward-guided routing of queries across LLMs. Routers: --model ZooterRouter (default), "
    "RouterDCRouter, MatrixFactorizationRouter, ProbeRouter, BestSingleRouter, RandomRouter, OracleRouter, "
    "RewardModelRankingRouter, TagMajorityRouter, KNNRouter "
    "(or --config configs/router/<name>.yaml). "
    "Also: `zooter synth --help` (a synthetic routing table), "
    "`zooter report --help` (routers against baselines), `zooter cv --help` (k-fold cross-validation), "
    "`zooter sweep --help` (W&B sweep files, offline), `zooter generate --help` (candidate responses), "
    "`zooter score --help` (reward-model scores), `zooter tag --help` (query tags), "
    "`zooter route --help` (route queries with a trained checkpoint), "
    "`zooter add-candidate --help` (route over one more LLM without retraining)."
)


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


def make_cli(args: ArgsType = None, run: bool = True) -> ZooterCLI:
    """The ``zooter fit|validate|test|predict`` LightningCLI (``run=False``: parse and build only)."""
    return ZooterCLI(
        RouterModule,
        ZooterDataModule,
        subclass_mode_model=True,
        seed_everything_default=0,
        save_config_callback=ZooterSaveConfig,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": DESCRIPTION},
        run=run,
        args=args,
    )
