"""zooter report and zooter cv: numbers against hand computations, fold aggregation, files written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from conftest import REPO, debug_args, write_rows
from helpers import run_zooter
from zooter.cli import main
from zooter.eval.functional import candidate_means
from zooter.eval.render import entropy_figure
from zooter.eval.report import ReportOptions, write_report
from zooter.table.splits import SplitSpec, load_splits

CANDIDATES = ["a", "b", "c"]


def make_table(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        gold = rng.integers(0, 2, 3).astype(float)
        rm = gold + rng.normal(0, 0.3, 3)
        rows.append({"id": f"q{i}", "query": f"question {i}", "tags": ["even" if i % 2 == 0 else "odd"],
                     "source": "s1" if i < 20 else "s2",
                     "scores": dict(zip(CANDIDATES, rm.tolist(), strict=True)),
                     "scores_by_judge": {"gold": dict(zip(CANDIDATES, gold.tolist(), strict=True))}})  # fmt: skip
    return write_rows(tmp_path / "table.jsonl", rows)


def make_run(tmp_path, name, data, pick):
    """A fake `zooter predict` run that always routes to ``pick``."""
    directory = tmp_path / "runs" / name / f"fold{data['fold']}"
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(yaml.safe_dump({"data": data}))
    test = load_splits(SplitSpec.from_mapping(data))["test"]
    probs = {c: float(c == pick) for c in CANDIDATES}
    lines = [json.dumps({"id": i, "route": pick, "probs": probs}) for i in test.ids]
    (directory / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    return directory, test


def test_report_scores_every_method_per_fold_and_aggregates(tmp_path):
    path = make_table(tmp_path)
    data = {"path": str(path), "folds": 2, "train_judge": "scores", "eval_judge": "gold", "val_fraction": 0.2}
    runs, tests = [], []
    for fold in (0, 1):
        directory, test = make_run(tmp_path, "always_b", {**data, "fold": fold}, "b")
        runs.append(directory)
        tests.append(test)
    out = write_report(runs, ReportOptions(out=str(tmp_path / "report"), knn_encoder=None, min_subset_size=1))
    report = json.loads((out / "report.json").read_text())
    gold = [t.judge("gold") for t in tests]

    router = report["methods"]["always_b"]["routed_score"]
    assert router["folds"] == pytest.approx([g[:, 1].mean() for g in gold])
    assert router["mean"] == pytest.approx(np.mean(router["folds"]))
    assert router["std"] == pytest.approx(np.std(router["folds"], ddof=1))
    assert report["methods"]["oracle"]["routed_score"]["folds"] == pytest.approx([g.max(axis=1).mean() for g in gold])
    assert report["methods"]["random"]["routed_score"]["folds"] == pytest.approx([g.mean() for g in gold])
    rmr = [
        np.mean([r[t.judge("scores")[i].argmax()] for i, r in enumerate(g)]) for g, t in zip(gold, tests, strict=True)
    ]
    assert report["methods"]["RMR scores"]["routed_score"]["folds"] == pytest.approx(rmr)
    assert report["methods"]["always_b"]["share/b"]["mean"] == 1.0
    assert report["methods"]["always_b"]["selection_entropy"]["mean"] == 0.0

    # MTR of always-b: per subset (tags even/odd), rank among a, b, c plus itself = b's own rank, ties averaged
    for fold, (g, t) in enumerate(zip(gold, tests, strict=True)):
        ranks = []
        for tag in ("even", "odd"):
            rows = [i for i, tags in enumerate(t.tags) if tag in tags]
            means = g[rows].mean(axis=0)
            ranks.append(1 + (means > means[1]).sum() + ((means == means[1]).sum()) / 2)
        assert report["methods"]["always_b"]["mtr"]["folds"][fold] == pytest.approx(np.mean(ranks))

    markdown = (out / "report.md").read_text()
    assert "| always_b | " in markdown and "## Per subset" in markdown and "MTR" in markdown
    for plot in ("methods.png", "subsets.png", "entropy.png", "shares.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    only = write_report(runs, ReportOptions(out=str(tmp_path / "r1"), knn_encoder=None, baselines=False))
    methods = json.loads((only / "report.json").read_text())["methods"]
    assert list(methods) == ["always_b", "best single (BMA)", "oracle"]
    assert methods["always_b"]["routed_score"] == router

    by_source = write_report(runs, ReportOptions(out=str(tmp_path / "r2"), knn_encoder=None, subset_field="source"))
    assert json.loads((by_source / "report.json").read_text())["subsets"]["names"] == ["s1", "s2"]
    with pytest.raises(ValueError, match=r"subset_field 'domain' is not a row field of .*table.jsonl: \['source'\]"):
        write_report(runs, ReportOptions(out=str(tmp_path / "r3"), knn_encoder=None, subset_field="domain"))


def test_report_refuses_runs_on_different_splits(tmp_path):
    path = make_table(tmp_path)
    data = {"path": str(path), "folds": 2, "fold": 0, "eval_judge": "gold"}
    first, _ = make_run(tmp_path, "x", data, "a")
    second, _ = make_run(tmp_path, "y", {**data, "split_seed": 1}, "a")
    with pytest.raises(ValueError, match="runs must share the table, split settings and eval judge"):
        write_report([first, second], ReportOptions(out=str(tmp_path / "r"), knn_encoder=None))


@pytest.mark.slow
def test_cv_runs_every_fold_reports_and_resumes(tmp_path, capsys):
    args = debug_args(tmp_path)
    cv = ["cv", "--folds", "2", "--name", "qs", "--report.out", str(tmp_path / "report"),
          "--report.knn_encoder", "null", "--report.costs", str(REPO / "configs/costs/synth.yaml"), "--"]  # fmt: skip
    main([*cv, *args])
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["folds"] == [0, 1] and len(report["methods"]["qs"]["routed_score"]["folds"]) == 2
    cost = report["cost_quality"]["methods"]["qs"]  # the cost section over both folds
    assert (
        len(cost["aiq"]["folds"]) == 2 and cost["quality"]["folds"] == report["methods"]["qs"]["routed_score"]["folds"]
    )
    capsys.readouterr()
    main([*cv, *args])
    assert capsys.readouterr().out.count("already done") == 2

    # killed after fold 1's fit, before its predictions: the rerun resumes the finished fit (which stops
    # at once: no epoch is trained twice) and predicts from the same checkpoint
    predict_dir = tmp_path / "runs" / "qs" / "fold1-predict"
    before = (predict_dir / "predictions.jsonl").read_text()
    best = sorted((tmp_path / "runs" / "qs" / "fold1" / "checkpoints").glob("best-*.ckpt"))
    best_before = [p.read_bytes() for p in best]
    shutil.rmtree(predict_dir)
    main([*cv, *args])
    printed = capsys.readouterr().out
    assert printed.count("already done") == 1
    assert f"--ckpt_path {tmp_path / 'runs' / 'qs' / 'fold1' / 'checkpoints' / 'last.ckpt'}" in printed
    assert (predict_dir / "predictions.jsonl").read_text() == before
    assert [p.read_bytes() for p in best] == best_before  # nothing was trained again


def test_report_logs_tables_and_plots_to_wandb_offline(tmp_path):
    pytest.importorskip("wandb")
    path = make_table(tmp_path)
    run_dir, _ = make_run(tmp_path, "x", {"path": str(path), "folds": 2, "fold": 0, "eval_judge": "gold"}, "a")
    out = tmp_path / "r"
    # a process of its own, as on the command line (W&B keeps per-process state between runs)
    run_zooter("report", str(run_dir), "--out", str(out), "--knn_encoder", "null", "--wandb_project", "zooter-test",
               env={"WANDB_MODE": "offline"})  # fmt: skip
    (offline_run,) = (out / "wandb").glob("offline-run-*")  # W&B files sit beside the report
    images = {p.name.split("_")[0] for p in offline_run.rglob("*.png")}
    assert images == {"methods", "subsets", "entropy", "shares"}
    (log,) = offline_run.glob("run-*.wandb")
    assert b"report/methods" in log.read_bytes()


def make_null_table(tmp_path):
    """Like ``make_table``, with nulls: the rm never scores c on 'odd' rows, gold misses b on every 3rd row."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(40):
        gold = rng.integers(0, 2, 3).astype(float).tolist()
        rm = (np.array(gold) + rng.normal(0, 0.3, 3)).tolist()
        if i % 2:
            rm[2] = None
        if i % 3 == 0:
            gold[1] = None
        rows.append({"id": f"q{i}", "query": f"question {i}", "tags": ["even" if i % 2 == 0 else "odd"],
                     "scores": dict(zip(CANDIDATES, rm, strict=True)),
                     "scores_by_judge": {"gold": dict(zip(CANDIDATES, gold, strict=True))}})  # fmt: skip
    return write_rows(tmp_path / "nulls.jsonl", rows)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # e.g. numpy's "Mean of empty slice" fails the test
