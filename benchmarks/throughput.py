"""Training throughput of `zooter fit` against a plain PyTorch loop, in one process.

(a) zooter: ``Trainer.fit`` with the ``ZooterRouter``, ``ZooterDataModule`` and trainer that
    ``zooter fit`` builds from the same configs (the same ``ZooterCLI``, ``run=False``), keeping their
    CSV logger and ``log_every_n_steps``; no validation (``limit_val_batches=0``), no checkpoint
    callback, no progress bar, no model summary.
(b) plain: the same data module's ``train_dataloader()`` and a ``ZooterRouter`` built the same way,
    called directly: ``scores`` + ``losses.kl_divergence`` + AdamW + the same linear warm-up schedule,
    ``zero_grad`` / ``backward`` / ``step``.

Both run the same number of optimizer steps at the same batch size and torch threads; queries/s is
timed from the end of the warm-up steps to the end of the last step (data loading included). Repeats
are interleaved (zooter, plain, plain, zooter, ...) so that load from other processes hits both arms
alike. Two rates per run: wall-clock (queries / seconds) and median-step (mean batch / median step
time, robust to bursts of load on a shared machine). ``--group_by_length both`` runs every setting
without and with length-grouped batches; ``--log_every_step_arm`` adds a third arm, zooter with
``self.log("train/loss")`` on every step (the behaviour before ``ZooterRouter._logging_step``).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/throughput.py            # ~5 minutes on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/throughput.py --quick    # a smoke run, ~1 minute
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import benchutil
import lightning
import numpy as np
import torch
import torch.optim.adam as torch_adam
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

from zooter.data.batching import RoutingCollator
from zooter.lightning_cli import ZooterCLI, make_cli
from zooter.routers.losses import kl_divergence
from zooter.routers.zooter import ZooterRouter

# the configs `zooter fit` is given for each encoder (batch 32 for both), and (steps, warm-up) per run
ENCODERS: dict[str, list[str]] = {
    "tiny-deberta": ["--config", "configs/quickstart.yaml"],
    "minilm": [
        "--config", "configs/trainer/cpu.yaml",
        "--config", "configs/model/minilm.yaml",
        "--config", "configs/data/synth.yaml",
        "--data.encoder", "minilm",
        "--data.max_length", "128",
        "--data.batch_size", "32",
    ],
}  # fmt: skip
RATES = (("rate", "wall"), ("step_rate", "median step"))
STEPS = {"tiny-deberta": (150, 10), "minilm": (20, 4)}
QUICK_STEPS = {"tiny-deberta": (30, 5), "minilm": (8, 3)}


class Phases:
    """Seconds inside the router's forward (``ZooterRouter.scores``), ``Tensor.backward`` and AdamW's
    update (``torch.optim.adam.adam``) while ``active``: what is left of a step is loop overhead
    (data loading, hooks, logging, zero_grad, the schedule). The wrappers cost a few µs per step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self.active = False

    def reset(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.active = True

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if not self.active:
                return fn(*args, **kwargs)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start

        return timed


PHASES = ("forward", "backward", "optimizer")
PHASE_TIMER = Phases()
ZooterRouter.scores = PHASE_TIMER.wrap("forward", ZooterRouter.scores)
torch.Tensor.backward = PHASE_TIMER.wrap("backward", torch.Tensor.backward)
torch_adam.adam = PHASE_TIMER.wrap("optimizer", torch_adam.adam)  # AdamW.step calls it


@dataclass
class Timing:
    """One timed run: queries, each step's seconds and padding share, after the warm-up steps."""

    queries: int = 0
    step_seconds: list[float] = field(default_factory=list)
    pad_shares: list[float] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    last: float = 0.0

    def start(self) -> None:
        PHASE_TIMER.reset()
        self.last = time.perf_counter()

    def stop(self) -> None:
        PHASE_TIMER.active = False
        self.phases = dict(PHASE_TIMER.seconds)

    def ms_per_step(self, phase: str) -> float:
        """Milliseconds per timed step in ``phase``; ``overhead``: the step minus the three phases."""
        if phase == "overhead":
            return (sum(self.step_seconds) - sum(self.phases.values())) / len(self.step_seconds) * 1e3
        return self.phases[phase] / len(self.step_seconds) * 1e3

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        now = time.perf_counter()
        self.step_seconds.append(now - self.last)
        self.last = now
        self.queries += batch["input_ids"].shape[0]
        mask = batch["attention_mask"]
        self.pad_shares.append(1.0 - mask.sum().item() / mask.numel())

    @property
    def rate(self) -> float:
        """Queries per second of wall-clock time over the timed steps."""
        return self.queries / sum(self.step_seconds)

    @property
    def step_rate(self) -> float:
        """Mean batch over the median step time."""
        return self.queries / len(self.step_seconds) / statistics.median(self.step_seconds)

    @property
    def pad_share(self) -> float:
        return statistics.fmean(self.pad_shares)


class StepTimer(Callback):
    """Times ``trainer.fit`` from the end of optimizer step ``warmup`` to the end of step ``steps``."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.timing = Timing()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step == self.warmup:
            self.timing.start()
        elif self.warmup < step <= self.steps:
            self.timing.add(batch)
            if step == self.steps:
                self.timing.stop()


def build(encoder: str, steps: int, grouped: bool, workdir: Path) -> ZooterCLI:
    """Data module, model and trainer as `zooter fit` builds them from the encoder's configs."""
    args = [
        *ENCODERS[encoder],
        "--data.group_by_length", str(grouped).lower(),
        "--data.cache_dir", str(workdir / "cache"),
        "--trainer.logger.init_args.save_dir", str(workdir / "runs"),
        "--trainer.max_steps", str(steps),
        "--trainer.max_epochs", "-1",
        "--trainer.limit_val_batches", "0",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
    ]  # fmt: skip
    with benchutil.cwd(benchutil.REPO), benchutil.argv(args):  # config paths are relative to the repository
        cli = make_cli(args, run=False)
    # no checkpointing: drop the configs' ModelCheckpoint (it would only save after the timed steps)
    cli.trainer.callbacks = [c for c in cli.trainer.callbacks if not isinstance(c, ModelCheckpoint)]
    return cli


def run_zooter(encoder: str, steps: int, warmup: int, grouped: bool, workdir: Path) -> Timing:
    cli = build(encoder, steps, grouped, workdir)
    timer = StepTimer(warmup, steps)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == steps, cli.trainer.global_step
    return timer.timing


def run_zooter_log_every_step(encoder: str, steps: int, warmup: int, grouped: bool, workdir: Path) -> Timing:
    """zooter as before ``ZooterRouter._logging_step``: ``self.log`` on every training step."""
    original = ZooterRouter._logging_step
    ZooterRouter._logging_step = lambda self: True
    try:
        return run_zooter(encoder, steps, warmup, grouped, workdir)
    finally:
        ZooterRouter._logging_step = original


def run_plain(encoder: str, steps: int, warmup: int, grouped: bool, workdir: Path) -> Timing:
    cli = build(encoder, steps, grouped, workdir)
    data, model = cli.datamodule, cli.model
    data.prepare_data()
    data.setup("fit")
    loader = data.train_dataloader()
    hp = model.hparams
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * steps), steps)
    model.train()
    timing, step, epoch = Timing(), 0, 0
    while step < steps:
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        for batch in loader:
            logits = model.scores(batch)
            loss = kl_divergence(logits, batch["target"], batch["judged"], hp.kl_direction).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step == warmup:
                timing.start()
            elif step > warmup:
                timing.add(batch)
            if step == steps:
                timing.stop()
                break
        epoch += 1
    return timing


