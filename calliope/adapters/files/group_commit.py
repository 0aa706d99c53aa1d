"""Group commit: concurrent writers share one write and one fsync.

Callers ``submit`` requests; the first caller to find no flush running
starts one (a task the committer owns), which takes *everything queued so
far* and gives each caller its own result or exception. Requests that
arrive while a flush runs form the next group. Under load, groups grow to
the number of waiting writers, so one fsync serves them all; an idle writer
pays one fsync, no timer delays it.

Where the flush runs: ``try_flush`` is first called on the event loop's
thread and must not wait for anything but the disk (the file log returns
None instead of waiting for another process's lock); only then is the
blocking ``flush`` run in a worker thread. A hand-off to a thread costs
about as much as an fdatasync on a fast disk, so an uncontended writer
would otherwise pay twice; the price is that the loop is busy for the
write and fsync of the group. Committers of one store share a
:class:`FlushGate`: while more than one of them has work (writers on
several streams at once), every group goes to a worker thread, so that
their fsyncs overlap instead of running one after another on the loop
(which made 256 writers on 256 streams slower than one writer alone).

A caller that is cancelled while waiting stops waiting, but its request may
still be written (it may already be in the group being flushed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from calliope.errors import AppClosedError

__all__ = ["FlushGate", "GroupCommitter"]

Req = TypeVar("Req")
Res = TypeVar("Res")


class FlushGate:
    """What the committers of one store share: how many have work now.
    Used on the event loop's thread only."""

    def __init__(self) -> None:
        self.active = 0

    @property
    def alone(self) -> bool:
        """Whether at most one committer has work (it may flush inline)."""
        return self.active <= 1


class GroupCommitter(Generic[Req, Res]):
    """Batches concurrent requests into calls of ``try_flush`` or ``flush``.

    Both return one result per request, each either a value or an exception
    instance to raise in that request's caller; if they raise, every request
    of the group gets that exception. ``try_flush`` may return None to say
    "would wait": the group then goes to ``flush`` in a worker thread.
    """

    def __init__(
        self,
        flush: Callable[[Sequence[Req]], Sequence[Res | BaseException]] | None = None,
        try_flush: Callable[[Sequence[Req]], Sequence[Res | BaseException] | None] | None = None,
        *,
        aflush: Callable[[Sequence[Req]], Awaitable[Sequence[Res | BaseException]]] | None = None,
        gate: FlushGate | None = None,
    ) -> None:
        """``aflush``: a coroutine function flushing a group on the event loop
        (a database's), used instead of ``flush``. ``gate``: shared with the
        store's other committers; ``try_flush`` is tried only while this is
        the one committer with work."""
        if (flush is None) == (aflush is None):
            raise ValueError("give GroupCommitter one of flush and aflush")
        self._flush = flush
        self._aflush = aflush
        self._try_flush = try_flush
        self._gate = gate if gate is not None else FlushGate()
        self._queue: list[tuple[Req, asyncio.Future[Res]]] = []
        self._runner: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def idle(self) -> bool:
        """True when no request is queued or being flushed."""
        return self._runner is None and not self._queue

    def submit(self, request: Req) -> asyncio.Future[Res]:
        """Queue ``request``; the future gets its result once its group is
        flushed. (A plain function, not a coroutine: one frame less on the
        hot path of every persist.)"""
        if self._closed:
            raise AppClosedError("this store is closed; open it again to write")
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._runner is None:
            self._gate.active += 1
            self._runner = asyncio.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue, []
                requests = [req for req, _ in group]
                try:
                    try_flush = self._try_flush if self._gate.alone else None
                    results = try_flush(requests) if try_flush is not None else None
                    if results is None:
                        if self._aflush is not None:
                            results = await self._aflush(requests)
                        else:
                            assert self._flush is not None
                            results = await asyncio.to_thread(self._flush, requests)
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
            self._gate.active -= 1
            self._runner = None

    async def aclose(self) -> None:
        """Refuse new requests and wait for queued ones to be flushed."""
        self._closed = True
        runner = self._runner
        if runner is not None:
            await asyncio.shield(runner)