def test_report_on_a_table_with_nulls_warns_nothing_and_scores_by_hand(tmp_path, capsys):
    path = make_null_table(tmp_path)
    data = {"path": str(path), "folds": 2, "train_judge": "scores", "eval_judge": "gold", "val_fraction": 0.2}
    runs, tests = [], []
    for fold in (0, 1):
        directory, test = make_run(tmp_path, "always_b", {**data, "fold": fold}, "b")
        runs.append(str(directory))
        tests.append(test)
    out = tmp_path / "report"
    main(["report", *runs, "--out", str(out), "--knn_encoder", "null", "--min_subset_size", "1", "--baselines"])
    assert "Warning" not in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    # always b; where gold did not score b, a and c (both scored) share the query
    expected = [np.mean([g[1] if np.isfinite(g[1]) else (g[0] + g[2]) / 2 for g in t.judge("gold")]) for t in tests]
    assert report["methods"]["always_b"]["routed_score"]["folds"] == pytest.approx(expected)
    assert "random" in report["methods"]  # the bare --baselines means true
    main(["report", *runs, "--out", str(tmp_path / "r2"), "--knn_encoder", "null", "--baselines", "false"])
    assert list(json.loads((tmp_path / "r2" / "report.json").read_text())["methods"]) == [
        "always_b", "best single (BMA)", "oracle"
    ]  # fmt: skip


