"""Running ``zooter`` in a process of its own, as the DDP, kill and W&B tests must.

Lightning's DDP launcher re-runs the command line per rank, a ``SIGKILL`` must not take pytest with it,
and W&B keeps per-process state: these tests spawn ``python -m zooter ...`` (or ``python tests/chaos.py
...``) with the environment below, and on an unexpected exit status fail with the end of its output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
TIMEOUT = 300  # seconds: a hung run (e.g. a DDP rank waiting for a dead peer) fails instead of hanging


def zooter_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment, offline, quiet, with tests/ on ``PYTHONPATH`` (for ``chaos``), plus ``env``."""
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    base = {"HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": path}
    return {**os.environ, **base, **(env or {})}


def zooter_command(argv: list[str] | tuple[str, ...], script: Path | None = None) -> list[str]:
    """``python -m zooter ARGV``, or ``python SCRIPT ARGV`` (e.g. tests/chaos.py)."""
    return [sys.executable, *([str(script)] if script else ["-m", "zooter"]), *argv]


def output_tail(done: subprocess.CompletedProcess, chars: int = 4000) -> str:
    """The end of a finished process's stdout and stderr, for a failure message."""
    streams = (("stdout", done.stdout), ("stderr", done.stderr))
    return "\n".join(f"--- {name}, last {chars} characters ---\n{text[-chars:]}" for name, text in streams if text)


def run_zooter(
    *argv: str,
    env: Mapping[str, str] | None = None,
    script: Path | None = None,
    timeout: float = TIMEOUT,
    expect: int | None = 0,
    **popen: Any,
) -> subprocess.CompletedProcess:
    """Run ``zooter ARGV`` (or ``SCRIPT ARGV``) to the end, in the repository root, output captured.

    ``expect``: the exit status it must end with (negative: killed by that signal), else the test fails
    with the tail of its output; ``None``: any status, for the caller to check. ``popen``: further
    ``subprocess.run`` arguments (e.g. ``start_new_session=True``).
    """
    command = zooter_command(argv, script)
    popen.setdefault("cwd", REPO)
    done = subprocess.run(command, env=zooter_env(env), capture_output=True, text=True, timeout=timeout, **popen)
    if expect is not None and done.returncode != expect:
        pytest.fail(
            f"zooter {' '.join(argv[:1])} exited with {done.returncode}, expected {expect}\n{output_tail(done)}",
            pytrace=False,
        )
    return done


def start_zooter(*argv: str, env: Mapping[str, str] | None = None, **popen: Any) -> subprocess.Popen:
    """Start ``zooter ARGV`` without waiting (stderr into stdout); finish it with ``finish_zooter``."""
    popen.setdefault("cwd", REPO)
    return subprocess.Popen(
        zooter_command(argv), env=zooter_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
    )


def finish_zooter(*processes: subprocess.Popen, timeout: float = TIMEOUT) -> list[str]:
    """Wait for processes from ``start_zooter``, in order; fail unless every one exits 0. Their outputs."""
    outputs = [process.communicate(timeout=timeout)[0] for process in processes]
    failed = [
        f"process {i} ({' '.join(p.args[3:4])}) exited with {p.returncode}\n{out[-3000:]}"
        for i, (p, out) in enumerate(zip(processes, outputs, strict=True))
        if p.returncode != 0
    ]
    if failed:
        pytest.fail("\n".join(failed), pytrace=False)
    return outputs
