"""GPU benchmark: bf16 training throughput and MFU of the router, and the dcrouter run at full length.

One command, under 5 minutes on one H100 or H200; MFU is model-FLOPs utilisation.

    HF_HUB_OFFLINE=1 python benchmarks/gpu.py                          # writes benchmarks/results/gpu.{md,json}
    HF_HUB_OFFLINE=1 python benchmarks/gpu.py --smoke --out /tmp/gpu   # CPU, tiny settings, < 1 min

1. Throughput. The framework's ``ZooterRouter`` (encoder -> pooling -> dropout -> linear head over 9
   candidates) and its training loss ``router.loss(batch).mean()`` under ``torch.autocast(bfloat16)``, then
   ``backward`` and ``torch.optim.AdamW``: the step of ``zooter fit --trainer.precision bf16-mixed`` without
   Lightning's loop and without data loading (one batch of random tokens of a fixed length, no padding,
   kept on the device). Encoders: (a) the packaged MiniLM-L6 (``minilm``); (b) mdeberta-v3-base built from
   its published config with random weights (no download), through the framework's from-config DeBERTa-v2
   path (``tiny-deberta`` with ``encoder_config`` = that shape). Each step is timed between
   ``torch.cuda.synchronize()`` calls; the warm-up steps are not timed.
2. dcrouter. ``benchmarks/realdata.py``'s run of the paper's router (MiniLM, fit + predict with the best
   checkpoint on validation) on the GPU trainer (``configs/trainer/gpu.yaml``: one GPU, bf16-mixed) at
   ``max_length`` 512: test score, the paired bootstrap 95% interval of (router − best single), wall time.
   Skipped when ``../shared/data/dcrouter`` is absent. ``--smoke`` runs the synthetic quickstart table at
   debug size instead.

Model FLOPs of one training step (backward = 2 × forward; a multiply-add is 2 FLOPs):

    F = 6 · P · B · S + 12 · L · H · S² · B

P: non-embedding parameters (every parameter outside an ``nn.Embedding`` table, the head included),
B: batch, S: sequence length, L: layers, H: hidden size. The second term is attention's QKᵀ and AV
products (4 · B · S² · H per layer forward, × 3 with the backward). DeBERTa's disentangled-attention
terms (c2p, p2c) are not counted, so its MFU understates the work done. MFU = F / median step time /
the device's peak dense bf16 FLOP/s (``PEAK_BF16``, by device name; an unknown device or CPU: n/a).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import benchutil
import torch
from torch import nn

RUNS = benchutil.REPO / "benchmarks" / "runs" / "gpu"
CANDIDATES = 9  # as in dcrouter
# peak dense (no sparsity) bf16 tensor-core FLOP/s from the vendor's datasheets; first substring match of
# torch.cuda.get_device_name() wins, so the H100 variants come before plain "H100" (SXM, "H100 80GB HBM3")
PEAK_BF16: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("A100", 312e12),
)
# microsoft/mdeberta-v3-base's published config.json (vocab_size is passed separately)
MDEBERTA_V3_BASE: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "relative_attention": True,
    "position_buckets": 256,
    "pos_att_type": ["p2c", "c2p"],
    "norm_rel_ebd": "layer_norm",
    "share_att_key": True,
    "position_biased_input": False,
    "max_relative_positions": -1,
    "type_vocab_size": 0,
    "layer_norm_eps": 1e-7,
    "hidden_act": "gelu",
}
MDEBERTA_VOCAB = 250105


@dataclass(frozen=True)
class Encoder:
    """One router to time: the ``ZooterRouter`` arguments that build it."""

    name: str
    encoder: str
    pretrained: bool
    pooling: str
    vocab_size: int | None = None
    encoder_config: dict[str, Any] = field(default_factory=dict)


MINILM = Encoder("MiniLM-L6 (packaged, pretrained)", "minilm", True, "mean")
MDEBERTA = Encoder("mdeberta-v3-base (from config)", "tiny-deberta", False, "cls", MDEBERTA_VOCAB, MDEBERTA_V3_BASE)
TINY = Encoder("tiny-deberta (smoke stand-in for mdeberta)", "tiny-deberta", False, "cls", 4096)


def model_flops(non_embedding_params: int, layers: int, hidden: int, batch: int, length: int) -> float:
    """Model FLOPs of one training step: ``6·P·B·S + 12·L·H·S²·B`` (see the module docstring)."""
    return 6.0 * non_embedding_params * batch * length + 12.0 * layers * hidden * length**2 * batch


def peak_bf16(device_name: str) -> float | None:
    """Peak dense bf16 FLOP/s of a device by its name (``None``: not in the table)."""
    return next((peak for key, peak in PEAK_BF16 if key.lower() in device_name.lower()), None)


def mfu(flops_per_step: float, step_seconds: float, peak: float | None) -> float | None:
    """Model-FLOPs utilisation: achieved FLOP/s over the peak (``None`` without a peak)."""
    return None if peak is None else flops_per_step / step_seconds / peak


def non_embedding_params(module: nn.Module) -> int:
    """Parameters outside ``nn.Embedding`` tables (token, position and relative-position embeddings)."""
    embedded = {id(m.weight) for m in module.modules() if isinstance(m, nn.Embedding)}
    return sum(p.numel() for p in module.parameters() if id(p) not in embedded)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_router(spec: Encoder, device: torch.device) -> nn.Module:
    from zooter.routers.zooter import ZooterRouter

    torch.manual_seed(0)
    router = ZooterRouter(
        candidates=[f"llm{i}" for i in range(CANDIDATES)],
        encoder=spec.encoder,
        vocab_size=spec.vocab_size,
        pretrained=spec.pretrained,
        encoder_config=spec.encoder_config or None,
        pooling=spec.pooling,
        lr=5e-5,
        weight_decay=5e-7,
    )
    return router.to(device).train()


def random_batch(vocab: int, batch: int, length: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Random token ids (no padding) and soft targets over every candidate, as the collator lays them out."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (batch, length), generator=generator)
    target = torch.softmax(torch.randn(batch, CANDIDATES, generator=generator), dim=-1)
    return {
        "input_ids": ids.to(device),
        "attention_mask": torch.ones_like(ids).to(device),
        "target": target.to(device),
        "judged": torch.ones(batch, CANDIDATES, dtype=torch.bool, device=device),
    }


def time_training(
    spec: Encoder, shapes: list[tuple[int, int]], warmup: int, steps: int, device: torch.device, peak: float | None
) -> list[dict[str, Any]]:
    """Time ``steps`` bf16 training steps after ``warmup`` untimed ones, per (batch, length)."""
    router = build_router(spec, device)
    config = router.encoder.config
    params = sum(p.numel() for p in router.parameters())
    non_embedding = non_embedding_params(router)
    optimizer = torch.optim.AdamW(router.parameters(), lr=router.hparams.lr, weight_decay=router.hparams.weight_decay)
    rows = []
    for batch_size, length in shapes:
        batch = random_batch(config.vocab_size, batch_size, length, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds, losses = [], []
        for step in range(warmup + steps):
            synchronize(device)
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = router.loss(batch).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            synchronize(device)
            if step >= warmup:
                seconds.append(time.perf_counter() - start)
                losses.append(loss.detach())
        if not all(math.isfinite(x) for x in torch.stack(losses).float().tolist()):
            raise RuntimeError(f"{spec.name} {batch_size}x{length}: non-finite loss")
        median = statistics.median(seconds)
        flops = model_flops(non_embedding, config.num_hidden_layers, config.hidden_size, batch_size, length)
        rows.append({
            "model": spec.name, "encoder": spec.encoder, "batch": batch_size, "length": length,
            "params": params, "non_embedding_params": non_embedding,
            "layers": config.num_hidden_layers, "hidden": config.hidden_size,
            "warmup_steps": warmup, "timed_steps": steps,
            "step_s_median": median, "step_s_min": min(seconds), "step_s_max": max(seconds),
            "samples_per_s": batch_size / median, "tokens_per_s": batch_size * length / median,
            "samples_per_s_wall": batch_size * steps / sum(seconds),
            "flops_per_step": flops, "achieved_flops_per_s": flops / median, "mfu": mfu(flops, median, peak),
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        })  # fmt: skip
        row = rows[-1]
        shown = "n/a" if row["mfu"] is None else f"{row['mfu']:.1%}"
        print(
            f"gpu: {spec.name} {batch_size}x{length}: {median * 1e3:.1f} ms/step, "
            f"{row['samples_per_s']:.1f} samples/s, {row['tokens_per_s']:.0f} tokens/s, MFU {shown}",
            flush=True,
        )
    del router, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def dcrouter_run(smoke: bool, epochs: int, max_length: int, seed: int, runs: Path) -> dict[str, Any]:
    """``realdata.py``'s fit + predict of the zooter router on dcrouter (smoke: the synthetic table), fresh."""
    import realdata

    table = "synthetic" if smoke else "dcrouter"
    if not smoke and not (realdata.SHARED / "dcrouter").is_dir():
        message = f"{realdata.SHARED / 'dcrouter'} is absent: dcrouter run skipped"
        print(f"gpu: {message}", flush=True)
        return {"table": table, "skipped": message}
    settings = realdata.table_settings(table, epochs, max_length)
    overlay = "configs/debug.yaml" if smoke else "configs/trainer/gpu.yaml"
    settings["args"] = [*settings["args"], "--config", str(benchutil.REPO / overlay)]
    shutil.rmtree(runs / table / f"zooter-{settings['replicate']}{seed}", ignore_errors=True)  # never reuse a run
    started = time.perf_counter()
    with benchutil.argv([]):  # LightningCLI warns when it is given args and sees this script's argv too
        predict_dir = realdata.run_one(table, "zooter", seed, settings, runs)
    wall = time.perf_counter() - started
    if predict_dir is None:
        return {"table": table, "skipped": "configs/router/zooter.yaml is missing"}
    summary = realdata.summarise([realdata.per_query(predict_dir)], settings["replicate"])
    return {"table": table, "router": "zooter", "seed": seed, "epochs": 1 if smoke else epochs,
            "max_length": max_length, "overlay": overlay, "wall_s": wall, "run_dir": str(predict_dir.parent),
            **summary}  # fmt: skip


