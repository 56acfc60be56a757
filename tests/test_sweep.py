"""Sweep files (W&B format) and the offline runner: parsing, points, resume, aggregation."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
import yaml

from conftest import DEBUG, REPO
from helpers import run_zooter
from zooter.cli import main
from zooter.runs.sweep import RECORDED_SECONDS_PER_POINT, Sweep, aggregate, point_args, point_id, validation_score

SWEEPS = sorted((REPO / "experiments" / "sweeps").glob("*.yaml"))
# appended to every point's arguments, after the swept ones: it must not set a swept parameter
DEBUG_CONFIG = f"--config={REPO / DEBUG}"


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_sweep_is_valid_and_its_parameters_reach_the_config(path, capsys, monkeypatch):
    spec = yaml.safe_load(path.read_text())
    assert spec["name"] == path.stem and spec["method"] in ("grid", "random")
    assert "${args}" in spec["command"] and spec["metric"]["name"] == "val/routed_score"
    sweep = Sweep.load(path)
    monkeypatch.chdir(REPO)  # sweep commands name configs relative to the repository root
    for point in sweep.points()[:: max(len(sweep.points()) // 3, 1)]:
        with pytest.raises(SystemExit) as done:
            main(["fit", *sweep.base_args, *point_args(point), "--print_config"])
        assert done.value.code == 0
        config = yaml.safe_load(capsys.readouterr().out)
        for name, value in point.items():
            node = config
            for part in name.split("."):
                node = node[part] if part in node else node["init_args"][part]
            assert node == value, f"{path.name}: {name}={value} did not reach the config"


def test_unknown_sweep_parameter_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit):
        main(["fit", "--config", "configs/quickstart.yaml", "--data.bta=0.3", "--print_config"])
    assert "bta" in capsys.readouterr().err


def test_grid_random_and_bayes(tmp_path):
    path = tmp_path / "s.yaml"
    base = {"program": "src/zooter/__main__.py", "command": ["${env}", "fit", "--config", "x.yaml", "${args}"]}
    path.write_text(yaml.safe_dump({**base, "method": "grid",
                                    "parameters": {"a": {"values": [1, 2, 3]}, "b": {"values": ["x", "y"]},
                                                   "c": {"value": 0.5}}}))  # fmt: skip
    sweep = Sweep.load(path)
    assert sweep.base_args == ["--config", "x.yaml"]
    assert len(sweep.points()) == 6 and sweep.points()[1] == {"a": 1, "b": "y", "c": 0.5}
    assert point_args(sweep.points()[0]) == ["--a=1", "--b=x", "--c=0.5"]
    path.write_text(yaml.safe_dump({**base, "method": "random", "run_cap": 5,
                                    "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-5,
                                                          "max": 1e-3}}}))  # fmt: skip
    draws = Sweep.load(path).points(seed=3)
    assert len(draws) == 5 and draws == Sweep.load(path).points(seed=3)
    assert all(1e-5 <= d["lr"] <= 1e-3 for d in draws)
    path.write_text(yaml.safe_dump({**base, "method": "bayes", "parameters": {"a": {"values": [1]}}}))
    with pytest.raises(ValueError, match="method 'bayes' needs the W&B server"):
        Sweep.load(path).points()


@pytest.mark.slow
def test_offline_sweep_runs_resumes_and_aggregates(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    sweep_file = tmp_path / "beta_small.yaml"
    spec = yaml.safe_load((REPO / "experiments/sweeps/beta.yaml").read_text())
    spec["parameters"] = {"data.beta": {"values": [0.0, 1.0]}, "seed_everything": {"values": [0, 1]}}
    sweep_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "sweep"
    small = [DEBUG_CONFIG, f"--data.cache_dir={tmp_path / 'cache'}"]
    command = ["sweep", str(sweep_file), "--out", str(out), "--workers", "2", "--", *small]
    main(command)
    result = json.loads((out / "aggregate.json").read_text())
    assert result["swept"] == ["data.beta"] and result["done"] == 4
    assert [(row["data.beta"], row["seeds"]) for row in result["rows"]] == [(0.0, 2), (1.0, 2)]
    assert (out / "aggregate.png").read_bytes()[:4] == b"\x89PNG"
    assert "| data.beta | seeds |" in (out / "aggregate.md").read_text()

    broken = sorted(out.glob("p*"))[1]
    (broken / "test" / "test_metrics.json").unlink()
    capsys.readouterr()
    main(command)
    printed = capsys.readouterr().out
    assert printed.count("already done") == 3
    assert f"{broken.name} fit" in printed and json.loads((out / "aggregate.json").read_text())["done"] == 4


def test_aggregate_marks_the_setting_chosen_on_validation_by_hand(tmp_path):
    # β 0: val best epochs 0.5 and 0.7 (mean 0.6), test 0.40 / 0.42; β 1: val 0.55 and 0.55, test 0.50 / 0.52.
    # Validation picks β 0 although its test score is lower: the table shows both, the choice is validation's.
    sweep = Sweep("s", "grid", "val/routed_score", [], {"data.beta": {"values": [0.0, 1.0]}})
    jobs = []
    for k, (beta, seed, vals, test) in enumerate(
        [
            (0.0, 0, [0.3, 0.5], 0.40),
            (0.0, 1, [0.7, 0.6], 0.42),
            (1.0, 0, [0.55, ""], 0.50),
            (1.0, 1, [0.5, 0.55], 0.52),
        ]
    ):
        pid = f"p{k}"
        (tmp_path / pid / "fit").mkdir(parents=True)
        (tmp_path / pid / "test").mkdir()
        lines = ["epoch,train/loss,val/routed_score", *(f"{e},0.1,{v}" for e, v in enumerate(vals))]
        (tmp_path / pid / "fit" / "metrics.csv").write_text("\n".join(lines) + "\n")
        (tmp_path / pid / "test" / "test_metrics.json").write_text(json.dumps({"test/routed_score": test}))
        jobs.append((pid, {"data.beta": beta, "seed_everything": seed}))
    assert validation_score(tmp_path / "p1", "val/routed_score", "maximize") == 0.7
    assert validation_score(tmp_path / "p1", "val/routed_score", "minimize") == 0.6
    assert validation_score(tmp_path / "p1", "val/kl", "maximize") is None
    aggregate(sweep, tmp_path, jobs)
    result = json.loads((tmp_path / "aggregate.json").read_text())
    assert [row["validation"]["mean"] for row in result["rows"]] == pytest.approx([0.6, 0.55])
    assert result["chosen_row"] == 0 and result["rows"][1]["test/routed_score"]["mean"] == pytest.approx(0.51)
    assert "0.6000 ± 0.1414 ★" in (tmp_path / "aggregate.md").read_text()
    assert "chosen on validation" in (tmp_path / "aggregate.md").read_text()


def test_sweep_files_exist():
    assert {p.stem for p in SWEEPS} >= {"beta", "reward_models", "hard_vs_soft", "temperature"}
    assert all(
        Path(REPO / part).is_file() for s in SWEEPS for part in Sweep.load(s).base_args if part.endswith(".yaml")
    )


@pytest.mark.slow
def test_reward_model_sweep_sets_each_router_beside_its_judges_rmr(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    spec = yaml.safe_load((REPO / "experiments/sweeps/reward_models.yaml").read_text())
    spec["parameters"] = {"data.train_judge": {"values": ["rm_low_noise", "rm_high_noise"]}}
    sweep_file = tmp_path / "rm.yaml"
    sweep_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "sweep"
    small = [DEBUG_CONFIG, f"--data.cache_dir={tmp_path / 'cache'}"]
    main(["sweep", str(sweep_file), "--out", str(out), "--workers", "2", "--", *small])
    rows = json.loads((out / "aggregate.json").read_text())["rows"]
    assert [row["data.train_judge"] for row in rows] == ["rm_high_noise", "rm_low_noise"]
    # RMR with the low-noise judge beats RMR with the high-noise one on the true quality
    assert rows[1]["rmr_score"] > rows[0]["rmr_score"]
    assert "| rm_low_noise |" in (out / "aggregate.md").read_text().split("Reward-model comparison")[1]


@pytest.mark.slow
def test_sweep_killed_mid_fit_resumes_without_redoing_or_losing_points(tmp_path):
    sweep_file = tmp_path / "beta_two.yaml"
    spec = yaml.safe_load((REPO / "experiments/sweeps/beta.yaml").read_text())
    spec["parameters"] = {"data.beta": {"values": [0.0, 1.0]}}
    sweep_file.write_text(yaml.safe_dump(spec))
    # 200 queries: 160 for training, 5 steps an epoch; the first point's fit is killed in its 2nd epoch
    small = [DEBUG_CONFIG, "--data.synth.num_queries=200", "--trainer.max_epochs=2",
             f"--data.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    kill = ["--trainer.callbacks+=chaos.KillAtStep", "--trainer.callbacks.step=7",
            f"--trainer.callbacks.marker={tmp_path / 'killed-once'}", "--trainer.callbacks.group=true"]  # fmt: skip
    out = tmp_path / "sweep"
    sweep = ["sweep", str(sweep_file), "--out", str(out), "--", *small, *kill]
    # its own process group: the kill takes the sweep and its fit, as a scheduler would, not pytest
    run_zooter(*sweep, expect=-signal.SIGKILL, timeout=600, start_new_session=True)
    points = sorted(p.name for p in out.glob("p*"))
    assert len(points) == 1 and (out / points[0] / "fit" / "checkpoints" / "last.ckpt").is_file()

    second = run_zooter(*sweep, expect=0, timeout=600, start_new_session=True)
    assert f"{points[0]} resumes its fit from" in second.stdout
    assert second.stdout.count(" fit --data.beta") == 2  # the resumed point and the one not yet started
    assert json.loads((out / "aggregate.json").read_text())["done"] == 2

    log = (out / points[0] / "log.txt").read_text()
    assert "Restored all states from the checkpoint" in log  # epoch 1 was not trained again
    final = torch.load(out / points[0] / "fit" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert final["global_step"] == 10  # 2 epochs of 5 steps: finished, nothing lost


def test_bare_dry_run_lists_points_and_estimates_their_time(tmp_path, capsys):
    sweep_file = REPO / "experiments" / "sweeps" / "beta.yaml"  # 7 betas x 3 seeds
    out = tmp_path / "sweep"
    main(["sweep", str(sweep_file), "--out", str(out), "--dry_run"])  # bare flag: no `true` needed
    lines = capsys.readouterr().out.splitlines()
    assert sum(" [to run] zooter fit " in line for line in lines) == 21
    minutes, seconds = divmod(round(21 * RECORDED_SECONDS_PER_POINT), 60)
    assert f"21 points, 0 done, 21 to run; estimated time {minutes} min {seconds:02d} s with 1 worker(s)" in lines[-1]
    assert "experiments/results/beta.md" in lines[-1]  # the basis is printed

    # two points finished here (one resumed after a kill: its time is partial, left out): their median decides
    points = Sweep.load(sweep_file).points()
    for index, (seconds, resumed) in enumerate([(40.0, False), (5.0, True)]):
        directory = out / point_id(index, points[index])
        (directory / "test").mkdir(parents=True)
        (directory / "test" / "test_metrics.json").write_text("{}")
        (directory / "timing.json").write_text(json.dumps({"seconds": seconds, "resumed": resumed}))
    main(["sweep", str(sweep_file), "--out", str(out), "--dry_run", "--workers", "2"])
    last = capsys.readouterr().out.splitlines()[-1]
    # 19 points at 40 s over 2 workers: 380 s
    assert "21 points, 2 done, 19 to run; estimated time 6 min 20 s with 2 worker(s) at 40 s a point" in last
    assert f"the median of 1 finished point(s) of this sweep in {out}" in last


def test_bare_dry_run_after_a_flag_value_still_works_and_bad_values_are_refused(tmp_path, capsys):
    sweep_file = str(REPO / "experiments" / "sweeps" / "temperature.yaml")  # 5 temperatures x 3 seeds
    main(["sweep", sweep_file, "--dry_run", "--out", str(tmp_path / "s")])  # a bare flag before another option
    assert "15 points, 0 done, 15 to run" in capsys.readouterr().out
    main(["sweep", sweep_file, "--dry_run", "true", "--out", str(tmp_path / "s")])  # the value form still works
    assert "15 points" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["sweep", sweep_file, "--dry_run", "perhaps"])
    assert "Expected a <class 'bool'>. Got value: perhaps" in capsys.readouterr().err
