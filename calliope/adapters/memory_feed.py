"""The memory store's feed: every batch, numbered as it is appended.

An append numbers its batch and adds it to the feed under the store's lock,
in the same step that makes it visible: numbers follow the order batches
became visible, and nothing is ever in flight.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from calliope.adapters.notify import SignalWatcher
from calliope.core.ids import in_feed
from calliope.shell.ports import FeedEntry, FeedPage

if TYPE_CHECKING:
    from calliope.adapters.memory import MemoryBackend

__all__ = ["MemoryFeed"]

_LOOK_AT = 4  # entries looked at per event asked for, at most


class MemoryFeed:
    """Implements :class:`calliope.shell.ports.FeedPort` in memory."""

    def __init__(self, backend: MemoryBackend) -> None:
        self._backend = backend

    async def read_feed(self, start: int, prefix: str | None, *, limit: int) -> FeedPage:
        """O(entries looked at)."""
        limit = max(1, limit)
        backend = self._backend
        with backend.lock:
            looked = backend.feed[start : start + limit * _LOOK_AT + 64]
            total = len(backend.feed)
        entries: list[FeedEntry] = []
        events = 0
        next_entry = start
        for entry in looked:
            if events >= limit:
                break
            next_entry = entry.entry + 1
            if in_feed(entry.stream_id, prefix):
                entries.append(entry)
                events += len(entry.batch.items)
        return FeedPage(entries, next_entry, next_entry < total, total)

    @contextlib.asynccontextmanager
    async def watch_feed(self) -> AsyncIterator[SignalWatcher]:
        yield SignalWatcher(self._backend.feed_signal)
