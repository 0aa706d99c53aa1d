"""Plain logs and replica logs on PostgreSQL (the catalog and feed: catalog.py).

Concurrent appends share one transaction (group commit; READ COMMITTED):
it records the streams' kinds (``streams``), locks their logs' rows in key
order (``logs ... FOR UPDATE``: writers of one log on any machine take
turns, so sequences stay contiguous and ``expected_sequence`` holds; the
order rules out deadlocks), checks each append in order, takes one feed
number last (``feed_counter``, whose row lock it holds to its commit:
numbers are committed in order, so a reader never passes a number that a
slower transaction will still commit), inserts the batches and notifies
(``pg_notify``, delivered at commit). A constant number of statements per
group, whatever its size (arrays and ``unnest``). A
batch's row holds the batch as the file store frames it (batch_format.py),
decoded by the same code.

Reads page through ``batches`` by sequence (or by feed number): a bounded
number of rows per query, whatever the log's length.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any, NamedTuple

import msgpack
import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from calliope.adapters.files.group_commit import GroupCommitter
from calliope.adapters.kinds import other_kind
from calliope.adapters.packing import pack_items, quick_to_pack
from calliope.adapters.postgres.changes import PostgresChanges
from calliope.adapters.postgres.connections import pg_connection, pg_rows
from calliope.adapters.postgres.rows import batch_of, payload_of
from calliope.adapters.read_only import read_only_refused
from calliope.core.replication import RecordBatch, ReplicaPage, next_batch
from calliope.errors import ConcurrencyError, StorageError
from calliope.shell.ports import NewEvent, RepairReport

__all__ = ["PostgresEventLog"]

_ROWS = 256  # batches per query of a reader
_PLAIN = ""  # the ``replica`` of a plain stream's log


class _Request(NamedTuple):
    """One append waiting for its group's transaction."""

    stream_id: str
    replica: str
    writer: str
    plain: list[tuple[str, int, Any]]
    items: list[bytes]
    expected_sequence: int | None
    observed: Mapping[str, int] | None
    timestamp_us: int


_WRITE_ATTEMPTS = 3


class _Written:
    """What an attempt at writing a group decided before its commit: each
    request's result, and the accepted batches' payloads."""

    def __init__(self) -> None:
        self.results: list[RecordBatch | BaseException | None] | None = None
        self.payloads: list[bytes] = []

    def finish(self, entry: int) -> list[RecordBatch | BaseException | None]:
        """The results, the accepted batches as stored under feed ``entry``."""
        assert self.results is not None
        decoded = iter([batch_of(payload, entry) for payload in self.payloads])
        return [next(decoded) if isinstance(r, RecordBatch) else r for r in self.results]


