"""Coalesce concurrent calls into batches, run one batch at a time on a worker thread.

While a batch computes, new calls queue up; the next batch takes them all (up to
``max_batch``). An idle batcher adds no delay (unless ``max_wait_s`` asks it to wait for
company), and a busy one amortises the model's per-call overhead over many requests.
The event loop never blocks: the model runs on the batcher's own thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int = 32,
        max_wait_s: float = 0.0,
        name: str = "batcher",
    ) -> None:
        self._fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0  # batches run, for tests and benchmarks
        self.items = 0

    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._loop is not loop:
            self._loop = loop
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._run(), name="micro-batcher")

    async def submit(self, item: T) -> R:
        self._ensure_worker()
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        self._wakeup.set()  # type: ignore[union-attr]
        return await fut

    async def map(self, items: Sequence[T]) -> list[R]:
        """Many items, queued in order alongside other callers (a bulk job does not starve requests)."""
        results: list[R] = []
        for start in range(0, len(items), self.max_batch):
            chunk = items[start : start + self.max_batch]
            results.extend(await asyncio.gather(*(self.submit(x) for x in chunk)))
        return results

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            await wakeup.wait()
            wakeup.clear()
            if self.max_wait_s > 0 and len(self._pending) < self.max_batch:
                await asyncio.sleep(self.max_wait_s)
            while self._pending:
                batch = [(x, f) for x, f in self._pending[: self.max_batch] if not f.cancelled()]
                del self._pending[: self.max_batch]
                if not batch:
                    continue
                try:
                    out = await loop.run_in_executor(self._executor, self._fn, [x for x, _ in batch])
                    if len(out) != len(batch):
                        raise RuntimeError(f"batch function returned {len(out)} results for {len(batch)}")
                except Exception as exc:  # every waiter gets the error; the worker keeps going
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(exc)
                    continue
                self.batches += 1
                self.items += len(batch)
                for (_, f), r in zip(batch, out, strict=True):
                    if not f.done():
                        f.set_result(r)

    async def aclose(self) -> None:
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        for _, f in self._pending:
            if not f.done():
                f.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