def machine(device: torch.device) -> dict[str, str]:
    import lightning
    import transformers

    info = benchutil.machine()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["GPU"] = f"{torch.cuda.get_device_name(device)}, {props.total_memory / 2**30:.0f} GiB"
        info["CUDA"] = f"{torch.version.cuda} (cuDNN {torch.backends.cudnn.version()})"
    else:
        info["GPU"] = "none (CPU run)"
    info["libraries"] = f"lightning {lightning.__version__}, transformers {transformers.__version__}"
    info["code"] = benchutil.git_commit()
    return info


def markdown(result: dict[str, Any]) -> str:
    peak = result["peak_bf16_flops"]
    peak_text = f"{peak / 1e12:.0f} TFLOP/s" if peak else "n/a: CPU run" if result["smoke"] else "n/a: unknown device"
    lines = [
        "# GPU benchmark: bf16 training throughput, MFU, and dcrouter at full length",
        "",
        f"Written by `benchmarks/gpu.py`{' (smoke run: tiny settings on CPU)' if result['smoke'] else ''} in "
        f"{result['wall_s'] / 60:.1f} min.",
        "",
        *([f"Note: {result['note']}", ""] if result["note"] else []),
        benchutil.machine_section(result["machine"]),
        *["## Command", "", "```bash", result["command"], "```"],
        "",
        "## Training throughput and MFU",
        "",
        "`ZooterRouter` training step: `router.loss(batch).mean()` under `torch.autocast(bfloat16)`, `backward`, "
        "`torch.optim.AdamW`; one fixed batch of random tokens (no padding, no data loading) kept on the device; "
        f"{result['settings']['timed_steps']} timed steps after {result['settings']['warmup_steps']} warm-up step(s), "
        "each between `torch.cuda.synchronize()` calls. samples/s and tokens/s from the median step.",
        "",
        "Model FLOPs per step `F = 6·P·B·S + 12·L·H·S²·B` (P non-embedding parameters, B batch, S length, "
        "L layers, H hidden; attention's QKᵀ and AV in the second term, DeBERTa's c2p/p2c terms not counted). "
        "MFU = F / median step time / peak dense bf16 FLOP/s "
        f"({peak_text}).",
        "",
        "| model | batch × length | params (non-embedding) | step ms median (min–max) | samples/s | tokens/s "
        "| TFLOP/step | TFLOP/s | MFU | peak memory GiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["throughput"]:
        memory = "–" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.1f}"
        utilisation = "n/a" if r["mfu"] is None else f"{r['mfu']:.1%}"
        lines.append(
            f"| {r['model']} | {r['batch']} × {r['length']} | {r['params'] / 1e6:.1f} M "
            f"({r['non_embedding_params'] / 1e6:.1f} M) | {r['step_s_median'] * 1e3:.1f} "
            f"({r['step_s_min'] * 1e3:.1f}–{r['step_s_max'] * 1e3:.1f}) | {r['samples_per_s']:,.1f} "
            f"| {r['tokens_per_s']:,.0f} | {r['flops_per_step'] / 1e12:.3f} | {r['achieved_flops_per_s'] / 1e12:.1f} "
            f"| {utilisation} | {memory} |"
        )
    d = result["dcrouter"]
    lines += ["", f"## Real data: {d['table']}, zooter router", ""]
    if "skipped" in d:
        lines.append(f"Skipped: {d['skipped']}.")
    else:
        low, high = d["minus_bma_ci95"]
        lines += [
            f"`benchmarks/realdata.py`'s `run_one` (fit, then predict with the best checkpoint on validation), seed "
            f"{d['seed']}, {d['epochs']} epoch(s), max_length {d['max_length']}, trainer overlay `{d['overlay']}`; "
            "wall time = fit + predict, tokenization included.",
            "",
            "| test score | best single (BMA) | oracle | gap recovered | − BMA [95% CI] | val score | wall time |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            f"| {d['mean']:.4f} | {d['bma']:.4f} | {d['oracle']:.4f} | {d['gap_recovered']:.3f} | "
            f"{d['minus_bma']:+.4f} [{low:+.4f}, {high:+.4f}] | {d['val_mean']:.4f} | {d['wall_s']:.0f} s |",
        ]
    return "\n".join(lines)


