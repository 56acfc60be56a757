"""The Starlette app of ``zooter serve``: its endpoints, and the router loaded in the background.

The server accepts connections at once; the router loads on the model thread, and until it is loaded
``GET /health`` answers 503 (``{"status": "loading"}``, or ``"failed"`` with the error) and routed
requests answer 503, while requests naming a candidate are already forwarded. Every error is an
OpenAI-shaped body (:class:`zooter.serve.protocol.ApiError`); a bug is logged with its traceback and
answered 500 in the same shape.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from zooter.serve.batching import MicroBatcher
from zooter.serve.forward import Answer, Forwarder
from zooter.serve.metrics import Metrics
from zooter.serve.protocol import (
    ApiError,
    ChatRequest,
    chat_request,
    json_object,
    last_user_text,
    models_list,
    route_request,
    unknown_model,
)
from zooter.serve.rules import ROUTED, Decider, Rule, is_routed, parse_rule
from zooter.serve.upstreams import Upstream, check_candidates, prices

logger = logging.getLogger("zooter.serve")
HEADER_CANDIDATE = "x-zooter-candidate"  # the candidate that answered
HEADER_PROBABILITY = "x-zooter-probability"  # its router probability (routed requests)
HEADER_FAILED = "x-zooter-failed"  # candidates given up on before it, comma-separated


class RouterLike(Protocol):
    """What the gateway needs of :class:`zooter.Router`."""

    @property
    def candidates(self) -> list[str]: ...

    best_single: str | None

    def probabilities(self, queries: Sequence[str]) -> np.ndarray: ...


@dataclass
class Loaded:
    """What the background load produces: the router and the calibrations by name (their order: the
    first is ``zooter``'s rule)."""

    router: RouterLike
    calibrations: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


class Gateway:
    """The gateway's state and endpoints; :meth:`app` builds the ASGI app.

    ``load`` runs on the model thread at start-up; ``on_load_failure`` is told if it raises (``zooter
    serve`` then stops). ``upstreams_source`` names the upstreams in messages (their file).
    """

    def __init__(
        self,
        load: Callable[[], Loaded],
        upstreams: Mapping[str, Upstream],
        *,
        max_batch: int = 32,
        max_wait_s: float = 0.002,
        upstreams_source: str = "upstreams",
        on_load_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.load, self.upstreams, self.upstreams_source = load, dict(upstreams), upstreams_source
        self.on_load_failure = on_load_failure
        self.metrics = Metrics()
        self.batcher = MicroBatcher(self._compute, max_batch, max_wait_s, self.metrics.batch)
        self.loaded: Loaded | None = None
        self.decider: Decider | None = None
        self.load_error: str | None = None
        self.forwarder: Forwarder | None = None

    def app(self) -> Starlette:
        routes = [
            Route("/v1/chat/completions", self._counted("chat", self.chat), methods=["POST"]),
            Route("/v1/route", self._counted("route", self.route), methods=["POST"]),
            Route("/v1/models", self._counted("models", self.models), methods=["GET"]),
            Route("/health", self._counted("health", self.health), methods=["GET"]),
            Route("/metrics", self.metrics_text, methods=["GET"]),
        ]
        return Starlette(routes=routes, lifespan=self.lifespan, exception_handlers={HTTPException: _http_error})

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            self.forwarder = Forwarder(self.upstreams, self.metrics, session)
            loading = asyncio.get_running_loop().create_task(self._load())
            try:
                yield
            finally:
                loading.cancel()
                await self.batcher.close()

    async def _load(self) -> None:
        start = time.perf_counter()
        try:
            loaded = await asyncio.get_running_loop().run_in_executor(self.batcher.executor, self.load)
            check_candidates(self.upstreams, loaded.router.candidates, self.upstreams_source)
            decider = Decider(
                loaded.router.candidates,
                loaded.router.best_single,
                prices(self.upstreams, loaded.router.candidates),
                loaded.calibrations,
            )
        except Exception as err:
            self.load_error = f"{type(err).__name__}: {err}"
            logger.error("zooter serve: the router failed to load: %s", self.load_error)
            if self.on_load_failure is not None:
                self.on_load_failure(err)
            return
        self.loaded, self.decider = loaded, decider
        self.metrics.ready.set(1)
        logger.info(
            "zooter serve: router loaded in %.1f s; candidates %s", time.perf_counter() - start, decider.candidates
        )

    def _compute(self, queries: list[str]) -> np.ndarray:
        assert self.loaded is not None, "the batcher runs only once the router is loaded"
        return self.loaded.router.probabilities(queries)

    # ------------------------------------------------------------------------------------------ endpoints
    async def health(self, request: Request) -> Response:
        if self.decider is not None:
            return JSONResponse({"status": "ok", "candidates": self.decider.candidates})
        if self.load_error is not None:
            return JSONResponse({"status": "failed", "error": self.load_error}, status_code=503)
        return JSONResponse({"status": "loading"}, status_code=503)

    async def models(self, request: Request) -> Response:
        calibrations = [] if self.loaded is None else [f"{ROUTED}:{name}" for name in self.loaded.calibrations]
        return JSONResponse(models_list([ROUTED, *calibrations, *self.upstreams]))

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=self.metrics.content_type)

    async def route(self, request: Request) -> Response:
        """``POST /v1/route``: ``{"queries": [...], "model": "zooter[:rule]"}`` → one decision per query."""
        model, queries = route_request(json_object(await request.body()))
        decider, rule = self._routing(model)
        probs = await self._probabilities(queries)
        choice, fallback = decider.decide(probs, rule)
        data = [
            {
                "index": i,
                "candidate": decider.candidates[k],
                "probability": float(p[k]),
                "probabilities": dict(zip(decider.candidates, map(float, p), strict=True)),
                "fallback": bool(fb),
            }
            for i, (p, k, fb) in enumerate(zip(probs, choice, fallback, strict=True))
        ]
        return JSONResponse({"object": "list", "model": model, "data": data})

    async def chat(self, request: Request) -> Response:
        """``POST /v1/chat/completions``: routed (``zooter[:rule]``) or by candidate name."""
        chat = chat_request(json_object(await request.body()))
        order, probabilities, fallback = await self._candidates(chat)
        assert self.forwarder is not None, "the lifespan starts the forwarder"
        answer = await self.forwarder.send(order, chat.body, chat.stream)
        how = "direct" if probabilities is None else "fallback" if answer.failures else "routed"
        self.metrics.completions.labels(answer.candidate, how).inc()
        probability = None if probabilities is None else probabilities[answer.candidate]
        headers = _headers(answer, probability)
        if answer.body is None:  # a streamed 2xx
            media_type = answer.content_type or "text/event-stream"
            return StreamingResponse(self.forwarder.relay(answer), headers=headers, media_type=media_type)
        info = {
            "candidate": answer.candidate,
            "probability": probability,
            "chosen": order[0] if probabilities is not None else None,
            "fallback": fallback,
            "failures": [f.as_dict() for f in answer.failures],
            "model": chat.model,
        }
        return _answer(answer, info, headers)

    # ------------------------------------------------------------------------------------------- helpers
    async def _candidates(self, chat: ChatRequest) -> tuple[list[str], dict[str, float] | None, bool]:
        """The candidates to try, in order; the router's probabilities (None for a candidate named
        directly); and whether the threshold sent the query to the best single model."""
        if chat.model in self.upstreams:  # never "zooter..." (the upstreams file refuses those names)
            return [chat.model], None, False
        if not is_routed(chat.model):
            raise unknown_model(chat.model, [ROUTED, *self.upstreams])
        decider, rule = self._routing(chat.model)
        probs = (await self._probabilities([last_user_text(chat.body["messages"])]))[0]
        choice, below = decider.decide(probs[None], rule)
        probabilities = dict(zip(decider.candidates, map(float, probs), strict=True))
        return decider.fallback_order(probs, int(choice[0])), probabilities, bool(below[0])

    def _routing(self, model: str) -> tuple[Decider, Rule]:
        if self.decider is None or self.loaded is None:
            state = f"failed to load ({self.load_error})" if self.load_error else "is still loading"
            raise ApiError(503, f"the router {state}; /health answers 200 once it is ready", kind="server_error")
        rule = parse_rule(model, list(self.loaded.calibrations))
        self.decider.check(rule)
        return self.decider, rule

    async def _probabilities(self, queries: list[str]) -> np.ndarray:
        start = time.perf_counter()
        probs = await self.batcher.submit(queries)
        self.metrics.routing_seconds.observe(time.perf_counter() - start)
        return probs

    def _counted(self, endpoint: str, handler: Handler) -> Handler:
        """``handler`` with its ApiErrors answered in OpenAI's shape, bugs as 500s, and every answer counted."""

        async def counted(request: Request) -> Response:
            try:
                response = await handler(request)
            except ApiError as err:
                response = JSONResponse(err.body(), status_code=err.status)
            except Exception:
                logger.exception("zooter serve: %s %s failed", request.method, request.url.path)
                error = ApiError(500, "internal error in the zooter gateway (see its log)", kind="server_error")
                response = JSONResponse(error.body(), status_code=500)
            self.metrics.requests.labels(endpoint, str(response.status_code)).inc()
            return response

        return counted


def _headers(answer: Answer, probability: float | None) -> dict[str, str]:
    headers = {HEADER_CANDIDATE: answer.candidate}
    if probability is not None:
        headers[HEADER_PROBABILITY] = f"{probability:.6f}"
    if answer.failures:
        headers[HEADER_FAILED] = ",".join(f.candidate for f in answer.failures)
    return headers


def _answer(answer: Answer, info: dict[str, Any], headers: dict[str, str]) -> Response:
    """The upstream's answer; a JSON object 2xx gains the ``zooter`` field (OpenAI clients ignore it)."""
    media_type, content = answer.content_type, answer.body or b""
    if answer.is_success and media_type is not None and media_type.startswith("application/json"):
        try:
            body = json.loads(content)
        except ValueError:  # not JSON after all: handed on as it came
            body = None
        if isinstance(body, dict):
            return JSONResponse({**body, "zooter": info}, status_code=answer.status, headers=headers)
    return Response(content, status_code=answer.status, headers=headers, media_type=media_type)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (unknown path) and 405 (wrong method), in OpenAI's shape."""
    assert isinstance(exc, HTTPException)
    error = ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")
    return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)
