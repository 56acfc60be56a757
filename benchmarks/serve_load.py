"""Load on ``zooter serve``: requests/s, and the latency the gateway adds over calling an upstream directly.

    python benchmarks/serve_load.py --num-threads 1 2   # tiny-deberta and MiniLM, 1 and 2 router threads; ~4 min
    python benchmarks/serve_load.py --quick               # fewer requests, 1 thread: a smoke run

Bounded and on loopback only. Processes: one fake upstream per candidate of the router (this script in
``upstream`` mode: a Starlette app on uvicorn answering a chat completion at once, or after
``--upstream-delay-ms``, whose ``id`` is ``chatcmpl-<candidate>-<the request's user field>``); the
gateway, ``zooter serve`` in a process of its own (``--log_level warning``: no access log); and the
client, this process (asyncio, one ``aiohttp`` session, a fixed number of requests sent by a fixed
number of workers). Per router (trained 2 steps by ``zooter fit``, as ``benchmarks/latency.py`` does):

1. ``direct``: chat completions straight to the upstreams (round robin), at concurrency 1 and ``-c``;
2. ``gateway``: the same requests with ``model: "zooter"`` through the gateway, at concurrency 1 and ``-c``;
   the latency it adds is its percentile minus the direct one at the same concurrency;
3. ``/v1/route``: one query per request at concurrency ``-c`` (queries/s; the micro-batcher joins them);
4. ``fault``: gateway chat at concurrency ``-c``; once a third of the requests are answered, the upstream
   that answered most of them is killed (SIGKILL); the rest must fall back, with no failed client call.

Every phase checks each response: HTTP 200, and the ``id`` of its own request (``chatcmpl-<candidate>-
<request id>``, the candidate also in ``x-zooter-candidate``); lost = requests without such an
answer, duplicated = response ids seen twice. Writes ``benchmarks/results/serve_load.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import benchutil
import httpx
import numpy as np
import yaml
from latency import ENCODERS, fit_router

if TYPE_CHECKING:
    from zooter.inference import Router

REPO = benchutil.REPO
TARGET_ADDED_P50_MS = 10.0  # tiny router, concurrency 1
TARGET_ROUTE_QPS = 200.0  # MiniLM, /v1/route at concurrency 32


# ------------------------------------------------------------------------------------- fake upstream
def upstream_main(argv: list[str]) -> None:
    """``serve_load.py upstream --name N --port P [--delay-ms D]``: one fake OpenAI-compatible server."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    parser = argparse.ArgumentParser(prog="serve_load.py upstream")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        if args.delay_ms:
            await asyncio.sleep(args.delay_ms / 1000)
        message = {"role": "assistant", "content": f"{args.name} answers"}
        return JSONResponse(
            {
                "id": f"chatcmpl-{args.name}-{body['user']}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            }
        )

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


# ------------------------------------------------------------------------------------------ processes
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(ready: Callable[[], bool], process: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start (exit status {process.poll()})")
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Stack:
    """The fake upstreams (by candidate: process, base URL) and the gateway's URL."""

    upstreams: dict[str, tuple[subprocess.Popen, str]]
    gateway: str


@contextmanager
def stack(ckpt: Path, candidates: list[str], work: Path, args: argparse.Namespace, threads: int) -> Iterator[Stack]:
    """Start one fake upstream per candidate and ``zooter serve`` over them; stop them all at the end."""
    processes: list[subprocess.Popen] = []
    try:
        upstreams = {}
        for name in candidates:
            port = free_port()
            command = [sys.executable, __file__, "upstream", "--name", name, "--port", str(port)]
            processes.append(subprocess.Popen([*command, "--delay-ms", str(args.upstream_delay_ms)]))
            wait_until(lambda port=port: listening(port), processes[-1], f"upstream {name}")
            upstreams[name] = (processes[-1], f"http://127.0.0.1:{port}/v1")
        spec = {name: {"base_url": url, "model": name} for name, (_, url) in upstreams.items()}
        config = {"defaults": {"timeout_s": 10, "retries": 1, "backoff_s": 0.05}, "upstreams": spec}
        (work / "upstreams.yaml").write_text(yaml.safe_dump(config))
        port = free_port()
        command = [sys.executable, "-m", "zooter", "serve", "--ckpt_path", str(ckpt), "--port", str(port),
                   "--upstreams", str(work / "upstreams.yaml"), "--log_level", "warning",
                   "--max_wait_ms", str(args.max_wait_ms), "--num_threads", str(threads)]  # fmt: skip
        processes.append(subprocess.Popen(command, cwd=REPO))
        gateway = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(f"{gateway}/health"), processes[-1], "zooter serve")
        yield Stack(upstreams, gateway)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)


