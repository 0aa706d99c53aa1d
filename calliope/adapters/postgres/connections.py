"""Taking a pooled connection, with errors a user can act on."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from calliope.errors import AppClosedError, StorageError

__all__ = ["pg_connection"]


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