def parse_shape(text: str) -> tuple[int, int]:
    batch, length = text.lower().split("x")
    return int(batch), int(length)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny settings, synthetic table (< 1 min)")
    shapes_help = "BATCHxLENGTH ... (default 32x256 32x512 128x512; smoke 2x16)"
    parser.add_argument("--shapes", nargs="+", type=parse_shape, default=None, help=shapes_help)
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per shape (10; smoke 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per shape (50; smoke 2)")
    parser.add_argument("--epochs", type=int, default=3, help="dcrouter training epochs")
    parser.add_argument("--max-length", type=int, default=512, help="dcrouter tokens per query")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-dcrouter", action="store_true")
    parser.add_argument("--runs", type=Path, default=None, help=f"run directory (default {RUNS}; smoke: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="results path without suffix (default results/gpu)")
    parser.add_argument("--note", default=None, help="a line for the results file (e.g. how the run was set up)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    shapes = args.shapes or ([(2, 16)] if smoke else [(32, 256), (32, 512), (128, 512)])
    warmup = args.warmup if args.warmup is not None else (1 if smoke else 10)
    steps = args.steps or (2 if smoke else 50)
    if not smoke and not torch.cuda.is_available():
        parser.error("no CUDA device: run on a GPU, or pass --smoke for the CPU smoke run")
    device = torch.device("cpu" if smoke else "cuda")
    out = args.out or (Path(tempfile.mkdtemp(prefix="zooter-gpu-")) / "gpu" if smoke else benchutil.RESULTS / "gpu")
    started = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else benchutil.cpu_model()
    peak = peak_bf16(name) if device.type == "cuda" else None
    info = machine(device)
    throughput = []
    for spec in [MINILM, TINY] if smoke else [MINILM, MDEBERTA]:
        throughput += time_training(spec, shapes, warmup, steps, device, peak)
    max_length = min(args.max_length, 64) if smoke else args.max_length
    if args.skip_dcrouter:
        real: dict[str, Any] = {"table": "dcrouter", "skipped": "--skip-dcrouter"}
    else:
        runs = args.runs or (Path(tempfile.mkdtemp(prefix="zooter-gpu-runs-")) if smoke else RUNS)
        try:  # a failure here must not lose the throughput figures
            real = dcrouter_run(smoke, args.epochs, max_length, args.seed, runs)
        except Exception as err:
            traceback.print_exc()
            real = {"table": "synthetic" if smoke else "dcrouter", "skipped": f"failed: {err!r}"}
        if smoke and args.runs is None:
            shutil.rmtree(runs, ignore_errors=True)
    result = {
        "smoke": smoke, "device": name, "peak_bf16_flops": peak, "machine": info,
        "command": "HF_HUB_OFFLINE=1 " + shlex.join([*benchutil.command_line().split(" ")[:2], *sys.argv[1:]]),
        "flops_formula": "6 * non_embedding_params * batch * length + 12 * layers * hidden * length**2 * batch",
        "settings": {"shapes": [list(s) for s in shapes], "warmup_steps": warmup, "timed_steps": steps,
                     "autocast": "bfloat16", "optimizer": "torch.optim.AdamW(lr=5e-5, weight_decay=5e-7)",
                     "candidates": CANDIDATES, "mdeberta_config": {**MDEBERTA_V3_BASE, "vocab_size": MDEBERTA_VOCAB}},
        "throughput": throughput, "dcrouter": real, "note": args.note,
        "wall_s": time.perf_counter() - started,
    }  # fmt: skip
    benchutil.write_result(out.with_suffix(".json"), json.dumps(result, indent=2))
    print(benchutil.write_result(out.with_suffix(".md"), markdown(result)).read_text(), flush=True)


if __name__ == "__main__":
    main()
