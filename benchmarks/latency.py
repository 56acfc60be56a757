"""Routing latency and throughput on CPU, and what a routing decision costs next to the LLMs it routes to.

    python benchmarks/latency.py            # tiny-deberta and MiniLM routers; about 4-5 minutes on 2 cores
    python benchmarks/latency.py --quick    # fewer calls and queries, 1 repeat: a smoke run

1. Two routers are trained for 2 steps (``zooter.cli.main(["fit", ...])`` with configs/quickstart.yaml,
   and for MiniLM configs/model/minilm.yaml + ``--data.encoder minilm``) in a temporary directory: the
   speed of a router does not depend on how well it is trained.
2. Python API, ``zooter.inference.Router.from_checkpoint(...)``: latency of ``router.route([query])``
   (p50/p95 over ``--calls`` single-query calls after ``--warmup`` calls), and throughput of
   ``router.route(queries)`` in batches of 64.
3. ``zooter predict`` in a fresh process over ``--predict-queries`` queries (``data.predict_path``),
   with and without process start-up (see "How start-up is split off" in the output).
4. A cost table: FLOPs of one routing decision next to one LLM generation and next to reward-model
   ranking (RMR) in the paper's setting, from parameter and token counts.

Queries are new ones from ``zooter.table.synth`` (another seed than the training table). Writes
``benchmarks/results/latency.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchutil
import numpy as np

REPO = benchutil.REPO
ALPACAEVAL = REPO.parent / "shared" / "data" / "alpacaeval" / "alpacaeval_main.jsonl"
ENCODERS = {
    "tiny-deberta": ["--config", "configs/quickstart.yaml"],
    "minilm": [
        "--config",
        "configs/quickstart.yaml",
        "--config",
        "configs/model/minilm.yaml",
        "--data.encoder",
        "minilm",
    ],
}
BATCH = 64

# AlpacaEval 1.0 leaderboard (tatsu-lab/alpaca_eval, src/alpaca_eval/leaderboards/data_AlpacaEval/
# alpaca_eval_gpt4_leaderboard.csv at commit eda4a40): avg_length = mean output length in characters
# on the 805 AlpacaEval instructions, for the paper's candidates listed there.
ALPACAEVAL_OUTPUT_CHARS = {"wizardlm-13b": 985, "vicuna-13b": 1037, "openchat-13b": 1632, "llama-2-13b-chat-hf": 1513}
CHARS_PER_TOKEN = 4.0  # assumption: LLaMA-family tokenizers on English prose
ALPACAEVAL_QUERY_CHARS = 164.9  # mean of the 805 AlpacaEval instructions (used when ../shared/data is absent)


# --------------------------------------------------------------------------------------------- training
def fit_router(encoder: str, work: Path) -> Path:
    """A router checkpoint after 2 training steps (``zooter fit``, in this process)."""
    from zooter.cli import main as zooter

    args = [
        "fit",
        *ENCODERS[encoder],
        "--data.cache_dir", str(work / "cache"),
        "--trainer.logger.init_args.save_dir", str(work / "runs"),
        "--trainer.logger.init_args.name", encoder,
        "--trainer.max_steps", "2",
        "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
    ]  # fmt: skip
    with benchutil.argv([]), benchutil.cwd(REPO):  # the configs are named relative to the repository
        zooter(args)
    return max((work / "runs" / encoder).glob("version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)


# ------------------------------------------------------------------------------------------- Python API
def api_latency(ckpt: Path, queries: list[str], warmup: int, calls: int, batch_queries: int, repeats: int) -> dict:
    import torch

    from zooter.inference import Router

    load_s, router = timed(lambda: Router.from_checkpoint(ckpt))
    for query in queries[:warmup]:
        router.route([query])
    single = []
    for query in queries[warmup : warmup + calls]:
        start = time.perf_counter()
        router.route([query])
        single.append(time.perf_counter() - start)
    batched = queries[:batch_queries]
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(batched), BATCH):
            router.route(batched[i : i + BATCH])
        rates.append(len(batched) / (time.perf_counter() - start))
    params = sum(p.numel() for p in router.model.parameters())
    return {
        "load_s": load_s,
        "single_ms": np.array(single) * 1000,
        "rates": rates,
        "params": params,
        "threads": torch.get_num_threads(),
    }


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


# ----------------------------------------------------------------------------------------- zooter predict
def run_predict(encoder: str, ckpt: Path, queries: list[str], work: Path, tag: str) -> dict[str, float]:
    """One ``zooter predict`` process over ``queries`` (a new file, so new tokens): its wall time, split by
    the ``predict_timer.PredictTimer`` callback into start-up, predict loop and shutdown."""
    path = work / f"predict-{tag}.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "query": q}) + "\n" for i, q in enumerate(queries)))
    out, times = work / "predict-runs", work / f"times-{tag}.jsonl"
    command = [
        sys.executable, "-m", "zooter.cli", "predict",
        *ENCODERS[encoder],
        "--ckpt_path", str(ckpt),
        "--data.predict_path", str(path),
        "--data.cache_dir", str(work / "cache"),
        "--trainer.logger.init_args.save_dir", str(out),
        "--trainer.logger.init_args.name", tag,
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.callbacks+=predict_timer.PredictTimer",
    ]  # fmt: skip
    benchmarks = str(REPO / "benchmarks")
    pythonpath = os.pathsep.join(filter(None, [benchmarks, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "ZOOTER_BENCH_TIMES": str(times)}
    launched = time.time()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    ended = time.time()
    if done.returncode != 0:
        raise RuntimeError(f"zooter predict failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    written = max((out / tag).glob("version_*/predictions.jsonl"), key=lambda p: p.stat().st_mtime)
    rows = written.read_text().count("\n")
    if rows != len(queries):
        raise RuntimeError(f"{written}: {rows} predictions for {len(queries)} queries")
    shutil.rmtree(out / tag)
    marks = json.loads(times.read_text())
    return {
        "total": ended - launched,
        "startup": marks["predict_start"] - launched,
        "loop": marks["predict_end"] - marks["predict_start"],
        "shutdown": ended - marks["predict_end"],
    }


def predict_throughput(encoder: str, ckpt: Path, queries: list[str], repeats: int, work: Path) -> dict:
    """``repeats`` timed ``zooter predict`` runs over ``queries`` (each on a new file), after one untimed run."""
    rng = random.Random(0)
    run_predict(encoder, ckpt, queries[:64], work, f"{encoder}-warmup")  # caches the training splits' tokens
    runs = []
    for r in range(repeats):
        batch = rng.sample(queries, len(queries))  # a new order: a new token-cache key, so every run tokenizes
        runs.append(run_predict(encoder, ckpt, batch, work, f"{encoder}-{r}"))
        print(f"  zooter predict {encoder}: {len(batch)} queries: {runs[-1]}", flush=True)
    return {"runs": runs, "queries": len(queries)}


def length_sorted_predict(encoder: str, ckpt: Path, queries: list[str], max_length: int, repeats: int, work: Path):
    """The predict loop (``trainer.predict``, in this process) with batches cut from the length-sorted order
    (the default) and from the file order (before), alternately, on one data module; and their outputs."""
    from zooter.cli import ZooterCLI
    from zooter.data.datamodule import RoutingDataset, ZooterDataModule
    from zooter.routers.base import RouterModule

    path = work / f"lengths-{encoder}.jsonl"
    path.write_text("".join(json.dumps({"id": f"a{i}", "query": q}) + "\n" for i, q in enumerate(queries)))
    args = [
        *ENCODERS[encoder],
        "--data.predict_path", str(path),
        "--data.max_length", str(max_length),
        "--data.cache_dir", str(work / "cache"),
        "--trainer.logger", "false",
        "--trainer.default_root_dir", str(work / f"lengths-{encoder}"),
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
    ]  # fmt: skip
    with benchutil.argv([]), benchutil.cwd(REPO):
        cli = ZooterCLI(RouterModule, ZooterDataModule, subclass_mode_model=True, run=False, args=args)
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    probe = inference_mode_probe()
    trainer.callbacks.append(probe)
    trainer.predict(model, datamodule=data, ckpt_path=str(ckpt))  # untimed: setup, tokens, weights
    datasets = {"length-sorted (default)": data.datasets["predict"]}
    datasets["file order (before)"] = RoutingDataset(datasets["length-sorted (default)"].input_ids)
    times: dict[str, list[float]] = {name: [] for name in datasets}
    probs: dict[str, np.ndarray] = {}
    padded: dict[str, int] = {}
    for _ in range(repeats):
        for name, dataset in datasets.items():
            data.datasets["predict"] = dataset
            seconds, batches = timed(lambda: trainer.predict(model, datamodule=data))
            times[name].append(seconds)
            index = np.concatenate([b["index"].numpy() for b in batches])
            out = np.zeros((len(index), len(model.candidates)))
            out[index] = np.concatenate([b["probs"].numpy() for b in batches])
            probs[name] = out
            padded[name] = sum(b["input_ids"].numel() for b in data.predict_dataloader())
    lengths = [len(ids) for ids in datasets["file order (before)"].input_ids]
    return {"times": times, "probs": probs, "padded": padded, "lengths": lengths, "inference_mode": probe.seen}


def inference_mode_probe():
    import torch
    from lightning.pytorch import Callback

    class Probe(Callback):
        """Records whether each predict batch runs under ``torch.inference_mode``."""

        def __init__(self) -> None:
            self.seen: set[bool] = set()

        def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
            self.seen.add(torch.is_inference_mode_enabled())

    return Probe()


def inference_mode_note(results: dict) -> str:
    seen = {encoder: result["sorting"]["inference_mode"] for encoder, result in results.items()}
    if all(s == {True} for s in seen.values()):
        return "every predict batch above ran with `torch.is_inference_mode_enabled()` true (checked by a callback)"
    return f"CHECK FAILED: `torch.is_inference_mode_enabled()` per router: {seen}"


def varied_queries(quick: bool) -> tuple[list[str], str]:
    """Queries of realistic, varied lengths: the AlpacaEval instructions when ../shared/data has them."""
    if ALPACAEVAL.is_file():
        queries = [json.loads(line)["query"] for line in ALPACAEVAL.read_text().splitlines() if line.strip()]
        queries = queries[:200] if quick else queries
        source = f"{len(queries)} AlpacaEval instructions ({ALPACAEVAL.name})"
    else:  # synthetic queries padded with extra sentences to a spread of lengths
        from zooter.table.synth import SynthConfig, generate

        base = generate(SynthConfig(num_queries=805, seed=7)).queries
        rng = random.Random(0)
        queries = [" ".join(base[i : i + rng.choice([1, 1, 1, 2, 4, 8, 16])]) for i in range(len(base))]
        queries = queries[:200] if quick else queries
        source = f"{len(queries)} synthetic queries of 1-16 template sentences (../shared/data is absent)"
    return queries, source


# ------------------------------------------------------------------------------------------------ FLOPs
def non_embedding_parameters(model) -> tuple[int, int]:
    """(all parameters, parameters outside ``nn.Embedding`` modules): an embedding is a lookup, no FLOPs."""
    import torch

    embedding = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    total = sum(p.numel() for p in model.parameters())
    return total, total - sum(p.numel() for p in model.parameters() if id(p) in embedding)


def on_meta(build):
    import torch

    with torch.device("meta"):
        return build()


def paper_models() -> dict[str, dict]:
    """Parameter counts of the paper's models, built from their architecture configs on the meta device."""
    from transformers import DebertaV2Config, DebertaV2Model, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2Model

    # microsoft/mdeberta-v3-base's config.json (the paper's router backbone, Table 1: 86M)
    mdeberta = DebertaV2Config(
        vocab_size=250102, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=512, relative_attention=True, position_buckets=256, norm_rel_ebd="layer_norm",
        share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False, type_vocab_size=0,
    )  # fmt: skip
    # LLaMA-2-13B: the architecture of all six 13B candidates (WizardLM/-Coder/-Math, Vicuna, OpenChat, Llama-2-Chat)
    llama13b = LlamaConfig(
        vocab_size=32000, hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
        num_key_value_heads=40, tie_word_embeddings=False,
    )  # fmt: skip
    # QwenRM (~7B, not released): assumed Qwen-7B's architecture (32 layers, 4096 hidden, 11008 MLP,
    # vocabulary 151,936, biased QKV) with a scalar value head in place of the LM head
    qwen7b = Qwen2Config(
        vocab_size=151936, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=32,
    )  # fmt: skip
    models = {}
    total, body = non_embedding_parameters(on_meta(lambda: DebertaV2Model(mdeberta)))
    models["router: mdeberta-v3-base (paper)"] = {"total": total, "flops_params": body + 768 * 6 + 6}
    total, body = non_embedding_parameters(on_meta(lambda: LlamaForCausalLM(llama13b)))
    models["LLM: LLaMA-2-13B architecture (each of the 6 candidates)"] = {"total": total, "flops_params": body}
    total, body = non_embedding_parameters(on_meta(lambda: Qwen2Model(qwen7b)))
    models["reward model: QwenRM ~7B (assumed Qwen-7B architecture)"] = {
        "total": total + 4096 + 1,
        "flops_params": body + 4096 + 1,
    }
    total, body = non_embedding_parameters(on_meta(lambda: LlamaForCausalLM(llama13b)))
    head = llama13b.vocab_size * llama13b.hidden_size
    models["reward model: UltraRM-13B (LLaMA-2-13B + value head)"] = {
        "total": total - head + 5120 + 1,
        "flops_params": body - head + 5120 + 1,
    }
    return models


