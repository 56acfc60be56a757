"""Calls to the upstreams: retries with backoff, then the next candidate in the order given.

One upstream call fails *retryably* on a timeout (``timeout_s`` to connect or between received
bytes), a refused or dropped connection, or a 5xx answer; it is retried ``retries`` times, the first
retry after about ``backoff_s`` seconds, each further one after twice as long (±10% jitter, as
:mod:`zooter.pipeline.generate`). When the retries are spent the request moves to the next candidate
of the order (:meth:`zooter.serve.rules.Decider.fallback_order`: by router probability); each move is
kept in :attr:`Answer.failures` and counted in the metrics. A 2xx or 4xx answer ends the search: a 4xx
is the client's to read, as the upstream gave it. When every candidate failed the gateway answers 502
(504 if each failure was a timeout).

A streamed answer (``stream: true``) is handed on once its status is known: failures before the first
byte move on as above; a stream that breaks later cannot (the client already has part of one answer),
so its last event is an OpenAI-shaped ``error`` (the ``openai`` client raises it) and the metrics count
the attempt as ``broken_stream``.

The client is one pooled ``aiohttp.ClientSession`` (no limit on connections; keep-alive): a call costs
about a quarter of the CPU of an ``httpx.AsyncClient`` one (0.2-0.3 against 0.95-1.5 ms per request
on loopback, 2 busy cores), which is most of what a gateway adds on a small machine.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from zooter.serve.metrics import Metrics
from zooter.serve.protocol import ApiError
from zooter.serve.upstreams import Upstream

JITTER = 0.1  # a retry waits backoff · 2^k · (1 + U(0, JITTER))
BROKEN = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)  # refused, dropped, cut short


class _Retryable(Exception):
    """One failed call that may succeed if tried again; ``outcome`` is its metrics label."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class Failure:
    """An upstream given up on: the last error and how many calls were made."""

    candidate: str
    error: str
    outcome: str  # of the last call: timeout, connection or 5xx
    attempts: int

    def as_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "error": self.error, "outcome": self.outcome, "attempts": self.attempts}


@dataclass
class Answer:
    """The upstream answer to hand on: ``body`` read whole, except for a streamed 2xx (``body`` None:
    :meth:`Forwarder.relay` it from ``response``)."""

    candidate: str
    response: aiohttp.ClientResponse
    body: bytes | None
    failures: list[Failure] = field(default_factory=list)

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def is_success(self) -> bool:
        return 200 <= self.response.status < 300

    @property
    def content_type(self) -> str | None:
        return self.response.headers.get("Content-Type")


class Forwarder:
    """Sends chat completion requests to the upstreams (see the module docstring)."""

    def __init__(self, upstreams: Mapping[str, Upstream], metrics: Metrics, session: aiohttp.ClientSession) -> None:
        self.upstreams, self.metrics, self.session = upstreams, metrics, session

    async def send(self, order: Sequence[str], body: dict[str, Any], stream: bool) -> Answer:
        """The first answer of the candidates in ``order`` that is not a retryable failure."""
        failures: list[Failure] = []
        for i, name in enumerate(order):
            try:
                answer = await self._with_retries(self.upstreams[name], body, stream)
            except _Retryable as err:
                failures.append(Failure(name, str(err), err.outcome, self.upstreams[name].retries + 1))
                if i + 1 < len(order):
                    self.metrics.fallbacks.labels(name, order[i + 1]).inc()
                continue
            answer.failures = failures
            return answer
        raise ApiError(
            504 if all(f.outcome == "timeout" for f in failures) else 502,
            "no upstream answered: " + "; ".join(f"{f.candidate}: {f.error} ({f.attempts} attempts)" for f in failures),
            code="upstream_unavailable",
            kind="upstream_error",
        )

    async def relay(self, answer: Answer) -> AsyncIterator[bytes]:
        """The bytes of a streamed answer as they come; an OpenAI-shaped error event if the stream breaks."""
        try:
            async for chunk in answer.response.content.iter_any():
                yield chunk
        except (*BROKEN, TimeoutError) as err:
            self.metrics.attempts.labels(answer.candidate, "broken_stream").inc()
            message = f"upstream {answer.candidate} broke off the stream: {type(err).__name__}: {err}"
            error = ApiError(502, message, code="upstream_stream_broken", kind="upstream_error")
            yield f"\n\ndata: {json.dumps(error.body())}\n\n".encode()
        finally:
            answer.response.close()

    async def _with_retries(self, upstream: Upstream, body: dict[str, Any], stream: bool) -> Answer:
        payload = json.dumps({**body, "model": upstream.model}).encode()
        for attempt in range(upstream.retries + 1):
            if attempt:
                await asyncio.sleep(upstream.backoff_s * 2 ** (attempt - 1) * (1 + random.uniform(0, JITTER)))
            try:
                return await self._once(upstream, payload, stream)
            except _Retryable as err:
                last = err
        raise last

    async def _once(self, upstream: Upstream, payload: bytes, stream: bool) -> Answer:
        """One call: the answer (read whole unless it is a streamed 2xx), or :class:`_Retryable`."""
        headers = {**upstream.headers, "Content-Type": "application/json"}
        timeout = aiohttp.ClientTimeout(sock_connect=upstream.timeout_s, sock_read=upstream.timeout_s)
        start = time.perf_counter()
        try:
            response = await self.session.post(upstream.chat_url, data=payload, headers=headers, timeout=timeout)
            try:
                body = None if stream and 200 <= response.status < 300 else await response.read()
            except BaseException:
                response.close()
                raise
        except TimeoutError as err:
            message = f"timeout after {upstream.timeout_s:g} s ({type(err).__name__})"
            raise self._failed(upstream, start, "timeout", message) from err
        except BROKEN as err:
            raise self._failed(upstream, start, "connection", f"{type(err).__name__}: {err}") from err
        if response.status >= 500:
            text = (body or b"").decode("utf-8", "replace")[:200]
            raise self._failed(upstream, start, "5xx", f"HTTP {response.status}: {text}")
        self._observe(upstream, start, "ok" if response.status < 400 else "4xx")
        return Answer(upstream.name, response, body)

    def _failed(self, upstream: Upstream, start: float, outcome: str, message: str) -> _Retryable:
        self._observe(upstream, start, outcome)
        return _Retryable(message, outcome)

    def _observe(self, upstream: Upstream, start: float, outcome: str) -> None:
        self.metrics.attempts.labels(upstream.name, outcome).inc()
        self.metrics.upstream_seconds.labels(upstream.name).observe(time.perf_counter() - start)
