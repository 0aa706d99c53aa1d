"""Wake-ups for live readers that work across event loops and threads."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["Signal"]


class Signal:
    """A counter that readers can wait on until it moves.

    ``fire()`` may be called from any thread or event loop; each waiter is
    woken in its own loop.
    """

    def __init__(self) -> None:
        self.generation = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    def fire(self) -> None:
        self.generation += 1
        waiters, self._waiters = self._waiters, set()
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self, seen: int) -> int:
        """Wait until the generation differs from ``seen``; return the
        current generation."""
        if self.generation != seen:
            return self.generation
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        self._waiters.add(entry)
        try:
            await future
        finally:
            self._waiters.discard(entry)
        return self.generation


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