def test_mean_over_folds_uses_the_folds_where_a_metric_is_defined():
    from zooter.eval.report import _mean_std

    stat = _mean_std([float("nan"), 0.5, 0.7])  # e.g. gap_recovered, undefined where oracle = BMA
    assert stat["mean"] == pytest.approx(0.6) and stat["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert np.isnan(stat["folds"][0]) and stat["folds"][1:] == [0.5, 0.7]
    assert _mean_std([0.4]) == {"mean": 0.4, "std": 0.0, "folds": [0.4]}
    none = _mean_std([float("nan")])
    assert np.isnan(none["mean"]) and np.isnan(none["std"])


def test_entropy_plot_keeps_coinciding_lines_apart_and_names_them(tmp_path):
    path = make_table(tmp_path)
    data = {"path": str(path), "folds": 2, "fold": 0, "train_judge": "scores", "eval_judge": "gold"}
    train = load_splits(SplitSpec.from_mapping(data))["train"]
    bma = CANDIDATES[int(np.nanargmax(candidate_means(train.judge("gold"))))]
    run_dir, _ = make_run(tmp_path, "always_bma", data, bma)  # a router that learned the best single model
    out = tmp_path / "report"
    main(["report", str(run_dir), "--out", str(out), "--knn_encoder", "null", "--rmr_judges", "[gold]"])
    report = json.loads((out / "report.json").read_text())
    scores = report["entropy"]["scores"]
    assert scores["always_bma"] == scores["best single (BMA)"]  # the lines coincide
    assert (out / "entropy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    import matplotlib.pyplot as plt

    figure = entropy_figure(report)
    ax = figure.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    plt.close(figure)
    assert set(lines) == {"always_bma", "best single (BMA) (= always_bma)", "oracle"}
    router, bma_line = lines["always_bma"], lines["best single (BMA) (= always_bma)"]
    assert list(router.get_ydata()) == list(bma_line.get_ydata())
    assert all(x < y for x, y in zip(router.get_xdata(), bma_line.get_xdata(), strict=True))  # offset sideways
    assert len({line.get_marker() for line in lines.values()}) == 3
    assert len({line.get_linestyle() for line in lines.values()}) == 3


def test_report_cost_section_by_hand(tmp_path):
    path = make_table(tmp_path)
    data = {"path": str(path), "train_judge": "scores", "eval_judge": "gold", "val_fraction": 0.2, "fold": 0}
    directory, test = make_run(tmp_path, "always_b", data, "b")
    # output price 2500, 5000, 10000 per 1M tokens x 400 output tokens: 1, 2 and 4 per query
    prices = {c: {"price_in_per_mtok": 0, "price_out_per_mtok": 2500 * 2**k} for k, c in enumerate(CANDIDATES)}
    cost_file = tmp_path / "costs.yaml"
    cost_file.write_text(yaml.safe_dump({"candidates": prices}))
    options = ReportOptions(out=str(tmp_path / "r"), knn_encoder=None, costs=str(cost_file), weak="a", strong="c")
    out = write_report([directory], options)
    section = json.loads((out / "report.json").read_text())["cost_quality"]
    gold = test.judge("gold")
    qa, qb, qc = gold.mean(axis=0)

    assert section["unit"] == "price" and section["cost_range"] == pytest.approx([1.0, 4.0])
    assert section["singles"]["c"]["cost"]["mean"] == pytest.approx(4.0)
    assert section["singles"]["b"]["quality"]["mean"] == pytest.approx(qb)
    router = section["methods"]["always_b"]
    assert router["cost"]["mean"] == pytest.approx(2.0) and router["quality"]["mean"] == pytest.approx(qb)
    # probs one-hot on b: b wins while 1 - 2λ > -λ (λ < 1), then a; the hull over [1, 4] is (1, qa) -> (2, qb)
    # and flat at qb when qb > qa, else flat at qa from the start
    expected_aiq = ((qa + qb) / 2 + 2 * qb) / 3 if qb > qa else qa
    assert router["aiq"]["mean"] == pytest.approx(expected_aiq)
    assert router["curve"]["cost"][0] == pytest.approx(2.0) and router["curve"]["cost"][-1] == pytest.approx(1.0)
    # p_c - p_a = 0 on every query: one tie group, the straight line from all-a to all-c
    assert router["apgr"]["mean"] == pytest.approx(0.5)
    assert router["cpt50"]["mean"] == pytest.approx(0.5) and router["cpt80"]["mean"] == pytest.approx(0.8)
    # threshold sweep: every top probability is 1, so only the +inf threshold falls back (to a, the cheapest)
    cheapest = router["threshold_curves"]["cheapest"]
    assert cheapest["cost"][0] == pytest.approx(2.0) and cheapest["quality"][0] == pytest.approx(qb)
    assert cheapest["cost"][-1] == pytest.approx(1.0) and cheapest["quality"][-1] == pytest.approx(qa)
    assert cheapest["fallback_share"][0] == 0.0 and cheapest["fallback_share"][-1] == 1.0
    assert "threshold_curves" not in section["methods"]["random"]
    assert section["methods"]["RMR scores"]["cost"]["mean"] == pytest.approx(7.0)
    assert "aiq" not in section["methods"]["RMR scores"]
    assert section["pair"]["weak"] == "a" and section["pair"]["strong"] == "c"
    assert section["pair"]["strong_quality"]["mean"] == pytest.approx(qc)
    assert "oracle" not in section["frontier"]
    assert "## Cost and quality" in (out / "report.md").read_text()
    assert (out / "cost_quality.png").stat().st_size > 10_000

    bad = ReportOptions(out=str(tmp_path / "r2"), knn_encoder=None, costs=str(cost_file), weak="z")
    with pytest.raises(ValueError, match=r"--weak 'z' is not a candidate"):
        write_report([directory], bad)


def test_report_reads_per_query_costs_from_the_table(tmp_path):
    rows = [json.loads(line) for line in make_table(tmp_path).read_text().splitlines()]
    for i, row in enumerate(rows):  # c costs 3 on even queries, 5 on odd ones; a and b 1 and 2 (b unknown on q0)
        row["costs"] = {"a": 1.0, "b": None if i == 0 else 2.0, "c": 3.0 if i % 2 == 0 else 5.0}
    path = write_rows(tmp_path / "costed.jsonl", rows)
    data = {"path": str(path), "train_judge": "scores", "eval_judge": "gold", "val_fraction": 0.2, "fold": 0}
    directory, test = make_run(tmp_path, "always_c", data, "c")
    out = write_report([directory], ReportOptions(out=str(tmp_path / "r"), knn_encoder=None, weak="a", strong="c"))
    section = json.loads((out / "report.json").read_text())["cost_quality"]
    odd = np.array([int(i[1:]) % 2 for i in test.ids])
    assert section["unit"] == "table" and section["filled"] == int("q0" in test.ids)
    assert section["methods"]["always_c"]["cost"]["mean"] == pytest.approx(np.mean(3 + 2 * odd))
    assert section["singles"]["b"]["cost"]["mean"] == pytest.approx(2.0)  # an unknown cell: b's mean known cost


def test_runs_saved_before_a_synth_knob_existed_share_a_split_with_runs_showing_its_default(tmp_path):
    from zooter.eval.report import Run

    old = Run("a", tmp_path, {"synth": {"num_queries": 100}}, CANDIDATES, {})
    new = Run("b", tmp_path, {"synth": {"num_queries": 100, "seed": 0}}, CANDIDATES, {})
    other = Run("c", tmp_path, {"synth": {"num_queries": 100, "seed": 1}}, CANDIDATES, {})
    assert old.split_key() == new.split_key() != other.split_key()
