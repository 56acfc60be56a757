"""Routing decisions for use: Router.from_checkpoint(...).route(...) and ``zooter route``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_rows
from zooter import Router
from zooter.cli import main
from zooter.inference import choose
from zooter.table.synth import SynthConfig, generate

NUM_QUERIES = 240  # configs/debug.yaml's synthetic table


@pytest.fixture(scope="module")
def fitted(quickstart_run, tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """The session's 1-epoch quickstart router and the predictions ``zooter predict`` made with it."""
    tmp_path = tmp_path_factory.mktemp("route")
    args = quickstart_run.args_in(tmp_path)
    main(["predict", *args, "--ckpt_path", str(quickstart_run.last)])
    predictions = tmp_path / "runs" / "quickstart" / "version_0" / "predictions.jsonl"
    return quickstart_run.last, predictions, args


def test_choose_trades_probability_against_cost_by_hand() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.45, 0.45]])
    costs = np.array([1.0, 0.5, 0.0])
    assert choose(probs).tolist() == [0, 1]  # ties: the first maximum
    # λ = 0.3: utilities [0.2, 0.15, 0.2] (first max: 0) and [-0.2, 0.3, 0.45] -> [0, 2]
    assert choose(probs, costs, 0.3).tolist() == [0, 2]
    # λ = 1: [-0.5, -0.2, 0.2] and [-0.9, -0.05, 0.45] -> the free candidate
    assert choose(probs, costs, 1.0).tolist() == [2, 2]
    with pytest.raises(ValueError, match="cost_weight must be >= 0"):
        choose(probs, costs, -1.0)


def test_router_from_checkpoint_reproduces_zooter_predict(fitted) -> None:
    ckpt, predictions, _ = fitted
    rows = [json.loads(line) for line in predictions.open()]
    table = generate(SynthConfig(num_queries=NUM_QUERIES, seed=0))
    query_of = dict(zip(table.ids, table.queries, strict=True))
    router = Router.from_checkpoint(ckpt, batch_size=7)  # batches differ from predict's: same numbers
    assert router.candidates == table.candidates
    assert router.best_single in table.candidates
    probs = router.probabilities([query_of[r["id"]] for r in rows])
    expected = np.array([[r["probs"][c] for c in router.candidates] for r in rows])
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    decisions = router.route([query_of[r["id"]] for r in rows])
    assert [d.candidate for d in decisions] == [r["route"] for r in rows]
    assert not any(d.fallback for d in decisions)
    assert all(d.probability == pytest.approx(max(d.probabilities.values())) for d in decisions)


def test_threshold_falls_back_to_the_best_single_model(fitted) -> None:
    ckpt, _, _ = fitted
    router = Router.from_checkpoint(ckpt)
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)["zooter"]
    assert router.best_single == saved["best_single"]
    queries = ["solve the integral of a polynomial", "write a short story", "debug this function"]
    top = router.probabilities(queries).max(axis=1)
    threshold = float(np.median(top))  # strictly below the median: fallback; the rest: the router's pick
    decisions = router.route(queries, threshold=threshold)
    for decision, p in zip(decisions, top, strict=True):
        assert decision.fallback == (p < threshold)
        if decision.fallback:
            assert decision.candidate == router.best_single
            assert decision.probability == pytest.approx(decision.probabilities[router.best_single])
    assert all(d.fallback for d in router.route(queries, threshold=1.01))
    assert not any(d.fallback for d in router.route(queries, threshold=0.0))


def test_costs_route_under_a_budget(fitted) -> None:
    router = Router.from_checkpoint(fitted[0])
    costs = {c: 1.0 for c in router.candidates}
    costs[router.candidates[-1]] = 0.0
    queries = ["a question", "another question about code"]
    assert {d.candidate for d in router.route(queries, costs=costs, cost_weight=10.0)} == {router.candidates[-1]}
    with pytest.raises(ValueError, match=r"missing \['chatty'\], unknown \['gpt-9'\]"):
        router.route(queries, costs={**{c: 1.0 for c in router.candidates[:-1]}, "gpt-9": 1.0}, cost_weight=1.0)
    with pytest.raises(ValueError, match="query 1: expected non-empty text"):
        router.route(["fine", "  "])


def test_route_command_prints_and_writes_decisions(fitted, tmp_path, capsys) -> None:
    ckpt, _, _ = fitted
    queries = write_rows(
        tmp_path / "q.jsonl", [{"id": "x1", "query": "integrate x squared"}, {"id": "x2", "query": "a poem"}]
    )
    out = tmp_path / "decisions.jsonl"
    main(["route", "--ckpt_path", str(ckpt), "hello there", "--file", str(queries), "--out", str(out)])
    printed = capsys.readouterr().out.splitlines()
    decisions = Router.from_checkpoint(ckpt).route(["hello there", "integrate x squared", "a poem"])
    for line, decision in zip(printed, decisions, strict=False):
        assert line.split()[0] == decision.candidate
        assert f"p={decision.probability:.3f}" in line
    records = [json.loads(line) for line in out.open()]
    assert [r["id"] for r in records] == ["0", "x1", "x2"]
    assert [r["candidate"] for r in records] == [d.candidate for d in decisions]
    assert f"3 decisions -> {out}" in printed[-1]


