"""The stream catalog and the feed on PostgreSQL.

Listing pages through ``streams`` by id (keyset paging). The feed reads
``batches`` by feed number: a page reads the counter first and only rows
below it (every number below it is committed or rolled back: writers take
their number last and hold it to their commit, event_log.py), filters the
prefix on the server, and keeps whole entries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from calliope.adapters.postgres.changes import PostgresChanges
from calliope.adapters.postgres.connections import pg_rows
from calliope.adapters.postgres.rows import batch_of
from calliope.core.ids import RESERVED_PREFIX, in_feed
from calliope.shell.ports import FeedEntry, FeedPage, Watcher

__all__ = ["PostgresCatalog"]

_ROWS = 256  # streams per listing query


class PostgresCatalog:
    """Implements the stream catalog and feed ports."""

    def __init__(
        self, pool: AsyncConnectionPool[Any], schema: str, changes: PostgresChanges
    ) -> None:
        self._pool = pool
        self._s = sql.Identifier(schema)
        self._changes = changes

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=self._s)

    async def list_streams(self, prefix: str | None) -> AsyncIterator[list[tuple[str, bool]]]:
        """Pages of (stream id, replicated) in id (UTF-8 byte) order, keyset-paged."""
        after = b""
        first = True
        start = (prefix or "").encode()
        while True:
            query = "SELECT stream_id, replicated FROM {s}.streams WHERE "
            arguments: list[Any] = [after]
            query += "stream_id >= %s " if first else "stream_id > %s "
            if start:
                query += "AND substring(stream_id FROM 1 FOR %s) = %s "
                arguments += [len(start), start]
            query += "ORDER BY stream_id LIMIT %s"
            arguments.append(_ROWS)
            rows = await pg_rows(self._pool, self._q(query), arguments)
            page = [(bytes(row[0]).decode(), bool(row[1])) for row in rows]
            if page:
                yield page
            if len(rows) < _ROWS:
                return
            after, first = bytes(rows[-1][0]), False

    def watch_feed(self) -> AbstractAsyncContextManager[Watcher]:
        return self._changes.watch_all()

    async def read_feed(self, start: int, prefix: str | None, *, limit: int) -> FeedPage:
        """Rows numbered from ``start`` up to the counter's committed value
        (read first: every number below it is committed or rolled back, see
        the module docstring, so nothing is in flight), of the streams the
        prefix admits (filtered by the server), whole entries until about
        ``limit`` events (a running sum over the entries before each row).
        Three statements; O(rows returned + rows passed over)."""
        limit = max(1, limit)
        counters = await pg_rows(
            self._pool, self._q("SELECT next FROM {s}.feed_counter WHERE id = 1")
        )
        end = int(counters[0][0]) if counters else 0
        conditions = ""
        arguments: list[Any] = [start, end]
        if prefix:
            conditions += " AND substring(stream_id FROM 1 FOR %s) = %s"
            arguments += [len(prefix.encode()), prefix.encode()]
        if prefix is None or not prefix.startswith(RESERVED_PREFIX):
            conditions += " AND substring(stream_id FROM 1 FOR %s) <> %s"
            arguments += [len(RESERVED_PREFIX), RESERVED_PREFIX.encode()]
        rows_wanted = limit + 1
        arguments += [rows_wanted, limit]
        rows = await pg_rows(
            self._pool,
            self._q(
                "SELECT feed_entry, stream_id, replica, entry_offset, payload, total FROM ("
                " SELECT *, count(*) OVER () AS total, sum(last_sequence - first_sequence + 1) "
                "  OVER (ORDER BY feed_entry RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
                "  AS before FROM ("
                "  SELECT * FROM {s}.batches WHERE feed_entry >= %s AND feed_entry < %s"
                + conditions
                + "  ORDER BY feed_entry, stream_id, replica, first_sequence LIMIT %s) AS page"
                ") AS counted WHERE coalesce(before, 0) < %s "
                "ORDER BY feed_entry, stream_id, replica, first_sequence"
            ),
            arguments,
        )
        total = int(rows[0][5]) if rows else 0
        cut = total >= rows_wanted  # the page's last entry may go on past it
        if cut and rows[-1][0] != rows[0][0]:
            last = rows[-1][0]
            rows = [row for row in rows if row[0] != last]  # whole entries only
        elif cut:  # one entry larger than a page: all of it
            whole = await pg_rows(
                self._pool,
                self._q(
                    "SELECT feed_entry, stream_id, replica, entry_offset, payload, 0 FROM "
                    "{s}.batches WHERE feed_entry = %s ORDER BY stream_id, replica, first_sequence"
                ),
                (rows[0][0],),
            )
            rows = [row for row in whole if in_feed(bytes(row[1]).decode(), prefix)]
        entries = [
            FeedEntry(
                int(number),
                bytes(stream).decode(),
                bytes(replica).decode() or None,
                batch_of(payload, int(number), row=f"the batches row of feed entry {number}"),
                int(offset),
            )
            for number, stream, replica, offset, payload, _ in rows
        ]
        if not cut and len(rows) == total:
            next_entry = end  # every row below the end was looked at
        else:
            next_entry = entries[-1].entry + 1 if entries else start
        return FeedPage(entries, next_entry, next_entry < end, end)
