"""The paper's protocol (Zooter, arXiv 2311.08692) as one ordered list of commands.

    python experiments/paper/recipe.py > experiments/paper/recipe.sh    # the script for a GPU machine
    python experiments/paper/tiny/build.py                               # tiny models and data (CPU, offline)
    python experiments/paper/recipe.py --settings experiments/paper/tiny/recipe.yaml --run

:func:`steps` is the only definition of the recipe: ``recipe.sh`` (and the README's copy of it) is its
rendering for the paper's settings, and ``tests/test_paper_recipe.py`` runs it with the tiny settings,
so the documented commands are the tested ones. Every step is a ``zooter`` command except one, the
concatenation of the judged benchmark tables.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

BENCHMARKS = ("mmlu", "gsm8k", "humaneval", "alpacaeval", "mt_bench", "flask")
WIDTH = 110  # rendered command lines wrap before an option past this column


@dataclass(frozen=True)
class Settings:
    """Where the recipe reads and writes, and the few choices that are not in its config files."""

    configs: str = "experiments/paper"  # the recipe's config files
    overrides: str | None = None  # a directory whose files, by the same name, are composed after them
    base_config: str = "configs/paper.yaml"  # the paper's router settings
    data: str = "data/paper"  # inputs: train_queries.jsonl and bench/<benchmark>.jsonl
    work: str = "runs/paper"  # every output
    benchmarks: list[str] = field(default_factory=lambda: list(BENCHMARKS))
    folds: int = 2  # the benchmark table's folds: baselines fit on one, everything is scored on the other
    min_subset_size: int = 5  # the report's smallest subset (MT-Bench: 10 questions a category, 5 a fold)
    tag_args: list[str] = field(
        default_factory=lambda: ["--method", "instag", "--model", "OFA-Sys/InsTagger", "--batch_size", "32"]
    )

    @classmethod
    def load(cls, path: str | Path) -> Settings:
        """Settings from a YAML file of field values (unknown keys are an error naming them)."""
        values = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown recipe settings {sorted(unknown)}")
        return cls(**values)


@dataclass(frozen=True)
class Step:
    """One command: ``zooter <argv>``, or with ``concat`` the files ``argv[1:]`` joined into ``argv[0]``."""

    comment: str
    argv: list[str]
    concat: bool = False


def config(settings: Settings, name: str) -> list[str]:
    """``--config`` for a recipe config, then for its override when the overrides directory has one."""
    args = ["--config", f"{settings.configs}/{name}"]
    if settings.overrides is not None and (Path(settings.overrides) / name).is_file():
        args += ["--config", f"{settings.overrides}/{name}"]
    return args


def router_configs(settings: Settings) -> list[str]:
    return ["--config", settings.base_config, *config(settings, "fit.yaml")]


def steps(settings: Settings) -> list[Step]:
    """The paper's protocol, in order."""
    data, work = settings.data, settings.work
    runs = ["--trainer.logger.init_args.save_dir", f"{work}/runs", "--data.cache_dir", f"{work}/cache"]
    ckpt = f"{work}/runs/paper/train/checkpoints/last.ckpt"
    recipe = [
        Step(
            "1. InsTag tags for the training queries (the paper tags its pool first: it samples 10 queries per tag)",
            ["tag", f"{data}/train_queries.jsonl", "--out", f"{work}/train/queries.jsonl", *settings.tag_args],
        ),
        Step(
            "2. the six candidates answer every training query (temperature 0.7, top-p 1, 2048 new tokens)",
            [
                "generate",
                *config(settings, "generate.yaml"),
                "--queries",
                f"{work}/train/queries.jsonl",
                "--out",
                f"{work}/train/responses.jsonl",
            ],
        ),
        Step(
            "3. the reward model scores every answer: judge `rm`, the router's training labels",
            [
                "score",
                f"{work}/train/responses.jsonl",
                *config(settings, "score_rm.yaml"),
                "--out",
                f"{work}/train/table.jsonl",
            ],
        ),
        Step(
            "4. train the router at the paper's settings (mdeberta-v3-base, lr 1e-5, wd 5e-7, 5 epochs, beta 0.3)",
            [
                "fit",
                *router_configs(settings),
                "--data.path",
                f"{work}/train/table.jsonl",
                *runs,
                "--trainer.logger.init_args.version",
                "train",
            ],
        ),
    ]
    for benchmark in settings.benchmarks:
        responses = f"{work}/bench/{benchmark}.responses.jsonl"
        recipe += [
            Step(
                f"5. {benchmark}: the candidates answer, greedy",
                [
                    "generate",
                    *config(settings, "generate.yaml"),
                    "--temperature",
                    "0",
                    "--queries",
                    f"{data}/bench/{benchmark}.jsonl",
                    "--out",
                    responses,
                ],
            ),
            Step(
                f"6. {benchmark}: its own judge, written as judge `bench`",
                [
                    "score",
                    responses,
                    *config(settings, f"judges/{benchmark}.yaml"),
                    "--out",
                    f"{work}/bench/{benchmark}.jsonl",
                ],
            ),
        ]
    bench = f"{work}/bench/bench.jsonl"
    parts = [f"{work}/bench/{benchmark}.jsonl" for benchmark in settings.benchmarks]
    recipe += [
        Step("7. one benchmark table", [bench, *parts], concat=True),
        Step(
            "8. the reward model on the benchmark answers too: the RMR baseline",
            ["score", bench, *config(settings, "score_rm.yaml")],
        ),
    ]
    for fold in range(settings.folds):
        recipe.append(
            Step(
                f"9. route benchmark fold {fold} with the trained router (the other fold fits BMA, tag-majority, kNN)",
                [
                    "predict",
                    *router_configs(settings),
                    *config(settings, "eval.yaml"),
                    "--data.path",
                    bench,
                    "--data.folds",
                    str(settings.folds),
                    "--data.fold",
                    str(fold),
                    "--ckpt_path",
                    ckpt,
                    *runs,
                    "--trainer.logger.init_args.name",
                    "zooter",
                    "--trainer.logger.init_args.version",
                    f"fold{fold}",
                ],
            )
        )
    folds = [f"{work}/runs/zooter/fold{fold}" for fold in range(settings.folds)]
    recipe.append(
        Step(
            "10. Zooter against BMA, RMR and the oracle on every benchmark subset: scores, MTR, uplift",
            [
                "report",
                *folds,
                "--out",
                f"{work}/report",
                "--subset_field",
                "subset",
                "--min_subset_size",
                str(settings.min_subset_size),
                "--rmr_judges",
                "rm",
            ],
        )
    )
    return recipe


