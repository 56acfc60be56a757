"""``zooter serve``: the routing gateway on uvicorn.

::

    zooter serve --ckpt_path C --upstreams configs/serve/upstreams.example.yaml [--calibration F ...]
                 [--host 0.0.0.0] [--port 8080] [--max_batch 32] [--max_wait_ms 2]

``--num_threads`` (torch's threads for the router, default 1) trades robustness for speed: on 2 idle
cores, 2 threads took MiniLM's ``/v1/route`` from 160 to 238 queries/s at concurrency 32
(``benchmarks/results/serve_load.md``), but on 2 busy cores (load 2.6-4) they fought the event loop and
the client for the cores and fell to 26 queries/s against 125 with 1 thread.

The upstreams file is checked before anything heavy loads; the web stack (the ``serve`` extra) is
imported after the arguments parse, and torch when the router loads, so ``--help`` and argument errors
answer at once. SIGINT/SIGTERM stop accepting connections and finish the requests in flight (streams
included; at most ``--shutdown_timeout_s`` when given); then uvicorn re-raises the signal, so the
process ends by it as a process manager expects. A router that fails to load (or that the upstreams
do not cover) stops the server with its message and exit status 1.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from zooter.serve.upstreams import load_upstreams

if TYPE_CHECKING:
    from zooter.calibration import Calibration

EXTRA_MODULES = ("starlette", "uvicorn", "aiohttp", "prometheus_client")


def require_serve_extra() -> None:
    """One clear message when the web stack of the ``serve`` extra is not installed."""
    missing = [name for name in EXTRA_MODULES if _missing(name)]
    if missing:
        raise ValueError(
            f"zooter serve needs the 'serve' extra ({', '.join(missing)} not installed): pip install 'zooter[serve]'"
        )


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ValueError:  # a module set to None in sys.modules (how tests hide one)
        return True


def load_calibrations(specs: list[str]) -> dict[str, Calibration]:
    """``FILE`` or ``NAME=FILE`` per calibration of ``zooter calibrate``, by name (``zooter:<name>``); the
    name defaults to the file's target (``share-0.5``, ``budget-0.002``, ``match_best_single``)."""
    from zooter.calibration import Calibration

    calibrations: dict[str, Calibration] = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if not sep or "/" in name:
            name, file = "", spec
        calibration = Calibration.load(file)
        if not name:
            target = calibration.record["target"]
            name = target["kind"] if target.get("value") is None else f"{target['kind']}-{target['value']:g}"
        if name in calibrations:
            raise ValueError(
                f"--calibration: two calibrations are named {name!r} ({calibrations[name].source}, {file}); "
                "name them apart with NAME=FILE"
            )
        calibrations[name] = calibration
    return calibrations


def log_config(level: str) -> dict:
    """uvicorn's logging setup, with the gateway's own logger on uvicorn's handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["zooter.serve"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def main(argv: list[str]) -> None:
    from zooter.cli_args import PlainParser

    parser = PlainParser(prog="zooter serve", description="An OpenAI-compatible routing gateway.")
    parser.add_argument("--ckpt_path", type=Path, required=True, help="a checkpoint written by zooter fit")
    parser.add_argument("--upstreams", type=Path, required=True, help="YAML: each candidate's endpoint")
    parser.add_argument(
        "--calibration",
        type=list[str] | None,
        default=None,
        help="calibration files of zooter calibrate (FILE or NAME=FILE): model zooter:NAME; the first is zooter's",
    )
    parser.add_argument("--host", type=str, default="127.0.0.1", help="0.0.0.0 to serve other machines")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max_batch", type=int, default=32, help="queries per router call, at most (about)")
    parser.add_argument("--max_wait_ms", type=float, default=2.0, help="how long a batch waits for more requests")
    parser.add_argument("--device", type=str, default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--num_threads", type=int | None, default=1, help="torch intra-op threads while routing")
    parser.add_argument(
        "--shutdown_timeout_s", type=int | None, default=None, help="on SIGTERM, wait at most this for requests"
    )
    parser.add_argument("--log_level", type=str, default="info", help="debug, info, warning, error")
    args = parser.parse_args(argv)
    if args.max_batch < 1 or args.max_wait_ms < 0:
        raise ValueError(f"--max_batch must be >= 1 and --max_wait_ms >= 0, got {args.max_batch}, {args.max_wait_ms}")
    upstreams = load_upstreams(args.upstreams)
    if not args.ckpt_path.is_file():
        raise FileNotFoundError(f"{args.ckpt_path}: no such checkpoint")
    calibrations = load_calibrations(args.calibration or [])
    require_serve_extra()
    import uvicorn

    from zooter.serve.app import Gateway, Loaded

    def load() -> Loaded:
        from zooter.inference import Router

        router = Router.from_checkpoint(
            args.ckpt_path, device=args.device, batch_size=args.max_batch, num_threads=args.num_threads
        )
        return Loaded(router, {name: router.checked_calibration(c) for name, c in calibrations.items()})

    failures: list[BaseException] = []

    def stop(err: BaseException) -> None:  # the router failed to load: shut down, then raise it
        failures.append(err)
        server.should_exit = True

    gateway = Gateway(
        load,
        upstreams,
        max_batch=args.max_batch,
        max_wait_s=args.max_wait_ms / 1000,
        upstreams_source=str(args.upstreams),
        on_load_failure=stop,
    )
    config = uvicorn.Config(
        gateway.app(),
        host=args.host,
        port=args.port,
        log_config=log_config(args.log_level),
        log_level=args.log_level,
        timeout_graceful_shutdown=args.shutdown_timeout_s,
    )
    server = uvicorn.Server(config)
    server.run()
    if failures:
        raise failures[0]
    if not server.started:
        sys.exit(f"zooter serve: the server did not start on {args.host}:{args.port} (see the log above)")