# --------------------------------------------------------------------------------------------- client
@dataclass
class Phase:
    """One bounded run: latencies of the good answers, wall time, and what went wrong."""

    name: str
    concurrency: int
    requests: int
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)
    response_ids: Counter[str] = field(default_factory=Counter)
    answered_by: Counter[str] = field(default_factory=Counter)
    fell_back: int = 0
    load: str = ""
    note: str = ""

    @property
    def lost(self) -> int:
        return self.requests - len(self.latencies)

    @property
    def duplicated(self) -> int:
        return sum(n - 1 for n in self.response_ids.values() if n > 1)

    def ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")


async def run_phase(
    phase: Phase,
    send: Callable[[int], tuple[str, dict, str | None]],
    on_answer: Callable[[Phase], None] | None = None,
) -> Phase:
    """``phase.requests`` requests by ``phase.concurrency`` workers; ``send(i)`` gives request i's URL, body
    and the candidate expected to answer (``None``: read it from ``x-zooter-candidate``)."""
    counter = itertools.count()
    phase.load = benchutil.load_average()
    connector = aiohttp.TCPConnector(limit=phase.concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def worker() -> None:
            while (i := next(counter)) < phase.requests:
                url, body, expected = send(i)
                start = time.perf_counter()
                try:
                    async with session.post(url, json=body) as response:
                        headers = {k.lower(): v for k, v in response.headers.items()}
                        reply = Reply(response.status, headers, await response.read())
                except (aiohttp.ClientError, TimeoutError) as err:
                    phase.failed.append(f"request {i}: {type(err).__name__}: {err}")
                    continue
                took = time.perf_counter() - start
                check(phase, i, reply, body, expected, took)
                if on_answer is not None:
                    on_answer(phase)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(phase.concurrency)))
        phase.seconds = time.perf_counter() - start
    return phase


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def check(phase: Phase, i: int, response: Reply, body: dict, expected: str | None, took: float) -> None:
    """Count a good answer (200, its own request's id) or record what is wrong with it."""
    if response.status != 200:
        phase.failed.append(f"request {i}: HTTP {response.status}: {response.body[:200]!r}")
        return
    answer = json.loads(response.body)
    if "queries" in body:  # /v1/route
        ok = len(answer["data"]) == 1
        candidate, response_id = answer["data"][0]["candidate"], f"{phase.name}-{i}"
    else:
        candidate = expected or response.headers["x-zooter-candidate"]
        response_id = answer["id"]
        ok = response_id == f"chatcmpl-{candidate}-{body['user']}"
        phase.fell_back += "x-zooter-failed" in response.headers
    phase.response_ids[response_id] += 1
    if not ok:
        phase.failed.append(f"request {i}: answer {answer} does not match")
        return
    phase.latencies.append(took)
    phase.answered_by[candidate] += 1


def chat(base: str, model: str, query: str, request_id: str) -> tuple[str, dict]:
    body = {"model": model, "messages": [{"role": "user", "content": query}], "user": request_id}
    return f"{base}/chat/completions", body


async def router_phases(s: Stack, queries: list[str], n1: int, nc: int, c: int, warmup: int) -> list[Phase]:
    """The direct, gateway and /v1/route phases of one running stack."""
    names = list(s.upstreams)
    gateway_v1 = f"{s.gateway}/v1"

    def direct(tag: str) -> Callable[[int], tuple[str, dict, str | None]]:
        def send(i: int) -> tuple[str, dict, str | None]:
            name = names[i % len(names)]
            return (*chat(s.upstreams[name][1], name, queries[i % len(queries)], f"{tag}-{i}"), name)

        return send

    def routed(tag: str) -> Callable[[int], tuple[str, dict, str | None]]:
        def send(i: int) -> tuple[str, dict, str | None]:
            return (*chat(gateway_v1, "zooter", queries[i % len(queries)], f"{tag}-{i}"), None)

        return send

    def route(i: int) -> tuple[str, dict, str | None]:
        return f"{gateway_v1}/route", {"queries": [queries[i % len(queries)]]}, None

    await run_phase(Phase("warmup", 4, warmup), routed("warmup"))
    await run_phase(Phase("warmup-direct", 4, warmup), direct("warmup-direct"))
    phases = []
    for concurrency, n in ((1, n1), (c, nc)):
        phases.append(await run_phase(Phase("direct", concurrency, n), direct(f"direct{concurrency}")))
        phases.append(await run_phase(Phase("gateway", concurrency, n), routed(f"gateway{concurrency}")))
    before = batch_stats(s.gateway)
    phases.append(await run_phase(Phase("route", c, nc), route))
    after = batch_stats(s.gateway)
    calls = after[1] - before[1]
    phases[-1].note = f"{calls:.0f} model calls, {(after[0] - before[0]) / max(calls, 1):.1f} queries per call"
    return phases


