"""``zooter serve`` as a user starts it: its own process, the checkpoint loaded after the port opens,
SIGTERM finishing the request in flight, and a router the upstreams do not cover stopping it with a message.
Slow: each process imports torch and loads the router (several seconds)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from helpers import run_zooter, start_zooter
from test_serve import FakeUpstream, ask, client, serve
from zooter.inference import Router

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_upstreams(path: Path, url: str, names: list[str]) -> Path:
    spec = {name: {"base_url": f"{url}/v1", "model": f"fake-{name}", "timeout_s": 5} for name in names}
    path.write_text(yaml.safe_dump({"defaults": {"retries": 1, "backoff_s": 0.05}, "upstreams": spec}))
    return path


def test_the_process_is_ready_after_loading_and_finishes_requests_on_sigterm(quickstart_run, tmp_path) -> None:
    router = Router.from_checkpoint(quickstart_run.last)
    query = "Prove that sqrt(2) is irrational."
    (expected,) = router.route(query)
    fake = FakeUpstream()
    with serve(fake.app) as (url, _):
        upstreams = write_upstreams(tmp_path / "upstreams.yaml", url, router.candidates)
        port = free_port()
        args = ("serve", "--ckpt_path", str(quickstart_run.last), "--upstreams", str(upstreams), "--port", str(port))
        process = start_zooter(*args)
        base, statuses = f"http://127.0.0.1:{port}", []
        deadline = time.monotonic() + 60
        while not statuses or statuses[-1] != 200:
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
            try:
                statuses.append(httpx.get(f"{base}/health").status_code)
            except httpx.TransportError:
                time.sleep(0.05)
        assert 503 in statuses  # the port opened before the router was ready
        headers, completion = ask(client(base), "zooter", query)
        assert headers["x-zooter-candidate"] == expected.candidate
        assert completion.choices[0].message.content == f"fake-{expected.candidate} answers: {query}"

        fake.behaviour[f"fake-{expected.candidate}"] = "slow"
        results: list[str] = []
        thread = threading.Thread(target=lambda: results.append(ask(client(base), "zooter", query)[1]))
        thread.start()
        while fake.calls[f"fake-{expected.candidate}"] < 2:
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        thread.join(10)
        output = process.communicate(timeout=30)[0]
        assert process.returncode == -signal.SIGTERM, output  # uvicorn re-raises the signal once it has finished
        assert [r.choices[0].message.content for r in results] == [f"fake-{expected.candidate} answers: {query}"]
        assert "router loaded in" in output and "Finished server process" in output


def test_a_router_the_upstreams_do_not_cover_stops_the_server_with_a_message(quickstart_run, tmp_path) -> None:
    upstreams = write_upstreams(tmp_path / "upstreams.yaml", "http://127.0.0.1:9", ["writer"])
    args = ("--ckpt_path", str(quickstart_run.last), "--upstreams", str(upstreams), "--port", str(free_port()))
    done = run_zooter("serve", *args, expect=1, timeout=120)
    assert f"zooter serve: error: {upstreams}: no upstream for the router's candidates" in done.stderr
    assert "Traceback" not in done.stderr
