"""Taking a pooled connection, with errors a user can act on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from calliope.errors import AppClosedError, StorageError

__all__ = ["pg_connection", "pg_rows"]

_ATTEMPTS = 4  # a read is tried again on a fresh connection after a lost one


@contextlib.asynccontextmanager
async def pg_connection(
    pool: AsyncConnectionPool[Any],
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection from ``pool`` for the block. A closed pool is
    AppClosedError; a database error (raised by the block too) is
    StorageError: the statement's transaction was rolled back, or, if the
    connection broke at its commit, its outcome is unknown."""
    try:
        async with pool.connection() as connection:
            yield connection
    except PoolClosed:
        raise AppClosedError("this store is closed; open it again") from None
    except PoolTimeout as error:
        raise StorageError(
            f"no PostgreSQL connection could be had in time ({error}); check that the server "
            f"runs and accepts connections"
        ) from error
    except psycopg.Error as error:
        raise StorageError(
            f"PostgreSQL refused or lost a statement ({type(error).__name__}: {error}); "
            f"what it was doing was not done, or (if the connection broke at the commit) may "
            f"have been: read back before retrying"
        ) from error


async def pg_rows(
    pool: AsyncConnectionPool[Any], query: Any, arguments: Any = ()
) -> list[tuple[Any, ...]]:
    """The rows of one read-only statement. A connection lost on the way (a
    killed backend, a restarted server) is replaced and the read tried again
    (a read can be: it changes nothing), ``_ATTEMPTS`` times with a growing
    pause; then StorageError."""
    for attempt in range(_ATTEMPTS):
        try:
            async with pg_connection(pool) as connection:
                # (binary results: bytea comes as bytes, not hex to decode)
                cursor = await connection.execute(query, arguments, binary=True)
                rows: list[tuple[Any, ...]] = await cursor.fetchall()
                return rows
        except StorageError as error:
            lost = isinstance(error.__cause__, psycopg.OperationalError)
            if not lost or attempt == _ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")