def batch_stats(gateway: str) -> tuple[float, float]:
    """(queries, model calls) so far, from the gateway's ``zooter_routing_batch_queries`` histogram."""
    from prometheus_client.parser import text_string_to_metric_families

    values = {}
    for family in text_string_to_metric_families(httpx.get(f"{gateway}/metrics").text):
        for sample in family.samples:
            values[sample.name] = sample.value
    return values.get("zooter_routing_batch_queries_sum", 0.0), values.get("zooter_routing_batch_queries_count", 0.0)


def fallbacks_total(gateway: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    families = text_string_to_metric_families(httpx.get(f"{gateway}/metrics").text)
    return sum(s.value for f in families for s in f.samples if s.name == "zooter_fallbacks_total")


async def fault_phase(s: Stack, queries: list[str], n: int, c: int) -> Phase:
    """Gateway chat while the busiest upstream is killed after a third of the answers."""
    killed: list[str] = []

    def kill_busiest(phase: Phase) -> None:
        if not killed and len(phase.latencies) >= phase.requests // 3:
            name = phase.answered_by.most_common(1)[0][0]
            s.upstreams[name][0].send_signal(signal.SIGKILL)
            killed.append(name)

    def send(i: int) -> tuple[str, dict, str | None]:
        return (*chat(f"{s.gateway}/v1", "zooter", queries[i % len(queries)], f"fault-{i}"), None)

    before = fallbacks_total(s.gateway)
    phase = await run_phase(Phase("fault", c, n), send, kill_busiest)
    phase.note = (
        f"killed {killed[0]} after {n // 3} answers; {phase.fell_back} answers fell back "
        f"(x-zooter-failed); zooter_fallbacks_total +{fallbacks_total(s.gateway) - before:.0f}; "
        f"answered by {dict(phase.answered_by)}"
    )
    return phase


# --------------------------------------------------------------------------------------------- report
def table(results: dict[str, list[Phase]]) -> list[str]:
    lines = [
        "| router | phase | concurrency | requests | requests/s | p50 ms | p95 ms | p99 ms | added p50 / p95 / p99 ms "
        "| lost | duplicated | failed | load (1/5/15) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for encoder, phases in results.items():
        direct = {p.concurrency: p for p in phases if p.name == "direct"}
        for p in phases:
            base = direct.get(p.concurrency) if p.name in ("gateway", "fault") else None
            added = " / ".join(f"{p.ms(q) - base.ms(q):.1f}" for q in (50, 95, 99)) if base else ""
            rate = len(p.latencies) / p.seconds
            lines.append(
                f"| {encoder} | {p.name} | {p.concurrency} | {p.requests} | {rate:.0f} | {p.ms(50):.1f} "
                f"| {p.ms(95):.1f} | {p.ms(99):.1f} | {added} | {p.lost} | {p.duplicated} | {len(p.failed)} "
                f"| {p.load} |"
            )
    return lines


def targets(results: dict[str, list[Phase]], alone: dict[str, float]) -> list[str]:
    """The targets, per router run (``results`` keyed ``"<encoder>, <n> thread(s)"``), and the fault runs."""
    lines = []
    for label, phases in results.items():
        by = {(p.name, p.concurrency): p for p in phases}
        if label.startswith("tiny-deberta") and ("gateway", 1) in by:
            added = by[("gateway", 1)].ms(50) - by[("direct", 1)].ms(50)
            met = "met" if added < TARGET_ADDED_P50_MS else "missed"
            lines.append(
                f"- added p50, {label}, concurrency 1: {added:.1f} ms (target < {TARGET_ADDED_P50_MS:g}: {met})"
            )
        route = [p for p in phases if p.name == "route"]
        if label.startswith("minilm") and route:
            qps = len(route[0].latencies) / route[0].seconds
            met = "met" if qps >= TARGET_ROUTE_QPS else "missed"
            lines.append(
                f"- /v1/route, {label}, concurrency {route[0].concurrency}: {qps:.0f} queries/s "
                f"(target >= {TARGET_ROUTE_QPS:g}: {met}; the router alone, in the client's process before the run: "
                f"{alone[label]:.0f} queries/s)"
            )
    for label, phases in results.items():
        lines += [
            f"- fault run, {label}: {p.fell_back} answers fell back, {len(p.failed)} failed client calls, "
            f"{p.lost} lost, {p.duplicated} duplicated"
            for p in phases
            if p.name == "fault"
        ]
    return lines


def router_alone(router: Router, queries: list[str], passes: int = 3) -> float:
    """Queries/s of ``Router.probabilities`` in this process, batches of 32 (the gateway's ceiling)."""
    router.probabilities(queries[:32])
    start = time.perf_counter()
    for _ in range(passes):
        for i in range(0, 320, 32):
            router.probabilities(queries[i : i + 32])
    return passes * 320 / (time.perf_counter() - start)


def report(
    info: dict[str, str], settings: dict[str, object], results: dict[str, list[Phase]], alone: dict[str, float]
) -> str:
    lines = [
        "# `zooter serve` under load",
        "",
        *benchutil.command_section(),
        "",
        f"zooter at {benchutil.git_commit()}.",
    ]
    lines += ["", benchutil.machine_section(info), "## Settings", ""]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    lines += ["", "## Results", "", *table(results), ""]
    lines += [
        "requests/s: good answers over the phase's wall time. Latency: from sending a request to its whole "
        "answer, at the client. Added = the gateway phase's percentile minus the direct phase's at the same "
        "concurrency (a difference of percentiles, not a percentile of differences). The route phase sends "
        "one query per request, so its requests/s are queries/s.",
        "",
        "## Targets (2 CPU cores)",
        "",
        *targets(results, alone),
        "",
        "## Notes",
        "",
    ]
    lines += [f"- {encoder} {p.name}: {p.note}" for encoder, phases in results.items() for p in phases if p.note]
    lines += [
        f"- {label} alone: `Router.probabilities` in the client's process before the run, batches of 32, "
        f"{rate:.0f} queries/s (the most /v1/route could reach with nothing else running)"
        for label, rate in alone.items()
    ]
    failures = [f"- {encoder} {p.name}: {f}" for encoder, phases in results.items() for p in phases for f in p.failed]
    lines += ["", "## Failed client calls", "", *(failures[:20] or ["None."])]
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["upstream"]:
        upstream_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 requests a phase")
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--requests-c1", type=int, default=None, help="requests at concurrency 1 (default 300)")
    parser.add_argument("--requests", type=int, default=None, help="requests at concurrency -c (default 1000)")
    parser.add_argument("--upstream-delay-ms", type=float, default=0.0, help="the fake upstreams' answer time")
    parser.add_argument("--max-wait-ms", type=float, default=2.0, help="zooter serve --max_wait_ms")
    parser.add_argument(
        "--num-threads", type=int, nargs="+", default=[1], help="zooter serve --num_threads: one run per value"
    )
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=list(ENCODERS))
    parser.add_argument("--out", type=Path, default=benchutil.RESULTS / "serve_load.md")
    args = parser.parse_args()
    n1 = args.requests_c1 or (100 if args.quick else 300)
    nc = args.requests or (100 if args.quick else 1000)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    info = benchutil.machine()

    from zooter.inference import Router
    from zooter.table.synth import SynthConfig, generate

    queries = generate(SynthConfig(num_queries=500, seed=123)).queries
    results: dict[str, list[Phase]] = {}
    alone: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="zooter-bench-serve-") as tmp:
        work = Path(tmp)
        for encoder in args.encoders:
            ckpt = fit_router(encoder, work)
            for threads in args.num_threads:
                label = f"{encoder}, {threads} thread{'s' if threads > 1 else ''}"
                router = Router.from_checkpoint(ckpt, batch_size=32, num_threads=threads)
                alone[label] = router_alone(router, queries)
                with stack(ckpt, router.candidates, work, args, threads) as s:
                    phases = asyncio.run(router_phases(s, queries, n1, nc, args.concurrency, warmup=50))
                    phases.append(asyncio.run(fault_phase(s, queries, nc, args.concurrency)))
                results[label] = phases
                for line in table({label: phases})[2:]:
                    print(line, flush=True)
    settings = {
        "routers": "trained 2 steps by `zooter fit` (benchmarks/latency.py's fit_router): tiny-deberta "
        "(configs/quickstart.yaml) and MiniLM (configs/model/minilm.yaml, --data.encoder minilm); CPU",
        "gateway": f"`zooter serve --log_level warning --max_wait_ms {args.max_wait_ms:g} --num_threads N` "
        "(max_batch 32; N: the router column's threads), upstreams with timeout_s 10, retries 1, backoff_s 0.05",
        "upstreams": f"a fake per candidate (this script, upstream mode), answers after {args.upstream_delay_ms:g} ms",
        "client": "this process: asyncio workers sharing one aiohttp session, keep-alive connections",
        "queries": "500 synthetic queries (zooter.table.synth, seed 123), in turn; 50 warm-up requests per router",
        "requests": f"{n1} at concurrency 1, {nc} at concurrency {args.concurrency}",
    }
    benchutil.write_result(args.out, report(info, settings, results, alone))


if __name__ == "__main__":
    main()
