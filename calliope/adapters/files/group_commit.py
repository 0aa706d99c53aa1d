"""Group commit: concurrent writers share one write and one fsync.

Callers ``submit`` requests; the first caller to find no flush running
starts one (a task the committer owns), which takes *everything queued so
far*, hands the whole group to a blocking ``flush`` function in a worker
thread, and gives each caller its own result or exception. Requests that
arrive while a flush runs form the next group. Under load, groups grow to
the number of waiting writers, so one fsync serves them all; an idle writer
pays one fsync, no timer delays it.

A caller that is cancelled while waiting stops waiting, but its request may
still be written (it may already be in the group being flushed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from calliope.errors import AppClosedError

__all__ = ["GroupCommitter"]

Req = TypeVar("Req")
Res = TypeVar("Res")


class GroupCommitter(Generic[Req, Res]):
    """Batches concurrent requests into calls of ``flush`` (run in a thread).

    ``flush(requests)`` returns one result per request, each either a value
    or an exception instance to raise in that request's caller; if ``flush``
    itself raises, every request of the group gets that exception.
    """

    def __init__(self, flush: Callable[[Sequence[Req]], Sequence[Res | BaseException]]) -> None:
        self._flush = flush
        self._queue: list[tuple[Req, asyncio.Future[Res]]] = []
        self._runner: asyncio.Task[None] | None = None
        self._closed = False

    async def submit(self, request: Req) -> Res:
        if self._closed:
            raise AppClosedError("this store is closed; open it again to write")
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._runner is None:
            self._runner = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue, []
                try:
                    results = await asyncio.to_thread(self._flush, [req for req, _ in group])
                except BaseException as error:  # storage failure: every caller hears of it
                    for _, future in group:
                        if not future.done():
                            future.set_exception(error)
                    if not isinstance(error, Exception):
                        raise
                    continue
                for (_, future), result in zip(group, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._runner = None

    async def aclose(self) -> None:
        """Refuse new requests and wait for queued ones to be flushed."""
        self._closed = True
        runner = self._runner
        if runner is not None:
            await asyncio.shield(runner)
