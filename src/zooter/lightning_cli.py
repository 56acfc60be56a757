"""``zooter fit|validate|test|predict``: the LightningCLI over every router and the data module.

Routers are chosen in subclass mode (``--model <class_path>``, bare names such as ``KNNRouter`` for
zooter's own routers, or ``--config configs/router/<name>.yaml``); the data module fixes the values
every router needs (candidates, tokenizer) and links them into the model's arguments. A router
without one of the linked arguments ignores that link.

Where outputs go: ``fit`` writes ``<save_dir>/<name>/version_N/`` and prints it with its best and last
checkpoints. ``validate``, ``test`` and ``predict`` of a checkpoint that ``fit`` wrote under the same
``save_dir``/``name`` write beside that run, to ``version_N-<stage>-<checkpoint>/`` (e.g.
``version_0-test-last/``, then ``version_0-test-last_2/``), unless the logger's ``version`` is set.
A failed command removes the run directory it created when that holds nothing but its config.
"""

from __future__ import annotations

import importlib
import itertools
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, NoReturn

from jsonargparse import ArgumentParser, Namespace
from lightning.pytorch import Trainer
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO

import zooter.routers.baselines
import zooter.routers.zooter  # noqa: F401  (imported so bare router class names resolve)
from zooter.data.datamodule import ZooterDataModule
from zooter.errors import UsageError, closest_option
from zooter.routers.base import RouterModule
from zooter.runs.callbacks import RoutingPredictionWriter, TestMetricsWriter, ZooterSaveConfig, run_dir
from zooter.runs.resume import AtomicCheckpointIO, RandomStateCheckpoint

DESCRIPTION = (
    "zooter: reward-guided routing of queries across LLMs. Routers: --model ZooterRouter (default), "
    "RouterDCRouter, MatrixFactorizationRouter, ProbeRouter, BestSingleRouter, RandomRouter, OracleRouter, "
    "RewardModelRankingRouter, TagMajorityRouter, KNNRouter "
    "(or --config configs/router/<name>.yaml). `zooter --help` lists the other commands."
)
# loggers whose run directory is save_dir/name/version, so evaluation runs can be put beside a fit's
VERSIONED_LOGGERS = {
    "lightning.pytorch.loggers.CSVLogger",
    "lightning.pytorch.loggers.csv_logs.CSVLogger",
    "lightning.pytorch.loggers.TensorBoardLogger",
    "lightning.pytorch.loggers.tensorboard.TensorBoardLogger",
}
NOISE_LINE = re.compile(
    r"\s*(?:- )?(?:Subtypes: |Given value type: |Given value: NestedArg|Expected a <class 'NoneType'>$"
    r"|Does not validate against any of the Union subtypes$|Errors:$)"
)
CLASS_REPR = re.compile(r"<class '([\w.]+)'>")
RUN_CONFIG_FILES = {"config.yaml", "hparams.yaml"}  # a run directory holding only these has no results


