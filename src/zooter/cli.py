"""The ``zooter`` command.

- ``zooter fit|validate|test|predict``: LightningCLI over :class:`~zooter.routers.base.RouterModule`
  subclasses and :class:`~zooter.data.datamodule.ZooterDataModule` (``--config`` repeatable,
  ``--print_config``; see :mod:`zooter.lightning_cli`).
- ``zooter synth|report|cv|sweep|generate|score|tag|route|calibrate|add-candidate``: plain commands, each the
  ``main(argv)`` of its module (see :data:`PLAIN_COMMANDS`).
- ``zooter``, ``zooter --help``: the list of commands, printed without loading Lightning or torch.

Each subcommand imports only what it needs: ``zooter synth`` and ``zooter report`` never load
Lightning or transformers unless their work does. Every subcommand runs under
:func:`zooter.errors.run_command`: a user error is one message on stderr, never a traceback
(``ZOOTER_DEBUG=1`` shows it).
"""

from __future__ import annotations

import difflib
import importlib
import logging
import sys
import warnings

from zooter.errors import run_command

# the LightningCLI subcommands: name -> what it does
LIGHTNING_COMMANDS = {
    "fit": "train a router (--config configs/quickstart.yaml; --print_config shows the resolved config)",
    "validate": "evaluate a checkpoint on the validation split (--ckpt_path)",
    "test": "evaluate a checkpoint on the test split; writes test_metrics.json (--ckpt_path)",
    "predict": "route the test split or data.predict_path; writes predictions.jsonl (--ckpt_path)",
}
# subcommands that are plain functions, not LightningCLI runs: name -> module with ``main(argv)``
PLAIN_COMMANDS = {
    "synth": "zooter.table.synth",
    "report": "zooter.eval.report",
    "cv": "zooter.runs.cv",
    "sweep": "zooter.runs.sweep",
    "generate": "zooter.pipeline.generate",
    "score": "zooter.pipeline.score",
    "tag": "zooter.pipeline.tag",
    "route": "zooter.inference",
    "calibrate": "zooter.runs.calibrate",
    "add-candidate": "zooter.runs.add_candidate",
    "serve": "zooter.serve.command",
}
OTHER_COMMANDS = {
    "synth": "write a synthetic routing table",
    "report": "compare routers' predictions with every baseline (tables and plots)",
    "cv": "k-fold cross-validation: fit and predict every fold, then one report",
    "sweep": "run a W&B sweep file offline, resumably, and aggregate it",
    "generate": "every candidate LLM's response to every query",
    "score": "score responses with a judge (reward model, exact match, unit tests, LLM judge) into a table",
    "tag": "give tags to queries that have none",
    "route": "route queries with a trained checkpoint",
    "calibrate": "choose a checkpoint's threshold or λ on validation for a target share, budget or quality",
    "add-candidate": "route over one more LLM without retraining",
    "serve": "an OpenAI-compatible gateway routing chat requests to the candidates' servers",
}
HELP = "\n".join(
    [
        "usage: zooter <command> [options]   (zooter <command> --help for its options)",
        "",
        "Reward-guided routing of queries across LLMs (Zooter, arXiv 2311.08692).",
        "",
        "Training and evaluation (LightningCLI):",
        *(f"  {name:<14}{text}" for name, text in LIGHTNING_COMMANDS.items()),
        "",
        "Other commands:",
        *(f"  {name:<14}{text}" for name, text in OTHER_COMMANDS.items()),
        "",
        "ZOOTER_DEBUG=1 shows the full traceback of any error.",
    ]
)
# Lightning messages printed on every small run that nothing a user does would change
NOISE_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\).*",  # a deprecation inside Lightning itself
    r"The number of training batches \(\d+\) is smaller than the logging interval",  # epoch metrics are logged
)
NOISE_LOGS = ("💡 Tip: For seamless cloud logging",)  # the litlogger advertisement
RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


def _drop_noise(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(NOISE_LOGS)


def quiet_lightning_noise() -> None:
    """Silence, by exact message, the Lightning output in :data:`NOISE_WARNINGS` and :data:`NOISE_LOGS`
    (loads nothing: the filters wait on logger names)."""
    for message in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if _drop_noise not in logger.filters:
            logger.addFilter(_drop_noise)


def main(args: list[str] | dict | None = None) -> None:
    """Entry point of the ``zooter`` console script (``args`` for calling it from Python and tests)."""
    quiet_lightning_noise()
    argv = list(sys.argv[1:] if args is None else args)
    if isinstance(args, dict):  # a parsed config for the LightningCLI
        argv = []
    elif not argv or argv[0] in ("-h", "--help"):
        print(HELP)
        return
    command = argv[0] if argv else ""
    if command in PLAIN_COMMANDS:
        run_command(command, lambda: importlib.import_module(PLAIN_COMMANDS[command]).main(argv[1:]))
        return
    if argv and not command.startswith("-") and command not in LIGHTNING_COMMANDS:
        close = difflib.get_close_matches(command, [*LIGHTNING_COMMANDS, *OTHER_COMMANDS], n=1)
        hint = f"; did you mean '{close[0]}'?" if close else " (`zooter --help` lists the commands)"
        sys.stderr.write(f"zooter: error: unknown command '{command}'{hint}\n")
        raise SystemExit(2)

    def lightning() -> None:
        from zooter.lightning_cli import make_cli

        make_cli(args)

    name = next((a for a in argv if a in LIGHTNING_COMMANDS), "")
    run_command(name, lightning)


if __name__ == "__main__":
    main()