def _wrap(words: list[str]) -> str:
    """``words`` as one shell command, continued with backslashes before options past :data:`WIDTH`."""
    lines, line = [], ""
    for word in words:
        quoted = shlex.quote(word)
        if line and word.startswith("--") and len(line) + 1 + len(quoted) > WIDTH:
            lines.append(line + " \\")
            line = "  " + quoted
        else:
            line = f"{line} {quoted}" if line else quoted
    return "\n".join([*lines, line])


def to_shell(recipe: list[Step], settings: Settings) -> str:
    """The recipe as a bash script."""
    out = [
        "#!/usr/bin/env bash",
        "# The paper's protocol, end to end (experiments/paper/README.md). Generated by",
        "# `python experiments/paper/recipe.py > experiments/paper/recipe.sh`: edit recipe.py, not this file.",
        f"# Inputs in {settings.data}/, outputs in {settings.work}/; run from the repository root.",
        "set -euo pipefail",
        f"mkdir -p {settings.work}/train {settings.work}/bench",
    ]
    for step in recipe:
        command = ["cat", *step.argv[1:]] if step.concat else ["zooter", *step.argv]
        text = _wrap(command) + (f" > {shlex.quote(step.argv[0])}" if step.concat else "")
        out += ["", f"# {step.comment}", text]
    return "\n".join(out) + "\n"


def run(recipe: list[Step], settings: Settings) -> None:
    """Run every step in this process, in order (CPU runs; on GPUs run the script: DDP re-launches argv)."""
    from zooter.cli import main

    for directory in ("train", "bench"):
        (Path(settings.work) / directory).mkdir(parents=True, exist_ok=True)
    for number, step in enumerate(recipe, 1):
        print(f"recipe step {number}/{len(recipe)}: {step.comment}", flush=True)
        if step.concat:
            out = Path(step.argv[0])
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("".join(Path(part).read_text() for part in step.argv[1:]))
            continue
        try:
            main(step.argv)
        except SystemExit as stop:
            if stop.code not in (None, 0):
                command = shlex.join(step.argv)
                raise RuntimeError(f"recipe step {number} failed ({stop.code}): zooter {command}") from stop


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", help="a YAML file of Settings fields (default: the paper's settings)")
    parser.add_argument("--run", action="store_true", help="run the steps in this process instead of printing them")
    args = parser.parse_args(argv)
    settings = Settings.load(args.settings) if args.settings else Settings()
    recipe = steps(settings)
    if args.run:
        run(recipe, settings)
    else:
        print(to_shell(recipe, settings), end="")


if __name__ == "__main__":
    cli()
