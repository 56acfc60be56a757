"""Padding waste of training batches with and without length-grouped batching (`data.group_by_length`).

For each data set and tokenizer, the data module's own ``train_dataloader()`` is run for several
epochs (random batches: ``RandomSampler`` seeded per epoch; grouped: ``LengthGroupedSampler`` with
``set_epoch``) and every batch's padding share is taken from its attention mask: pad tokens / all
tokens. The table gives the mean over an epoch's batches (median and min–max over epochs) and the
padded tokens per epoch, the encoder's input size (its cost grows at least linearly with it).
No timing: the counts are exact and do not depend on machine load.

Then the quality check behind the default of ``data.group_by_length``: the quickstart
(``configs/quickstart.yaml``: fit 3 epochs, test the best checkpoint) with and without grouping for
``--quality_seeds`` values of ``seed_everything`` (model initialisation and batch order; the split
stays), comparing ``test/routed_score`` and the other test metrics.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/padding.py            # ~4 minutes on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/padding.py --quick    # 2 epochs, 1 quality seed
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import benchutil
import numpy as np
import torch

from zooter.cli import main as zooter
from zooter.data.datamodule import ZooterDataModule
from zooter.table.synth import SynthConfig

ALPACAEVAL = benchutil.REPO.parent / "shared" / "data" / "alpacaeval" / "alpacaeval_main.jsonl"
SYNTH = {  # configs/quickstart.yaml and configs/data/synth.yaml
    "synth": SynthConfig(num_queries=4000, seed=0),
    "train_judge": "rm_low_noise",
    "eval_judge": "true",
    "tokenizer_vocab_size": 2048,
}
ALPACA = {  # configs/data/alpacaeval.yaml (fold 0 of 5)
    "path": str(ALPACAEVAL),
    "train_judge": "gpt4turbo_vs_gpt4preview",
    "eval_judge": "gpt4_vs_davinci003",
    "folds": 5,
    "fold": 0,
    "val_fraction": 0.1,
}


def settings() -> list[tuple[str, str, int, dict]]:
    """(data set, encoder, max_length, data module kwargs)."""
    cases = [("synthetic", "tiny-deberta", 64, SYNTH), ("synthetic", "minilm", 128, SYNTH)]
    if ALPACAEVAL.is_file():
        cases += [("AlpacaEval", "minilm", 128, ALPACA), ("AlpacaEval", "minilm", 512, ALPACA)]
    return cases


def epoch_stats(loader, epoch: int, grouped: bool) -> tuple[float, int]:
    """(mean padding share over the epoch's batches, padded tokens in the epoch)."""
    if grouped:
        loader.sampler.set_epoch(epoch)
    else:
        torch.manual_seed(epoch)  # the RandomSampler draws its permutation from the global generator
    shares, tokens = [], 0
    for batch in loader:
        mask = batch["attention_mask"]
        shares.append(1.0 - mask.sum().item() / mask.numel())
        tokens += mask.numel()
    return statistics.fmean(shares), tokens


QUALITY_KEYS = ("routed_score", "best_single_score", "oracle_score", "gap_recovered", "top1_acc", "kl")


def quickstart(seed: int, grouped: bool, workdir: Path) -> dict[str, float]:
    """Test metrics of the quickstart router (fit, then test of the best checkpoint)."""
    runs = workdir / f"runs-{seed}-{grouped}"
    args = [
        "--config", "configs/quickstart.yaml",
        "--seed_everything", str(seed),
        "--data.group_by_length", str(grouped).lower(),
        "--data.cache_dir", str(workdir / "cache"),
        "--trainer.logger.init_args.save_dir", str(runs),
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
    ]  # fmt: skip
    with benchutil.cwd(benchutil.REPO):
        with benchutil.argv(["fit", *args]):
            zooter(["fit", *args])
        (best,) = (runs / "quickstart" / "version_0" / "checkpoints").glob("best-*.ckpt")
        test = ["test", *args, "--ckpt_path", str(best)]
        with benchutil.argv(test):
            zooter(test)
    metrics = json.loads((runs / "quickstart" / f"version_0-test-{best.stem}" / "test_metrics.json").read_text())
    return {key: metrics[f"test/{key}"] for key in QUALITY_KEYS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs per setting (each its own order)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--quality_seeds", type=int, default=5, help="quickstart seeds per batching (0: skip)")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 quality seed")
    parser.add_argument("--out", type=Path, default=benchutil.RESULTS / "padding.md")
    args = parser.parse_args(argv)
    epochs = 2 if args.quick else args.epochs
    seeds = min(args.quality_seeds, 1) if args.quick else args.quality_seeds
    info = benchutil.machine()
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="zooter-padding-") as tmp:
        for name, encoder, max_length, kwargs in settings():
            result = {}
            for grouped in (False, True):
                data = ZooterDataModule(
                    **kwargs,
                    encoder=encoder,
                    max_length=max_length,
                    batch_size=args.batch_size,
                    group_by_length=grouped,
                    cache_dir=str(Path(tmp) / "cache"),
                )
                data.prepare_data()
                data.setup("fit")
                loader = data.train_dataloader()
                result[grouped] = [epoch_stats(loader, epoch, grouped) for epoch in range(epochs)]
            lengths = np.array([len(ids) for ids in data.datasets["train"].input_ids])
            rows.append((name, encoder, max_length, lengths, result))
            shares = [statistics.median(share for share, _ in result[g]) for g in (False, True)]
            print(f"{name} {encoder} max_length {max_length}: pad share {shares[0]:.3f} -> {shares[1]:.3f}", flush=True)
        quality = {}
        for seed in range(seeds):
            for grouped in (False, True):
                quality[(seed, grouped)] = quickstart(seed, grouped, Path(tmp))
                print(f"quickstart seed {seed} grouped={grouped}: {quality[(seed, grouped)]}", flush=True)
    elapsed = time.perf_counter() - started
    benchutil.write_result(args.out, report(args, epochs, rows, quality, info, elapsed))


