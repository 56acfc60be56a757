"""User errors end the command with one short message and exit status 1 or 2; bugs keep their traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import lightning.pytorch  # noqa: F401  (its log handler keeps the sys.stderr of its import: not a capsys one)
import pytest

from conftest import REPO, debug_args, row
from zooter.cli import main
from zooter.errors import closest_option
from zooter.table.schema import TableError

QUICKSTART = ["--config", str(REPO / "configs/quickstart.yaml")]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``zooter ARGV`` in-process: its exit status and its message, from ``zooter <command>: error:`` to the end
    of stderr (Lightning's log lines, e.g. "Seed set to 0", may come before it; no traceback may)."""
    with pytest.raises(SystemExit) as done:
        main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return int(done.value.code), err[err.index(f"zooter {argv[0]}: error: ") :]


@pytest.mark.parametrize(
    ("unknown", "suggestion"),
    [
        ("data.bta", "data.beta"),
        ("model.learning_rat", "model.init_args.lr"),  # the spelled-out name of an abbreviated argument
        ("model.init_args.dropuot", "model.init_args.dropout"),
        ("modle.init_args.lr", "model.init_args.lr"),  # only the group misspelt
        ("seed_everythng", "seed_everything"),
        ("data.zzzzzz", None),
    ],
)
def test_closest_option(unknown, suggestion):
    known = [
        "data.beta",
        "data.batch_size",
        "model",
        "model.init_args.lr",
        "model.init_args.dropout",
        "seed_everything",
    ]
    assert closest_option(unknown, known) == suggestion


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data.bta", "0.3"], "zooter fit: error: unknown option --data.bta; did you mean --data.beta?\n"),
        (
            ["--model.learning_rat", "1e-3"],
            "zooter fit: error: ZooterRouter (--model) has no argument 'learning_rat'; "
            "did you mean --model.init_args.lr?\n",
        ),
        (
            ["--trainer.logger.init_args.save_dri", "x"],
            "zooter fit: error: CSVLogger (--trainer.logger) has no argument 'save_dri'; "
            "did you mean --trainer.logger.init_args.save_dir?\n",
        ),
    ],
)
def test_unknown_key_suggests_the_closest_valid_one(args, message, capsys):
    assert run_main(["fit", *QUICKSTART, *args], capsys) == (2, message)


def test_unknown_key_in_a_config_file(tmp_path, capsys):
    config = tmp_path / "typo.yaml"
    config.write_text("model:\n  init_args:\n    dropuot: 0.2\n")
    code, err = run_main(["fit", *QUICKSTART, "--config", str(config)], capsys)
    assert (code, err) == (2, "zooter fit: error: ZooterRouter (--model) has no argument 'dropuot'; did you mean "
                              "--model.init_args.dropout?\n")  # fmt: skip


def test_value_of_the_wrong_type(capsys):
    code, err = run_main(["fit", *QUICKSTART, "--data.beta", "abc"], capsys)
    assert code == 2
    assert err.startswith('zooter fit: error: Parser key "data.beta":\n    Expected a float. Got value: abc\n')
    assert len(err.splitlines()) <= 4  # no usage text


def test_value_out_of_range(capsys):
    code, err = run_main(["fit", *QUICKSTART, "--data.beta", "2"], capsys)
    assert (code, err) == (1, "zooter fit: error: data.beta must be in [0, 1], got 2.0\n")


def test_table_error(tmp_path, table_file, capsys):
    bad = table_file([row(0), row(1, scores={"a": "high", "b": 0.0}), row(2)])
    judges = ["--data.train_judge", "scores", "--data.eval_judge", "scores"]
    code, err = run_main(["fit", *debug_args(tmp_path, "--data.path", str(bad), *judges)], capsys)
    assert (code, err) == (1, f"zooter fit: error: {bad}:2 (id='q1'): field 'scores.a': expected a number or null, "
                              "got 'high'\n")  # fmt: skip
    assert not (tmp_path / "runs").exists()


def test_missing_files(tmp_path, capsys):
    missing = tmp_path / "missing.jsonl"
    code, err = run_main(["fit", *debug_args(tmp_path, "--data.path", str(missing))], capsys)
    assert (code, err) == (1, f"zooter fit: error: {missing}: no such file\n")
    code, err = run_main(["fit", *QUICKSTART, "--config", str(tmp_path / "missing.yaml")], capsys)
    assert code == 2 and err.startswith(f'zooter fit: error: Parser key "config": File does not exist: \'{tmp_path}')
    code, err = run_main(["sweep", str(tmp_path / "missing.yaml")], capsys)  # a plain command
    assert (code, err) == (1, f"zooter sweep: error: {tmp_path / 'missing.yaml'}: no such file or directory\n")


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    import zooter.table.synth as synth

    def broken(config):
        return int("not a number")  # a ValueError that no zooter `raise` meant for a user

    monkeypatch.setattr(synth, "generate", broken)
    with pytest.raises(ValueError, match="invalid literal for int"):
        main(["synth", "--out", str(tmp_path / "s.jsonl")])


def test_zooter_debug_shows_the_traceback_of_user_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOOTER_DEBUG", "1")
    with pytest.raises(TableError, match="no such file"):
        main(["fit", *debug_args(tmp_path, "--data.path", str(tmp_path / "missing.jsonl"))])
    argv = [sys.executable, "-m", "zooter", "synth", "--table.num_domains", "99", "--out", str(tmp_path / "s.jsonl")]
    for debug, shows_traceback in (("0", False), ("1", True)):
        done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "ZOOTER_DEBUG": debug})
        assert done.returncode == 1
        assert ("Traceback (most recent call last)" in done.stderr) is shows_traceback
        assert done.stderr.rstrip().endswith("num_domains must be in 1..8, got 99")
