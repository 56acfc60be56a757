"""``zooter serve``: the official ``openai`` client against the gateway on 127.0.0.1 (uvicorn in a thread),
with fake upstream servers on loopback that answer, stream, stall, fail and reject; decisions checked
against ``Router.route`` of the session's quickstart router."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from zooter.calibration import file_sha256, write_calibration
from zooter.inference import Router
from zooter.serve.app import Gateway, Loaded
from zooter.serve.batching import MicroBatcher
from zooter.serve.command import load_calibrations
from zooter.serve.protocol import ApiError
from zooter.serve.rules import Decider, Rule, parse_rule
from zooter.serve.upstreams import Upstream, UpstreamsError, check_candidates, load_upstreams, prices

REPO = Path(__file__).resolve().parents[1]
QUERIES = ["Prove that sqrt(2) is irrational.", "Write a haiku about rain.", "Fix this Python loop", "hi there"]
STREAM_PIECES = ["Hello", " from", " the", " stream"]


# ------------------------------------------------------------------------------------------- servers
@contextmanager
def serve(app: Starlette) -> Iterator[tuple[str, uvicorn.Server]]:
    """``app`` on uvicorn, on a free loopback port, in a thread: (base URL, server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", server
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class FakeUpstream:
    """One OpenAI-compatible fake for every candidate: ``behaviour[model]`` is ``ok`` (the default: a
    completion, or SSE chunks when streaming), ``slow`` (ok after 0.4 s), ``stall`` (no answer for 1 s),
    ``fail`` (500), ``reject`` (400) or ``break`` (a stream cut after two chunks); ``calls`` counts requests."""

    def __init__(self) -> None:
        self.behaviour: dict[str, str] = {}
        self.calls: Counter[str] = Counter()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        model = body["model"]
        self.calls[model] += 1
        behaviour = self.behaviour.get(model, "ok")
        if behaviour in ("stall", "slow"):
            await asyncio.sleep(1.0 if behaviour == "stall" else 0.4)
        if behaviour == "fail":
            return JSONResponse({"error": {"message": "engine died", "type": "server_error"}}, status_code=500)
        if behaviour == "reject":
            error = {"message": "max_tokens is too large", "type": "invalid_request_error", "param": "max_tokens"}
            return JSONResponse({"error": {**error, "code": None}}, status_code=400)
        if body.get("stream"):
            return StreamingResponse(self.chunks(model, cut=behaviour == "break"), media_type="text/event-stream")
        text = f"{model} answers: {body['messages'][-1]['content']}"
        return JSONResponse(
            {
                "id": f"chatcmpl-{model}",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
            }
        )

    async def chunks(self, model: str, cut: bool) -> AsyncIterator[bytes]:
        for i, piece in enumerate(STREAM_PIECES):
            if cut and i == 2:
                raise RuntimeError("the upstream died mid-stream")  # uvicorn drops the connection
            chunk = {
                "id": f"chatcmpl-{model}",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            yield f"data: {json.dumps(chunk)}\n\n".encode()
            await asyncio.sleep(0.01)
        yield b"data: [DONE]\n\n"


@pytest.fixture(scope="module")
def router(quickstart_run) -> Router:
    return Router.from_checkpoint(quickstart_run.last)


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[str, FakeUpstream]]:
    fake = FakeUpstream()
    with serve(fake.app) as (url, _):
        yield url, fake


@pytest.fixture
def fake(fake_server) -> FakeUpstream:
    """The fake upstream, reset for each test."""
    fake_server[1].behaviour.clear()
    fake_server[1].calls.clear()
    return fake_server[1]


PRICES = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def upstreams_for(router: Router, url: str, **fields: object) -> dict[str, Upstream]:
    """Each candidate on the fake as model ``fake-<name>``, priced 0, 1, 2, ... in candidate order."""
    settings = {"timeout_s": 0.3, "retries": 1, "backoff_s": 0.01, **fields}
    return {
        name: Upstream(name, f"{url}/v1", f"fake-{name}", price=price, **settings)
        for name, price in zip(router.candidates, PRICES, strict=True)
    }


@contextmanager
def gateway(router: Router, upstreams: dict[str, Upstream], **settings: object) -> Iterator[tuple[str, Gateway]]:
    """The gateway over an already loaded router: (base URL, gateway), once ``/health`` is ready."""
    gw = Gateway(lambda: Loaded(router), upstreams, **settings)
    with serve(gw.app()) as (url, _):
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/health").status_code != 200:
            assert time.monotonic() < deadline, "the router did not become ready"
            time.sleep(0.01)
        yield url, gw


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of the ``GET /metrics`` samples of that name with those labels (0 when none)."""
    families = text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def ask(c: openai.OpenAI, model: str, query: str, **extra: object):
    """A chat completion with its raw response: (headers, parsed completion)."""
    raw = c.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": query}], **extra
    )
    return raw.headers, raw.parse()


# ------------------------------------------------------------------------------------ pure functions
def test_upstreams_file_loads_and_errors_name_the_upstream_and_field(tmp_path) -> None:
    example = load_upstreams(REPO / "configs/serve/upstreams.example.yaml", environ={"VLLM_API_KEY": "k"})
    assert list(example) == ["generalist", "coder", "mathematician", "writer", "scientist", "chatty"]
    scientist = example["scientist"]
    assert (scientist.timeout_s, scientist.retries, scientist.price) == (300.0, 2, 0.8)
    assert scientist.chat_url == "http://gpu-5:8000/v1/chat/completions"
    assert scientist.headers == {"Authorization": "Bearer k"}
    assert prices(example, ["coder", "scientist"]) == {"coder": 0.2, "scientist": 0.8}
    with pytest.raises(UpstreamsError, match=r"upstream 'generalist': field 'api_key_env': .* VLLM_API_KEY is not"):
        load_upstreams(REPO / "configs/serve/upstreams.example.yaml", environ={})

    path = tmp_path / "up.yaml"
    cases = {
        "upstreams: {a: {model: m}}": r"upstream 'a': field 'base_url': expected an http",
        "upstreams: {a: {base_url: 'http://x', timeout_s: -1}}": r"upstream 'a': field 'timeout_s': expected a finite",
        "upstreams: {a: {base_url: 'http://x', retries: 1.5}}": r"field 'retries': expected an integer >= 0, got 1.5",
        "upstreams: {a: {base_url: 'http://x', prize: 1}}": r"upstream 'a': unknown fields \['prize'\]",
        "upstreams: {zooter: {base_url: 'http://x'}}": r"upstream 'zooter': the names 'zooter' and 'zooter:...'",
        "upstreams: {}": r"expected a mapping with 'upstreams'",
        "defaults: {base_url: 'http://x'}\nupstreams: {a: {}}": r"defaults: unknown fields \['base_url'\]",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(UpstreamsError, match=message):
            load_upstreams(path)
    path.write_text("defaults: {timeout_s: 5}\nupstreams: {a: {base_url: 'http://x/v1/'}, b: {base_url: 'http://y'}}")
    upstreams = load_upstreams(path)
    assert (upstreams["a"].chat_url, upstreams["a"].model, upstreams["a"].timeout_s) == (
        "http://x/v1/chat/completions",
        "a",
        5.0,
    )
    assert prices(upstreams, ["a", "b"]) is None
    with pytest.raises(UpstreamsError, match=r"no upstream for the router's candidates \['c'\]"):
        check_candidates(upstreams, ["a", "c"], path)


def test_model_strings_parse_to_rules() -> None:
    assert parse_rule("zooter") == Rule("zooter")
    assert parse_rule("zooter", ["share-0.5"]) == Rule("zooter", calibration="share-0.5")
    assert parse_rule("zooter:0.4") == Rule("zooter:0.4", threshold=0.4)
    assert parse_rule("zooter:λ=0.25") == Rule("zooter:λ=0.25", cost_weight=0.25)
    assert parse_rule("zooter:lambda=2") == Rule("zooter:lambda=2", cost_weight=2.0)
    assert parse_rule("zooter:share-0.5", ["share-0.5"]) == Rule("zooter:share-0.5", calibration="share-0.5")
    for model, message in [
        ("zooter:1.5", "the threshold must be between 0 and 1, got '1.5'"),
        ("zooter:λ=-1", "the cost weight λ must be a finite number >= 0"),
        ("zooter:fast", "expected zooter, zooter:<threshold 0-1>, zooter:λ=<cost weight>"),
    ]:
        with pytest.raises(ApiError, match=message) as err:
            parse_rule(model)
        assert (err.value.status, err.value.param) == (400, "model")


def test_decider_applies_the_rule_by_hand() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.36, 0.34, 0.30]])
    decider = Decider(["a", "b", "c"], "b", {"a": 1.0, "b": 0.5, "c": 0.0})
    assert decider.decide(probs, Rule("zooter"))[0].tolist() == [0, 0]
    choice, fallback = decider.decide(probs, Rule("zooter:0.4", threshold=0.4))  # row 2: max 0.36 < 0.4 -> BMA b
    assert (choice.tolist(), fallback.tolist()) == ([0, 1], [False, True])
    # λ = 0.3: utilities [0.2, 0.15, 0.2] -> a (first max); [0.06, 0.19, 0.30] -> c
    assert decider.decide(probs, Rule("zooter:λ=0.3", cost_weight=0.3))[0].tolist() == [0, 2]
    assert decider.fallback_order(np.array([0.2, 0.5, 0.3]), chosen=0) == ["a", "b", "c"]
    assert decider.fallback_order(np.array([0.2, 0.4, 0.4]), chosen=2) == ["c", "b", "a"]
    with pytest.raises(ApiError, match="λ needs a 'price' for every candidate"):
        Decider(["a"], None, None).check(Rule("zooter:λ=1", cost_weight=1.0))
    with pytest.raises(ApiError, match="a threshold needs the best single model"):
        Decider(["a"], None, None).check(Rule("zooter:0.5", threshold=0.5))


def test_batcher_batches_concurrent_requests_and_keeps_the_loop_free() -> None:
    batches: list[list[str]] = []

    def compute(queries: list[str]) -> np.ndarray:
        batches.append(queries)
        time.sleep(0.15)  # the model: the event loop must keep running meanwhile
        return np.array([[float(q)] for q in queries])

    async def scenario(max_batch: int, max_wait_s: float) -> tuple[list[np.ndarray], int]:
        batcher = MicroBatcher(compute, max_batch=max_batch, max_wait_s=max_wait_s)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            for _ in range(20):
                await asyncio.sleep(0.01)
                ticks += 1

        results = await asyncio.gather(*(batcher.submit([str(i), str(10 + i)]) for i in range(5)), tick())
        await batcher.close()
        return results[:5], ticks

    results, ticks = asyncio.run(scenario(max_batch=64, max_wait_s=0.05))
    assert batches == [["0", "10", "1", "11", "2", "12", "3", "13", "4", "14"]]  # one call for all five
    assert [r.ravel().tolist() for r in results] == [[i, 10 + i] for i in range(5)]
    assert ticks == 20  # the ticker ran through the model's 0.15 s
    batches.clear()
    results, _ = asyncio.run(scenario(max_batch=3, max_wait_s=0.0))
    assert [len(b) for b in batches] == [4, 4, 2]  # closed once >= 3 queries (a request is never split)
    assert [r.ravel().tolist() for r in results] == [[i, 10 + i] for i in range(5)]

    async def lone_client() -> float:  # one request at a time: never waits for company
        batcher = MicroBatcher(compute, max_batch=64, max_wait_s=5.0)
        start = time.perf_counter()
        for i in range(3):
            await batcher.submit([str(i)])
        await batcher.close()
        return time.perf_counter() - start

    batches.clear()
    assert asyncio.run(lone_client()) < 2.0 and batches == [["0"], ["1"], ["2"]]


# ------------------------------------------------------------------------------------ the gateway
def test_routed_completions_go_where_router_route_sends_them(router, fake_server, fake) -> None:
    url, _ = fake_server
    costs = dict(zip(router.candidates, PRICES, strict=True))
    with gateway(router, upstreams_for(router, url)) as (gw, _):
        c = client(gw)
        rules = [
            ("zooter", {}),
            ("zooter:0.5", {"threshold": 0.5}),
            ("zooter:λ=0.02", {"costs": costs, "cost_weight": 0.02}),
        ]
        for model, kwargs in rules:
            for query in QUERIES:
                (expected,) = router.route(query, **kwargs)
                headers, completion = ask(c, model, query)
                assert headers["x-zooter-candidate"] == expected.candidate, (model, query)
                assert float(headers["x-zooter-probability"]) == pytest.approx(expected.probability, abs=1e-5)
                assert completion.choices[0].message.content == f"fake-{expected.candidate} answers: {query}"
                info = completion.model_extra["zooter"]
                assert (info["candidate"], info["chosen"], info["fallback"], info["failures"]) == (
                    expected.candidate,
                    expected.candidate,
                    expected.fallback,
                    [],
                )
        assert any(router.route(q, threshold=0.5)[0].fallback for q in QUERIES)  # the threshold did something
        assert metric(gw, "zooter_completions_total", how="routed") == 3 * len(QUERIES)
        assert metric(gw, "zooter_routing_seconds_count") == 3 * len(QUERIES)


def test_direct_names_the_models_list_and_the_route_endpoint(router, fake_server, fake) -> None:
    url, _ = fake_server
    with gateway(router, upstreams_for(router, url)) as (gw, _):
        headers, completion = ask(client(gw), "coder", "anything")
        assert headers["x-zooter-candidate"] == "coder" and "x-zooter-probability" not in headers
        assert completion.choices[0].message.content == "fake-coder answers: anything"
        assert completion.model_extra["zooter"]["probability"] is None
        assert [m.id for m in client(gw).models.list()] == ["zooter", *router.candidates]

        answer = httpx.post(f"{gw}/v1/route", json={"queries": QUERIES, "model": "zooter:0.5"}).json()
        for row, expected in zip(answer["data"], router.route(QUERIES, threshold=0.5), strict=True):
            assert (row["candidate"], row["fallback"]) == (expected.candidate, expected.fallback)
            assert row["probabilities"] == pytest.approx(expected.probabilities, abs=1e-5)
        assert metric(gw, "zooter_completions_total", candidate="coder", how="direct") == 1


def test_streaming_passes_the_chunks_through(router, fake_server, fake) -> None:
    url, _ = fake_server
    (expected,) = router.route(QUERIES[0])
    with gateway(router, upstreams_for(router, url)) as (gw, _):
        stream = client(gw).chat.completions.create(
            model="zooter", messages=[{"role": "user", "content": QUERIES[0]}], stream=True
        )
        assert stream.response.headers["x-zooter-candidate"] == expected.candidate
        chunks = list(stream)
        assert [ch.choices[0].delta.content for ch in chunks] == STREAM_PIECES
        assert {ch.model for ch in chunks} == {f"fake-{expected.candidate}"}

        fake.behaviour[f"fake-{expected.candidate}"] = "break"
        stream = client(gw).chat.completions.create(
            model="zooter", messages=[{"role": "user", "content": QUERIES[0]}], stream=True
        )
        with pytest.raises(openai.APIError, match=f"upstream {expected.candidate} broke off the stream"):
            list(stream)
        assert metric(gw, "zooter_upstream_attempts_total", candidate=expected.candidate, outcome="broken_stream") == 1


def test_stalled_failing_and_refusing_upstreams_fall_back_by_router_probability(router, fake_server, fake) -> None:
    url, _ = fake_server
    query = QUERIES[1]
    (expected,) = router.route(query)
    order = sorted(router.candidates, key=lambda c: -expected.probabilities[c])
    assert order[0] == expected.candidate
    fake.behaviour.update({f"fake-{order[0]}": "stall", f"fake-{order[1]}": "fail"})
    with gateway(router, upstreams_for(router, url)) as (gw, _):
        start = time.monotonic()
        headers, completion = ask(client(gw), "zooter", query)
        took = time.monotonic() - start
        assert headers["x-zooter-candidate"] == order[2]
        assert headers["x-zooter-failed"] == f"{order[0]},{order[1]}"
        assert completion.choices[0].message.content == f"fake-{order[2]} answers: {query}"
        info = completion.model_extra["zooter"]
        assert (info["chosen"], info["probability"]) == (order[0], pytest.approx(expected.probabilities[order[2]]))
        assert [(f["candidate"], f["outcome"], f["attempts"]) for f in info["failures"]] == [
            (order[0], "timeout", 2),
            (order[1], "5xx", 2),
        ]
        assert "HTTP 500" in info["failures"][1]["error"]
        assert fake.calls[f"fake-{order[1]}"] == 2  # one try, one retry
        assert 0.6 <= took < 2.5  # two timeouts of 0.3 s, short backoffs
        assert metric(gw, "zooter_fallbacks_total", from_candidate=order[0], to_candidate=order[1]) == 1
        assert metric(gw, "zooter_fallbacks_total", from_candidate=order[1], to_candidate=order[2]) == 1
        assert metric(gw, "zooter_upstream_attempts_total", candidate=order[0], outcome="timeout") == 2
        assert metric(gw, "zooter_upstream_attempts_total", candidate=order[1], outcome="5xx") == 2
        assert metric(gw, "zooter_completions_total", candidate=order[2], how="fallback") == 1

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there: connections are refused
    upstreams = upstreams_for(router, url)
    upstreams[order[0]] = Upstream(order[0], refused, "x", timeout_s=0.3, retries=2, backoff_s=0.01)
    fake.behaviour.clear()
    with gateway(router, upstreams) as (gw, _):
        headers, completion = ask(client(gw), "zooter", query)
        assert headers["x-zooter-candidate"] == order[1]
        (failure,) = completion.model_extra["zooter"]["failures"]
        assert (failure["candidate"], failure["outcome"], failure["attempts"]) == (order[0], "connection", 3)

        fake.behaviour.update({f"fake-{c}": "fail" for c in order[1:]})  # now every candidate fails
        with pytest.raises(openai.APIStatusError, match="no upstream answered") as err:
            ask(client(gw), "zooter", query)
        assert err.value.status_code == 502
        assert err.value.body["code"] == "upstream_unavailable"


def test_a_4xx_is_returned_as_is_and_not_retried(router, fake_server, fake) -> None:
    url, _ = fake_server
    (expected,) = router.route(QUERIES[2])
    fake.behaviour[f"fake-{expected.candidate}"] = "reject"
    with gateway(router, upstreams_for(router, url)) as (gw, _):
        with pytest.raises(openai.BadRequestError, match="max_tokens is too large") as err:
            ask(client(gw), "zooter", QUERIES[2], max_tokens=10**9)
        assert err.value.response.headers["x-zooter-candidate"] == expected.candidate
        assert err.value.param == "max_tokens"
        assert fake.calls[f"fake-{expected.candidate}"] == 1 and sum(fake.calls.values()) == 1
        assert metric(gw, "zooter_upstream_attempts_total", candidate=expected.candidate, outcome="4xx") == 1


def test_malformed_requests_get_400s_naming_the_field(router, fake_server, fake) -> None:
    url, _ = fake_server
    upstreams = upstreams_for(router, url)
    upstreams[router.candidates[0]] = Upstream(router.candidates[0], f"{url}/v1", "fake", price=None)
    chat = {"model": "zooter", "messages": [{"role": "user", "content": "hi"}]}
    cases = [
        (b"{not json", 400, None, "the request body is not valid JSON"),
        (b"[1, 2]", 400, None, "the request body must be a JSON object, got list"),
        ({**chat, "model": 3}, 400, "model", "'model' must be a non-empty string, got 3"),
        ({"model": "zooter"}, 400, "messages", "'messages' must be a non-empty list of messages, got None"),
        ({**chat, "messages": ["hi"]}, 400, "messages[0]", "messages[0] must be an object"),
        ({**chat, "messages": [{"content": "hi"}]}, 400, "messages[0].role", "messages[0].role must be a string"),
        ({**chat, "stream": "yes"}, 400, "stream", "'stream' must be true or false, got 'yes'"),
        (
            {**chat, "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": " "}]},
            400,
            "messages[1].content",
            "messages[1].content: the last user message must hold text to route on",
        ),
        ({**chat, "messages": [{"role": "system", "content": "x"}]}, 400, "messages", "holds no user message"),
        ({**chat, "model": "zooter:2"}, 400, "model", "the threshold must be between 0 and 1"),
        ({**chat, "model": "zooter:λ=0.1"}, 400, "model", "λ needs a 'price' for every candidate"),
        ({**chat, "model": "gpt-17"}, 404, "model", "The model 'gpt-17' does not exist here"),
    ]
    with gateway(router, upstreams) as (gw, _):
        for body, status, param, message in cases:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            response = httpx.post(f"{gw}/v1/chat/completions", content=content)
            error = response.json()["error"]
            assert (response.status_code, error["param"]) == (status, param), body
            assert message in error["message"] and error["type"] == "invalid_request_error"
        response = httpx.post(f"{gw}/v1/route", json={"queries": ["ok", ""]})
        assert (response.status_code, response.json()["error"]["param"]) == (400, "queries[1]")
        response = httpx.get(f"{gw}/v1/nothing")
        assert (response.status_code, response.json()["error"]["message"]) == (404, "GET /v1/nothing: Not Found")
        with pytest.raises(openai.BadRequestError, match=r"messages\[0\]\.role must be a string"):
            client(gw).chat.completions.create(model="zooter", messages=[{"content": "hi"}])
        assert metric(gw, "zooter_requests_total", endpoint="chat", status="400") == len(cases)
        assert sum(fake.calls.values()) == 0  # nothing reached an upstream


def test_health_is_ready_only_once_the_router_is_loaded(router, fake_server, fake) -> None:
    url, _ = fake_server
    release = threading.Event()

    def slow_load() -> Loaded:
        assert release.wait(10)
        return Loaded(router)

    gw = Gateway(slow_load, upstreams_for(router, url))
    with serve(gw.app()) as (base, _):
        health = httpx.get(f"{base}/health")
        assert (health.status_code, health.json()) == (503, {"status": "loading"})
        routed = httpx.post(f"{base}/v1/route", json={"queries": ["x"]})
        assert routed.status_code == 503 and "still loading" in routed.json()["error"]["message"]
        assert ask(client(base), "writer", "early")[0]["x-zooter-candidate"] == "writer"  # by name: served
        assert metric(base, "zooter_router_ready") == 0
        release.set()
        deadline = time.monotonic() + 5
        while (health := httpx.get(f"{base}/health")).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert health.json() == {"status": "ok", "candidates": router.candidates}
        assert metric(base, "zooter_router_ready") == 1

    broken = Gateway(lambda: Loaded(router), {"writer": upstreams_for(router, url)["writer"]})
    with serve(broken.app()) as (base, _):
        deadline = time.monotonic() + 5
        while (health := httpx.get(f"{base}/health")).json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert health.status_code == 503 and "no upstream for the router's candidates" in health.json()["error"]


def test_shutdown_finishes_requests_in_flight(router, fake_server, fake) -> None:
    url, _ = fake_server
    (expected,) = router.route(QUERIES[3])
    fake.behaviour[f"fake-{expected.candidate}"] = "slow"
    results: list[str] = []
    gw = Gateway(lambda: Loaded(router), upstreams_for(router, url, timeout_s=5.0))
    with serve(gw.app()) as (base, server):
        while httpx.get(f"{base}/health").status_code != 200:
            time.sleep(0.01)
        thread = threading.Thread(target=lambda: results.append(ask(client(base), "zooter", QUERIES[3])[1]))
        thread.start()
        while fake.calls[f"fake-{expected.candidate}"] == 0:
            time.sleep(0.01)
        server.should_exit = True  # as SIGTERM does: stop accepting, finish what is in flight
        thread.join(5)
        assert [r.choices[0].message.content for r in results] == [f"fake-{expected.candidate} answers: {QUERIES[3]}"]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/health")


def test_calibrations_are_routed_models(router, quickstart_run, fake_server, fake, tmp_path) -> None:
    url, _ = fake_server
    weak, strong = router.candidates[:2]
    record = {
        "format": "zooter-calibration",
        "version": 1,
        "checkpoint": {"path": str(quickstart_run.last), "sha256": file_sha256(quickstart_run.last)},
        "data": {},
        "target": {"kind": "share", "value": 0.5},
        "rule": {
            "kind": "pair_threshold",
            "weak": router.candidates[0],
            "strong": router.candidates[1],
            "threshold": 0,
        },
    }
    path = write_calibration(tmp_path / "calibration.json", record)
    calibrations = load_calibrations([str(path), f"mine={path}"])
    assert list(calibrations) == ["share-0.5", "mine"]
    with pytest.raises(ValueError, match=r"two calibrations are named 'share-0\.5'"):
        load_calibrations([str(path), str(path)])
    loaded = Loaded(router, {n: router.checked_calibration(c) for n, c in calibrations.items()})
    gw = Gateway(lambda: loaded, upstreams_for(router, url))
    with serve(gw.app()) as (base, _):
        while httpx.get(f"{base}/health").status_code != 200:
            time.sleep(0.01)
        assert [m.id for m in client(base).models.list()][:3] == ["zooter", "zooter:share-0.5", "zooter:mine"]
        for model in ("zooter", "zooter:share-0.5"):
            for query in QUERIES:
                (expected,) = router.route(query, calibration=path)
                assert ask(client(base), model, query)[0]["x-zooter-candidate"] == expected.candidate
                assert expected.candidate in (weak, strong)


def test_serve_help_loads_nothing_heavy_and_a_missing_extra_says_what_to_install(tmp_path) -> None:
    script = "import sys; from zooter.cli import main\ntry: main({argv!r})\nexcept SystemExit as e: code = e.code\n"
    script += "heavy = ('torch', 'starlette', 'uvicorn', 'aiohttp', 'transformers')\n"
    script += "print(code, [m for m in heavy if sys.modules.get(m) is not None])"
    done = subprocess_run(script.format(argv=["serve", "--help"]))
    assert done.stdout.splitlines()[-1] == "0 []" and "--upstreams UPSTREAMS" in done.stdout
    upstreams = tmp_path / "up.yaml"
    upstreams.write_text("upstreams: {a: {base_url: 'http://x'}}")
    checkpoint = tmp_path / "c.ckpt"
    checkpoint.write_text("")
    hidden = "import sys; sys.modules['uvicorn'] = None\n" + script.format(
        argv=["serve", "--ckpt_path", str(checkpoint), "--upstreams", str(upstreams)]
    )
    done = subprocess_run(hidden)
    assert done.stdout.splitlines()[-1] == "1 []"
    assert done.stderr == (
        "zooter serve: error: zooter serve needs the 'serve' extra (uvicorn not installed): "
        "pip install 'zooter[serve]'\n"
    )
    upstreams.write_text("upstreams: {a: {base_url: 'ftp://x'}}")
    done = subprocess_run(script.format(argv=["serve", "--ckpt_path", str(checkpoint), "--upstreams", str(upstreams)]))
    assert "upstream 'a': field 'base_url'" in done.stderr and done.stdout.splitlines()[-1] == "1 []"


def subprocess_run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