def report(args, epochs: int, rows, quality, info, elapsed: float) -> str:
    lines = [
        "# Padding waste with and without length-grouped batches",
        "",
        "Written by `benchmarks/padding.py`. For each setting, the `ZooterDataModule` training loader, "
        f"batch {args.batch_size}, {epochs} epochs, each with its own order: random batches (`RandomSampler`, "
        "seeded by the epoch) and `data.group_by_length: true` (`LengthGroupedSampler`: mega-batches of 50 "
        "batches sorted by length, batches shuffled). *pad share*: pad tokens / all tokens of a batch, mean "
        "over the epoch's batches; *padded tokens*: the encoder's input per epoch (batch x padded width, "
        "summed). Median (min–max) over epochs. Exact counts: machine load does not matter here.",
        "",
        "Synthetic: the quickstart table (4000 queries, 3200 for training). AlpacaEval: "
        "`configs/data/alpacaeval.yaml`, fold 0 of 5 (the training split)"
        + ("." if ALPACAEVAL.is_file() else f"; skipped: {ALPACAEVAL} is absent."),
        "",
        "| data | tokenizer | max_length | train queries | tokens/query mean (min–max) | pad share, random "
        "| pad share, grouped | padded tokens/epoch, random | padded tokens/epoch, grouped | grouped / random |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, encoder, max_length, lengths, result in rows:
        random_share, grouped_share = ([s for s, _ in result[g]] for g in (False, True))
        random_tokens, grouped_tokens = ([t for _, t in result[g]] for g in (False, True))
        ratio = statistics.median(grouped_tokens) / statistics.median(random_tokens)
        lines.append(
            f"| {name} | {encoder} | {max_length} | {len(lengths)} | {lengths.mean():.1f} "
            f"({lengths.min()}–{lengths.max()}) | {benchutil.fmt(random_share, unit='', digits=3)} | "
            f"{benchutil.fmt(grouped_share, unit='', digits=3)} | {benchutil.fmt(random_tokens, unit='', digits=0)} | "
            f"{benchutil.fmt(grouped_tokens, unit='', digits=0)} | {ratio:.2f} |"
        )
    if quality:
        seeds = sorted({seed for seed, _ in quality})
        lines += [
            "",
            "## Quickstart quality with and without grouping",
            "",
            f"`configs/quickstart.yaml` (fit 3 epochs, test the best checkpoint on the 400 test queries) for "
            f"`seed_everything` {', '.join(map(str, seeds))}; mean (min–max) over seeds, and the mean of the "
            "per-seed difference grouped − random:",
            "",
            "| test metric | random batches | length-grouped | grouped − random |",
            "|---|---|---|---|",
        ]
        for key in QUALITY_KEYS:
            off = [quality[(s, False)][key] for s in seeds]
            on = [quality[(s, True)][key] for s in seeds]
            diff = [b - a for a, b in zip(off, on, strict=True)]
            lines.append(
                f"| {key} | {mean_range(off)} | {mean_range(on)} | {statistics.fmean(diff):+.4f} "
                f"({min(diff):+.4f}…{max(diff):+.4f}) |"
            )
        lines += [
            "",
            "Per seed, test/routed_score (random → grouped): "
            + "; ".join(
                f"{s}: {quality[(s, False)]['routed_score']:.4f} → {quality[(s, True)]['routed_score']:.4f}"
                for s in seeds
            ),
        ]
    lines += [
        "",
        "The throughput this buys on CPU (synthetic data, both encoders) is measured by "
        "`benchmarks/throughput.py` (`results/throughput.md`).",
        "",
        benchutil.machine_section(info),
        f"Total time {elapsed:.0f} s.",
        "",
        *benchutil.command_section(),
    ]
    return "\n".join(lines)


def mean_range(values: list[float]) -> str:
    return f"{statistics.fmean(values):.4f} ({min(values):.4f}–{max(values):.4f})"


if __name__ == "__main__":
    main()
