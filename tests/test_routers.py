"""The router seam: every configs/router/*.yaml through zooter fit/test/predict, and the same numbers
from zooter test (torchmetrics) and zooter report (numpy) on the same predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, cli_args, write_rows
from zooter import Router, routers
from zooter.cli import main
from zooter.eval.report import ReportOptions, write_report

ROUTER_CONFIGS = sorted((REPO / "configs" / "router").glob("*.yaml"))
NUM_QUERIES = 240
# the report's name for the baseline each router config reproduces
REPORT_NAME = {
    "bma": "best single (BMA)",
    "random": "random",
    "oracle": "oracle",
    "rmr": "RMR rm_low_noise",
    "tag_majority": "tag-majority",
    "knn": "kNN",
}
COMPARED = ("routed_score", "best_single_score", "oracle_score", "gap_recovered", "top1_acc", "selection_entropy")


def quickstart_args(tmp_path: Path, name: str) -> list[str]:
    return [
        *cli_args(tmp_path, "configs/quickstart.yaml"),
        "--config", str(REPO / "configs" / "router" / f"{name}.yaml"),
        "--data.synth.num_queries", str(NUM_QUERIES), "--data.tokenizer_vocab_size", "400",
        "--trainer.max_epochs", "1", "--trainer.enable_model_summary", "false",
        "--trainer.logger.init_args.name", name,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def router_runs(tmp_path_factory) -> dict[str, dict]:
    """fit -> test -> predict for every router config, then one report over all their predictions."""
    tmp_path = tmp_path_factory.mktemp("routers")
    runs = {}
    for config in ROUTER_CONFIGS:
        name = config.stem
        args = quickstart_args(tmp_path, name)
        main(["fit", *args])
        run = tmp_path / "runs" / name
        ckpt = next((run / "version_0" / "checkpoints").glob("best-*.ckpt"))
        main(["test", *args, "--ckpt_path", str(ckpt)])
        main(["predict", *args, "--ckpt_path", str(ckpt)])
        runs[name] = {
            "ckpt": ckpt,
            "metrics": json.loads((run / f"version_0-test-{ckpt.stem}" / "test_metrics.json").read_text()),
            "predict_dir": run / f"version_0-predict-{ckpt.stem}",  # beside the fit's run
        }
    names = list(runs)
    options = ReportOptions(out=str(tmp_path / "report"), names=names, min_subset_size=1, knn_encoder="minilm")
    report = json.loads((write_report([runs[n]["predict_dir"] for n in names], options) / "report.json").read_text())
    return {"runs": runs, "report": report}


def test_every_router_config_is_a_router_the_cli_builds(capsys):
    assert {p.stem for p in ROUTER_CONFIGS} >= {"zooter", *REPORT_NAME}
    for config in ROUTER_CONFIGS:
        with pytest.raises(SystemExit) as done:
            main(["fit", "--config", str(REPO / "configs/quickstart.yaml"), "--config", str(config), "--print_config"])
        assert done.value.code == 0
        printed = capsys.readouterr().out
        class_path = next(line for line in printed.splitlines() if line.startswith("  class_path:"))
        assert "Router" in class_path, (config.name, class_path)


@pytest.mark.parametrize("name", [p.stem for p in ROUTER_CONFIGS])
def test_zooter_test_and_zooter_report_give_the_same_numbers(router_runs, name):
    metrics = router_runs["runs"][name]["metrics"]
    reported = router_runs["report"]["methods"][name]
    for key in COMPARED:
        assert metrics[f"test/{key}"] == pytest.approx(reported[key]["mean"], abs=2e-6), key
    for key, value in reported.items():
        if key.startswith("share/"):
            assert metrics[f"test/{key}"] == pytest.approx(value["mean"], abs=2e-6), key


@pytest.mark.parametrize("name", sorted(REPORT_NAME))
def test_baseline_routers_reproduce_the_reports_own_baselines(router_runs, name):
    own = router_runs["report"]["methods"][REPORT_NAME[name]]
    metrics = router_runs["runs"][name]["metrics"]
    for key in COMPARED:
        assert metrics[f"test/{key}"] == pytest.approx(own[key]["mean"], abs=2e-6), key


def test_exact_ties_are_shared_the_same_way_everywhere(router_runs):
    rows = [json.loads(line) for line in (router_runs["runs"]["random"]["predict_dir"] / "predictions.jsonl").open()]
    candidates = list(rows[0]["scores"])
    assert all(row["tied"] == candidates and row["route"] == candidates[0] for row in rows)
    metrics = router_runs["runs"]["random"]["metrics"]
    assert [metrics[f"test/share/{c}"] for c in candidates] == pytest.approx([1 / len(candidates)] * len(candidates))
    assert metrics["test/selection_entropy"] == pytest.approx(np.log(len(candidates)), abs=1e-6)
    reported = router_runs["report"]["methods"]["random"]["routed_score"]["mean"]
    assert metrics["test/routed_score"] == pytest.approx(reported)


def test_oracle_is_an_upper_bound_and_gap_recovered_is_one(router_runs):
    oracle = router_runs["runs"]["oracle"]["metrics"]
    assert oracle["test/routed_score"] == pytest.approx(oracle["test/oracle_score"])
    assert oracle["test/gap_recovered"] == pytest.approx(1.0)
    assert oracle["test/top1_acc"] == pytest.approx(1.0)
    for name, run in router_runs["runs"].items():
        assert run["metrics"]["test/routed_score"] <= oracle["test/routed_score"] + 1e-9, name


def test_checkpoint_section_carries_the_fitted_state_and_routes(router_runs):
    ckpt = router_runs["runs"]["bma"]["ckpt"]
    section = torch.load(ckpt, map_location="cpu", weights_only=False)["zooter"]
    assert {"candidates", "tokenizer_files", "max_length", "best_single", "fitted"} <= set(section)
    means = section["fitted"]["means"].numpy()
    assert section["best_single"] == section["candidates"][int(np.argmax(means))]
    router = Router.from_checkpoint(ckpt)
    decisions = router.route(["any new query at all", "and another one"])
    assert [d.candidate for d in decisions] == [section["best_single"]] * 2
    # a checkpoint keeps exactly its router's arguments (the data's linked values only where accepted)
    hparams = torch.load(ckpt, map_location="cpu", weights_only=False)["hyper_parameters"]
    assert {k for k in hparams if not k.startswith("_")} == {"candidates", "label_judge"}
    zooter = torch.load(router_runs["runs"]["zooter"]["ckpt"], map_location="cpu", weights_only=False)
    assert {"vocab_size", "tokenizer_fingerprint", "lr", "weight_decay", "warmup_ratio"} <= set(
        zooter["hyper_parameters"]
    )
    knn = Router.from_checkpoint(router_runs["runs"]["knn"]["ckpt"])
    with pytest.raises(ValueError, match="routes only queries of a routing table"):
        knn.route(["a new query"])


def test_best_single_model_is_chosen_on_the_training_split(tmp_path):
    # a is best on train, b is best on val and test: BMA must be a everywhere
    def rows(prefix, n, best):
        return [
            {"id": f"{prefix}{i}", "query": f"{prefix} query {i}", "tags": ["t"],
             "scores": {"a": 1.0 if best == "a" else 0.0, "b": 1.0 if best == "b" else 0.2, "c": 0.1}}
            for i in range(n)
        ]  # fmt: skip

    paths = {split: write_rows(tmp_path / f"{split}.jsonl", rows(split, 12, best)) for split, best in
             (("train", "a"), ("val", "b"), ("test", "b"))}  # fmt: skip
    args = [
        *cli_args(tmp_path, "configs/quickstart.yaml", "configs/router/bma.yaml"),
        "--data.synth", "null", "--data.train_judge", "scores", "--data.eval_judge", "scores",
        *(arg for split, path in paths.items() for arg in (f"--data.{split}_path", str(path))),
        "--data.tokenizer_vocab_size", "100", "--trainer.logger.init_args.name", "bma",
    ]  # fmt: skip
    main(["test", *args])
    metrics = json.loads((tmp_path / "runs" / "bma" / "version_0" / "test_metrics.json").read_text())
    assert metrics["test/share/a"] == 1.0  # the train split's best, although b wins on test
    assert metrics["test/routed_score"] == pytest.approx(0.0)
    assert metrics["test/best_single_score"] == pytest.approx(0.0)
    assert metrics["test/oracle_score"] == pytest.approx(1.0)


def test_an_optimizer_and_scheduler_can_be_injected_from_the_config(tmp_path):
    from zooter.lightning_cli import make_cli

    args = [*cli_args(tmp_path, "configs/quickstart.yaml"), "--data.synth.num_queries", "60",
            "--data.tokenizer_vocab_size", "200",
            "--model.optimizer", "torch.optim.SGD", "--model.optimizer.lr", "0.25",
            "--model.scheduler", "torch.optim.lr_scheduler.StepLR", "--model.scheduler.step_size", "7"]  # fmt: skip
    model = make_cli(args, run=False).model
    optimizers = model.configure_optimizers()
    assert isinstance(optimizers["optimizer"], torch.optim.SGD)
    assert optimizers["optimizer"].param_groups[0]["lr"] == 0.25
    assert optimizers["lr_scheduler"]["scheduler"].step_size == 7


@pytest.mark.parametrize("name", [n for n in routers.__all__ if n.endswith("Router")])
def test_no_router_argument_shares_a_name_with_the_data_modules_but_the_linked_ones(name):
    # Lightning refuses to log hparams when the model and the data module hold one name with two values
    # (a router's `temperature` or `batch_size` beside data.temperature or data.batch_size)
    import inspect

    from zooter.data.datamodule import ZooterDataModule

    cls = getattr(routers, name)
    own = {
        p.name
        for c in cls.__mro__
        if isinstance(c, type) and issubclass(c, routers.RouterModule)
        for p in inspect.signature(c.__init__).parameters.values()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    assert own & set(inspect.signature(ZooterDataModule.__init__).parameters) <= {"self", "candidates", "encoder"}
