"""What every live query holds: a watcher on its log(s) and a closed flag.

A live query takes its watcher *before* it reads, so an append during the
read wakes the following wait at once: nothing is missed between catching
up and waiting. Waiting ends when the logs may have grown or the query is
closed (from any task); the helper tasks of a wait never outlive it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

from calliope.shell.ports import Watcher

__all__ = ["LiveLifecycle"]


class LiveLifecycle:
    """The resources of one live query (composed into it, not inherited)."""

    def __init__(
        self,
        open_watcher: Callable[[], AbstractAsyncContextManager[Watcher]],
        before_watching: Callable[[], Awaitable[None]],
    ) -> None:
        self._open_watcher = open_watcher
        self._before_watching = before_watching
        self._watcher: Watcher | None = None
        self._stack = AsyncExitStack()
        self.closed = asyncio.Event()

    async def watcher(self) -> Watcher:
        """The watcher, taken on first use."""
        if self._watcher is None:
            await self._before_watching()
            self._watcher = await self._stack.enter_async_context(self._open_watcher())
        return self._watcher

    async def wait(self) -> None:
        """Until the watched log(s) may have grown, or the query is closed."""
        grown = asyncio.ensure_future((await self.watcher()).wait())
        stop = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait([grown, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (grown, stop):
                if not task.done():
                    task.cancel()
            await asyncio.gather(grown, stop, return_exceptions=True)

    async def close(self, reader: AsyncIterator[Any] | None) -> None:
        """Mark closed, stop ``reader`` (an async generator) and the watcher."""
        self.closed.set()
        if reader is not None:
            with contextlib.suppress(Exception):
                await reader.aclose()  # type: ignore[attr-defined]
        await self._stack.aclose()
