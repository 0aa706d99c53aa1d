"""The PostgreSQL store: one schema of one database, shared by every app
(on any machine) that opens it.

The constructor does no I/O. :meth:`PostgresStore.open` opens a connection
pool, creates or migrates the schema (schema.py), reads or creates the
store's default replica id, and takes the replica lease: a session-level
advisory lock on a connection of its own, held while the app is open (a
crashed client's session ends, and its locks with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from calliope.adapters.postgres.catalog import PostgresCatalog
from calliope.adapters.postgres.changes import PostgresChanges
from calliope.adapters.postgres.event_log import PostgresEventLog
from calliope.adapters.postgres.records import PostgresProgress, PostgresSnapshots
from calliope.adapters.postgres.schema import migrate
from calliope.errors import AppClosedError, InvalidArgumentError, ReplicaInUseError, StorageError

__all__ = ["PostgresStore", "check_schema_name"]

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,39}")


def check_schema_name(schema: object) -> str:
    """``schema`` if it is a plain lower-case identifier of at most 40
    characters; InvalidArgumentError otherwise."""
    if not isinstance(schema, str) or not _SCHEMA.fullmatch(schema):
        raise InvalidArgumentError(
            f"schema must be a lower-case identifier (letters, digits, '_'; at most 40 "
            f"characters, not starting with a digit), got {schema!r}"
        )
    return schema


def _unreachable(dsn: str, error: BaseException) -> StorageError:
    where = re.sub(r"//[^@/]*@", "//***@", dsn)  # no password in messages
    reason = " ".join(str(error).split())  # (one line: libpq's messages span several)
    return StorageError(
        f"cannot use the PostgreSQL database {where}: {reason}; check that the server runs "
        f"and the address, user and password are right"
    )


class PostgresStore:
    """Implements :class:`calliope.shell.ports.StorePort` on PostgreSQL."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str,
        replica_id: str | None,
        poll_interval: float,
        read_only: bool = False,
    ) -> None:
        self._dsn = dsn
        self._schema = check_schema_name(schema)
        self._requested_replica = replica_id
        self._replica: str | None = None
        self.read_only = read_only
        # (application_name: an operator sees which store a backend serves)
        self._pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=8,
            open=False,
            kwargs={"autocommit": True, "application_name": f"calliope {schema}"},
            # A connection that died in the pool (a killed backend, a restart)
            # is replaced before use, not handed out to fail a write.
            check=AsyncConnectionPool.check_connection,
        )
        channel = f"calliope_{schema}"
        self.changes = PostgresChanges(dsn, schema, channel, fallback=max(1.0, poll_interval * 100))
        self._log = PostgresEventLog(
            self._pool, schema, channel, read_only=read_only, changes=self.changes
        )
        self._catalog = PostgresCatalog(self._pool, schema, self.changes)
        self.snapshots = PostgresSnapshots(self._pool, schema, read_only=read_only)
        self.progress = PostgresProgress(self._pool, schema, read_only=read_only)
        self._leases: dict[str, psycopg.AsyncConnection[Any]] = {}
        self._leasing = asyncio.Lock()

    @property
    def plain(self) -> PostgresEventLog:
        return self._log

    @property
    def replicated(self) -> PostgresEventLog:
        return self._log

    @property
    def catalog(self) -> PostgresCatalog:
        return self._catalog

    @property
    def feed(self) -> PostgresCatalog:
        return self._catalog

    @property
    def replica_id(self) -> str:
        if self._replica is None:
            raise AppClosedError("the store is not open; use `async with calliope.open(...)`")
        return self._replica

    async def open(self) -> None:
        try:
            # One connection of its own first: an unreachable server fails
            # here at once, with the reason (a pool would retry in the
            # background and only time out).
            async with await psycopg.AsyncConnection.connect(
                self._dsn, autocommit=True, connect_timeout=5
            ) as connection:
                if not self.read_only:
                    await migrate(connection, self._schema)
                default = await self._default_replica(connection)
            await self._pool.open(wait=True, timeout=10.0)
        except (psycopg.Error, PoolTimeout) as error:
            await self._pool.close()
            raise _unreachable(self._dsn, error) from error
        except BaseException:
            await self._pool.close()
            raise
        replica = self._requested_replica or default
        if not self.read_only:
            try:
                await self.lease(replica)
            except BaseException:
                await self.aclose()
                raise
        self._replica = replica

    async def _default_replica(self, connection: psycopg.AsyncConnection[Any]) -> str:
        s = sql.Identifier(self._schema)
        if not self.read_only:
            await connection.execute(
                sql.SQL(
                    "INSERT INTO {}.meta VALUES ('default_replica_id', %s) ON CONFLICT DO NOTHING"
                ).format(s),
                (f"replica-{uuid.uuid4().hex[:12]}",),
            )
        try:
            cursor = await connection.execute(
                sql.SQL("SELECT value FROM {}.meta WHERE key = 'default_replica_id'").format(s)
            )
        except psycopg.errors.UndefinedTable:
            raise StorageError(
                f"PostgreSQL schema {self._schema!r} holds no Calliope store; open it "
                f"writable once to create it"
            ) from None
        row = await cursor.fetchone()
        if row is None:
            raise StorageError(f"PostgreSQL schema {self._schema!r} has no default replica id")
        return str(row[0])

    async def lease(self, replica_id: str) -> None:
        if replica_id in self._leases or self.read_only:
            return
        async with self._leasing:  # one at a time: two first uses share one lease
            if replica_id not in self._leases:
                await self._take_lease(replica_id)

    async def _take_lease(self, replica_id: str) -> None:
        """Hold ``replica_id``'s advisory lock on a connection of its own. A
        lock found taken is tried again for half a second (an app that just
        closed on another connection may not have let go yet)."""
        key = f"calliope:{self._schema}:{replica_id}"
        try:
            connection = await psycopg.AsyncConnection.connect(
                self._dsn, autocommit=True, application_name=f"calliope {self._schema} lease"
            )
        except psycopg.Error as error:
            raise _unreachable(self._dsn, error) from error
        try:
            for attempt in range(6):
                cursor = await connection.execute(
                    "SELECT pg_try_advisory_lock(hashtextextended(%s, 11))", (key,)
                )
                row = await cursor.fetchone()
                if row is not None and row[0]:
                    self._leases[replica_id] = connection
                    return
                await asyncio.sleep(0.02 * 2**attempt)
        except psycopg.Error as error:
            await connection.close()
            raise _unreachable(self._dsn, error) from error
        await connection.close()
        raise ReplicaInUseError(
            f"replica id {replica_id!r} is in use by another live app on PostgreSQL schema "
            f"{self._schema!r}; give this app another replica_id"
        )

    async def aclose(self) -> None:
        try:
            await self._log.aclose()
            await self.changes.aclose()
            await self._pool.close()
        finally:
            for connection in self._leases.values():
                with contextlib.suppress(Exception):
                    # Released at once (a closed session's locks go when the
                    # server notices, a moment later).
                    await connection.execute("SELECT pg_advisory_unlock_all()")
                with contextlib.suppress(Exception):
                    await connection.close()
            self._leases.clear()
