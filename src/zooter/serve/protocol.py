"""The OpenAI wire format at the gateway's edge: request checks, error bodies, the models list.

Pure Python (no web stack). A request the gateway cannot use raises :class:`ApiError`, which the app
answers in OpenAI's error shape, ``{"error": {"message", "type", "param", "code"}}``, with ``param``
naming the offending field (``messages[2].content``). Only the fields the gateway reads are checked
(``model``, ``messages``, ``stream``; ``queries`` of ``/v1/route``); the rest travel to the upstream,
which answers for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """An answer in OpenAI's error shape: HTTP ``status`` and ``{"error": {...}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class ChatRequest:
    """What the gateway reads of a chat completion request; ``body`` is forwarded (with the upstream's model)."""

    body: dict[str, Any]
    model: str
    stream: bool


def json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, else a 400."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ApiError(400, f"the request body is not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {type(body).__name__}")
    return body


def _model(model: Any) -> str:
    """The request's ``model`` string, refused unless a non-empty string."""
    if not isinstance(model, str) or not model:
        raise ApiError(400, f"'model' must be a non-empty string, got {model!r}", param="model")
    return model


def chat_request(body: dict[str, Any]) -> ChatRequest:
    """Check ``model``, ``messages`` (a non-empty list of objects with a string ``role``) and ``stream``."""
    model = _model(body.get("model"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, f"'messages' must be a non-empty list of messages, got {messages!r}", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ApiError(400, f"messages[{i}] must be an object, got {message!r}", param=f"messages[{i}]")
        if not isinstance(message.get("role"), str):
            raise ApiError(
                400, f"messages[{i}].role must be a string, got {message.get('role')!r}", param=f"messages[{i}].role"
            )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, f"'stream' must be true or false, got {stream!r}", param="stream")
    return ChatRequest(body, model, stream)


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last ``user`` message (a string, or the ``text`` parts of a content list): what the
    router routes on."""
    for i in reversed(range(len(messages))):
        if messages[i]["role"] != "user":
            continue
        content = messages[i].get("content")
        if isinstance(content, list):
            content = "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
        if not isinstance(content, str) or not content.strip():
            raise ApiError(
                400,
                f"messages[{i}].content: the last user message must hold text to route on, got {content!r}",
                param=f"messages[{i}].content",
            )
        return content
    raise ApiError(400, "'messages' holds no user message to route on", param="messages")


def route_request(body: dict[str, Any]) -> tuple[str, list[str]]:
    """``/v1/route``: ``{"queries": [text, ...], "model": "zooter[:rule]"}`` (``model`` optional) → (model, queries)."""
    model = _model(body.get("model", "zooter"))
    queries = body.get("queries")
    if not isinstance(queries, list) or not queries:
        raise ApiError(400, f"'queries' must be a non-empty list of texts, got {queries!r}", param="queries")
    for i, query in enumerate(queries):
        if not isinstance(query, str) or not query.strip():
            raise ApiError(400, f"queries[{i}] must be non-empty text, got {query!r}", param=f"queries[{i}]")
    return model, queries


def unknown_model(model: str, known: Iterable[str]) -> ApiError:
    """OpenAI's 404 for a model it does not serve."""
    return ApiError(
        404,
        f"The model '{model}' does not exist here: use one of {sorted(known)}, or zooter:<rule>",
        param="model",
        code="model_not_found",
    )


def models_list(names: Iterable[str]) -> dict[str, Any]:
    """``GET /v1/models``."""
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": 0, "owned_by": "zooter"} for name in names],
    }