def our_router_parameters(ckpt: Path) -> tuple[int, int]:
    from zooter.inference import Router

    return non_embedding_parameters(Router.from_checkpoint(ckpt).model)


def token_lengths() -> dict[str, float | str]:
    if ALPACAEVAL.is_file():
        queries = [json.loads(line)["query"] for line in ALPACAEVAL.read_text().splitlines() if line.strip()]
        query_chars = float(np.mean([len(q) for q in queries]))
        source = f"mean length of the {len(queries)} AlpacaEval instructions in {ALPACAEVAL.name}"
    else:
        query_chars = ALPACAEVAL_QUERY_CHARS
        source = "mean length of the 805 AlpacaEval instructions (recorded; ../shared/data is absent)"
    output_chars = float(np.mean(list(ALPACAEVAL_OUTPUT_CHARS.values())))
    return {
        "query_chars": query_chars,
        "query_tokens": query_chars / CHARS_PER_TOKEN,
        "query_source": source,
        "output_chars": output_chars,
        "output_tokens": output_chars / CHARS_PER_TOKEN,
    }


def cost_section(models: dict[str, dict], ours: dict[str, tuple[int, int]], lengths: dict) -> list[str]:
    lq, lr = lengths["query_tokens"], lengths["output_tokens"]
    n = 6
    llm = models["LLM: LLaMA-2-13B architecture (each of the 6 candidates)"]["flops_params"]
    generation = 2 * llm * (lq + lr)
    rms = {k: v["flops_params"] for k, v in models.items() if k.startswith("reward model")}
    routers = {"mdeberta-v3-base (the paper's router)": models["router: mdeberta-v3-base (paper)"]["flops_params"]}
    routers.update({f"zooter {name} (this benchmark)": body for name, (_, body) in ours.items()})
    lines = [
        "## Cost of a routing decision (FLOPs)",
        "",
        "Forward FLOPs ≈ 2 × parameters × tokens, counting parameters outside embedding tables only (an "
        "embedding is a lookup; the LM head is a matrix product and is counted). Attention over the context "
        "(about 4 × layers × context × hidden FLOPs per token) and the KV cache are left out: for a 13B model at a "
        "few hundred tokens of context that is under 1 % of 2 × parameters. Parameter counts come from the "
        "architectures' configs, built on PyTorch's meta device (no weights):",
        "",
        "| model | parameters | without embeddings (used for FLOPs) |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {name} | {m['total'] / 1e6:,.1f} M | {m['flops_params'] / 1e6:,.1f} M |" for name, m in models.items()
    ]
    lines += [
        f"| zooter {name} router (this benchmark) | {t / 1e6:,.3f} M | {b / 1e6:,.3f} M |"
        for name, (t, b) in ours.items()
    ]
    lines += [
        "",
        f"Token counts: query L_q = {lengths['query_chars']:.0f} characters ({lengths['query_source']}) / "
        f"{CHARS_PER_TOKEN:g} characters per token = **{lq:.0f} tokens**; response L_r = "
        f"{lengths['output_chars']:.0f} characters, the mean AlpacaEval 1.0 leaderboard `avg_length` of the paper's "
        f"candidates listed there ({', '.join(f'{k} {v}' for k, v in ALPACAEVAL_OUTPUT_CHARS.items())}; "
        f"tatsu-lab/alpaca_eval, alpaca_eval_gpt4_leaderboard.csv at eda4a40) / {CHARS_PER_TOKEN:g} = **{lr:.0f} "
        f"tokens**. {CHARS_PER_TOKEN:g} characters per token is an assumption for LLaMA-family tokenizers on "
        "English; every router is charged the same L_q (its own tokenizer would give somewhat different counts).",
        "",
        f"- one generation (13B, prompt + response): 2 × {llm / 1e9:.2f} B × ({lq:.0f} + {lr:.0f}) = "
        f"**{generation / 1e12:.2f} TFLOPs**",
    ]
    for name, params in rms.items():
        rmr = n * generation + n * 2 * params * (lq + lr)
        lines.append(
            f"- RMR with {name.split(': ')[1]}: {n} generations + {n} reward passes over prompt + response = "
            f"**{rmr / 1e12:.1f} TFLOPs**"
        )
    lines += [
        "",
        "| router | router FLOPs per query | router / one generation | Zooter (router + 1 generation) / RMR-QwenRM "
        "| Zooter / RMR-UltraRM |",
        "|---|---:|---:|---:|---:|",
    ]
    rmr_qwen = n * generation + n * 2 * rms["reward model: QwenRM ~7B (assumed Qwen-7B architecture)"] * (lq + lr)
    rmr_ultra = n * generation + n * 2 * rms["reward model: UltraRM-13B (LLaMA-2-13B + value head)"] * (lq + lr)
    for name, params in routers.items():
        router = 2 * params * lq
        zooter = router + generation
        lines.append(
            f"| {name} | {router / 1e9:.3g} GFLOPs | 1/{generation / router:,.0f} | "
            f"1/{rmr_qwen / zooter:.1f} | 1/{rmr_ultra / zooter:.1f} |"
        )
    paper_router = 2 * routers["mdeberta-v3-base (the paper's router)"] * lq
    lines += [
        "",
        f"In the paper's setting the router costs **1/{generation / paper_router:,.0f} of one generation** "
        f"({100 * paper_router / generation:.3f} %, {1000 * paper_router / generation:.2f} thousandths); "
        f"routing then answering costs 1/{rmr_qwen / (paper_router + generation):.1f} of RMR with QwenRM (6 "
        f"generations + 6 reward passes), 1/{rmr_ultra / (paper_router + generation):.1f} with a 13B reward model. "
        "The router's share grows with shorter responses: it reads only the query, a generation reads the "
        "query and writes the response.",
        "",
    ]
    return lines


