"""Micro-batching: concurrent prediction requests answered by one model call.

Requests put their rows on a queue and wait. One batcher task takes everything queued (up
to ``max_batch`` rows), calls the model once in a worker thread, and hands each request its
slice of the predictions. While the model runs, the event loop keeps reading requests, so
the next batch is as large as the concurrency: batching costs a lone client nothing. When
the last batch answered several requests, the batcher also waits up to ``batch_wait_ms`` for
as many to gather before calling the model, so batches stay whole under steady load.

If a batch's model call fails, each of its requests is tried alone, so one bad request
fails only itself.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Predict = Callable[[list[dict[str, Any]]], list[Any]]


class Batcher:
    """Queue of pending requests and the task that answers them in batches."""

    def __init__(
        self,
        predict: Predict,
        *,
        max_batch: int = 64,
        batch_wait_ms: float = 2.0,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self._predict = predict
        self.max_batch = max(1, max_batch)
        self.wait_s = max(0.0, batch_wait_ms) / 1000.0
        self._on_batch = on_batch
        self._queue: deque[tuple[list[dict[str, Any]], asyncio.Future[list[Any]]]] = deque()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._task: asyncio.Task[None] | None = None
        #: Requests answered by the last model call: how many to wait for in the next one.
        self._expect = 1

    def start(self) -> None:
        """Start the batcher task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def close(self) -> None:
        """Stop the batcher; requests still queued fail."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while self._queue:
            _, future = self._queue.popleft()
            if not future.done():
                future.set_exception(RuntimeError("the model server is shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def predict(self, rows: list[dict[str, Any]]) -> list[Any]:
        """The predictions for ``rows``, computed in some batch."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queue.append((rows, future))
        self._arrived.set()
        return await future

    def _take(
        self, taken: list[tuple[list[dict[str, Any]], asyncio.Future[list[Any]]]], size: int
    ) -> int:
        while self._queue and (not taken or size + len(self._queue[0][0]) <= self.max_batch):
            item = self._queue.popleft()
            if item[1].done():  # its client went away
                continue
            taken.append(item)
            size += len(item[0])
        return size

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            taken: list[tuple[list[dict[str, Any]], asyncio.Future[list[Any]]]] = []
            size = self._take(taken, 0)
            if self.wait_s and self._expect > 1:
                deadline = loop.time() + self.wait_s
                while size < self.max_batch and len(taken) < self._expect:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self._arrived.clear()
                    try:
                        await asyncio.wait_for(self._arrived.wait(), remaining)
                    except TimeoutError:
                        break
                    size = self._take(taken, size)
            if not taken:
                continue
            self._expect = len(taken)
            await self._answer(loop, taken, size)

    async def _answer(
        self,
        loop: asyncio.AbstractEventLoop,
        taken: list[tuple[list[dict[str, Any]], asyncio.Future[list[Any]]]],
        size: int,
    ) -> None:
        rows = taken[0][0] if len(taken) == 1 else [r for rs, _ in taken for r in rs]
        started = time.perf_counter()
        try:
            out = await loop.run_in_executor(self._executor, self._predict, rows)
        except Exception as exc:
            if len(taken) == 1:
                _settle(taken[0][1], exc=exc)
            else:
                for one_rows, future in taken:
                    try:
                        one = await loop.run_in_executor(self._executor, self._predict, one_rows)
                    except Exception as one_exc:
                        _settle(future, exc=one_exc)
                    else:
                        _settle(future, result=one)
            return
        finally:
            if self._on_batch is not None:
                self._on_batch(len(taken), size, time.perf_counter() - started)
        start = 0
        for one_rows, future in taken:
            end = start + len(one_rows)
            _settle(future, result=out[start:end])
            start = end


def _settle(
    future: asyncio.Future[list[Any]],
    *,
    result: list[Any] | None = None,
    exc: BaseException | None = None,
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result if result is not None else [])