def collate_ms(encoder: str, workdir: Path, batches: int = 200) -> dict[str, float]:
    """ms per batch of 32 (dataset items + collation) with zooter's collator and with
    ``DataCollatorWithPadding`` (the collator before this benchmark); best of 5 passes."""
    cli = build(encoder, 1, False, workdir)
    data = cli.datamodule
    data.prepare_data()
    data.setup("fit")
    dataset = data.datasets["train"]
    hf = DataCollatorWithPadding(data.tokenizer, return_tensors="pt")

    def hf_collate(items):
        extra = {key: [item.pop(key) for item in items] for key in list(items[0]) if key != "input_ids"}
        batch = dict(hf(items))
        for key, values in extra.items():
            batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else torch.tensor(values)
        return batch

    rng = np.random.default_rng(0)
    picks = [rng.permutation(len(dataset))[:32].tolist() for _ in range(batches)]
    result = {}
    for name, collate in (
        ("zooter RoutingCollator", RoutingCollator(data.tokenizer)),
        ("DataCollatorWithPadding", hf_collate),
    ):
        passes = benchutil.repeat(lambda c=collate: [c([dataset[i] for i in pick]) for pick in picks], 5)
        result[name] = min(passes) / batches * 1e3
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default per encoder)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps at the start of each run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each arm per setting (interleaved)")
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=list(ENCODERS))
    parser.add_argument("--group_by_length", choices=["both", "true", "false"], default="both")
    parser.add_argument("--log_every_step_arm", action="store_true", help="add the arm that logs every step")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few steps, 1 repeat")
    parser.add_argument("--out", type=Path, default=benchutil.RESULTS / "throughput.md")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.repeats = 1
    steps = {}
    for encoder in args.encoders:
        default_steps, default_warmup = (QUICK_STEPS if args.quick else STEPS)[encoder]
        steps[encoder] = (args.steps or default_steps, args.warmup if args.warmup is not None else default_warmup)
        if steps[encoder][0] <= steps[encoder][1] + 1:
            parser.error(f"{encoder}: --steps must exceed --warmup + 1")
    groupings = {"both": [False, True], "true": [True], "false": [False]}[args.group_by_length]
    arms = {"zooter": run_zooter, "plain": run_plain}
    if args.log_every_step_arm:
        arms["zooter, log every step"] = run_zooter_log_every_step
    info = benchutil.machine()
    results: dict[tuple[str, bool, str], list[Timing]] = {}
    collation: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="zooter-throughput-") as tmp:
        workdir = Path(tmp)
        for encoder in args.encoders:
            total, warmup = steps[encoder]
            for grouped in groupings:  # untimed: tokenizer and token caches, lazy imports, first allocations
                run_plain(encoder, warmup + 2, warmup, grouped, workdir)
            collation[encoder] = collate_ms(encoder, workdir)
            for repeat in range(args.repeats):
                for grouped in groupings:
                    order = list(arms) if repeat % 2 == 0 else list(reversed(arms))
                    for arm in order:
                        timing = arms[arm](encoder, total, warmup, grouped, workdir)
                        results.setdefault((encoder, grouped, arm), []).append(timing)
                        print(
                            f"{encoder} grouped={grouped} {arm} #{repeat}: queries/s {timing.rate:.1f} wall, "
                            f"{timing.step_rate:.1f} median step; overhead "
                            f"{timing.ms_per_step('overhead'):.2f} ms/step (pad share {timing.pad_share:.3f})",
                            flush=True,
                        )
    elapsed = time.perf_counter() - started
    benchutil.write_result(args.out, report(args, steps, groupings, list(arms), results, collation, info, elapsed))


