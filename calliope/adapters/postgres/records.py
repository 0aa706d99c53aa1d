"""Snapshots and replica progress on PostgreSQL.

Snapshots: one row each, the newest ``keep`` per id kept; a save is one
transaction (the row and the pruning), so a crash leaves the old snapshots
or the new one. Progress reports and heartbeats: one row per (key, replica)
and per replica, replaced whole by an upsert; a key's CRDT type is claimed
with ``INSERT ... ON CONFLICT DO NOTHING`` (of two claims, the first to
commit wins, and both read it back).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgpack
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from calliope.adapters.packing import pack_data
from calliope.adapters.postgres.connections import pg_connection, pg_rows
from calliope.adapters.read_only import read_only_refused
from calliope.shell.ports import HeartbeatRecord, ProgressRecord, SnapshotRecord

__all__ = ["PostgresProgress", "PostgresSnapshots"]

_KEEP = 3
_ID_PAGE = 1000


class _Tables:
    def __init__(self, pool: AsyncConnectionPool[Any], schema: str, *, read_only: bool) -> None:
        self._pool = pool
        self._s = sql.Identifier(schema)
        self._schema = schema
        self._read_only = read_only

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=self._s)

    def _check_writable(self, what: str) -> None:
        if self._read_only:
            raise read_only_refused(f"PostgreSQL schema {self._schema!r}", what)

    async def _one(self, query: str, arguments: tuple[Any, ...]) -> tuple[Any, ...] | None:
        rows = await self._all(query, arguments)
        return rows[0] if rows else None

    async def _all(self, query: str, arguments: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return await pg_rows(self._pool, self._q(query), arguments)

    async def _run(self, query: str, arguments: tuple[Any, ...]) -> None:
        async with pg_connection(self._pool) as connection:
            await connection.execute(self._q(query), arguments)


class PostgresSnapshots(_Tables):
    """Implements the SnapshotPort."""

    async def save(self, snapshot_id: str, record: SnapshotRecord) -> None:
        self._check_writable(f"saving snapshot {snapshot_id!r}")
        data = pack_data(record.data)
        async with pg_connection(self._pool) as connection, connection.transaction():
            await connection.execute(
                self._q(
                    "INSERT INTO {s}.snapshots VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (snapshot_id, sequence, timestamp_us) DO UPDATE SET "
                    "type_name = EXCLUDED.type_name, schema_version = EXCLUDED.schema_version, "
                    "data = EXCLUDED.data"
                ),
                (
                    snapshot_id.encode(),
                    record.sequence,
                    record.timestamp_us,
                    record.type_name,
                    record.schema_version,
                    data,
                ),
            )
            await connection.execute(
                self._q(
                    "DELETE FROM {s}.snapshots WHERE snapshot_id = %s AND (sequence, timestamp_us) "
                    "NOT IN (SELECT sequence, timestamp_us FROM {s}.snapshots "
                    "WHERE snapshot_id = %s ORDER BY sequence DESC, timestamp_us DESC LIMIT %s)"
                ),
                (snapshot_id.encode(), snapshot_id.encode(), _KEEP),
            )

    async def load(self, snapshot_id: str) -> SnapshotRecord | None:
        row = await self._one(
            "SELECT sequence, timestamp_us, type_name, schema_version, data FROM {s}.snapshots "
            "WHERE snapshot_id = %s ORDER BY sequence DESC, timestamp_us DESC LIMIT 1",
            (snapshot_id.encode(),),
        )
        if row is None:
            return None
        data = msgpack.unpackb(row[4], raw=False, strict_map_key=False)
        return SnapshotRecord(int(row[0]), int(row[1]), str(row[2]), int(row[3]), data)

    async def ids(self, prefix: str | None) -> AsyncIterator[list[str]]:
        """Pages of :data:`_ID_PAGE` ids, in byte order, by key (never OFFSET)."""
        start = (prefix or "").encode()
        after: bytes | None = None
        while True:
            rows = await self._all(
                "SELECT DISTINCT snapshot_id FROM {s}.snapshots WHERE snapshot_id > %s "
                "AND substring(snapshot_id FROM 1 FOR %s) = %s ORDER BY snapshot_id LIMIT %s",
                (after if after is not None else b"", len(start), start, _ID_PAGE),
            )
            if not rows:
                return
            yield [bytes(row[0]).decode() for row in rows]
            if len(rows) < _ID_PAGE:
                return
            after = bytes(rows[-1][0])

    async def check(self, snapshot_id: str) -> list[str]:
        rows = await self._all(
            "SELECT sequence, timestamp_us, data FROM {s}.snapshots WHERE snapshot_id = %s",
            (snapshot_id.encode(),),
        )
        damaged = []
        for sequence, timestamp_us, data in rows:
            try:
                msgpack.unpackb(data, raw=False, strict_map_key=False)
            except (ValueError, TypeError, msgpack.UnpackException):
                damaged.append(
                    f"table {self._schema}.snapshots, snapshot {snapshot_id!r} at sequence "
                    f"{sequence} (saved {timestamp_us} us): its data is not valid msgpack"
                )
        return damaged


class PostgresProgress(_Tables):
    """Implements the ProgressPort."""

    async def report(
        self, key: str, replica_id: str, delivered: Mapping[str, int], *, timestamp_us: int
    ) -> None:
        self._check_writable(f"recording progress on {key!r}")
        await self._run(
            "INSERT INTO {s}.progress VALUES (%s, %s, %s, %s) ON CONFLICT (key, replica_id) "
            "DO UPDATE SET delivered = EXCLUDED.delivered, timestamp_us = EXCLUDED.timestamp_us",
            (key.encode(), replica_id.encode(), msgpack.packb(dict(delivered)), timestamp_us),
        )

    async def reports(self, key: str) -> list[ProgressRecord]:
        rows = await self._all(
            "SELECT replica_id, delivered, timestamp_us FROM {s}.progress WHERE key = %s "
            "ORDER BY replica_id",
            (key.encode(),),
        )
        return [
            ProgressRecord(bytes(r[0]).decode(), dict(msgpack.unpackb(r[1])), int(r[2]))
            for r in rows
        ]

    async def reporters_token(self, key: str) -> object:
        row = await self._one("SELECT count(*) FROM {s}.progress WHERE key = %s", (key.encode(),))
        return 0 if row is None else int(row[0])

    async def claim_type(self, key: str, type_name: str) -> str:
        if not self._read_only:
            await self._run(
                "INSERT INTO {s}.crdt_types VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (key.encode(), type_name),
            )
        row = await self._one(
            "SELECT type_name FROM {s}.crdt_types WHERE key = %s", (key.encode(),)
        )
        return type_name if row is None else str(row[0])

    async def beat(self, replica_id: str, *, timestamp_us: int, running: bool = True) -> None:
        self._check_writable(f"recording a heartbeat of {replica_id!r}")
        await self._run(
            "INSERT INTO {s}.heartbeats VALUES (%s, %s, %s) ON CONFLICT (replica_id) "
            "DO UPDATE SET timestamp_us = EXCLUDED.timestamp_us, running = EXCLUDED.running",
            (replica_id.encode(), timestamp_us, running),
        )

    async def heartbeats(self) -> list[HeartbeatRecord]:
        rows = await self._all(
            "SELECT replica_id, timestamp_us, running FROM {s}.heartbeats ORDER BY replica_id",
            (),
        )
        return [HeartbeatRecord(bytes(r[0]).decode(), int(r[1]), bool(r[2])) for r in rows]
