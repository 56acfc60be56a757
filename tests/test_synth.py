"""The embedded synthetic data: deterministic, valid, and with the structure routing needs."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pytest

from zooter.table.schema import RoutingTable, load_table, write_jsonl
from zooter.table.synth import CONTEXT_WORDS, DOMAIN_WORDS, STYLE_WORDS, SynthConfig, generate


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


# --------------------------------------------------------------------- tag-informativeness knobs
def _digest(table: RoutingTable) -> str:
    digest = hashlib.sha256(json.dumps([table.ids, table.queries, table.tags, table.candidates, table.source]).encode())
    for judge in table.judges:
        digest.update(judge.encode())
        digest.update(np.ascontiguousarray(table.judge(judge)).tobytes())
    return digest.hexdigest()


def test_knobs_at_their_defaults_give_the_previous_generators_tables():
    # digests of the generator before the knobs existed (commit 4922347)
    assert _digest(generate(SynthConfig())) == "a7c46b4a3ae84d6c68d80114338f507115d361071e9eddd0f7c147328762b091"
    other = SynthConfig(num_queries=500, num_candidates=9, num_domains=5, topics_per_domain=7,
                        secondary_domain_prob=0.6, missing_rate=0.1, seed=7)  # fmt: skip
    assert _digest(generate(other)) == "1c818aabdf7a1f593691032ef19f5f5fd6a62a0967ed654bf04a8cb0c7db263e"


def _same_text_and_quality(a: RoutingTable, b: RoutingTable) -> bool:
    return a.queries == b.queries and all(np.array_equal(a.judge(j), b.judge(j), equal_nan=True) for j in a.judges)


def _mutual_information_bits(x: list[str], y: list[str]) -> float:
    joint = Counter(zip(x, y, strict=True))
    px, py, n = Counter(x), Counter(y), len(x)
    return sum(c / n * np.log2(c * n / (px[a] * py[b])) for (a, b), c in joint.items())


def test_tag_noise_replaces_a_share_of_the_tags_with_random_ones_of_the_same_kinds():
    clean = generate(SynthConfig(num_queries=20_000))
    latent = [tags[0] for tags in clean.tags]  # without noise the first tag is the latent primary domain
    for share in (0.25, 1.0):
        noisy = generate(SynthConfig(num_queries=20_000, tag_noise=share))
        assert _same_text_and_quality(noisy, clean)
        first = [tags[0] for tags in noisy.tags]
        # a replaced tag is right by chance only: 1/8 of the time
        assert abs(np.mean(np.array(first) == np.array(latent)) - (1 - share + share / 8)) < 0.015
        for tags, clean_tags in zip(noisy.tags, clean.tags, strict=True):
            assert len(tags) == len(clean_tags) and tags[1].startswith(tags[0] + "/")
            assert set(tags[1].split("/")[1].split("_")) <= set(DOMAIN_WORDS[tags[0]])
    # at 1 the tags say nothing about the latent domain: 3 bits without noise (8 uniform domains), ~0 now
    assert abs(_mutual_information_bits(latent, latent) - 3.0) < 0.01
    assert _mutual_information_bits(first, latent) < 0.01
    with pytest.raises(ValueError, match=r"tag_noise must be in \[0, 1\], got 1.5"):
        SynthConfig(tag_noise=1.5)


def test_topic_and_domain_merge_divide_the_tags_among_groups_of_k():
    clean = generate(SynthConfig(num_queries=8000))
    assert len({tags[1] for tags in clean.tags}) == 8 * 12
    for k, per_domain in ((3, 4), (5, 3)):  # ceil(12 / k) topic tags per domain
        merged = generate(SynthConfig(num_queries=8000, topic_merge=k))
        assert _same_text_and_quality(merged, clean)
        groups = Counter(dict(zip((t[1] for t in clean.tags), (t[1] for t in merged.tags), strict=True)).values())
        assert len(groups) == 8 * per_domain
        assert sorted(set(groups.values())) == ([3] if k == 3 else [2, 5])  # 12 = 5 + 5 + 2 topics
    merged = generate(SynthConfig(num_queries=8000, domain_merge=2))
    assert {tags[0] for tags in merged.tags} == {"code", "writing", "cooking", "finance"}
    pairs = {(c[0], m[0]) for c, m in zip(clean.tags, merged.tags, strict=True)}
    assert ("math", "code") in pairs and ("science", "writing") in pairs and len(pairs) == 8
    assert all(m[1].split("/")[1] == c[1].split("/")[1] for c, m in zip(clean.tags, merged.tags, strict=True))
    # a secondary domain merged with the primary one is not repeated
    assert all(len(set(tags)) == len(tags) for tags in merged.tags)
    assert sum(len(m) < len(c) for c, m in zip(clean.tags, merged.tags, strict=True)) > 0
    with pytest.raises(ValueError, match="topic_merge and domain_merge must be >= 1, got 0, 1"):
        SynthConfig(topic_merge=0)


def test_irrelevant_tags_name_a_random_style_the_query_asks_for_and_no_quality_depends_on():
    clean = generate(SynthConfig(num_queries=6000))
    styled = generate(SynthConfig(num_queries=6000, irrelevant_tags=2))
    for judge in clean.judges:
        np.testing.assert_array_equal(styled.judge(judge), clean.judge(judge))
    styles = []
    for query, tags, clean_query, clean_tags in zip(
        styled.queries, styled.tags, clean.queries, clean.tags, strict=True
    ):
        assert tags[: len(clean_tags)] == clean_tags and len(tags) == len(clean_tags) + 2
        words = [tag.removeprefix("style/") for tag in tags[-2:]]
        assert words[0] != words[1] and query == f"{clean_query} Keep it {words[0]} and {words[1]}."
        styles += words
    counts = Counter(styles)
    assert set(counts) == set(STYLE_WORDS) and max(counts.values()) / min(counts.values()) < 1.25  # uniform: 1000 each
    with pytest.raises(ValueError, match=r"irrelevant_tags must be in 0\.\.12, got 13"):
        SynthConfig(irrelevant_tags=13)


def test_unexplained_sigma_adds_quality_per_context_word_in_the_text_and_in_no_tag():
    sigma = 0.5
    clean = generate(SynthConfig(num_queries=6000))
    table = generate(SynthConfig(num_queries=6000, unexplained_sigma=sigma))
    assert table.tags == clean.tags
    contexts = []
    for query, clean_query in zip(table.queries, clean.queries, strict=True):
        assert query.startswith(clean_query + " (context: ") and query.endswith(")")
        contexts.append(query.removeprefix(clean_query + " (context: ")[:-1])
    assert set(contexts) == set(CONTEXT_WORDS)
    contexts = np.array(contexts)
    shift = table.judge("true") - clean.judge("true")
    offsets = []
    for word in CONTEXT_WORDS:  # one offset per (context word, candidate), the same for every judge
        rows = shift[contexts == word]
        assert np.ptp(rows, axis=0).max() < 2e-4  # scores are rounded to 4 decimals
        low = (table.judge("rm_low_noise") - clean.judge("rm_low_noise"))[contexts == word]
        assert np.nanmax(np.abs(low - rows[0])) < 2e-4
        offsets.append(rows[0])
    assert 0.35 < np.std(offsets) < 0.65  # 16 x 6 draws of N(0, 0.5^2)
    with pytest.raises(ValueError, match=r"unexplained_sigma must be >= 0, got -0\.1"):
        SynthConfig(unexplained_sigma=-0.1)


def test_knobs_draw_their_randomness_apart_from_each_other():
    both = generate(SynthConfig(num_queries=500, tag_noise=0.5, irrelevant_tags=1))
    noise_only = generate(SynthConfig(num_queries=500, tag_noise=0.5))
    assert [tags[:-1] for tags in both.tags] == noise_only.tags  # the style tag is added, the noise is the same
