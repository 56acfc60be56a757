"""``zooter cv``: k-fold cross-validation end to end (fit, predict, then one report over all folds).

    zooter cv --folds 5 --name ae_minilm --out reports/ae_minilm -- --config a.yaml --config b.yaml

Everything after ``--`` goes to ``zooter fit`` and ``zooter predict`` for every fold, plus
``--data.folds K --data.fold k`` and a fixed logger version, so fold k lives in
``<save_dir>/<name>/fold<k>`` (training) and ``<save_dir>/<name>/fold<k>-predict`` (predictions).
Each step is its own process (DDP-safe). A rerun skips folds with predictions and resumes a fold
killed mid-fit from its ``last.ckpt``, so a killed cross-validation goes on where it stopped.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stdout, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from zooter.eval.report import ReportOptions, write_report
from zooter.files import resume_args


@dataclass
class CrossValidation:
    """Settings of ``zooter cv``.

    Args:
        folds: number of folds k.
        name: run name (the logger's ``name``); folds are its versions.
        only: run just these folds (default: all); the report covers every finished fold.
        checkpoint: which checkpoint predicts: ``best`` (on ``val/routed_score``) or ``last``.
        report: the report settings (``--report.out``, ``--report.knn_encoder``, ...).
    """

    folds: int = 5
    name: str = "cv"
    only: list[int] | None = None
    checkpoint: Literal["best", "last"] = "best"
    report: ReportOptions = field(default_factory=ReportOptions)


def run(settings: CrossValidation, trainer_args: list[str]) -> Path:
    save_dir = _save_dir(trainer_args)
    for fold in settings.only if settings.only is not None else range(settings.folds):
        fold_args = [*trainer_args, "--data.folds", str(settings.folds), "--data.fold", str(fold),
                     "--trainer.logger.init_args.name", settings.name]  # fmt: skip
        fit_dir = save_dir / settings.name / f"fold{fold}"
        predict_dir = save_dir / settings.name / f"fold{fold}-predict"
        if (predict_dir / "predictions.jsonl").is_file():
            print(f"zooter cv: fold {fold} already done ({predict_dir})")
        else:
            # a fold killed mid-fit resumes from its last.ckpt; a finished fit resumes at its end and stops
            _zooter("fit", *fold_args, "--trainer.logger.init_args.version", f"fold{fold}", *resume_args(fit_dir))
            ckpt = _checkpoint(fit_dir, settings.checkpoint)
            _zooter("predict", *fold_args, "--trainer.logger.init_args.version", f"fold{fold}-predict",
                    "--ckpt_path", str(ckpt))  # fmt: skip
    done = sorted(p for p in (save_dir / settings.name).glob("fold*-predict") if (p / "predictions.jsonl").is_file())
    if not done:
        raise ValueError(f"no fold has predictions in {save_dir / settings.name} yet: nothing to report")
    options = settings.report
    if options.names is None:
        options.names = [settings.name] * len(done)
    return write_report(done, options)


def _save_dir(trainer_args: list[str]) -> Path:
    """The logger's save_dir, as ``zooter fit`` resolves it from these arguments."""
    from zooter.cli import main

    buffer = io.StringIO()
    with redirect_stdout(buffer), suppress(SystemExit):
        main(["fit", *trainer_args, "--print_config"])
    config = yaml.safe_load(buffer.getvalue())
    logger = (config.get("trainer") or {}).get("logger")
    if not isinstance(logger, dict) or "save_dir" not in logger.get("init_args", {}):
        raise SystemExit("zooter cv: the config needs a logger with a save_dir (e.g. configs/trainer/cpu.yaml)")
    return Path(logger["init_args"]["save_dir"])


def _checkpoint(fit_dir: Path, which: str) -> Path:
    pattern = "best-*.ckpt" if which == "best" else "last.ckpt"
    found = sorted((fit_dir / "checkpoints").glob(pattern))
    if not found:
        raise SystemExit(f"zooter cv: no {pattern} in {fit_dir / 'checkpoints'} (is a ModelCheckpoint configured?)")
    return found[-1]


def _zooter(*argv: str) -> None:
    print("zooter cv: zooter " + " ".join(argv), flush=True)
    done = subprocess.run([sys.executable, "-m", "zooter", *argv], env=os.environ.copy())
    if done.returncode != 0:
        raise SystemExit(f"zooter cv: `zooter {argv[0]}` failed with exit code {done.returncode}")


def main(argv: list[str]) -> None:
    """``zooter cv [OPTIONS] -- FIT_ARGS...``"""
    from zooter.cli_args import PlainParser

    own, trainer_args = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = PlainParser(prog="zooter cv", description=__doc__)
    parser.add_class_arguments(CrossValidation, nested_key=None)
    settings = CrossValidation(**parser.instantiate_classes(parser.parse_args(own)).as_dict())
    if not trainer_args:
        parser.error("give the fit arguments after `--`, e.g. `-- --config configs/quickstart.yaml`")
    try:
        run(settings, trainer_args)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"zooter cv: {err}")