# ----------------------------------------------------------------------------------------------- report
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer calls and queries, 1 repeat")
    parser.add_argument("--warmup", type=int, default=None, help="untimed single-query calls (default 20)")
    parser.add_argument("--calls", type=int, default=None, help="timed single-query calls (default 300)")
    parser.add_argument("--batch-queries", type=int, default=None, help="queries per batched pass (default 1024)")
    parser.add_argument("--max-length", type=int, default=512, help="data.max_length of the length-sorting run")
    parser.add_argument("--predict-queries", type=int, default=None, help="queries for zooter predict (default 4000)")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (--quick: 1)")
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=list(ENCODERS))
    parser.add_argument("--out", type=Path, default=benchutil.RESULTS / "latency.md")
    args = parser.parse_args()
    quick = args.quick
    warmup = args.warmup or (5 if quick else 20)
    calls = args.calls or (30 if quick else 300)
    batch_queries = args.batch_queries or (256 if quick else 1024)
    predict_queries = args.predict_queries or (500 if quick else 4000)
    repeats = args.repeats or (1 if quick else 3)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    info = benchutil.machine()

    from zooter.table.synth import SynthConfig, generate

    queries = generate(SynthConfig(num_queries=max(warmup + calls, batch_queries, predict_queries), seed=123)).queries
    varied, varied_source = varied_queries(quick)
    work = Path(tempfile.mkdtemp(prefix="zooter-bench-latency-"))
    results: dict[str, dict] = {}
    try:
        for encoder in args.encoders:
            fit_s, ckpt = timed(lambda encoder=encoder: fit_router(encoder, work))
            print(f"{encoder}: trained 2 steps in {fit_s:.1f} s -> {ckpt}", flush=True)
            api = api_latency(ckpt, queries, warmup, calls, batch_queries, repeats)
            p50, p95 = np.percentile(api["single_ms"], [50, 95])
            print(f"{encoder}: single query p50 {p50:.1f} ms, p95 {p95:.1f} ms; batch {BATCH}: "
                  f"{benchutil.fmt(api['rates'], 'queries/s', digits=0)}", flush=True)  # fmt: skip
            predict = predict_throughput(encoder, ckpt, queries[:predict_queries], repeats, work)
            sorting = length_sorted_predict(encoder, ckpt, varied, args.max_length, min(repeats, 2), work)
            times = {name: benchutil.fmt(t) for name, t in sorting["times"].items()}
            print(f"{encoder}: predict loop over {len(varied)} queries of varied length: {times}", flush=True)
            results[encoder] = {
                "api": api,
                "predict": predict,
                "sorting": sorting,
                "params": our_router_parameters(ckpt),
            }
        models = paper_models()
        lengths = token_lengths()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = report(args, info, results, models, lengths, dict(warmup=warmup, calls=calls, batch_queries=batch_queries,
                  predict_queries=predict_queries, repeats=repeats, varied_source=varied_source,
                  max_length=args.max_length))  # fmt: skip
    benchutil.write_result(args.out, text)


