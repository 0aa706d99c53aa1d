"""Change notification on PostgreSQL: LISTEN/NOTIFY with a polling fallback.

Every append notifies the store's channel with its stream id, delivered at
commit. While anything is watched, one task per app holds a connection that
LISTENs and wakes the watchers of the streams named (and the feed's); a
watch begins once the LISTEN is in place, so no append after it is missed.
A notification can be lost (a dropped connection, a restarted server): so
every ``fallback`` seconds, and whenever it reconnects, the task also looks
at the watched logs' ends and the feed's counter (one query) and wakes the
watchers of what moved; a lost notification only delays. Appends by this
app wake its watchers at once, before any notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import psycopg.sql

from calliope.adapters.notify import Signal, SignalWatcher

__all__ = ["PostgresChanges"]

logger = logging.getLogger("calliope.postgres")


def _stream_of(payload: str) -> str:
    """The stream id a notification names (its UTF-8 bytes in hex)."""
    try:
        return bytes.fromhex(payload).decode()
    except ValueError:
        return ""


class PostgresChanges:
    """Implements the ChangesPort (and the feed's watcher) for one store."""

    def __init__(self, conninfo: str, schema: str, channel: str, *, fallback: float) -> None:
        self._schema = psycopg.sql.Identifier(schema)
        self._seen: dict[str, int] = {}  # stream -> its logs' summed ends, at the last look
        self._seen_feed = -1
        self._listening = asyncio.Event()
        self._conninfo = conninfo
        self._channel = channel
        self._fallback = fallback
        self._signals: dict[str, tuple[Signal, int]] = {}  # stream -> (signal, watchers)
        self._feed = Signal()
        self._feed_watchers = 0
        self._listener: asyncio.Task[None] | None = None
        self._closed = False

    def fire(self, stream_id: str, writer: str | None = None) -> None:
        """This app appended to ``stream_id`` (as ``writer``)."""
        entry = self._signals.get(stream_id)
        if entry is not None:
            entry[0].fire(writer)
        self._feed.fire(writer)

    def _fire_all(self) -> None:
        for signal, _ in list(self._signals.values()):
            signal.fire()
        self._feed.fire()

    async def _start(self) -> None:
        """Start the listener if needed, and wait (a few seconds at most)
        until it listens."""
        if self._listener is None and not self._closed:
            self._listening.clear()
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 5.0)

    async def _stop_if_unwatched(self) -> None:
        listener = self._listener
        if not self._signals and not self._feed_watchers and listener is not None:
            self._listener = None
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def watch(
        self, stream_id: str, *, ignoring: str | None = None
    ) -> AsyncIterator[SignalWatcher]:
        signal, count = self._signals.get(stream_id, (Signal(), 0))
        self._signals[stream_id] = (signal, count + 1)
        await self._start()
        try:
            yield SignalWatcher(signal, ignoring)
        finally:
            signal, count = self._signals[stream_id]
            if count == 1:
                del self._signals[stream_id]
            else:
                self._signals[stream_id] = (signal, count - 1)
            await self._stop_if_unwatched()

    @contextlib.asynccontextmanager
    async def watch_all(self) -> AsyncIterator[SignalWatcher]:
        self._feed_watchers += 1
        await self._start()
        try:
            yield SignalWatcher(self._feed, None)
        finally:
            self._feed_watchers -= 1
            await self._stop_if_unwatched()

    async def _look(self, connection: psycopg.AsyncConnection[Any], *, wake: bool) -> None:
        """Compare the watched logs' ends and the feed's counter with the last
        look; with ``wake``, wake the watchers of what moved."""
        streams = list(self._signals)
        cursor = await connection.execute(
            psycopg.sql.SQL(
                "SELECT stream_id, sum(last_sequence)::bigint FROM {}.logs "
                "WHERE stream_id = ANY(%s) GROUP BY stream_id"
            ).format(self._schema),
            ([stream.encode() for stream in streams],),
        )
        ends = {bytes(row[0]).decode(): int(row[1]) for row in await cursor.fetchall()}
        cursor = await connection.execute(
            psycopg.sql.SQL("SELECT next FROM {}.feed_counter WHERE id = 1").format(self._schema)
        )
        row = await cursor.fetchone()
        feed = -1 if row is None else int(row[0])
        for stream in streams:
            end = ends.get(stream, 0)
            if wake and end != self._seen.get(stream, end):
                entry = self._signals.get(stream)
                if entry is not None:
                    entry[0].fire()
            self._seen[stream] = end
        for stream in [stream for stream in self._seen if stream not in self._signals]:
            del self._seen[stream]
        if wake and feed != self._seen_feed:
            self._feed.fire()
        self._seen_feed = feed

    async def _listen(self) -> None:
        """Until cancelled: LISTEN, wake on each notification; every
        ``fallback`` seconds and after a reconnect, look for what moved."""
        delay = 0.05
        reconnecting = False
        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            except psycopg.Error as error:
                logger.warning("cannot listen for changes (%s); retrying", error)
                self._listening.set()  # (watchers go on; the fallback looks later)
                self._fire_all()
                await asyncio.sleep(min(delay, self._fallback))
                delay = min(delay * 2, 5.0)
                reconnecting = True
                continue
            delay = 0.05
            try:
                await connection.execute(
                    psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(self._channel))
                )
                await self._look(connection, wake=reconnecting)
                self._listening.set()
                while True:
                    async for notify in connection.notifies(timeout=self._fallback):
                        entry = self._signals.get(_stream_of(notify.payload))
                        if entry is not None:
                            entry[0].fire()
                        self._feed.fire()
                    await self._look(connection, wake=True)
            except psycopg.Error as error:
                logger.warning("lost the change listener's connection (%s); reconnecting", error)
                reconnecting = True
            finally:
                with contextlib.suppress(Exception):
                    await connection.close()

    async def aclose(self) -> None:
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
