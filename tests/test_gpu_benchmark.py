"""benchmarks/gpu.py: the FLOPs and MFU formula by hand, and its CPU smoke run end to end."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest
from torch import nn

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def gpu():
    sys.path.insert(0, str(SCRIPT.parent))  # the script imports benchutil from its own folder
    try:
        spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gpu_benchmark", None)
        sys.path.remove(str(SCRIPT.parent))


def test_model_flops_and_mfu_match_a_hand_computation(gpu):
    # P = 1000 non-embedding parameters, L = 2 layers, H = 8, B = 3, S = 4
    dense = 6 * 1000 * 3 * 4  # 72,000
    attention = 12 * 2 * 8 * 4 * 4 * 3  # 9,216
    assert gpu.model_flops(1000, 2, 8, 3, 4) == dense + attention == 81_216
    assert gpu.mfu(81_216, 0.5, 1e6) == pytest.approx(81_216 / 0.5 / 1e6)
    assert gpu.mfu(81_216, 0.5, None) is None
    # mdeberta-v3-base's shape at batch 32 x 512: 6 * P * 16,384 + 12 * 12 * 768 * 512^2 * 32
    assert gpu.model_flops(85_000_000, 12, 768, 32, 512) == pytest.approx(6 * 85e6 * 16384 + 144 * 768 * 512**2 * 32)


def test_peak_table_by_device_name(gpu):
    assert gpu.peak_bf16("NVIDIA H100 80GB HBM3") == 989e12
    assert gpu.peak_bf16("NVIDIA H100 PCIe") == 756e12
    assert gpu.peak_bf16("NVIDIA H200") == 989e12
    assert gpu.peak_bf16("NVIDIA A100-SXM4-80GB") == 312e12
    assert gpu.peak_bf16("NVIDIA GeForce RTX 4090") is None


def test_non_embedding_params_leave_out_embedding_tables(gpu):
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3), nn.Embedding(5, 4))
    assert gpu.non_embedding_params(model) == 4 * 3 + 3


@pytest.mark.slow
def test_smoke_run_writes_finite_throughput_and_markdown(tmp_path):
    out = tmp_path / "gpu"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(out), "--runs", str(tmp_path / "runs")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.with_suffix(".json").read_text())
    assert {"machine", "command", "settings", "throughput", "dcrouter", "flops_formula", "peak_bf16_flops"} <= set(
        result
    )
    assert result["smoke"] is True and result["peak_bf16_flops"] is None
    assert len(result["throughput"]) == 2
    for row in result["throughput"]:
        for key in ("samples_per_s", "tokens_per_s", "step_s_median", "flops_per_step", "achieved_flops_per_s"):
            assert math.isfinite(row[key]) and row[key] > 0, (key, row)
        assert row["step_s_min"] <= row["step_s_median"] <= row["step_s_max"]
        assert row["tokens_per_s"] == pytest.approx(row["samples_per_s"] * row["length"])
        assert row["mfu"] is None
    real = result["dcrouter"]
    assert real["table"] == "synthetic" and 0 <= real["mean"] <= 1 and real["wall_s"] > 0
    assert len(real["minus_bma_ci95"]) == 2
    markdown = out.with_suffix(".md").read_text()
    assert "MFU" in markdown and "6·P·B·S + 12·L·H·S²·B" in markdown
