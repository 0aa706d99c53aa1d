"""The one place the shell maps a target string to adapters."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from calliope.adapters.codec import Codec
from calliope.adapters.files.store import FileStore
from calliope.adapters.memory import MemoryStore
from calliope.errors import InvalidArgumentError
from calliope.shell.ports import Durability

if TYPE_CHECKING:
    from calliope.adapters.postgres.store import PostgresStore

__all__ = ["store_for"]


def _schema_in(dsn: str) -> tuple[str, str | None]:
    """The DSN without a ``schema=`` query parameter, and that schema (a
    Calliope option, not libpq's: ``postgresql://host/db?schema=shop``)."""
    base, _, query = dsn.partition("?")
    if not query:
        return dsn, None
    kept, schema = [], None
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "schema":
            schema = value
        else:
            kept.append(part)
    return (base + "?" + "&".join(kept) if kept else base), schema


def _postgres_store(
    dsn: str, schema: str, replica_id: str | None, poll_interval: float, read_only: bool
) -> PostgresStore:
    try:
        from calliope.adapters.postgres.store import PostgresStore
    except ImportError as error:
        raise InvalidArgumentError(
            f"PostgreSQL needs the extra: pip install 'calliope[postgres]' ({error})"
        ) from None
    return PostgresStore(
        dsn,
        schema=schema,
        replica_id=replica_id,
        poll_interval=poll_interval,
        read_only=read_only,
    )


def store_for(
    target: str | os.PathLike[str],
    *,
    replica_id: str | None,
    durability: Durability,
    segment_bytes: int,
    poll_interval: float,
    read_only: bool = False,
    schema: str | None = None,
) -> tuple[FileStore | MemoryStore | PostgresStore, Codec, str]:
    """The (unopened) store, a fresh codec and a display name for ``target``."""
    if not isinstance(target, str | os.PathLike):
        raise InvalidArgumentError(
            f"calliope.open needs a directory path, 'memory://name' or 'postgresql://...', "
            f"got {target!r}"
        )
    text = os.fspath(target)
    codec = Codec()
    if text.startswith("memory://"):
        name = text[len("memory://") :]
        if not name:
            raise InvalidArgumentError("a memory target needs a name: 'memory://name'")
        return MemoryStore(name, replica_id=replica_id, read_only=read_only), codec, text
    if text.startswith(("postgresql://", "postgres://")):
        dsn, named = _schema_in(text)
        if named is not None and schema is not None and named != schema:
            raise InvalidArgumentError(
                f"the target names schema {named!r} and schema= says {schema!r}; give one"
            )
        return (
            _postgres_store(
                dsn, named or schema or "calliope", replica_id, poll_interval, read_only
            ),
            codec,
            re.sub(r"//[^@/]*@", "//***@", text),
        )
    if schema is not None:
        raise InvalidArgumentError(
            f"schema is for PostgreSQL targets ('postgresql://...'), not {text!r}"
        )
    if "://" in text:
        raise InvalidArgumentError(
            f"unknown target scheme in {text!r}; use a directory path, 'memory://name' "
            f"or 'postgresql://...'"
        )
    if not text:
        raise InvalidArgumentError("calliope.open needs a non-empty directory path")
    if "\0" in text:
        raise InvalidArgumentError(
            f"a directory path cannot contain a NUL character, got {text!r}; check the path"
        )
    store = FileStore(
        text,
        replica_id=replica_id,
        durability=durability,
        segment_bytes=segment_bytes,
        poll_interval=poll_interval,
        read_only=read_only,
    )
    return store, codec, text