def report(args, steps, groupings, arms, results, collation, info, elapsed: float) -> str:
    def cell(values: list[float]) -> str:
        return benchutil.fmt(values, unit="", digits=1)

    lines = [
        "# Training throughput: `zooter fit` vs a plain PyTorch loop",
        "",
        "Written by `benchmarks/throughput.py`. In one process, per encoder and batching, "
        f"{args.repeats} interleaved run(s) of each arm; each run times its optimizer steps after the warm-up "
        "steps (data loading included):",
        "",
        "- **zooter**: `Trainer.fit` with the model, data module and trainer that `zooter fit` builds from the "
        "configs below, with their CSV logger and `log_every_n_steps`; no validation (`limit_val_batches=0`), "
        "no checkpoint callback, no progress bar, no model summary;",
        "- **plain**: the same data module's `train_dataloader()` and the same `ZooterRouter` (same seed, same "
        "initial weights) called directly: `scores` + `kl_divergence` + AdamW + the same linear warm-up "
        "schedule, `zero_grad`/`backward`/`step`.",
    ]
    if "zooter, log every step" in arms:
        lines.append(
            "- **zooter, log every step**: zooter with `self.log('train/loss')` on every step, as before "
            "`ZooterRouter._logging_step` (which logs only the steps the loggers write)."
        )
    lines += [
        "",
        "Queries/s two ways: *wall*, queries / wall-clock seconds of the timed steps (the target); "
        "*median step*, mean batch / median step time, which a short burst of load from another process "
        "barely moves. Cells: median (min–max) over repeats; *zooter / plain*: ratio of the medians; "
        "*paired*: median (min–max) over repeats of the wall ratio of the two runs of one repeat, which "
        "ran back to back (slow drifts in load cancel). *pad share*: pad tokens / all tokens, mean over "
        "the timed batches.",
        "",
        "## Settings",
        "",
        "- data: the embedded synthetic table (4000 queries, 3200 for training), batch 32, `num_workers` 0",
        "- `tiny-deberta`: `configs/quickstart.yaml` (max_length 64, lr 1e-3, `log_every_n_steps` 25)",
        "- `minilm`: `configs/trainer/cpu.yaml` + `configs/model/minilm.yaml` + `configs/data/synth.yaml`, "
        "`--data.encoder minilm --data.max_length 128 --data.batch_size 32` (`log_every_n_steps` 10)",
        "- steps per run (timed after warm-up): "
        + ", ".join(f"{enc} {total} ({warmup} warm-up)" for enc, (total, warmup) in steps.items()),
        f"- torch threads: {torch.get_num_threads()}; lightning {lightning.__version__}; "
        f"code: {benchutil.git_commit()}; total time {elapsed / 60:.1f} min",
        "",
        "## Results",
        "",
        "| encoder | length-grouped | arm | "
        + " | ".join(f"queries/s ({name})" for _, name in RATES)
        + " | "
        + " | ".join(f"zooter / plain ({name})" for _, name in RATES)
        + " | zooter / plain (paired, wall) | pad share |",
        "|---|---|---|" + "---|" * (2 * len(RATES) + 2),
    ]
    for encoder in args.encoders:
        for grouped in groupings:
            plain = results[(encoder, grouped, "plain")]
            for arm in sorted(arms, key=lambda a: (a != "plain", a)):
                runs = results[(encoder, grouped, arm)]
                cells = [cell([getattr(t, rate) for t in runs]) for rate, _ in RATES]
                for rate, _ in RATES:
                    mine = statistics.median(getattr(t, rate) for t in runs)
                    theirs = statistics.median(getattr(t, rate) for t in plain)
                    cells.append("" if arm == "plain" else f"**{mine / theirs:.3f}**")
                pairs = [a.rate / b.rate for a, b in zip(runs, plain, strict=True)]
                cells.append("" if arm == "plain" else benchutil.fmt(pairs, unit="", digits=3))
                pad = statistics.fmean(t.pad_share for t in runs)
                lines.append(f"| {encoder} | {'yes' if grouped else 'no'} | {arm} | {' | '.join(cells)} | {pad:.3f} |")
    lines += [
        "",
        "### Where a step's time goes",
        "",
        "ms per timed step (median over repeats): inside the router's forward (`ZooterRouter.scores`), "
        "`Tensor.backward` and AdamW's update, and *overhead*, the rest of the step (data loading and "
        "collation, the training loop, hooks, logging, `zero_grad`, the schedule). The overhead is "
        "what a framework adds to the same compute; it moves far less with machine load than the "
        "compute does. *over plain*: the arm's overhead minus plain's; *ratio from overhead*: plain's "
        "median step time / (that + *over plain*), the zooter / plain ratio the overhead alone predicts "
        "at plain's compute speed in this run.",
        "",
        "| encoder | length-grouped | arm | forward | backward | optimizer | overhead | over plain "
        "| ratio from overhead |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for encoder in args.encoders:
        for grouped in groupings:
            plain = results[(encoder, grouped, "plain")]
            base = statistics.median(t.ms_per_step("overhead") for t in plain)
            plain_step = statistics.median(sum(t.step_seconds) / len(t.step_seconds) * 1e3 for t in plain)
            for arm in sorted(arms, key=lambda a: (a != "plain", a)):
                runs = results[(encoder, grouped, arm)]
                ms = {phase: statistics.median(t.ms_per_step(phase) for t in runs) for phase in (*PHASES, "overhead")}
                extra = ms["overhead"] - base
                extra = " | " if arm == "plain" else f"{extra:+.2f} | {plain_step / (plain_step + extra):.3f}"
                lines.append(
                    f"| {encoder} | {'yes' if grouped else 'no'} | {arm} | "
                    + " | ".join(f"{ms[phase]:.2f}" for phase in (*PHASES, "overhead"))
                    + f" | {extra} |"
                )
    if len(groupings) == 2:
        lines += [
            "",
            "Length-grouped over random batches, same arm (medians; " + ", ".join(name for _, name in RATES) + "):",
            "",
        ]
        for encoder in args.encoders:
            for arm in arms:
                on, off = results[(encoder, True, arm)], results[(encoder, False, arm)]
                parts = []
                for rate, _ in RATES:
                    a = statistics.median(getattr(t, rate) for t in off)
                    b = statistics.median(getattr(t, rate) for t in on)
                    parts.append(f"{b / a:.2f}x ({a:.1f} -> {b:.1f})")
                lines.append(f"- {encoder}, {arm}: " + "; ".join(parts))
    lines += [
        "",
        "## Collation",
        "",
        "ms per batch of 32 training queries (dataset items + collation), best of 5 passes over 200 batches:",
        "",
    ]
    for encoder, timings in collation.items():
        lines.append(f"- {encoder}: " + "; ".join(f"{name} {ms:.3f} ms" for name, ms in timings.items()))
    lines += [
        "",
        benchutil.machine_section(info),
        *benchutil.command_section(),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
