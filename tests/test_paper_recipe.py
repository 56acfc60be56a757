"""The paper's recipe (experiments/paper/): the shipped script is the recipe's rendering, its configs
exist and parse, and the whole command sequence runs on tiny models from configs (no download).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import jinja2
import numpy as np
import pytest
import yaml

from conftest import REPO

PAPER = REPO / "experiments" / "paper"


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"paper_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


recipe = _module(PAPER / "recipe.py")
tiny_build = _module(PAPER / "tiny" / "build.py")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open()]


def test_recipe_sh_and_readme_are_the_rendered_recipe() -> None:
    shell = recipe.to_shell(recipe.steps(recipe.Settings()), recipe.Settings())
    regenerate = "regenerate: python experiments/paper/recipe.py > experiments/paper/recipe.sh"
    assert (PAPER / "recipe.sh").read_text() == shell, regenerate
    readme = (PAPER / "README.md").read_text()
    (block,) = re.findall(r"```bash\n(#!/usr/bin/env bash\n.*?)```", readme, flags=re.S)
    assert block == shell, "the README's copy of recipe.sh is out of date"


def test_every_config_the_recipe_names_exists() -> None:
    for settings in (recipe.Settings(), recipe.Settings.load(PAPER / "tiny" / "recipe.yaml")):
        named = [arg for step in recipe.steps(settings) for arg in step.argv if arg.endswith(".yaml")]
        assert named, settings
        for path in named:
            assert (REPO / path).is_file(), path
    judges = {yaml.safe_load((PAPER / "judges" / f"{b}.yaml").read_text())["judge"] for b in recipe.BENCHMARKS}
    assert judges == {"bench"}  # one eval judge over every benchmark subset


def test_settings_refuse_unknown_keys(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("folds: 3\nfold: 1\n")
    with pytest.raises(ValueError, match=r"s.yaml: unknown recipe settings \['fold'\]"):
        recipe.Settings.load(tmp_path / "s.yaml")


def test_chat_templates_render_the_model_cards_prompts() -> None:
    messages = [{"role": "user", "content": "Hi?"}]
    expected = {
        "vicuna": "<s>A chat between a curious user and an artificial intelligence assistant. The assistant gives "
        "helpful, detailed, and polite answers to the user's questions. USER: Hi? ASSISTANT:",
        "alpaca": "<s>Below is an instruction that describes a task. Write a response that appropriately completes "
        "the request.\n\n### Instruction:\nHi?\n\n### Response:",
        "openchat": "<s>GPT4 User: Hi?<|end_of_turn|>GPT4 Assistant:",
    }
    for name, text in expected.items():
        template = jinja2.Environment().from_string((PAPER / "templates" / f"{name}.jinja").read_text())
        assert template.render(messages=messages, add_generation_prompt=True, bos_token="<s>") == text


@pytest.mark.slow
def test_tiny_recipe_runs_end_to_end(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the tiny configs name their models relative to the working directory
    tiny_build.build(tmp_path)
    tiny = recipe.Settings.load(PAPER / "tiny" / "recipe.yaml")
    settings = replace(
        tiny,
        configs=str(REPO / tiny.configs),
        overrides=str(REPO / tiny.overrides),
        base_config=str(REPO / tiny.base_config),
    )
    steps = recipe.steps(settings)
    commands = [step.argv[0] if not step.concat else "cat" for step in steps]
    assert commands == ["tag", "generate", "score", "fit", *["generate", "score"] * 3, "cat", "score",
                        "predict", "predict", "report"]  # fmt: skip
    recipe.run(steps, settings)
    work = Path(settings.work)
    candidates = {"lm-a", "lm-b", "lm-c"}

    tagged = _rows(work / "train" / "queries.jsonl")
    assert len(tagged) == 32 and all(row["tags"] for row in tagged)
    assert len({tag for row in tagged for tag in row["tags"]}) == 4
    table = _rows(work / "train" / "table.jsonl")
    assert [row["id"] for row in table] == [row["id"] for row in tagged]
    for row, before in zip(table, tagged, strict=True):
        assert row["tags"] == before["tags"]  # tags travel through generate and score
        assert set(row["responses"]) == candidates
        assert set(row["scores_by_judge"]["rm"]) == candidates
        assert all(np.isfinite(v) for v in row["scores_by_judge"]["rm"].values())

    fit_dir = work / "runs" / "paper" / "train"
    assert (fit_dir / "checkpoints" / "last.ckpt").is_file()
    fitted = yaml.safe_load((fit_dir / "config.yaml").read_text())
    assert fitted["data"]["beta"] == 0.3 and fitted["data"]["train_judge"] == "rm"
    assert fitted["model"]["init_args"]["weight_decay"] == 5.0e-7 and fitted["model"]["init_args"]["loss"] == "kl"

    bench = _rows(work / "bench" / "bench.jsonl")
    assert [row["subset"] for row in bench] == ["mmlu"] * 8 + ["gsm8k"] * 8 + ["humaneval"] * 8
    for row in bench:
        assert set(row["scores_by_judge"]) == {"bench", "rm"}
        assert set(row["scores_by_judge"]["bench"].values()) <= {0.0, 1.0}
        reasons = row["score_reasons"]["bench"]
        assert set(reasons) == candidates
        kinds = {reason.split(":")[0] for reason in reasons.values()}
        allowed = {"humaneval": {"passed", "failed", "syntax", "timeout", "memory"}}
        assert kinds <= allowed.get(row["subset"], {"correct", "wrong", "unparseable"}), (row["id"], reasons)
    passed = [row["scores_by_judge"]["bench"] for row in bench if row["subset"] == "humaneval"]
    assert any(v == 1.0 for s in passed for v in s.values()) and any(v == 0.0 for s in passed for v in s.values())

    predictions = [work / "runs" / "zooter" / f"fold{fold}" / "predictions.jsonl" for fold in range(2)]
    predicted = [row for path in predictions for row in _rows(path)]
    assert sorted(row["id"] for row in predicted) == sorted(row["id"] for row in bench)
    assert all(row["route"] in candidates for row in predicted)

    report = json.loads((work / "report" / "report.json").read_text())
    methods = report["methods"]
    assert {"zooter", "best single (BMA)", "oracle", "RMR rm"} <= set(methods)
    for name in ("zooter", "best single (BMA)", "oracle", "RMR rm"):
        assert {"mtr", "uplift"} <= set(methods[name])
    assert set(report["subsets"]["names"]) == {"mmlu", "gsm8k", "humaneval"}
    # the oracle and RMR by hand: each fold has 12 queries, so the mean over folds is the mean over rows
    scores = np.array([[row["scores_by_judge"]["bench"][c] for c in sorted(candidates)] for row in bench])
    rewards = np.array([[row["scores_by_judge"]["rm"][c] for c in sorted(candidates)] for row in bench])
    assert methods["oracle"]["routed_score"]["mean"] == pytest.approx(scores.max(axis=1).mean())
    rmr = scores[np.arange(len(bench)), rewards.argmax(axis=1)].mean()
    assert methods["RMR rm"]["routed_score"]["mean"] == pytest.approx(rmr)
