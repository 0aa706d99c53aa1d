"""The snapshot store: save a folded state, load the newest one back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from calliope.core.ids import validate_stream_id
from calliope.core.snapshot import Snapshot
from calliope.errors import InvalidArgumentError
from calliope.shell.ports import CodecPort, SnapshotPort, SnapshotRecord
from calliope.shell.records import from_timestamp_us, to_timestamp_us
from calliope.shell.scope import AppScope

__all__ = ["SnapshotStore"]

S = TypeVar("S")


class SnapshotStore:
    """``app.snapshots``: durable snapshots, the last few kept per id.

    A saved snapshot is complete or absent after a crash; if the newest is
    damaged, loading falls back to the one before (and logs a warning),
    never returning garbage.
    """

    def __init__(
        self,
        port: SnapshotPort,
        codec: CodecPort,
        clock: Callable[[], Any],
        scope: AppScope,
    ) -> None:
        self._port = port
        self._codec = codec
        self._clock = clock
        self._scope = scope

    async def save_snapshot(
        self, snapshot_id: str, state: object, *, sequence: int
    ) -> Snapshot[Any]:
        """Durably store ``state`` as the fold of events 1..``sequence``. The
        app's close waits for a save in progress."""
        self._scope.ensure_open()
        validate_stream_id(snapshot_id, kind="snapshot id")
        if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
            raise InvalidArgumentError(f"sequence must be an int >= 0, got {sequence!r}")
        encoded = self._codec.for_type(type(state)).encode(state)
        moment = self._clock()
        record = SnapshotRecord(
            sequence,
            to_timestamp_us(moment),
            encoded.type_name,
            encoded.schema_version,
            encoded.data,
        )
        self._scope.begin()
        try:
            await self._port.save(snapshot_id, record)
        finally:
            self._scope.end()
        return Snapshot(
            state=state, sequence=sequence, timestamp=from_timestamp_us(record.timestamp_us)
        )

    async def load_snapshot(self, snapshot_id: str, state_type: type[S]) -> Snapshot[S] | None:
        """The newest intact snapshot decoded as ``state_type``, or None."""
        self._scope.ensure_open()
        validate_stream_id(snapshot_id, kind="snapshot id")
        record = await self._port.load(snapshot_id)
        if record is None:
            return None
        state: S = self._codec.for_type(state_type).decode(
            record.type_name, record.schema_version, record.data
        )
        return Snapshot(
            state=state, sequence=record.sequence, timestamp=from_timestamp_us(record.timestamp_us)
        )
