"""``--scorer code_exec``: run a response's code against the row's unit tests; pass = 1, anything else = 0.

The code is the response's first fenced block tagged ``python``, ``py`` or ``python3`` (else its first
untagged fenced block; an unclosed fence runs to the end of the text, as in a response cut short),
else the whole response. The tests are the row field ``--tests_field`` (default ``tests``): Python
source, or a list of statements (MBPP's asserts) joined by newlines. They run after the code, in the
same namespace, and must check at top level (HumanEval: append ``check(<entry_point>)`` to its ``test``);
the namespace's ``__name__`` is ``"solution"``, so neither side's ``if __name__ == "__main__":`` block runs.

Each unit runs in a fresh Python process (``sys.executable -I -c <runner>``, never in zooter's
process), ``--workers`` at a time, and the reason is recorded:

- ``passed`` (score 1): the code and the tests ran to the end;
- ``failed: <exception line>`` (0): an exception (``AssertionError``, ``NameError: ...``), ``SystemExit``
  included; also a process that exits or dies before the tests finish (``os._exit``, a signal);
- ``timeout`` (0): still running after ``--time_limit_s`` seconds of wall time (interpreter start
  included); the whole process group is killed;
- ``memory`` (0): a ``MemoryError`` under the ``--memory_limit_mb`` address-space limit;
- ``syntax: <message>`` (0): the code (or the tests) do not compile.

The sandbox, and what it does not do:

- limits, set by the runner in the child before any of the code runs, soft and hard (the code cannot
  raise them): ``RLIMIT_AS`` = the memory limit (virtual address space, so a program that maps a lot
  without touching it is stopped too), ``RLIMIT_CPU`` = the time limit's whole seconds + 2 (a backstop
  that also holds for a process that left the group), ``RLIMIT_FSIZE`` = 16 MiB per file written (output
  included), no core files. They are set in the child, not by ``preexec_fn``, which is unsafe with the
  worker threads;
- a temporary working directory, removed afterwards, also ``HOME`` and ``TMPDIR``; an environment of
  only ``PATH``, ``HOME``, ``TMPDIR`` and ``LANG``; ``-I`` (no ``PYTHON*`` variables, no user site
  directory, not the script's directory on ``sys.path``). The interpreter's own installed packages
  (numpy, ...) can be imported;
- network: where the kernel lets an unprivileged user create namespaces (``unshare -Un`` works), each
  process runs in its own user and network namespace, which has no interface but a loopback that is
  down: no connection, to the internet or to this machine, can be made. Everywhere, the runner also
  replaces ``_socket.socket`` (which ``socket.socket`` calls to make every socket) with a class that
  refuses every family but ``AF_UNIX`` (``PermissionError``; ``asyncio``'s socket pairs still work), and
  the name lookups (``getaddrinfo``, ``gethostbyname``, ...) with functions that refuse.
  That stops ordinary code (``socket``, ``urllib``, ``http.client``, ``requests``) but not code that
  goes around it (``ctypes``, a subprocess running ``curl`` or another Python): without the namespace,
  such code reaches the network. The run prints which applies;
- not a sandbox for hostile code: the files the user can read stay readable, processes can be started,
  a process that leaves the group with ``setsid`` survives the timeout kill, and code can find the
  runner's result marker. Run untrusted code in a container or VM without a network.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from zooter.pipeline.scorers.base import Key, Stopped, Unit, Verdict, row_field, run_parallel
from zooter.table.schema import TableError

OUTPUT_LIMIT = 16 * 2**20  # bytes per file the code writes, its stdout and stderr included
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.DOTALL | re.MULTILINE)
_PYTHON_TAGS = {"python", "py", "python3"}

# Runs in the child: limits, the socket block, then the code and the tests; the verdict is one line on the
# stdout it had at start, after a marker it reads from stdin (so that the code's own output cannot fake it).
RUNNER = r"""
import json, os, resource, socket, sys, traceback, _socket

def _main():
    marker = sys.stdin.readline().strip()
    limits = json.loads(sys.argv[1])
    for name, value in (("RLIMIT_AS", limits["memory"]), ("RLIMIT_CPU", limits["cpu"]),
                        ("RLIMIT_FSIZE", limits["fsize"]), ("RLIMIT_CORE", 0)):
        resource.setrlimit(getattr(resource, name), (value, value))

    original = _socket.socket

    class NoNetworkSocket(original):  # socket.socket.__init__ calls _socket.socket.__init__: both are blocked
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            if family != socket.AF_UNIX:
                raise PermissionError("network access is disabled in zooter code_exec")
            original.__init__(self, family, type, proto, fileno)

    def no_lookup(*args, **kwargs):
        raise PermissionError("network access is disabled in zooter code_exec")

    _socket.socket = NoNetworkSocket
    for module in (socket, _socket):  # name lookups go through the C library, not through a socket object
        for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
            setattr(module, name, no_lookup)
    out = os.dup(1)

    def report(kind, detail=""):
        os.write(out, ("\n" + marker + json.dumps([kind, detail]) + "\n").encode())
        os._exit(0)

    try:
        code = compile(open("solution.py", encoding="utf-8").read(), "solution.py", "exec")
        tests = compile(open("tests.py", encoding="utf-8").read(), "tests.py", "exec")
    except SyntaxError as err:
        report("syntax", f"{type(err).__name__}: {err.msg} ({err.filename} line {err.lineno})")
    except ValueError as err:  # e.g. a null byte in the source
        report("syntax", f"{type(err).__name__}: {err}")
    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    sys.stdin = open(os.devnull)
    try:
        exec(code, namespace)
        exec(tests, namespace)
    except MemoryError:
        report("memory")
    except BaseException as err:
        report("failed", traceback.format_exception_only(err)[-1].strip()[:500])
    report("passed")

