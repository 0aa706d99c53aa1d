"""What an app lends its handles: liveness, and ownership of what they start.

Trio's rule, kept by hand on asyncio: nothing runs without an owner that
ends it. The app's :class:`AppScope` counts the operations in flight
(persists, and the tasks that finish them), knows every open live query,
and at close refuses new work, lets what is in flight complete, then ends
every live query, so a consumer blocked in one sees its iteration end.
Memory and file stores behave alike because the rule lives here, in the
shell, not in the adapters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal, Protocol, TypeVar

from calliope.errors import AppClosedError

__all__ = ["AppScope", "Closable"]

T = TypeVar("T")

State = Literal["new", "opening", "open", "closing", "closed"]


class Closable(Protocol):
    """Something the app ends at close (a live query)."""

    async def close(self) -> None: ...


class AppScope:
    """The lifetime of one app, shared by every handle it gives out."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.state: State = "new"
        self._in_flight = 0
        self._idle: asyncio.Event | None = None
        self._closables: set[Closable] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def ensure_open(self) -> None:
        """Raise :class:`AppClosedError` unless the app is open."""
        if self.state != "open":
            raise AppClosedError(
                f"the app on {self.target} is {self.state}; "
                f"use it inside `async with calliope.open(...) as app:`"
            )

    def begin(self) -> None:
        """Start an operation that close must wait for (raises if not open)."""
        self.ensure_open()
        self._in_flight += 1

    def end(self) -> None:
        """End an operation started with :meth:`begin`."""
        self._in_flight -= 1
        if not self._in_flight and self._idle is not None:
            self._idle.set()  # every closer waits on this one event

    def spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` as a task the app owns: close waits for it to finish.
        The caller must have checked that the app is open."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def adopt(self, closable: Closable) -> None:
        """End ``closable`` when the app closes (raises if not open)."""
        self.ensure_open()
        self._closables.add(closable)

    def release(self, closable: Closable) -> None:
        """``closable`` ended by itself: the app need not end it."""
        self._closables.discard(closable)

    async def close(self) -> None:
        """Refuse new work, let operations in flight complete, end every live
        query. The store is closed by the caller afterwards. Several closers
        may wait at once; cancelling one cancels its wait, never the work it
        waits for."""
        self.state = "closing"
        while self._in_flight or self._tasks:
            if self._in_flight:
                if self._idle is None:
                    self._idle = asyncio.Event()
                await self._idle.wait()
            if self._tasks:
                await asyncio.wait(list(self._tasks))  # does not cancel them if we are
        while self._closables:
            await self._closables.pop().close()