def test_route_command_errors_are_messages(fitted, tmp_path, capsys) -> None:
    ckpt, _, _ = fitted
    with pytest.raises(SystemExit, match="nothing to route"):
        main(["route", "--ckpt_path", str(ckpt)])
    with pytest.raises(SystemExit, match=r"missing\.ckpt: no such checkpoint"):
        main(["route", "--ckpt_path", str(tmp_path / "missing.ckpt"), "q"])
    old = torch.load(ckpt, map_location="cpu", weights_only=False)
    del old["zooter"]["tokenizer_files"]
    torch.save(old, tmp_path / "old.ckpt")
    with pytest.raises(SystemExit, match="holds no tokenizer"):
        main(["route", "--ckpt_path", str(tmp_path / "old.ckpt"), "q"])


def test_a_single_string_is_one_query_not_its_characters(fitted) -> None:
    router = Router.from_checkpoint(fitted[0])
    query = "integrate x squared"
    (decision,) = router.route(query)
    assert decision.query == query
    assert decision == router.route([query])[0]
    assert router.probabilities(query).shape == (1, len(router.candidates))


def test_num_threads_holds_while_routing_and_the_callers_setting_returns(fitted, monkeypatch) -> None:
    seen: list[int] = []
    router = Router.from_checkpoint(fitted[0])
    compute = router.model.probabilities
    monkeypatch.setattr(
        router.model, "probabilities", lambda batch: seen.append(torch.get_num_threads()) or compute(batch)
    )
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        assert router.num_threads == 1  # the default
        router.route(["a question", "another"])
        assert seen == [1] and torch.get_num_threads() == 3
        router.num_threads = 2
        router.route("a question")
        assert seen == [1, 2] and torch.get_num_threads() == 3
        router.num_threads = None  # torch's setting
        router.route("a question")
        assert seen == [1, 2, 3] and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        Router.from_checkpoint(fitted[0], num_threads=0)


def test_route_command_sets_num_threads_while_routing(fitted, monkeypatch, capsys) -> None:
    seen: list[int] = []
    router_class = type(Router.from_checkpoint(fitted[0]).model)
    compute = router_class.probabilities
    monkeypatch.setattr(
        router_class, "probabilities", lambda self, batch: seen.append(torch.get_num_threads()) or compute(self, batch)
    )
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        main(["route", "--ckpt_path", str(fitted[0]), "a question"])  # default: one thread
        main(["route", "--ckpt_path", str(fitted[0]), "a question", "--num_threads", "3"])
        main(["route", "--ckpt_path", str(fitted[0]), "a question", "--num_threads", "null"])
        assert seen == [1, 3, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_cost_weight_without_costs_is_an_error_naming_both_flags(fitted) -> None:
    ckpt = str(fitted[0])
    with pytest.raises(SystemExit, match=r"--cost_weight 0\.5 needs --costs"):
        main(["route", "--ckpt_path", ckpt, "q", "--cost_weight", "0.5"])
    with pytest.raises(SystemExit, match=r"--costs has no effect with --cost_weight 0"):
        main(["route", "--ckpt_path", ckpt, "q", "--costs", '{"a": 1.0}'])
    with pytest.raises(ValueError, match=r"cost_weight=0\.5 needs costs"):
        Router.from_checkpoint(ckpt).route("q", cost_weight=0.5)


def test_threshold_falls_back_to_the_cheapest_candidate_when_asked(fitted, capsys) -> None:
    ckpt = str(fitted[0])
    router = Router.from_checkpoint(ckpt)
    cheap = router.candidates[-1]
    costs = {c: (0.5 if c == cheap else 2.0) for c in router.candidates}
    decisions = router.route(["a question", "another"], threshold=1.01, costs=costs, fallback="cheapest")
    assert [(d.candidate, d.fallback) for d in decisions] == [(cheap, True), (cheap, True)]
    with pytest.raises(ValueError, match="fallback 'cheapest' needs costs"):
        router.route("q", threshold=0.5, fallback="cheapest")
    with pytest.raises(ValueError, match="unknown fallback 'dearest'"):
        router.route("q", threshold=0.5, costs=costs, fallback="dearest")
    main(
        [
            "route",
            "--ckpt_path",
            ckpt,
            "q",
            "--threshold",
            "1.01",
            "--fallback",
            "cheapest",
            "--costs",
            json.dumps(costs),
        ]
    )
    printed = capsys.readouterr().out
    assert printed.startswith(cheap) and "(fallback: cheapest)" in printed
