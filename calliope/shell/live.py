"""What every live query holds: its app's scope, a watcher, a closed flag.

A live query takes its watcher *before* it reads, so an append during the
read wakes the following wait at once: nothing is missed between catching
up and waiting. Waiting ends when the stream may have grown or the query is
closed (from any task, or by its app closing); the helper tasks of a wait
never outlive it.

Closing from another task while the consumer is in the middle of a read
does not tear the reader out from under it: :meth:`LiveLifecycle.close`
waits for that read step to finish (a step is bounded), and the consumer's
next step sees the query closed and ends. So a reader is always released
by the task that uses it, never left to the garbage collector.

A step that raised (an event that cannot be decoded, a failed read) leaves
the query failed: every later step raises the same error again until the
query is closed. It never waits for more, nor goes on past what it could
not yield.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from types import TracebackType
from typing import TypeVar

from calliope.shell.ports import Watcher
from calliope.shell.scope import AppScope, Closable

T = TypeVar("T")

__all__ = ["LiveLifecycle"]


class LiveLifecycle:
    """The resources of one live query (composed into it, not inherited)."""

    def __init__(
        self,
        scope: AppScope,
        open_watcher: Callable[[], AbstractAsyncContextManager[Watcher]],
        before_watching: Callable[[], Awaitable[None]],
        owner: Closable,
    ) -> None:
        self._scope = scope
        self._open_watcher = open_watcher
        self._before_watching = before_watching
        self._owner = owner
        self._watcher: Watcher | None = None
        self._stack = AsyncExitStack()
        self._closed = asyncio.Event()
        self._reading = 0
        self._read_done: asyncio.Event | None = None
        self._failure: Exception | None = None
        self._failure_tb: TracebackType | None = None

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def fail(self, error: Exception) -> None:
        """Remember the first error a step raised: :meth:`check_failed` raises
        it again from then on (until closed)."""
        if self._failure is None and not self.closed:
            self._failure = error
            self._failure_tb = error.__traceback__

    def check_failed(self) -> None:
        """Raise the remembered error again (with its first traceback, so
        raising it often does not grow it), if a step failed."""
        failure = self._failure
        if failure is not None:
            raise failure.with_traceback(self._failure_tb)

    async def step(self, step: Callable[[], Awaitable[T]]) -> T:
        """Run one step of the live query: raise the remembered error if an
        earlier step failed; remember the error this one raises."""
        self.check_failed()
        try:
            return await step()
        except StopAsyncIteration:
            raise
        except Exception as error:  # raised again by every later step, until closed
            self.fail(error)
            raise

    async def watcher(self) -> Watcher:
        """The watcher, taken on first use (when the app adopts the query:
        raises AppClosedError if the app is not open)."""
        if self._watcher is None:
            self._scope.ensure_open()
            await self._before_watching()
            self._scope.adopt(self._owner)
            self._watcher = await self._stack.enter_async_context(self._open_watcher())
        return self._watcher

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        """Marks one read step: :meth:`close` from another task waits for it."""
        self._reading += 1
        try:
            yield
        finally:
            self._reading -= 1
            if not self._reading and self._read_done is not None:
                self._read_done.set()  # every closer waits on this one event

    async def wait(self) -> None:
        """Until the watched stream may have grown, or the query is closed."""
        grown = asyncio.ensure_future((await self.watcher()).wait())
        stop = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait([grown, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (grown, stop):
                if not task.done():
                    task.cancel()
            await asyncio.gather(grown, stop, return_exceptions=True)

    async def close(self) -> None:
        """Mark closed (waking a waiting consumer), let a read step in
        progress finish, and release the watcher. Idempotent."""
        self._closed.set()
        self._failure = self._failure_tb = None  # closed ends iteration; free its frames
        self._scope.release(self._owner)
        while self._reading:
            if self._read_done is None:
                self._read_done = asyncio.Event()
            await self._read_done.wait()
        await self._stack.aclose()
