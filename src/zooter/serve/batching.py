"""Micro-batching: the queries of requests that arrive together go through the router in one call.

One :class:`MicroBatcher` per process owns the model. Requests :meth:`~MicroBatcher.submit` their
queries and await their rows of probabilities; a single worker task takes every waiting request, up
to ``max_batch`` queries (the last request taken may go past that; a request is never split), and
runs ``compute`` on one worker thread, off the event loop, so the server keeps accepting, streaming
and answering ``/health`` while the model runs. Requests that arrive while the model runs wait for
the next batch, so under load batches fill by themselves.

Before it runs a batch that is not full, the worker waits for more requests, up to ``max_wait_s``
after its first request arrived, but only when requests come concurrently: when more than one is
already waiting, or the previous batch held more than one. A lone client (one request at a time)
never waits, so the wait costs nothing at low load; ``max_wait_s = 0`` never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Pending:
    queries: list[str]
    future: asyncio.Future[np.ndarray]
    arrived: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Batches concurrent :meth:`submit` calls into calls of ``compute(queries) -> [queries, candidates]``.

    ``on_batch(queries, seconds)`` is told each batch's size and compute time (for metrics).
    """

    def __init__(
        self,
        compute: Callable[[list[str]], np.ndarray],
        max_batch: int = 32,
        max_wait_s: float = 0.002,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self.compute, self.max_batch, self.max_wait_s, self.on_batch = compute, max_batch, max_wait_s, on_batch
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zooter-router")
        self._pending: list[_Pending] = []
        self._last_requests = 0  # requests in the previous batch
        self._arrival = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, queries: list[str]) -> np.ndarray:
        """The probabilities of ``queries`` (``[len(queries), candidates]``), computed in some batch."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(list(queries), future))
        self._arrival.set()
        return await future

    async def close(self) -> None:
        """Stop the worker (requests still waiting are cancelled) and the model thread."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for pending in self._pending:
            pending.future.cancel()
        self.executor.shutdown(wait=True)

    def _size(self) -> int:
        return sum(len(p.queries) for p in self._pending)

    async def _next_batch(self) -> list[_Pending]:
        while not self._pending:
            self._arrival.clear()
            await self._arrival.wait()
        if len(self._pending) > 1 or self._last_requests > 1:  # concurrent demand: worth waiting for
            deadline = self._pending[0].arrived + self.max_wait_s
            while self._size() < self.max_batch and (remaining := deadline - time.perf_counter()) > 0:
                self._arrival.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._arrival.wait(), remaining)
        taken, size = 0, 0
        while taken < len(self._pending) and size < self.max_batch:
            size += len(self._pending[taken].queries)
            taken += 1
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        self._last_requests = len(batch)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [p for p in await self._next_batch() if not p.future.done()]  # a client may have left
            if not batch:
                continue
            queries = [q for p in batch for q in p.queries]
            start = time.perf_counter()
            try:
                probs = await loop.run_in_executor(self.executor, self.compute, queries)
            except Exception as err:  # a bug in the model call: every request of the batch gets it
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(err)
                continue
            if self.on_batch is not None:
                self.on_batch(len(queries), time.perf_counter() - start)
            offset = 0
            for p in batch:
                if not p.future.done():
                    p.future.set_result(probs[offset : offset + len(p.queries)])
                offset += len(p.queries)