class ZooterArgumentParser(LightningArgumentParser):
    """The LightningCLI parser, raising :class:`~zooter.errors.UsageError` with a short message (and the
    closest valid key for an unknown one) instead of printing the whole usage text and exiting."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # a parser inside jsonargparse (e.g. for one subclass): it handles this
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        raise UsageError(explain_parse_error(message, parser)) from ex


def _long_options(parser: ArgumentParser) -> list[str]:
    return [s[2:] for a in parser._actions for s in a.option_strings if s.startswith("--") and not s.endswith("+")]


def _init_args_keys(class_path: str, key: str) -> list[str]:
    """``<key>.init_args.<argument>`` for every argument of the class at ``class_path`` (as jsonargparse sees it)."""
    module, _, name = class_path.rpartition(".")
    try:
        parser = ArgumentParser(exit_on_error=False)
        parser.add_class_arguments(
            getattr(importlib.import_module(module), name), f"{key}.init_args", fail_untyped=False
        )
    except Exception:  # a class that does not import or parse has its own message; no suggestion then
        return []
    return _long_options(parser)


def explain_parse_error(message: str, parser: ArgumentParser) -> str:
    """jsonargparse's ``message``, or for an unknown key a one-line message suggesting the closest valid one
    (``--model.learning_rat`` -> ``--model.init_args.lr``), with where to look up the options."""
    command = parser.prog.replace(" [options]", "")
    known = _long_options(parser)
    try:
        model = parser.get_default("model") if "model" in known else None
    except KeyError:
        model = None
    if isinstance(model, Namespace) and model.get("class_path"):
        known += _init_args_keys(model.class_path, "model")
    # an argument a subclass (--model, --trainer.logger, ...) does not accept
    subclass = re.match(r"Parser key \"([\w.]+)\":.*class_path '([\w.]+)':\s+Option '(\w+)' is not", message, re.S)
    if subclass:
        key, class_path, option = subclass.groups()
        known += _init_args_keys(class_path, key)
        name = class_path.rpartition(".")[2]
        return _unknown(f"{name} (--{key}) has no argument '{option}'", f"{key}.{option}", known, command)
    unrecognized = re.match(r"unrecognized arguments: (.*)", message, re.S)
    if unrecognized:
        unknown = [t[2:].split("=")[0] for t in unrecognized.group(1).split() if t.startswith("--")]
        if unknown:
            return "\n".join(_unknown(f"unknown option --{u}", u, known, command) for u in unknown)
    not_accepted = re.search(r"(?:Group '([\w.]+)' )?does not accept option '([\w.]+)'", message)
    if not_accepted:
        group, option = not_accepted.groups()
        key = f"{group}.{option}" if group else option
        return _unknown(f"unknown key '{key}'", key, known, command)
    return f"{_tidy(message)}\n(`{command} --help` lists the options)"


def _tidy(message: str) -> str:
    """jsonargparse's type error without the lines that explain its own machinery (union subtypes, the
    ``None`` alternative, internal value types)."""
    lines = [line for line in message.splitlines() if line.strip() and not NOISE_LINE.match(line)]
    return CLASS_REPR.sub(r"\1", "\n".join(lines))


def _unknown(what: str, key: str, known: list[str], command: str) -> str:
    suggestion = closest_option(key, known)
    if suggestion:
        return f"{what}; did you mean --{suggestion}?"
    return f"{what} (`{command} --help` lists the options)"


class ZooterCLI(LightningCLI):
    """LightningCLI with the data-to-model links, zooter's output callbacks, atomic checkpoints and
    random state saved in checkpoints always on (see :mod:`zooter.runs.resume`); evaluation runs beside
    the checkpoint's run, paths printed at the end, and no leftover directory from a failed run."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.encoder", "model.init_args.encoder")
        for value in ("candidates", "vocab_size", "tokenizer_fingerprint"):
            parser.link_arguments(f"data.{value}", f"model.init_args.{value}", apply_on="instantiate")
        parser.add_lightning_class_args(TestMetricsWriter, "test_metrics_writer")
        parser.add_lightning_class_args(RoutingPredictionWriter, "prediction_writer")
        parser.add_lightning_class_args(RandomStateCheckpoint, "random_state")
        parser.set_defaults({"model": {"class_path": "zooter.routers.ZooterRouter"}})

    def before_instantiate_classes(self) -> None:
        if self.subcommand in ("validate", "test", "predict"):
            _beside_checkpoint_run(self.config[self.subcommand], self.subcommand)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # keep a CheckpointIO the user chose
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

    def _run_subcommand(self, subcommand: str) -> None:
        """LightningCLI's run of the subcommand, without the evaluation runs' "dirpath has changed" warning
        (they never save checkpoints), removing the run directory it created if it fails before any result."""
        directory = run_dir(self.trainer) if self.trainer.is_global_zero else None
        created = directory is not None and not directory.exists()
        with warnings.catch_warnings():
            if subcommand != "fit":
                warnings.filterwarnings("ignore", message=r"The dirpath has changed from")
            try:
                super()._run_subcommand(subcommand)
            except BaseException:
                if created and directory is not None:
                    _remove_if_only_config(directory)
                raise

    def after_fit(self) -> None:
        """Print the run directory and the best and last checkpoints."""
        if not self.trainer.is_global_zero:
            return
        lines = [f"zooter fit: run directory {run_dir(self.trainer)}"]
        shown: set[str] = set()
        for callback in self.trainer.checkpoint_callbacks:
            best, last = getattr(callback, "best_model_path", ""), getattr(callback, "last_model_path", "")
            if best and best not in shown:
                monitor, score = getattr(callback, "monitor", None), getattr(callback, "best_model_score", None)
                kind = "best checkpoint" if monitor else "last checkpoint"
                if monitor and score is not None:
                    kind += f" ({monitor} {float(score):.4f})"
                lines.append(f"  {kind}: {best}")
                shown.add(best)
            if last and last not in shown:
                lines.append(f"  last checkpoint: {last}")
                shown.add(last)
        print("\n".join(lines), flush=True)

    def after_validate(self) -> None:
        if self.trainer.is_global_zero:
            print(f"zooter validate: run directory {run_dir(self.trainer)}", flush=True)


def _beside_checkpoint_run(config: Namespace, stage: str) -> None:
    """Point the logger of an evaluation run at ``<run>-<stage>-<checkpoint>`` beside the checkpoint's run
    (``_2``, ``_3``, ... appended when that exists), when the checkpoint lies in
    ``<save_dir>/<name>/<run>/checkpoints/`` of this very logger and the logger's version is not set
    (else leave it: the user chose where the outputs go)."""
    ckpt_path, logger = config.get("ckpt_path"), config.get("trainer.logger")
    if not ckpt_path or not isinstance(logger, Namespace) or logger.get("class_path") not in VERSIONED_LOGGERS:
        return
    init_args = logger.get("init_args") or Namespace()
    if init_args.get("version") is not None:
        return
    ckpt = Path(ckpt_path).resolve()
    run = ckpt.parent.parent
    save_dir, name = init_args.get("save_dir"), init_args.get("name")
    if ckpt.parent.name != "checkpoints" or save_dir is None or Path(save_dir, name or "").resolve() != run.parent:
        return
    version = base = f"{run.name}-{stage}-{ckpt.stem}"
    for again in itertools.count(2):  # never into an earlier evaluation's directory: a failure would spoil it
        if not (run.parent / version).exists():
            break
        version = f"{base}_{again}"
    init_args.version = version
    logger.init_args = init_args


def _remove_if_only_config(directory: Path) -> None:
    """Delete ``directory`` if it holds no files but ``config.yaml``/``hparams.yaml`` (and empty folders)."""
    if directory.is_dir() and all(p.is_dir() or p.name in RUN_CONFIG_FILES for p in directory.rglob("*")):
        shutil.rmtree(directory, ignore_errors=True)


def make_cli(args: ArgsType = None, run: bool = True) -> ZooterCLI:
    """The ``zooter fit|validate|test|predict`` LightningCLI (``run=False``: parse and build only)."""
    return ZooterCLI(
        RouterModule,
        ZooterDataModule,
        subclass_mode_model=True,
        seed_everything_default=0,
        save_config_callback=ZooterSaveConfig,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": DESCRIPTION, "prog": "zooter"},
        parser_class=ZooterArgumentParser,
        run=run,
        args=args,
    )