def report(args, info, results, models, lengths, settings) -> str:
    fmt = benchutil.fmt
    lines = [
        "# Routing latency and cost",
        "",
        f"Command: `{benchutil.command_line()}` (zooter at {benchutil.git_commit()}).",
        "",
        benchutil.machine_section(info),
        "## Settings",
        "",
        "- routers: trained 2 steps by `zooter fit` with configs/quickstart.yaml (tiny-deberta: 2 layers, hidden "
        "64, tokenizer of 2048 word pieces trained on the 4000-query synthetic table; max_length 64), and for "
        "MiniLM also configs/model/minilm.yaml with `--data.encoder minilm` (all-MiniLM-L6-v2: 6 layers, hidden "
        "384). Mean pooling, CPU, float32.",
        "- queries: new synthetic queries (`zooter.table.synth`, seed 123; a template sentence of about 10-15 words).",
        f"- Python API: `Router.from_checkpoint(ckpt)`; {settings['warmup']} untimed single-query calls, then "
        f"{settings['calls']} timed calls of `router.route([query])`; throughput: `router.route(batch)` over "
        f"{settings['batch_queries']} queries in batches of {BATCH}, {settings['repeats']} passes.",
        f"- `zooter predict`: `python -m zooter.cli predict` with the same configs, `--ckpt_path`, and "
        f"`--data.predict_path` a JSONL file of {settings['predict_queries']} queries, {settings['repeats']} runs, "
        "after one untimed run that fills the token cache of the training table's splits (which `zooter "
        "predict` rebuilds from the config). Each run gets the queries in a new order, so its prediction file "
        "is tokenized afresh.",
        "",
        "## Python API: `Router.from_checkpoint(...).route(...)`",
        "",
        "| router | parameters | load checkpoint | single query p50 | single query p95 | batch 64: queries/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for encoder, result in results.items():
        api = result["api"]
        p50, p95 = np.percentile(api["single_ms"], [50, 95])
        lines.append(
            f"| {encoder} | {api['params'] / 1e6:.2f} M | {api['load_s']:.2f} s | {p50:.1f} ms | {p95:.1f} ms | "
            f"{fmt(api['rates'], '', digits=0)} |"
        )
    lines += [
        "",
        "Single-query figures are percentiles over all timed calls; batch figures are the median (min–max) of "
        "the passes. `route` tokenizes, sorts the batch by length, runs the encoder under `torch.inference_mode` "
        "and builds one `RoutingDecision` per query.",
        "",
        "## `zooter predict`",
        "",
        "| router | queries | wall time per process | queries/s including start-up | start-up | predict loop "
        "| queries/s excluding start-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for encoder, result in results.items():
        p = result["predict"]
        n, runs = p["queries"], p["runs"]
        lines.append(
            f"| {encoder} | {n} | {fmt([r['total'] for r in runs])} | "
            f"{fmt([n / r['total'] for r in runs], '', digits=0)} "
            f"| {fmt([r['startup'] for r in runs])} | {fmt([r['loop'] for r in runs])} | "
            f"{fmt([n / r['loop'] for r in runs], '', digits=0)} |"
        )
    lines += [
        "",
        "How start-up is split off: the process is timed from launch to exit (`subprocess.run`), and a callback "
        "added to it (`benchmarks/predict_timer.py`, `--trainer.callbacks+=predict_timer.PredictTimer`) records "
        "the wall clock at Lightning's `on_predict_start` and `on_predict_end`. Start-up = launch to "
        "`on_predict_start`: the interpreter and imports (torch, Lightning, transformers: most of it), parsing "
        "the config, building the data module (the synthetic training table, its splits, tokenizer, the token "
        "cache and targets; tokenizing the new prediction file), building the model and loading the checkpoint. "
        "The predict loop = `on_predict_start` to `on_predict_end`: batches, forward passes and writing "
        "predictions.jsonl. Shutdown (after `on_predict_end`) is the rest, "
        f"{fmt([r['shutdown'] for res in results.values() for r in res['predict']['runs']])} here.",
        "",
    ]
    lines += [
        "## Predict batches cut in length order",
        "",
        f"`zooter predict` runs the data module's predict split longest query first (`RoutingDataset.by_length`), "
        f"so each batch holds queries of about one length. Measured in this process: `trainer.predict` on one "
        f"data module built by `ZooterCLI` from the same configs with `--data.max_length {settings['max_length']}` "
        f"(configs/paper.yaml's value; mDeBERTa reads up to 512 tokens), over {settings['varied_source']}, "
        "alternating the length-sorted split (default) and the same split in file order (the order before), "
        "after one untimed call; median (min–max) of up to 2 calls each.",
        "",
        "| router | query tokens: mean / max | padded tokens: file order → sorted | predict loop: file order (before) "
        "| predict loop: length-sorted (default) | speed-up | max abs. difference of probabilities | same route "
        "for every query |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for encoder, result in results.items():
        sort = result["sorting"]
        before, after = sort["times"]["file order (before)"], sort["times"]["length-sorted (default)"]
        old_p, new_p = sort["probs"]["file order (before)"], sort["probs"]["length-sorted (default)"]
        same = bool((old_p.argmax(1) == new_p.argmax(1)).all())
        lines.append(
            f"| {encoder} | {np.mean(sort['lengths']):.0f} / {max(sort['lengths'])} | "
            f"{sort['padded']['file order (before)']:,} → {sort['padded']['length-sorted (default)']:,} | "
            f"{fmt(before)} | "
            f"{fmt(after)} | {np.median(before) / np.median(after):.2f}x | {np.abs(old_p - new_p).max():.1e} | "
            f"{'yes' if same else 'NO'} |"
        )
    lines += [
        "",
        "Query tokens are counted by each router's tokenizer: tiny-deberta's word pieces were trained on the "
        "synthetic table, so it splits most real words into characters and sees long sequences.",
        "",
        "A query's probabilities change only in float32 rounding (its padded length differs), as they do when "
        "`data.batch_size` changes; `predictions.jsonl` keeps the input order (rows are mapped back by index). "
        "Lightning runs `predict` under `torch.inference_mode()` by default (`Trainer(inference_mode=True)`), "
        f"and zooter's configs keep it: {inference_mode_note(results)}.",
        "",
    ]
    ours = {encoder: result["params"] for encoder, result in results.items()}
    lines += cost_section(models, ours, lengths)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
