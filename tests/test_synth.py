"""The embedded synthetic data: deterministic, valid, and with the structure routing needs."""

from __future__ import annotations

import numpy as np
import pytest

from zooter.table.schema import load_table, write_jsonl
from zooter.table.synth import DOMAIN_WORDS, SynthConfig, generate


def test_same_seed_same_table_other_seed_other_table():
    a, b = generate(SynthConfig(num_queries=300, seed=3)), generate(SynthConfig(num_queries=300, seed=3))
    assert a.queries == b.queries and a.tags == b.tags
    for judge in a.judges:
        np.testing.assert_array_equal(a.judge(judge), b.judge(judge))
    assert generate(SynthConfig(num_queries=300, seed=4)).queries != a.queries


def test_judges_noise_levels_and_missing_cells():
    table = generate(SynthConfig(num_queries=3000, missing_rate=0.05))
    assert table.judges == ["scores", "true", "rm_low_noise", "rm_high_noise"]
    true, low, high = table.judge("true"), table.judge("rm_low_noise"), table.judge("rm_high_noise")
    np.testing.assert_array_equal(table.judge("scores"), low)
    assert np.isfinite(true).all()
    missing_rows = np.isnan(low).any(axis=1).mean()
    assert 0.03 < missing_rows < 0.07 and (np.isfinite(low).sum(axis=1) >= table.judge("true").shape[1] - 1).all()
    judged = np.isfinite(low) & np.isfinite(high)
    corr_low = np.corrcoef(true[judged], low[judged])[0, 1]
    corr_high = np.corrcoef(true[judged], high[judged])[0, 1]
    assert corr_low > 0.9 > 0.6 > corr_high > 0.2


def test_text_and_tags_carry_the_domain_and_specialists_win_their_domain():
    config = SynthConfig(num_queries=4000)
    table = generate(config)
    true = table.judge("true")
    for query, tags in zip(table.queries[:200], table.tags[:200], strict=True):
        domain, topic = tags[0], tags[1]
        assert topic.startswith(domain + "/")
        first, second = topic.split("/")[1].split("_")
        assert first in query and second in query and first in DOMAIN_WORDS[domain]
    domains = list(DOMAIN_WORDS)
    for k in range(1, config.num_candidates):
        rows = [i for i, tags in enumerate(table.tags) if tags[0] == domains[k - 1]]
        assert true[rows].mean(axis=0).argmax() == k, f"{table.candidates[k]} should win {domains[k - 1]}"
    assert true.mean(axis=0).argmax() == 0  # the generalist is the best single model on average
    oracle, best_single = true.max(axis=1).mean(), true[:, 0].mean()
    assert oracle - best_single > 0.3


def test_paper_scale_and_file_round_trip(tmp_path):
    table = generate(SynthConfig(num_queries=48_000, num_candidates=6, topics_per_domain=800))
    assert len(table) == 48_000 and len({t for tags in table.tags for t in tags}) > 6000
    small = generate(SynthConfig(num_queries=50))
    again = load_table(write_jsonl(small, tmp_path / "s.jsonl"), required_judges=["true", "rm_high_noise"])
    assert again.ids == small.ids and again.candidates == small.candidates
    np.testing.assert_array_equal(again.judge("rm_low_noise"), small.judge("rm_low_noise"))


def test_config_is_checked():
    with pytest.raises(ValueError, match=r"num_domains must be in 1\.\.8"):
        SynthConfig(num_domains=9)


def test_synth_help_lists_every_generator_knob_with_its_help(capsys):
    from dataclasses import fields

    from zooter.table.synth import main

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # help lines are wrapped
    for field in fields(SynthConfig):
        assert f"--table.{field.name} " in text, field.name
    assert "--table.missing_rate MISSING_RATE share of queries in which the reward models leave one candidate" in text
    assert "--table.num_queries NUM_QUERIES rows of the table. (type: int, default: 4000)" in text


def test_synth_command_writes_the_table_its_knobs_describe(tmp_path, capsys):
    from zooter.table.synth import main

    out = tmp_path / "t.jsonl"
    main(["--out", str(out), "--table.num_queries", "20", "--table.num_candidates", "3", "--table.seed", "5"])
    again = load_table(out, required_judges=["true"])
    expected = generate(SynthConfig(num_queries=20, num_candidates=3, seed=5))
    assert again.ids == expected.ids and again.candidates == ["generalist", "coder", "mathematician"]
    np.testing.assert_array_equal(again.judge("true"), expected.judge("true"))
    assert "20 queries x 3 candidates" in capsys.readouterr().out
