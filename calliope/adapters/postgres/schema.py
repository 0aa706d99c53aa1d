"""The tables of a Calliope store in one PostgreSQL schema, and their versions.

``migrations`` records each schema version applied; an open applies the
missing ones in one transaction (under an advisory lock, so two processes
opening a new store at once do not race) and refuses a schema newer than
this code knows. Every statement is parameterised; the schema name is the
only identifier built into SQL, quoted by psycopg's ``sql.Identifier``.

Tables (``<s>`` the schema):

- ``meta(key, value)``: ``default_replica_id``.
- ``streams(stream_id, replicated)``: each stream's kind, set by its first write.
- ``logs(stream_id, replica, last_sequence, last_version)``: one row per log
  (``replica`` '' for a plain stream's): its end, and the row its writers
  lock (``FOR UPDATE``), so ``expected_sequence`` holds across machines.
- ``batches(stream_id, replica, first_sequence, last_sequence, feed_entry,
  entry_offset, payload)``: one row per stored batch; ``payload`` is the
  batch as the file store frames it (batch_format.py), ``feed_entry`` its
  feed number (one per transaction) and ``entry_offset`` the events of that
  entry before it (in stream, replica, sequence order): a feed position
  names the same event whatever the prefix of the feed that gave it;
  ``write_id`` the group's: after a connection lost at the commit, the
  writer looks it up to learn whether the group was written.
- ``feed_counter(id, next)``: one row; a writing transaction takes its feed
  number from it last, holding the row's lock to its commit, so numbers are
  committed in order (the feed never skips a late commit).
- ``snapshots``, ``progress``, ``crdt_types``, ``heartbeats``: as the ports say.

Ids (stream, replica, snapshot, key) are stored as their UTF-8 bytes
(``bytea``): any id Calliope accepts, NUL included, which ``text`` refuses.
"""

from __future__ import annotations

from psycopg import AsyncConnection, sql

from calliope.errors import StorageError

__all__ = ["SCHEMA_VERSION", "migrate"]

SCHEMA_VERSION = 1

_MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL)",
        "CREATE TABLE {s}.streams (stream_id bytea PRIMARY KEY, replicated boolean NOT NULL)",
        """CREATE TABLE {s}.logs (
            stream_id bytea NOT NULL, replica bytea NOT NULL,
            last_sequence bigint NOT NULL, last_version bytea NOT NULL,
            PRIMARY KEY (stream_id, replica))""",
        """CREATE TABLE {s}.batches (
            stream_id bytea NOT NULL, replica bytea NOT NULL,
            first_sequence bigint NOT NULL, last_sequence bigint NOT NULL,
            feed_entry bigint NOT NULL, entry_offset bigint NOT NULL, payload bytea NOT NULL,
            write_id bytea NOT NULL,
            PRIMARY KEY (stream_id, replica, first_sequence))""",
        "CREATE INDEX batches_feed ON {s}.batches (feed_entry)",
        "CREATE INDEX batches_write ON {s}.batches (write_id)",
        "CREATE TABLE {s}.feed_counter (id int PRIMARY KEY, next bigint NOT NULL)",
        "INSERT INTO {s}.feed_counter VALUES (1, 0)",
        """CREATE TABLE {s}.snapshots (
            snapshot_id bytea NOT NULL, sequence bigint NOT NULL, timestamp_us bigint NOT NULL,
            type_name text NOT NULL, schema_version int NOT NULL, data bytea NOT NULL,
            PRIMARY KEY (snapshot_id, sequence, timestamp_us))""",
        """CREATE TABLE {s}.progress (
            key bytea NOT NULL, replica_id bytea NOT NULL, delivered bytea NOT NULL,
            timestamp_us bigint NOT NULL, PRIMARY KEY (key, replica_id))""",
        "CREATE TABLE {s}.crdt_types (key bytea PRIMARY KEY, type_name text NOT NULL)",
        """CREATE TABLE {s}.heartbeats (
            replica_id bytea PRIMARY KEY, timestamp_us bigint NOT NULL,
            running boolean NOT NULL)""",
    ],
}


async def migrate(connection: AsyncConnection[object], schema: str) -> None:
    """Create the schema's tables, or bring them to SCHEMA_VERSION; refuse a
    newer schema (StorageError saying what to do)."""
    ident = sql.Identifier(schema)
    async with connection.transaction():
        # One process at a time creates or migrates a schema.
        await connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))", (f"calliope:{schema}",)
        )
        await connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        await connection.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.migrations "
                "(version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(ident)
        )
        cursor = await connection.execute(
            sql.SQL("SELECT coalesce(max(version), 0) FROM {}.migrations").format(ident)
        )
        row = await cursor.fetchone()
        current = int(row[0]) if row else 0  # type: ignore[index]
        if current > SCHEMA_VERSION:
            raise StorageError(
                f"PostgreSQL schema {schema!r} is at Calliope schema version {current}, newer "
                f"than this Calliope knows ({SCHEMA_VERSION}); upgrade Calliope, or use "
                f"another schema"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version]:
                await connection.execute(sql.SQL(statement).format(s=ident))
            await connection.execute(
                sql.SQL("INSERT INTO {}.migrations (version) VALUES (%s)").format(ident),
                (version,),
            )
