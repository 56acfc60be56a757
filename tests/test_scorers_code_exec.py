"""``--scorer code_exec``: each outcome of a run in the limited child process, the network block, the command."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, write_rows
from zooter.cli import main
from zooter.pipeline.scorers import code_exec
from zooter.pipeline.scorers.base import Unit
from zooter.pipeline.scorers.code_exec import CodeExec, extract_code, unshare_command

EXAMPLES = REPO / "examples" / "scorers"
LIMITS = {"time_limit_s": 1.5, "memory_limit_mb": 256}


@pytest.fixture(scope="module", params=["namespace", "socket block only"])
def sandbox(request) -> CodeExec:
    """The scorer with the network namespace where this machine allows one, and without it."""
    if request.param == "namespace" and not unshare_command():
        pytest.skip("no unprivileged network namespace (unshare -Un) on this machine")
    return CodeExec(**LIMITS, namespace=unshare_command() if request.param == "namespace" else ())


@pytest.mark.parametrize(
    ("code", "tests", "score", "reason"),
    [
        ("def add(a, b):\n    return a + b\n", "assert add(2, 3) == 5", 1.0, "passed"),
        (
            "def add(a, b):\n    return a - b\n",
            "assert add(2, 3) == 5, 'add(2, 3) should be 5'",
            0.0,
            "failed: AssertionError: add(2, 3) should be 5",
        ),
        ("def f(:\n    pass\n", "assert f()", 0.0, "syntax: SyntaxError: invalid syntax (solution.py line 1)"),
        ("def f():\n    return 1\n", "assert f() ==", 0.0, "syntax: SyntaxError: invalid syntax (tests.py line 1)"),
        ("table = [0] * (10 ** 10)\n", "", 0.0, "memory"),
        ("print('no newline at the end', end='')\n", "assert True", 1.0, "passed"),
        ("import sys\nsys.exit(0)\n", "assert False", 0.0, "failed: SystemExit: 0"),
        ("import os\nos._exit(0)\n", "assert False", 0.0, "failed: exited with status 0 before the tests finished"),
        ("x = input()\n", "", 0.0, "failed: EOFError: EOF when reading a line"),
        ("if __name__ == '__main__':\n    raise SystemExit(3)\n", "assert True", 1.0, "passed"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "", 0.0, "failed: killed by SIGSEGV"),
    ],
)
def test_outcomes(sandbox: CodeExec, code: str, tests: str, score: float, reason: str) -> None:
    verdict = sandbox.run(code, tests)
    assert verdict.score == score
    assert verdict.reason.startswith(reason), verdict.reason


def test_timeout_kills_the_run_and_what_it_started(tmp_path: Path) -> None:
    marker = tmp_path / "still-alive"
    # a grandchild that would write a file after the limit, unless the whole group is killed
    probe = f"import time; time.sleep(1.3); open({str(marker)!r}, 'w')"
    code = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {probe!r}])\nwhile True:\n    pass\n"
    started = time.monotonic()
    assert CodeExec(time_limit_s=1.0, memory_limit_mb=256).run(code, "") == (0.0, "timeout")
    assert 1.0 <= time.monotonic() - started < 1.5
    time.sleep(0.6)
    assert not marker.exists()


@pytest.fixture
def listener() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP server on 127.0.0.1 that records the connections it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


def test_network_is_blocked(sandbox: CodeExec, listener: tuple[int, list[socket.socket]]) -> None:
    port, accepted = listener
    for code in (
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)",
        f"import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/', timeout=1)",
        f"import _socket\n_socket.socket().connect(('127.0.0.1', {port}))",
    ):
        verdict = sandbox.run(code, "")
        assert verdict.score == 0.0
        assert "network access is disabled in zooter code_exec" in verdict.reason
    # asyncio's socket pairs (AF_UNIX) still work
    asyncio_code = "import asyncio\nasync def one():\n    return 1\nassert asyncio.run(one()) == 1\n"
    assert sandbox.run(asyncio_code, "") == (1.0, "passed")
    assert accepted == []


def test_only_the_namespace_stops_code_that_goes_around_the_socket_block(
    listener: tuple[int, list[socket.socket]],
) -> None:
    port, accepted = listener
    # another Python in a subprocess does not have the runner's socket block
    code = (
        "import subprocess, sys\n"
        f"probe = 'import socket; socket.create_connection((\"127.0.0.1\", {port}), timeout=1)'\n"
        "subprocess.run([sys.executable, '-c', probe], check=True)\n"
    )
    if unshare_command():
        verdict = CodeExec(**LIMITS).run(code, "")
        assert verdict.reason.startswith("failed: subprocess.CalledProcessError"), verdict.reason
        assert accepted == []
    assert CodeExec(**LIMITS, namespace=()).run(code, "") == (1.0, "passed")  # the documented limit
    deadline = time.monotonic() + 2
    while not accepted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(accepted) == 1


def test_clean_environment_and_a_temporary_directory_removed_after(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOOTER_SECRET", "do-not-leak")
    monkeypatch.setattr(code_exec.tempfile, "tempdir", str(tmp_path))
    code = (
        "import os, sys\n"
        "assert 'ZOOTER_SECRET' not in os.environ, 'environment leaked'\n"
        "assert sorted(os.environ) == ['HOME', 'LANG', 'PATH', 'TMPDIR'], sorted(os.environ)\n"
        "assert os.getcwd() == os.environ['HOME'] == os.environ['TMPDIR']\n"
        "assert os.path.basename(os.getcwd()).startswith('zooter-code-')\n"
        "assert sys.flags.isolated == 1\n"
        "open('scratch.txt', 'w').write('x')\n"
    )
    assert CodeExec(**LIMITS).run(code, "assert os.path.exists('scratch.txt')") == (1.0, "passed")
    assert list(tmp_path.iterdir()) == []


def test_code_extraction_and_tests_field() -> None:
    response = (
        "First install nothing:\n```bash\npip install nothing\n```\n"
        "```python\ndef f():\n    return 1\n```\nExample:\n```python\n>>> f()\n1\n```"
    )
    assert extract_code(response) == "def f():\n    return 1\n"
    assert extract_code("Here:\n```\nx = 1\n```") == "x = 1\n"
    assert extract_code("```py\ndef g():\n    return 2") == "def g():\n    return 2"  # cut short: no closing fence
    assert extract_code("def h():\n    return 3") == "def h():\n    return 3"
    assert code_exec.tests_source(["assert f() == 1", "assert f() != 2"]) == "assert f() == 1\nassert f() != 2"
    assert code_exec.tests_source([]) is None and code_exec.tests_source(3) is None


def test_parallel_workers_and_resumption(tmp_path: Path, monkeypatch) -> None:
    rows = [{"id": f"q{i}", "tests": "assert f() == 1"} for i in range(6)]
    units = [Unit(f"q{i}", c, "write f", "def f():\n    return 1", rows[i]) for i in range(6) for c in ("a", "b")]
    started = time.monotonic()
    slow = CodeExec(time_limit_s=5, memory_limit_mb=256, workers=4)
    slow_units = [Unit(u.id, u.candidate, u.query, "import time\ntime.sleep(0.5)\n" + u.response, u.row) for u in units]
    verdicts = [v for batch in slow.score(slow_units[:8]) for _, v in batch]
    assert verdicts == [(1.0, "passed")] * 8
    assert time.monotonic() - started < 0.5 * 8 / 2  # 4 at a time, not one after another

    # the command: a journal with some pairs done runs only the others
    responses = {"a": "def f(): return 1", "b": "def f(): return 2"}
    source = write_rows(tmp_path / "in.jsonl", [{**r, "query": "write f", "responses": responses} for r in rows])
    out = tmp_path / "scored.jsonl"
    argv = ["score", str(source), "--scorer", "code_exec", "--out", str(out), "--time_limit_s", "2"]
    main(argv)
    journal = tmp_path / "scored.code_exec.journal.jsonl"
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    journal.write_text("".join(json.dumps(r) + "\n" for r in records[:5]))
    out.unlink()
    ran: list[str] = []
    original = CodeExec.run
    monkeypatch.setattr(CodeExec, "run", lambda self, code, tests: ran.append(code) or original(self, code, tests))
    main(argv)
    assert len(ran) == 7
    assert [json.loads(line)["scores_by_judge"]["code_exec"] for line in out.read_text().splitlines()] == [
        {"a": 1.0, "b": 0.0}
    ] * 6


def test_score_command_end_to_end(tmp_path: Path, capsys) -> None:
    out = tmp_path / "scored.jsonl"
    argv = ["score", str(EXAMPLES / "code.jsonl"), "--scorer", "code_exec", "--out", str(out)]
    main([*argv, "--time_limit_s", "1", "--memory_limit_mb", "256", "--workers", "4"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["id"]: r["scores_by_judge"]["code_exec"] for r in rows} == {
        "c1": {"small": 1.0, "large": 0.0},
        "c2": {"small": 0.0, "large": 1.0},
        "c3": {"small": 0.0, "large": 0.0},
        "c4": {"small": 0.0, "large": None},
    }
    reasons = {r["id"]: r["score_reasons"]["code_exec"] for r in rows}
    assert reasons["c1"] == {"small": "passed", "large": "failed: AssertionError"}
    assert reasons["c2"] == {"small": "timeout", "large": "passed"}
    assert reasons["c3"] == {"small": "memory", "large": "syntax: SyntaxError: expected ':' (solution.py line 1)"}
    assert (
        reasons["c4"]["small"]
        == "failed: urllib.error.URLError: <urlopen error network access is disabled in zooter code_exec>"
    )
    assert reasons["c4"]["large"] is None
    printed = capsys.readouterr().out
    assert "7 to score, 1 without a response" in printed
    assert "passed 2, failed 2" in printed and "timeout 1" in printed and "memory 1" in printed
    assert "mean score 0.2857 over 7" in printed


def test_settings_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--time_limit_s: expected a positive number, got 0"):
        CodeExec(time_limit_s=0)
    with pytest.raises(ValueError, match="--workers: expected at least 1, got 0"):
        CodeExec(workers=0)
    source = write_rows(tmp_path / "in.jsonl", [{"id": "x", "query": "q", "tests": 3, "responses": {"a": "", "b": ""}}])
    with pytest.raises(SystemExit, match=r"in\.jsonl \(id='x'\): field 'tests': expected Python source"):
        main(["score", str(source), "--scorer", "code_exec", "--out", str(tmp_path / "o.jsonl")])
