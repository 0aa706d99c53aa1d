"""Wake-ups for live readers that work across event loops and threads."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["Signal", "SignalWatcher"]

_Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Future[None], str | None]


class Signal:
    """A counter that readers can wait on until it moves.

    ``fire(writer)`` may be called from any thread or event loop; each
    waiter is woken in its own loop. A waiter may *ignore* one writer: the
    fires by that writer do not wake it (the replicator's follower does not
    need waking for its own appends). A fire with no writer (a poll that saw
    something change) wakes everyone.
    """

    def __init__(self) -> None:
        self.generation = 0
        self._by_writer: dict[str, int] = {}
        self._waiters: set[_Waiter] = set()

    def count(self, ignoring: str | None = None) -> int:
        """The fires so far, those by ``ignoring`` left out."""
        if ignoring is None:
            return self.generation
        return self.generation - self._by_writer.get(ignoring, 0)

    def fire(self, writer: str | None = None) -> None:
        self.generation += 1
        if writer is not None:
            self._by_writer[writer] = self._by_writer.get(writer, 0) + 1
        waiters, kept = self._waiters, set()
        for entry in waiters:
            loop, future, ignoring = entry
            if writer is not None and ignoring == writer:
                kept.add(entry)
                continue
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(_resolve, future)
        self._waiters = kept

    async def wait(self, seen: int, ignoring: str | None = None) -> int:
        """Wait until :meth:`count` (``ignoring`` one writer) differs from
        ``seen``; return it."""
        if self.count(ignoring) != seen:
            return self.count(ignoring)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future, ignoring)
        self._waiters.add(entry)
        try:
            await future
        finally:
            self._waiters.discard(entry)
        return self.count(ignoring)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class SignalWatcher:
    """A watcher (:class:`calliope.shell.ports.Watcher`) on a :class:`Signal`:
    ``wait`` returns once the signal fired (by a writer other than
    ``ignoring``) since the watcher was made or last waited."""

    def __init__(self, signal: Signal, ignoring: str | None = None) -> None:
        self._signal = signal
        self._ignoring = ignoring
        self._seen = signal.count(ignoring)

    async def wait(self) -> None:
        self._seen = await self._signal.wait(self._seen, self._ignoring)