_main()
"""


@cache
def unshare_command() -> tuple[str, ...]:
    """``("unshare", "-Un", "--")`` where an unprivileged user and network namespace can be made, else ``()``."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    try:
        done = subprocess.run([unshare, "-Un", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return (unshare, "-Un", "--") if done.returncode == 0 else ()


def extract_code(response: str) -> str:
    """The code to run: the first python-tagged fenced block, else the first untagged one, else the text."""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(response)]
    for wanted in (lambda tag: tag in _PYTHON_TAGS, lambda tag: tag == ""):
        for tag, body in blocks:
            if wanted(tag):
                return body
    return response


def tests_source(value: Any) -> str | None:
    """The tests as Python source (a list of statements is joined by newlines), or None if not text."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(line, str) for line in value):
        return "\n".join(value)
    return None


def _verdict(stdout: bytes, marker: str, returncode: int) -> Verdict:
    """The runner's verdict line, or what the exit status says when the process ended without one."""
    for line in reversed(stdout.decode("utf-8", errors="replace").splitlines()):
        if line.startswith(marker):
            kind, detail = json.loads(line[len(marker) :])
            return Verdict(1.0 if kind == "passed" else 0.0, f"{kind}: {detail}" if detail else kind)
    if returncode < 0:
        return Verdict(0.0, f"failed: killed by {signal.Signals(-returncode).name} before the tests finished")
    return Verdict(0.0, f"failed: exited with status {returncode} before the tests finished")


def _tail(path: Path, limit: int = 1 << 16) -> bytes:
    with path.open("rb") as f:
        f.seek(max(path.stat().st_size - limit, 0))
        return f.read()


@dataclass
class CodeExec:
    """Unit tests in a separate Python process per response.

    Args:
        tests_field: the row field with the unit tests (Python source or a list of statements).
        time_limit_s: wall-time limit of one run, interpreter start included.
        memory_limit_mb: address-space limit of one run, in MiB.
        workers: runs at once.
    """

    tests_field: str = "tests"
    time_limit_s: float = 10.0
    memory_limit_mb: int = 1024
    workers: int = 4
    namespace: tuple[str, ...] = field(default_factory=unshare_command)

    def __post_init__(self) -> None:
        for flag, value, low in (("time_limit_s", self.time_limit_s, 0), ("memory_limit_mb", self.memory_limit_mb, 0)):
            if value <= low:
                raise ValueError(f"--{flag}: expected a positive number, got {value}")
        if self.workers < 1:
            raise ValueError(f"--workers: expected at least 1, got {self.workers}")

    @property
    def name(self) -> str:
        return "code_exec"

    def spec(self) -> dict[str, Any]:
        limits = {"time_limit_s": self.time_limit_s, "memory_limit_mb": self.memory_limit_mb}
        return {"tests_field": self.tests_field, **limits, "python": sys.executable}

    def describe(self) -> str:
        network = "a network namespace and a socket block" if self.namespace else "a Python-level socket block only"
        return (
            f"{self.workers} process(es) at once, {self.time_limit_s:g} s and {self.memory_limit_mb} MiB each, "
            f"network off by {network}"
        )

    def check(self, rows: Sequence[Mapping[str, Any]], source: Path) -> None:
        for row in rows:
            value = row_field(row, self.tests_field, source, "unit tests (Python source or a list of statements)")
            if tests_source(value) is None:
                raise TableError(
                    f"{source} (id={row['id']!r}): field {self.tests_field!r}: expected Python source or a "
                    f"non-empty list of statements, got {value!r}"
                )

    def run(self, code: str, tests: str) -> Verdict:
        """One program in a fresh, limited Python process in a temporary directory."""
        marker = f"@zooter-{secrets.token_hex(16)}@"
        limits = {
            "memory": self.memory_limit_mb * 2**20,
            "cpu": int(self.time_limit_s) + 2,
            "fsize": OUTPUT_LIMIT,
        }
        with tempfile.TemporaryDirectory(prefix="zooter-code-", ignore_cleanup_errors=True) as tmp:
            work = Path(tmp)
            (work / "solution.py").write_text(code, encoding="utf-8")
            (work / "tests.py").write_text(tests, encoding="utf-8")
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8"}
            command = [*self.namespace, sys.executable, "-I", "-c", RUNNER, json.dumps(limits)]
            with (work / ".stdout").open("wb") as stdout:
                process = subprocess.Popen(
                    command, cwd=tmp, env=env, stdin=subprocess.PIPE, stdout=stdout,
                    stderr=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
                try:
                    try:
                        process.communicate(f"{marker}\n".encode(), timeout=self.time_limit_s)
                    except subprocess.TimeoutExpired:
                        return Verdict(0.0, "timeout")
                finally:
                    with contextlib.suppress(ProcessLookupError):  # the whole group: also what the code started
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            return _verdict(_tail(work / ".stdout"), marker, process.returncode)

    def _work(self, unit: Unit, stop: threading.Event) -> Verdict:
        if stop.is_set():
            raise Stopped
        return self.run(extract_code(unit.response), tests_source(unit.row[self.tests_field]) or "")

    def score(self, units: Sequence[Unit]) -> Iterator[list[tuple[Key, Verdict]]]:
        return run_parallel(self._work, units, self.workers)
