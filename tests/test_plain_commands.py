"""The plain commands (report, cv, sweep, generate, score, tag, route, add-candidate) share one parser class:
boolean options may be given bare (``--dry_run``) or with a value (``--dry_run false``)."""

from __future__ import annotations

import re

import pytest

from conftest import debug_args
from zooter.cli import PLAIN_COMMANDS, main


@pytest.mark.parametrize("command", sorted(PLAIN_COMMANDS))
def test_every_boolean_option_of_every_plain_command_may_be_given_bare(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    # jsonargparse's own form needs the value: `--flag {true,false}`; the bare-able form is `--flag [{true,false}]`
    assert not re.search(r"--[\w.]+ \{true,false", text), f"zooter {command}: a boolean option needs a value"
    optional = set(re.findall(r"(--[\w.]+) \[\{true,false", text))
    expected = {
        "report": {"--baselines"},
        "cv": {"--report.baselines"},
        "sweep": {"--dry_run"},
        "generate": {"--progress"},
        "score": {"--as_scores", "--overwrite"},
        "tag": {"--keep_existing", "--progress"},
    }
    assert optional == expected.get(command, set())


def test_cv_takes_a_bare_nested_flag_and_says_when_no_fold_has_predictions(tmp_path):
    # --only []: run no fold, then report the finished ones (there are none): one message, no traceback
    with pytest.raises(SystemExit, match=r"zooter cv: no fold has predictions in .*qs yet: nothing to report"):
        main(["cv", "--folds", "2", "--only", "[]", "--name", "qs", "--report.baselines", "--", *debug_args(tmp_path)])


def test_a_list_option_takes_its_items_as_separate_words():
    from dataclasses import dataclass, field

    from zooter.cli_args import PlainParser

    @dataclass
    class Options:
        names: list[str] | None = None
        knn_k: list[int] = field(default_factory=lambda: [1])
        out: str = "o"

    parser = PlainParser(exit_on_error=False)
    parser.add_argument("runs", nargs="+")
    parser.add_class_arguments(Options, nested_key=None)
    words = parser.parse_args(["r1", "r2", "--names", "a", "b c", "--knn_k", "3", "5", "--out", "x"])
    assert (words.runs, words.names, words.knn_k, words.out) == (["r1", "r2"], ["a", "b c"], [3, 5], "x")
    listed = parser.parse_args(["r1", "--names", "[a, b]", "--knn_k", "[7]"])
    assert (listed.names, listed.knn_k) == (["a", "b"], [7])
    appended = parser.parse_args(["--names+", "q", "--", "r1"])
    assert (appended.names, appended.runs) == (["q"], ["r1"])
