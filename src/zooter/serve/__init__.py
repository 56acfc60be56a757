"""``zooter serve``: an OpenAI-compatible gateway that routes each chat request to a candidate LLM.

::

    zooter serve --ckpt_path C --upstreams configs/serve/upstreams.example.yaml [--calibration F ...]

Endpoints:

- ``POST /v1/chat/completions``: ``model: "zooter"`` (or ``zooter:<threshold>``, ``zooter:λ=<x>``, or
  ``zooter:<calibration name>``; :mod:`~zooter.serve.rules`) routes on the last user message, as
  :meth:`zooter.Router.route` would, and forwards the request to the chosen candidate's upstream with
  that upstream's model name; a candidate's name forwards it there directly (no router, no fallback:
  the client chose). The answer is the upstream's, with headers ``x-zooter-candidate`` (who
  answered), ``x-zooter-probability`` (its router probability) and ``x-zooter-failed`` (candidates
  given up on first), and in a non-streamed JSON body a ``zooter`` field that OpenAI clients ignore
  (``candidate``, ``probability``, ``chosen``: the router's pick, ``fallback``: the threshold sent it
  to the best single model, ``failures``: each upstream given up on, ``model``). ``stream: true``
  passes the upstream's server-sent events through chunk by chunk (headers only, body untouched).
- ``POST /v1/route``: ``{"queries": [...], "model": "zooter[:rule]"}`` → per query ``candidate``,
  ``probability``, ``probabilities``, ``fallback`` (the fields of ``zooter route --out``).
- ``GET /v1/models``; ``GET /health`` (200 once the router is loaded, 503 before); ``GET /metrics``
  (Prometheus text; :mod:`~zooter.serve.metrics`).

Faults (:mod:`~zooter.serve.forward`): timeouts, refused or dropped connections and 5xx are retried
with backoff, then the next candidate by router probability is tried; a 4xx is returned as is;
malformed requests get OpenAI-shaped 400s naming the field (:mod:`~zooter.serve.protocol`). SIGTERM
finishes the requests in flight before the process exits.

Layout, one job per module, each importing only those above it in this list:

- ``upstreams``: the upstreams file (YAML only, checked before anything heavy loads);
- ``protocol``: the OpenAI wire format at the edge (request checks, error bodies, the models list);
- ``rules``: model strings → the rule of :func:`zooter.eval.decisions.cost_aware_choice` (or a
  calibration's), applied to a batch of probabilities, and the fallback order;
- ``batching``: :class:`~zooter.serve.batching.MicroBatcher`, concurrent requests → one model call
  on one worker thread, off the event loop;
- ``metrics``: the Prometheus counters and histograms, in a registry per app;
- ``forward``: upstream calls with retries, fallback and stream relaying (one pooled ``aiohttp`` session);
- ``app``: the Starlette app: endpoints, the router loaded in the background, readiness;
- ``command``: ``main(argv)`` for ``zooter serve``, on uvicorn.

Choices: Starlette rather than FastAPI, because the gateway reads only three fields and forwards the
rest untouched, and its 400s must name OpenAI's field paths (``messages[2].content``), which a
pydantic model of the whole request would replace by its own; uvicorn serves it (its SIGTERM handling
is the graceful shutdown; uvloop and httptools make it faster where installed); aiohttp is the
async client (a quarter of httpx's CPU per call, measured in :mod:`~zooter.serve.forward`);
prometheus-client writes ``/metrics``. These are the ``serve`` extra (``pip install
'zooter[serve]'``), imported only when a server starts.

Replicas: a process holds the router's weights, its upstreams and its counters, nothing about any
client or conversation, so any number of replicas (``--host 0.0.0.0``, one per core or machine) can
run behind any load balancer, with ``/health`` as the readiness probe; each loads its own copy of
the router and keeps its own ``/metrics`` (Prometheus sums them across replicas).
"""
