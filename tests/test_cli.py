"""The zooter command end to end: fit -> test -> predict from checkpoints, config parsing, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, debug_args
from zooter.cli import main
from zooter.table.synth import SynthConfig, generate

# LightningCLI configs (fit/test/predict); configs/generate/ holds `zooter generate` configs, parsed below;
# configs/costs/ holds candidate cost files, loaded by tests/test_cost_quality.py; configs/serve/ the gateway's
# upstream files, loaded by tests/test_serve.py
CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if not {"generate", "costs", "serve"} & set(p.parts))
GENERATE_CONFIGS = sorted((REPO / "configs/generate").glob("*.yaml"))


def test_fit_writes_config_and_a_checkpoint_with_the_candidate_order(quickstart_run):
    ckpt = quickstart_run.last
    assert (ckpt.parent.parent / "config.yaml").is_file()
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    candidates = generate(SynthConfig(num_queries=10)).candidates
    assert saved["zooter"]["candidates"] == candidates
    assert saved["hyper_parameters"]["candidates"] == candidates


def test_test_writes_flat_metrics_json_consistent_with_predictions(quickstart_run, tmp_path, capfd):
    args, ckpt = quickstart_run.args_in(tmp_path), quickstart_run.last
    main(["test", *args, "--ckpt_path", str(ckpt)])
    runs = tmp_path / "runs" / "quickstart"  # this test's own test and predict runs: version_0, version_1
    metrics_path = runs / "version_0" / "test_metrics.json"
    assert f"test metrics written to {metrics_path}" in "".join(capfd.readouterr())
    metrics = json.loads(metrics_path.read_text())
    for key in (
        "kl",
        "top1_acc",
        "routed_score",
        "best_single_score",
        "oracle_score",
        "gap_recovered",
        "selection_entropy",
        "share/generalist",
    ):
        assert f"test/{key}" in metrics
    assert sum(v for k, v in metrics.items() if k.startswith("test/share/")) == pytest.approx(1.0, abs=1e-5)

    main(["predict", *args, "--ckpt_path", str(ckpt)])
    rows = [json.loads(line) for line in (runs / "version_1" / "predictions.jsonl").open()]
    table = generate(SynthConfig(num_queries=240, seed=0))
    order = np.random.default_rng(0).permutation(240)[:24]  # the test split of quickstart's fractions
    assert [r["id"] for r in rows] == [table.ids[i] for i in order]
    assert [r["query"] for r in rows] == [table.queries[i] for i in order]
    for r in rows:
        assert sum(r["probs"].values()) == pytest.approx(1.0, abs=1e-5)
        assert r["route"] == max(r["probs"], key=r["probs"].get)
    true = table.judge("true")
    column = {c: k for k, c in enumerate(table.candidates)}
    routed = np.mean([true[i, column[r["route"]]] for i, r in zip(order, rows, strict=True)])
    assert metrics["test/routed_score"] == pytest.approx(routed, abs=1e-4)
    assert metrics["test/oracle_score"] == pytest.approx(true[order].max(axis=1).mean(), abs=1e-4)


def test_checkpoint_with_other_candidates_is_refused_and_leaves_no_run_directory(quickstart_run, tmp_path, capsys):
    args, ckpt = quickstart_run.args_in(tmp_path), quickstart_run.last
    reordered = list(reversed(generate(SynthConfig(num_queries=10)).candidates))
    with pytest.raises(SystemExit) as done:
        main(["test", *args, "--ckpt_path", str(ckpt), "--data.candidates", json.dumps(reordered)])
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert "zooter test: error: the checkpoint routes over candidates" in err and "Traceback" not in err
    # the run directory the failed test created (it held only config.yaml) is gone
    assert not list((tmp_path / "runs" / "quickstart").glob("version_*"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_config_parses(config, capsys):
    extra = ["--config", str(REPO / "configs/trainer/cpu.yaml")] if "data" in config.parts else []
    with pytest.raises(SystemExit) as done:
        main(["fit", *extra, "--config", str(config), "--print_config"])
    assert done.value.code == 0
    router = r"\w+Router" if "router" in config.parts else "ZooterRouter"
    assert re.search(rf"class_path: zooter(\.routers)?(\.\w+)?\.{router}", capsys.readouterr().out)


@pytest.mark.parametrize("config", GENERATE_CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_generate_config_parses(config, capsys):
    with pytest.raises(SystemExit) as done:
        main(["generate", "--config", str(config), "--print_config"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    assert "candidates:" in printed and "backend: hf" in printed


@pytest.mark.parametrize("experiment", sorted((REPO / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_every_experiment_composes_with_the_quickstart(experiment, capsys):
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(REPO / "configs/quickstart.yaml"), "--config", str(experiment), "--print_config"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    for line in experiment.read_text().splitlines():
        if ":" in line and not line.lstrip().startswith("#") and not line.rstrip().endswith(":"):
            assert line.strip() in printed, f"{line.strip()!r} from {experiment.name} was not applied"


def test_synth_command_writes_a_valid_table(tmp_path, capsys):
    out = tmp_path / "s.jsonl"
    main(["synth", "--out", str(out), "--table.num_queries", "30", "--table.seed", "2"])
    lines = out.read_text().splitlines()
    assert len(lines) == 30 and json.loads(lines[0])["id"] == "synth-00"
    assert "30 queries x 6 candidates" in capsys.readouterr().out


def test_wandb_offline_run_keeps_its_config_beside_its_checkpoints(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    save_dir = tmp_path / "runs"
    main(
        [
            "fit",
            *debug_args(tmp_path),
            "--config", str(REPO / "configs/logger/wandb.yaml"),
            "--trainer.logger.init_args.save_dir", str(save_dir),
        ]
    )  # fmt: skip
    (run,) = (save_dir / "zooter").iterdir()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "beta: 0.3" in (run / "config.yaml").read_text()
    assert list((save_dir / "wandb").glob("offline-run-*"))


def test_outputs_are_printed_and_evaluations_sit_beside_the_checkpoints_run(tmp_path, capfd, caplog, recwarn):
    args = debug_args(tmp_path, "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2")
    main(["fit", *args])
    runs = tmp_path / "runs" / "quickstart"
    run = runs / "version_0"
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    out, err = capfd.readouterr()
    assert f"zooter fit: run directory {run}\n" in out
    assert re.search(rf"best checkpoint \(val/routed_score \d\.\d{{4}}\): {re.escape(str(best))}\n", out)
    assert f"last checkpoint: {run / 'checkpoints' / 'last.ckpt'}\n" in out
    logged = [record.getMessage() for record in caplog.records]  # Lightning's log lines, without the litlogger tip
    assert any("GPU available" in line for line in logged)
    assert not [line for line in [*logged, out, err] if "litlogger" in line]

    main(["test", *args, "--ckpt_path", str(run / "checkpoints" / "last.ckpt")])
    metrics = runs / "version_0-test-last" / "test_metrics.json"
    assert f"test metrics written to {metrics}\n" in capfd.readouterr().out
    assert "test/routed_score" in json.loads(metrics.read_text())
    main(["predict", *args, "--ckpt_path", str(best)])
    predictions = runs / f"version_0-predict-{best.stem}" / "predictions.jsonl"
    assert f"24 predictions written to {predictions}\n" in capfd.readouterr().out
    assert (predictions.parent / "config.yaml").is_file()  # what `zooter report` reads beside the predictions
    assert sorted(p.name for p in runs.iterdir()) == ["version_0", predictions.parent.name, metrics.parent.name]
    noise = ("dirpath has changed", "smaller than the logging interval")
    assert not [w for w in recwarn if any(n in str(w.message) for n in noise)]

    # a second test goes to version_0-test-last_2, never into the first one's directory; failing, it leaves none
    before = {p.name: p.read_bytes() for p in metrics.parent.iterdir()}
    reordered = json.dumps(list(reversed(generate(SynthConfig(num_queries=10)).candidates)))
    with pytest.raises(SystemExit):
        main(["test", *args, "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--data.candidates", reordered])
    assert "zooter test: error: the checkpoint routes over candidates" in capfd.readouterr().err
    assert sorted(p.name for p in runs.iterdir()) == ["version_0", predictions.parent.name, metrics.parent.name]
    assert {p.name: p.read_bytes() for p in metrics.parent.iterdir()} == before


def test_help_lists_the_commands_without_loading_lightning_or_torch():
    code = "import sys; from zooter.cli import main; main(['--help'])"
    code += "; print(sorted({'torch', 'lightning'} & {*sys.modules}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.rstrip().endswith("[]")
    for command in ("fit", "test", "predict", "synth", "report", "route", "add-candidate"):
        assert f"\n  {command} " in done.stdout
    done = subprocess.run([sys.executable, "-m", "zooter", "tset"], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (2, "zooter: error: unknown command 'tset'; did you mean 'test'?\n")


@pytest.mark.parametrize(
    ("argv", "code", "expected"),
    [
        (["score", "--help"], 0, "--score_index SCORE_INDEX"),
        (["score", "responses.jsonl", "--reward_model", "m", "--batch_size", "x"], 2, 'Parser key "batch_size"'),
        (["add-candidate", "--help"], 0, "--candidate CANDIDATE"),
        (["add-candidate", "--ckpt_path", "c", "--bogus", "1"], 2, "unrecognized arguments: --bogus 1"),
    ],
)
def test_help_and_argument_errors_load_no_torch_lightning_or_transformers(argv, code, expected):
    script = f"import sys; from zooter.cli import main\ntry: main({argv!r})\nexcept SystemExit as e: code = e.code"
    script += "\nprint(code, sorted({'torch', 'lightning', 'transformers'} & {*sys.modules}), file=sys.stderr)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stderr.splitlines()[-1] == f"{code} []"
    assert expected in done.stdout + done.stderr
