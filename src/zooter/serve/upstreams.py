"""The upstreams file of ``zooter serve``: where each candidate LLM answers (``configs/serve/upstreams.example.yaml``).

::

    defaults:                     # optional: every upstream's value unless it sets its own
      timeout_s: 120
    upstreams:
      coder:                      # a candidate of the router (or any other name: served by name only)
        base_url: http://gpu-1:8000/v1        # an OpenAI-compatible server (vLLM: `vllm serve M --port 8000`)
        model: Qwen/Qwen2.5-Coder-7B-Instruct # the name that server knows the model by (default: the key)
        api_key_env: VLLM_API_KEY             # optional: the environment variable holding its API key
        price: 0.3                            # optional: cost per call, any unit shared by all upstreams

Fields: ``base_url`` (required, ``http://`` or ``https://``), ``model``, ``api_key_env``, ``timeout_s``
(seconds to connect and between received bytes; default 60), ``retries`` (after the first try, on a
timeout, a refused or dropped connection or a 5xx; default 2), ``backoff_s`` (the first retry waits
about this long, each further one twice as long; default 0.2), ``price`` (needed on every candidate
for ``model: "zooter:λ=<x>"``). Every problem raises :class:`UpstreamsError` naming the file, the
upstream and the field. Only the YAML loader is imported here: ``zooter serve`` checks the file
before it loads torch or the web stack.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULTS = {"timeout_s": 60.0, "retries": 2, "backoff_s": 0.2}
FIELDS = ("base_url", "model", "api_key_env", "timeout_s", "retries", "backoff_s", "price")
RESERVED = "zooter"  # the routed model names: "zooter" and "zooter:<rule>"


class UpstreamsError(ValueError):
    """A problem with the upstreams file (a user error: ``zooter serve`` prints the message)."""


@dataclass(frozen=True)
class Upstream:
    """One candidate's OpenAI-compatible endpoint."""

    name: str
    base_url: str
    model: str
    timeout_s: float = DEFAULTS["timeout_s"]
    retries: int = DEFAULTS["retries"]
    backoff_s: float = DEFAULTS["backoff_s"]
    price: float | None = None
    api_key: str | None = field(default=None, repr=False)

    @property
    def chat_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def load_upstreams(path: str | Path, environ: Mapping[str, str] | None = None) -> dict[str, Upstream]:
    """The upstreams of a YAML file, by name; API keys read from ``environ`` (default: ``os.environ``)."""
    path = Path(path)
    if not path.is_file():
        raise UpstreamsError(f"{path}: no such upstreams file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise UpstreamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("upstreams"), dict) or not data["upstreams"]:
        raise UpstreamsError(f"{path}: expected a mapping with 'upstreams': {{name: {{base_url: ..., ...}}}}")
    unknown = sorted(set(data) - {"defaults", "upstreams"})
    if unknown:
        raise UpstreamsError(f"{path}: unknown top-level keys {unknown} (expected 'defaults' and 'upstreams')")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise UpstreamsError(f"{path}: 'defaults' must be a mapping of fields, got {defaults!r}")
    _check_keys(path, "defaults", defaults, allowed=FIELDS[1:])
    environ = os.environ if environ is None else environ
    upstreams = {}
    for name, spec in data["upstreams"].items():
        if not isinstance(spec, dict):
            raise UpstreamsError(f"{path}: upstream {name!r}: expected a mapping of fields, got {spec!r}")
        upstreams[str(name)] = _upstream(path, str(name), {**defaults, **spec}, environ)
    return upstreams


def _check_keys(path: Path, where: str, spec: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise UpstreamsError(f"{path}: {where}: unknown fields {unknown} (allowed: {', '.join(allowed)})")


def _upstream(path: Path, name: str, spec: dict[str, Any], environ: Mapping[str, str]) -> Upstream:
    where = f"upstream {name!r}"
    if name == RESERVED or name.startswith(RESERVED + ":"):
        raise UpstreamsError(f"{path}: {where}: the names 'zooter' and 'zooter:...' are the routed models")
    _check_keys(path, where, spec, FIELDS)

    def number(key: str, low: float, integer: bool = False) -> Any:
        value = spec.get(key, DEFAULTS.get(key))
        ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < low:
            kind = "an integer" if integer else "a finite number"
            raise UpstreamsError(f"{path}: {where}: field '{key}': expected {kind} >= {low:g}, got {value!r}")
        return value

    base_url = spec.get("base_url")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise UpstreamsError(
            f"{path}: {where}: field 'base_url': expected an http:// or https:// URL, got {base_url!r}"
        )
    model = spec.get("model", name)
    if not isinstance(model, str) or not model:
        raise UpstreamsError(f"{path}: {where}: field 'model': expected the upstream's model name, got {model!r}")
    api_key = None
    if "api_key_env" in spec:
        variable = spec["api_key_env"]
        if not isinstance(variable, str) or not variable:
            raise UpstreamsError(f"{path}: {where}: field 'api_key_env': expected a variable name, got {variable!r}")
        if not environ.get(variable):
            raise UpstreamsError(
                f"{path}: {where}: field 'api_key_env': the environment variable {variable} is not set"
            )
        api_key = environ[variable]
    timeout_s = float(number("timeout_s", 0.0))
    if timeout_s == 0:
        raise UpstreamsError(f"{path}: {where}: field 'timeout_s': expected a number > 0, got 0")
    return Upstream(
        name=name,
        base_url=base_url,
        model=model,
        timeout_s=timeout_s,
        retries=int(number("retries", 0, integer=True)),
        backoff_s=float(number("backoff_s", 0.0)),
        price=None if spec.get("price") is None else float(number("price", 0.0)),
        api_key=api_key,
    )


def check_candidates(upstreams: Mapping[str, Upstream], candidates: Sequence[str], path: str | Path) -> None:
    """Every router candidate needs an upstream (other upstreams are served by name only)."""
    missing = [c for c in candidates if c not in upstreams]
    if missing:
        raise UpstreamsError(
            f"{path}: no upstream for the router's candidates {missing} (the checkpoint routes to {list(candidates)})"
        )


def prices(upstreams: Mapping[str, Upstream], candidates: Sequence[str]) -> dict[str, float] | None:
    """Each candidate's price when every candidate has one, else ``None``."""
    found = {c: upstreams[c].price for c in candidates}
    return {c: p for c, p in found.items() if p is not None} if None not in found.values() else None
