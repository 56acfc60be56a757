"""A fake OpenAI-compatible chat completions server on 127.0.0.1, for the ``generate`` and ``llm_judge`` tests."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

Respond = Callable[[str, str, int], "tuple[int, dict[str, str], dict[str, Any]] | None"]


@contextmanager
def fake_server(respond: Respond | None = None, key: str = "sekrit", delay: float = 0.02) -> Iterator[Any]:
    """An OpenAI-compatible chat completions server answering ``echo: <query> from <model>``.

    ``respond(model, query, n)`` (n: the how-many-th request for that model and query) may return
    ``(status, headers, body)`` to answer with that instead (an error, or a judge's verdict: see ``answer``).
    ``state`` counts requests per (model, query) and records bodies, Authorization headers and the most
    requests in flight at once.
    """
    state = SimpleNamespace(
        counts=Counter(), bodies=[], auth=[], in_flight=0, max_in_flight=0, lock=threading.Lock(), respond=respond
    )

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            model, query = body["model"], body["messages"][0]["content"]
            with state.lock:
                state.counts[model, query] += 1
                n = state.counts[model, query]
                state.bodies.append(body)
                state.auth.append(self.headers.get("Authorization"))
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            time.sleep(delay)
            with state.lock:
                state.in_flight -= 1
            answer = {
                "choices": [{"index": 0, "message": {"role": "assistant", "content": f"echo: {query} from {model}"}}]
            }
            status, headers, payload = 200, {}, answer
            if self.path != "/v1/chat/completions":
                status, payload = 404, {"error": {"message": f"no route {self.path}"}}
            elif self.headers.get("Authorization") != f"Bearer {key}":
                status, payload = 401, {"error": {"message": "bad key"}}
            elif state.respond and (error := state.respond(model, query, n)):
                status, headers, payload = error
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch) -> None:
    """Requests to the loopback server must not go through a proxy from the environment."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def answer(content: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    """A ``respond`` result: HTTP 200 with ``content`` as the assistant's message."""
    return 200, {}, {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
