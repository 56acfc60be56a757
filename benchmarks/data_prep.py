"""Data preparation at the paper's scale: reading the table, tokenizing and caching, targets.

    python benchmarks/data_prep.py            # 48k queries x 6 candidates, ~6.4k tags; about 3 minutes on 2 cores
    python benchmarks/data_prep.py --quick    # 4k queries, 1 repeat: a smoke run

The paper trained on 47,986 queries over 6,270 distinct tags (DivInstruct) and 6 candidates. This
writes a synthetic table of that shape (``zooter.table.synth``: 48,000 queries, ``topics_per_domain=800``
gives 8 x 800 topic tags + 8 domain tags) as JSON Lines and times, each ``--repeats`` times:

(a) ``load_table``: reading and validating the table (the columnar JSONL reader, and for comparison
    the row-by-row reader it falls back to);
(b) ``ZooterDataModule(...)`` + ``prepare_data()`` with an EMPTY cache dir (table, split, tokenizer,
    tokenize, save), for the tiny-deberta tokenizer (trained on the training queries) and MiniLM's;
(c) the same again with the cache filled (a second run), and the ratio (b) / (c);
(d) ``setup()`` (load the cached tokens, tag table, targets of every split), and
    ``targets.tag_table`` / ``targets.build_targets`` alone.

Each cold run gets a fresh cache directory. (b) and (c) are also measured with the row-by-row table
reader, the reader before the columnar one was added. Writes ``benchmarks/results/data_prep.md``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import benchutil

ENCODERS = ("tiny-deberta", "minilm")
# the data section of configs/paper.yaml, on the table written here
DATA = dict(
    train_judge="scores",
    eval_judge="scores",
    beta=0.3,
    temperature=1.0,
    standardization="none",
    min_tag_count=1,
    max_length=512,
    val_fraction=0.05,
    test_fraction=0.05,
    tokenizer_vocab_size=4096,
)


def row_reader():
    """A context in which ``load_table`` reads JSONL row by row (its fallback path, the reader before)."""
    from zooter.table import schema

    return mock.patch.object(schema, "_load_jsonl_columns", lambda *args, **kwargs: None)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4k queries, 1 repeat (smoke run)")
    parser.add_argument("--num-queries", type=int, default=None, help="default 48000 (--quick: 4000)")
    parser.add_argument("--topics-per-domain", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (--quick: 1)")
    parser.add_argument("--no-row-reader", action="store_true", help="skip the row-by-row reader comparison")
    parser.add_argument("--out", type=Path, default=benchutil.RESULTS / "data_prep.md")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    num_queries = args.num_queries or (4000 if args.quick else 48000)
    repeats = args.repeats or (1 if args.quick else 3)
    info = benchutil.machine()

    from zooter.data import targets
    from zooter.data.datamodule import ZooterDataModule
    from zooter.table.schema import _load_jsonl_columns, build_table, load_table, read_rows, write_jsonl
    from zooter.table.splits import SplitSpec, load_splits
    from zooter.table.synth import SynthConfig, generate

    work = Path(tempfile.mkdtemp(prefix="zooter-bench-data-"))
    try:
        config = SynthConfig(num_queries=num_queries, topics_per_domain=args.topics_per_domain, seed=0)
        synth_s, table = timed(lambda: generate(config))
        path = work / "table.jsonl"
        write_s, _ = timed(lambda: write_jsonl(table, path))
        num_tags = len({t for row_tags in table.tags for t in row_tags})
        print(f"table: {len(table)} queries x {len(table.candidates)} candidates, {num_tags} tags -> {path}")
        judges = (DATA["train_judge"], DATA["eval_judge"])
        assert _load_jsonl_columns(path, str(path), None, judges, 2, True) is not None, "columnar path not taken"

        # (a) reading + validating
        read = {
            "columnar (default)": benchutil.repeat(lambda: load_table(path, required_judges=judges), repeats),
            "row by row (fallback; the reader before)": benchutil.repeat(
                lambda: build_table(read_rows(path), str(path), required_judges=judges), repeats
            ),
        }
        for name, samples in read.items():
            print(f"(a) load_table {name}: {benchutil.fmt(samples)}", flush=True)

        # warm-up: import datasets/tokenizers/transformers once, untimed
        small = work / "small.jsonl"
        write_jsonl(generate(SynthConfig(num_queries=200, seed=1)), small)
        for encoder in ENCODERS:
            ZooterDataModule(path=str(small), encoder=encoder, cache_dir=str(work / "warmup"), **DATA).prepare_data()

        # (b), (c), (d)
        readers = {"columnar": nullcontext} if args.no_row_reader else {"columnar": nullcontext, "rows": row_reader}
        runs: dict[tuple[str, str], dict[str, list[float]]] = {}
        cache_bytes: dict[str, int] = {}
        for encoder in ENCODERS:
            for reader, context in readers.items():
                result = runs.setdefault((encoder, reader), {})
                for r in range(repeats):
                    cache = work / f"cache-{encoder}-{reader}-{r}"
                    kwargs = dict(path=str(path), encoder=encoder, cache_dir=str(cache), **DATA)
                    with context():
                        init_cold, module = timed(lambda kwargs=kwargs: ZooterDataModule(**kwargs))
                        prep_cold, _ = timed(module.prepare_data)
                        init_warm, module = timed(lambda kwargs=kwargs: ZooterDataModule(**kwargs))
                        prep_warm, _ = timed(module.prepare_data)
                        setup_s, _ = timed(lambda module=module: module.setup("fit"))
                    for key, value in (
                        ("init_cold", init_cold),
                        ("prep_cold", prep_cold),
                        ("init_warm", init_warm),
                        ("prep_warm", prep_warm),
                        ("setup", setup_s),
                        ("ratio", (init_cold + prep_cold) / (init_warm + prep_warm)),
                        ("prep_ratio", prep_cold / prep_warm),
                    ):
                        result.setdefault(key, []).append(value)
                    cache_bytes[encoder] = dir_size(cache)
                    shutil.rmtree(cache)
                    print(
                        f"{encoder} [{reader} reader] run {r + 1}/{repeats}: cold {init_cold:.2f}+{prep_cold:.2f} s, "
                        f"warm {init_warm:.2f}+{prep_warm:.3f} s, setup {setup_s:.2f} s",
                        flush=True,
                    )

        # (d) the target computation alone
        fractions = {key: DATA[key] for key in ("val_fraction", "test_fraction")}
        tables = load_splits(SplitSpec(path=str(path), train_judge=judges[0], eval_judge=judges[1], **fractions))
        train = tables["train"]
        labels = targets.soft_labels(targets.standardize(train.judge(judges[0])), 1.0)
        tag_table = targets.tag_table(labels, train.tags)
        tag_s = benchutil.repeat(lambda: targets.tag_table(labels, train.tags), repeats)
        build_s = benchutil.repeat(
            lambda: [
                targets.build_targets(t.judge(judges[0]), t.tags, tag_table, DATA["beta"]) for t in tables.values()
            ],
            repeats,
        )
        print(f"(d) tag_table {benchutil.fmt(tag_s)}, build_targets {benchutil.fmt(build_s)}", flush=True)

        measured = dict(read=read, runs=runs, cache_bytes=cache_bytes, tag_s=tag_s, build_s=build_s)
        text = report(args, info, table, num_tags, (synth_s, write_s), path, tables, tag_table, measured, repeats)
        benchutil.write_result(args.out, text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(args, info, table, num_tags, synth_times, path, tables, tag_table, measured, repeats) -> str:
    read, runs, cache_bytes = measured["read"], measured["runs"], measured["cache_bytes"]
    synth_s, write_s = synth_times
    fmt = benchutil.fmt
    sizes = ", ".join(f"{split} {len(t)}" for split, t in tables.items())
    lines = [
        "# Data preparation at the paper's scale",
        "",
        f"Command: `{benchutil.command_line()}` (zooter at {benchutil.git_commit()}). Every figure is the median "
        f"of {repeats} runs, with (min–max).",
        "",
        benchutil.machine_section(info),
        "## Settings",
        "",
        f"- table: `zooter.table.synth` with num_queries={len(table)}, "
        f"topics_per_domain={args.topics_per_domain}, seed=0: "
        f"{len(table)} queries x {len(table.candidates)} candidates x {len(table.judges)} judges, **{num_tags} "
        f"distinct tags** (the paper: 47,986 queries, 6,270 tags, 6 candidates); JSONL "
        f"{path.stat().st_size / 1e6:.1f} MB, generated in {synth_s:.1f} s and written in {write_s:.1f} s",
        f"- data settings (the data section of configs/paper.yaml): {DATA}; splits {sizes}",
        "- each cold run uses a new, empty cache dir; the warm run then builds a new ZooterDataModule on the "
        "same cache dir. Imports are warmed up before timing (one untimed run on a 200-query table).",
        "",
        "## (a) Reading and validating the table (`load_table`)",
        "",
        "| reader | time |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {fmt(samples)} |" for name, samples in read.items()]
    if len(read) == 2:
        (fast, rows) = (benchutil.stats(s)[0] for s in read.values())
        lines += ["", f"The columnar reader is {rows / fast:.1f}x faster on this table (medians)."]
    lines += [
        "",
        "## (b) cold and (c) warm: `ZooterDataModule(...)` + `prepare_data()`",
        "",
        "Construction reads and splits the table and builds the tokenizer (tiny-deberta: trains it on the "
        "training queries, or loads it from the cache); `prepare_data` tokenizes every split and saves the "
        "tokens (cold), or finds them in the cache (warm).",
        "",
        "| encoder | table reader | cold: construct | cold: prepare_data | warm: construct | warm: prepare_data "
        "| cold / warm (construct + prepare) | cold / warm (prepare_data only) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (encoder, reader), result in runs.items():
        label = "columnar (default)" if reader == "columnar" else "row by row (before)"
        lines.append(
            f"| {encoder} | {label} | {fmt(result['init_cold'])} | {fmt(result['prep_cold'])} | "
            f"{fmt(result['init_warm'])} | {fmt(result['prep_warm'], 'ms', 1000, 1)} | "
            f"**{fmt(result['ratio'], 'x', digits=1)}** | {fmt(result['prep_ratio'], 'x', digits=0)} |"
        )
    lines += ["", "Token cache on disk (tokens of every split + the trained tokenizer, if any):", ""]
    lines += [f"- {encoder}: {size / 1e6:.1f} MB" for encoder, size in cache_bytes.items()]
    lines += [
        "",
        "Target: a second run at least 10x faster than the first.",
        "",
    ]
    for (encoder, reader), result in runs.items():
        if reader == "columnar":
            whole, prep = (benchutil.stats(result[key]) for key in ("ratio", "prep_ratio"))
            verdict = "met" if whole[0] >= 10 else f"missed in the median (best run {whole[2]:.1f}x)"
            lines.append(
                f"- {encoder}: construct + prepare_data {whole[0]:.1f}x: {verdict}; prepare_data alone "
                f"{prep[0]:.0f}x: {'met' if prep[0] >= 10 else 'missed'}."
            )
    lines += [
        "",
        "A warm run finds the validated table in the cache (`zooter.table.cache`: it hashes the file and "
        "unpickles the table instead of reading and validating it), the tokenizer and the tokens; the rows "
        "'row by row (before)' show the reader the columnar one replaced, on a cold run.",
        "",
        "## (d) `setup()`: cached tokens, tag table and targets",
        "",
        "| step | time |",
        "|---|---:|",
    ]
    for (encoder, reader), result in runs.items():
        if reader == "columnar":
            lines.append(
                f"| `setup('fit')`, {encoder}: load the tokens of every split, tag table, targets | "
                f"{fmt(result['setup'])} |"
            )
    lines += [
        f"| `targets.tag_table` ({len(tables['train'])} training queries, {len(tag_table.tags)} tags) "
        f"| {fmt(measured['tag_s'], 'ms', 1000, 0)} |",
        f"| `targets.build_targets`, beta={DATA['beta']}, all {len(tables)} splits "
        f"| {fmt(measured['build_s'], 'ms', 1000, 0)} |",
        "",
        "Target: seconds.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