class PostgresEventLog:
    """Implements the plain and replica log, catalog and feed ports."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        schema: str,
        channel: str,
        *,
        read_only: bool,
        changes: PostgresChanges,
    ) -> None:
        self._changes = changes
        self._pool = pool
        self._s = sql.Identifier(schema)
        self._schema = schema
        self._channel = channel
        self._read_only = read_only
        self._kinds: dict[str, bool] = {}
        self._committer: GroupCommitter[_Request, RecordBatch | None] = GroupCommitter(
            aflush=self._flush
        )

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=self._s)

    # -- writing ------------------------------------------------------------------

    async def _append(
        self,
        stream_id: str,
        replica: str,
        writer: str,
        events: Sequence[NewEvent],
        expected_sequence: int | None,
        observed: Mapping[str, int] | None,
        timestamp_us: int,
    ) -> RecordBatch | None:
        if self._read_only:
            raise read_only_refused(
                f"PostgreSQL schema {self._schema!r}", f"writing to stream {stream_id!r}"
            )
        plain = [(e.type_name, e.schema_version, e.data) for e in events]
        if quick_to_pack([item[2] for item in plain]):
            items = pack_items(plain)
        else:
            items = await asyncio.to_thread(pack_items, plain)
        request = _Request(
            stream_id, replica, writer, plain, items, expected_sequence, observed, timestamp_us
        )
        batch = await self._committer.submit(request)
        self._kinds[stream_id] = replica != _PLAIN
        if batch is not None:
            self._changes.fire(stream_id, replica or None)
        return batch

    async def _flush(
        self, requests: Sequence[_Request]
    ) -> list[RecordBatch | BaseException | None]:
        """Write a group once (:meth:`_write_group`). If the connection is
        lost, the group's write id tells whether it was committed (the loss
        came with the commit): then its results stand; else it is written
        again, up to ``_WRITE_ATTEMPTS`` times. So a lost connection never
        writes a group twice, nor fails one that was written."""
        write_id = uuid.uuid4().bytes
        for attempt in range(_WRITE_ATTEMPTS):
            written = _Written()
            try:
                return await self._write_group(requests, write_id, written)
            except StorageError as error:
                if not isinstance(error.__cause__, psycopg.OperationalError):
                    raise
                rows = await pg_rows(
                    self._pool,
                    self._q("SELECT feed_entry FROM {s}.batches WHERE write_id = %s LIMIT 1"),
                    (write_id,),
                )
                if rows and written.results is not None:
                    return written.finish(int(rows[0][0]))
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    async def _write_group(
        self, requests: Sequence[_Request], write_id: bytes, written: _Written
    ) -> list[RecordBatch | BaseException | None]:
        """One transaction for a group of appends (group commit), three
        statements whatever its size: record the streams' kinds and read
        them back; lock the logs (an upsert that returns each log's end:
        rows locked in key order, so concurrent groups never deadlock);
        then, after each request is checked in order against what the ones
        before it left, one statement that takes the feed number, inserts
        the accepted batches, moves the logs' ends and notifies. One result
        per request: its batch, None (no events), or its own error (the
        others go on)."""
        logs = sorted({(r.stream_id.encode(), r.replica.encode()) for r in requests})
        streams: dict[bytes, bool] = {}
        for request in requests:  # (the first request of a new stream sets its kind)
            streams.setdefault(request.stream_id.encode(), request.replica != _PLAIN)
        kinds_in = sorted(streams.items())
        async with pg_connection(self._pool) as connection, connection.transaction():
            cursor = await connection.execute(
                self._q(
                    "INSERT INTO {s}.streams AS t SELECT * FROM unnest(%s::bytea[], %s::bool[]) "
                    "ON CONFLICT (stream_id) DO UPDATE SET replicated = t.replicated "
                    "RETURNING stream_id, replicated"
                ),
                ([k for k, _ in kinds_in], [v for _, v in kinds_in]),
            )
            kinds = {bytes(row[0]): bool(row[1]) for row in await cursor.fetchall()}
            cursor = await connection.execute(
                self._q(
                    "INSERT INTO {s}.logs AS t SELECT s, r, 0, %s FROM "
                    "unnest(%s::bytea[], %s::bytea[]) AS u(s, r) "
                    "ON CONFLICT (stream_id, replica) "
                    "DO UPDATE SET last_sequence = t.last_sequence "
                    "RETURNING stream_id, replica, last_sequence, last_version"
                ),
                (msgpack.packb({}), [k[0] for k in logs], [k[1] for k in logs]),
            )
            ends = {
                (bytes(row[0]), bytes(row[1])): (int(row[2]), msgpack.unpackb(row[3]))
                for row in await cursor.fetchall()
            }
            results: list[RecordBatch | BaseException | None] = []
            accepted: list[tuple[_Request, RecordBatch]] = []
            for request in requests:
                results.append(self._check(request, kinds, ends, accepted))
            if not accepted:
                return results
            payloads = [payload_of(batch, request.items) for request, batch in accepted]
            written.results, written.payloads = results, payloads
            # The entry's events are counted in (stream, replica, sequence) order.
            order = sorted(
                range(len(accepted)),
                key=lambda i: (
                    accepted[i][0].stream_id.encode(),
                    accepted[i][0].replica.encode(),
                    accepted[i][1].first_sequence,
                ),
            )
            offsets = [0] * len(accepted)
            before = 0
            for i in order:
                offsets[i] = before
                before += len(accepted[i][1].items)
            moved = {
                key: ends[key]
                for key in {(r.stream_id.encode(), r.replica.encode()) for r, _ in accepted}
            }
            cursor = await connection.execute(
                self._q(
                    "WITH c AS (UPDATE {s}.feed_counter SET next = next + 1 WHERE id = 1 "
                    "  RETURNING next - 1 AS entry), "
                    "b AS (INSERT INTO {s}.batches "
                    "  SELECT s, r, f, l, (SELECT entry FROM c), o, p, %s "
                    "  FROM unnest(%s::bytea[], %s::bytea[], %s::bigint[], %s::bigint[], "
                    "  %s::bigint[], %s::bytea[]) AS u(s, r, f, l, o, p)), "
                    "e AS (UPDATE {s}.logs SET last_sequence = u.l, last_version = u.v FROM "
                    "  unnest(%s::bytea[], %s::bytea[], %s::bigint[], %s::bytea[]) "
                    "  AS u(s, r, l, v) "
                    "  WHERE logs.stream_id = u.s AND logs.replica = u.r), "
                    "n AS (SELECT pg_notify(%s, x) FROM unnest(%s::text[]) AS x) "
                    "SELECT entry, (SELECT count(*) FROM n) FROM c"
                ),
                (
                    write_id,
                    [r.stream_id.encode() for r, _ in accepted],
                    [r.replica.encode() for r, _ in accepted],
                    [b.first_sequence for _, b in accepted],
                    [b.last_sequence for _, b in accepted],
                    offsets,
                    payloads,
                    [k[0] for k in moved],
                    [k[1] for k in moved],
                    [end[0] for end in moved.values()],
                    [msgpack.packb(end[1]) for end in moved.values()],
                    self._channel,
                    sorted({k[0].hex() for k in moved}),
                ),
            )
            row = await cursor.fetchone()
            assert row is not None
            entry = int(row[0])
        return written.finish(entry)

    def _check(
        self,
        request: _Request,
        kinds: dict[bytes, bool],
        ends: dict[tuple[bytes, bytes], tuple[int, dict[str, int]]],
        accepted: list[tuple[_Request, RecordBatch]],
    ) -> RecordBatch | BaseException | None:
        """Check one request against the log's end so far; if accepted, move
        the end on and record it in ``accepted``."""
        stream = request.stream_id.encode()
        replicated = request.replica != _PLAIN
        known = kinds.get(stream, replicated)
        if known != replicated:
            return other_kind(request.stream_id, replicated=known, reading=False)
        key = (stream, request.replica.encode())
        last, version = ends[key]
        expected = request.expected_sequence
        if expected is not None and expected != last:
            return ConcurrencyError(
                f"stream {request.stream_id!r} is at sequence {last}, not the expected "
                f"{expected}; nothing was written. Read the new events and retry",
                stream_id=request.stream_id,
                expected=expected,
                actual=last,
            )
        if not request.items:
            return None
        batch = next_batch(
            version, last, request.writer, request.plain, request.timestamp_us, request.observed
        )
        ends[key] = (batch.last_sequence, batch.last_version)
        accepted.append((request, batch))
        return batch

    def append(
        self,
        stream_id: str,
        writer: str,
        events: Sequence[NewEvent],
        *,
        expected_sequence: int | None,
        timestamp_us: int,
    ) -> Any:
        return self._append(
            stream_id, _PLAIN, writer, events, expected_sequence, None, timestamp_us
        )

    def append_replica(
        self,
        stream_id: str,
        replica_id: str,
        events: Sequence[NewEvent],
        *,
        observed: Mapping[str, int],
        timestamp_us: int,
    ) -> Any:
        return self._append(
            stream_id, replica_id, replica_id, events, None, dict(observed), timestamp_us
        )

    async def repair(self, stream_id: str, replica_id: str | None) -> RepairReport:
        """Nothing to repair: PostgreSQL keeps its own data intact. Reports
        the log as it is."""
        if self._read_only:
            raise read_only_refused(
                f"PostgreSQL schema {self._schema!r}", f"repairing stream {stream_id!r}"
            )
        last = await self._last(stream_id, replica_id or _PLAIN)
        return RepairReport(stream_id, replica_id, last)

    # -- reading ------------------------------------------------------------------

    async def _check_reading(self, stream_id: str, replicated: bool) -> None:
        known = self._kinds.get(stream_id)
        if known is None:
            rows = await pg_rows(
                self._pool,
                self._q("SELECT replicated FROM {s}.streams WHERE stream_id = %s"),
                (stream_id.encode(),),
            )
            if not rows:
                return
            known = self._kinds[stream_id] = bool(rows[0][0])
        if known != replicated:
            raise other_kind(stream_id, replicated=known, reading=True)

    async def _last(self, stream_id: str, replica: str) -> int:
        rows = await pg_rows(
            self._pool,
            self._q("SELECT last_sequence FROM {s}.logs WHERE stream_id = %s AND replica = %s"),
            (stream_id.encode(), replica.encode()),
        )
        return int(rows[0][0]) if rows else 0

    async def last_sequence(self, stream_id: str) -> int:
        await self._check_reading(stream_id, False)
        return await self._last(stream_id, _PLAIN)

    async def _rows(
        self, stream_id: str, replica: str, after_last: int, to_sequence: int | None, rows: int
    ) -> list[RecordBatch]:
        """Up to ``rows`` batches holding a sequence past ``after_last`` (and
        at most ``to_sequence``), in order."""
        query = (
            "SELECT payload, first_sequence FROM {s}.batches WHERE stream_id = %s "
            "AND replica = %s AND last_sequence > %s"
        )
        arguments: list[Any] = [stream_id.encode(), replica.encode(), after_last]
        if to_sequence is not None:
            query += " AND first_sequence <= %s"
            arguments.append(to_sequence)
        query += " ORDER BY first_sequence LIMIT %s"
        arguments.append(rows)
        found = await pg_rows(self._pool, self._q(query), arguments)
        log = f"stream {stream_id!r}" + (f", replica {replica!r}" if replica else "")
        return [
            batch_of(row[0], row=f"the {self._schema}.batches row of {log} at sequence {row[1]}")
            for row in found
        ]

    async def _read(
        self, stream_id: str, replica: str, from_sequence: int, to_sequence: int | None
    ) -> AsyncIterator[list[RecordBatch]]:
        after = from_sequence - 1
        while to_sequence is None or after < to_sequence:
            batches = await self._rows(stream_id, replica, after, to_sequence, _ROWS)
            wanted = [
                part
                for part in (b.sliced(from_sequence, to_sequence) for b in batches)
                if part is not None
            ]
            if wanted:
                yield wanted
            if len(batches) < _ROWS:
                return
            after = batches[-1].last_sequence

    async def read(
        self, stream_id: str, from_sequence: int, to_sequence: int | None
    ) -> AsyncIterator[list[RecordBatch]]:
        await self._check_reading(stream_id, False)
        async for batches in self._read(stream_id, _PLAIN, from_sequence, to_sequence):
            yield batches

    async def read_replica(
        self, stream_id: str, replica_id: str, from_sequence: int, to_sequence: int | None = None
    ) -> AsyncIterator[list[RecordBatch]]:
        await self._check_reading(stream_id, True)
        async for batches in self._read(stream_id, replica_id, from_sequence, to_sequence):
            yield batches

    async def replicas(self, stream_id: str) -> list[str]:
        await self._check_reading(stream_id, True)
        rows = await pg_rows(
            self._pool,
            self._q(
                "SELECT replica FROM {s}.logs WHERE stream_id = %s AND replica <> '' "
                "AND last_sequence > 0 ORDER BY replica"
            ),
            (stream_id.encode(),),
        )
        return [bytes(row[0]).decode() for row in rows]

    async def replica_version(self, stream_id: str, replica_id: str) -> dict[str, int]:
        rows = await pg_rows(
            self._pool,
            self._q("SELECT last_version FROM {s}.logs WHERE stream_id = %s AND replica = %s"),
            (stream_id.encode(), replica_id.encode()),
        )
        return dict(msgpack.unpackb(rows[0][0])) if rows else {}

    async def read_new(
        self,
        stream_id: str,
        known: Mapping[str, int],
        *,
        limit: int,
        exclude: Collection[str] = (),
    ) -> list[ReplicaPage]:
        """One page per replica log with news: its batches past
        ``known[replica]``, about ``limit`` events (whole batches, at least
        one). O(replicas) queries."""
        pages = []
        for replica in await self.replicas(stream_id):
            if replica in exclude:
                continue
            after = known.get(replica, 0)
            batches = await self._rows(stream_id, replica, after, None, max(1, limit) + 1)
            taken: list[RecordBatch] = []
            count = 0
            for batch in batches:
                if taken and count >= limit:
                    break
                part = batch.sliced(after + 1, None)
                if part is not None:
                    taken.append(part)
                    count += len(part.items)
            if taken:
                more = len(taken) < len(batches)
                pages.append(ReplicaPage(replica, taken, more))
        return pages

    # -- the catalog and the feed -------------------------------------------------

    async def aclose(self) -> None:
        """Let queued appends finish; refuse new ones."""
        await self._committer.aclose()
