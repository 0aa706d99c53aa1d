"""The snapshot store: save a folded state, load the newest one back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from calliope.core.ids import validate_stream_id
from calliope.core.snapshot import Snapshot
from calliope.errors import InvalidArgumentError, UnknownEventTypeError
from calliope.shell.ports import CodecPort, PlainLogPort, SnapshotPort, SnapshotRecord
from calliope.shell.records import from_timestamp_us, to_timestamp_us
from calliope.shell.scope import AppScope

__all__ = ["SnapshotStore"]

S = TypeVar("S")

MAX_SEQUENCE = 2**63 - 1
"""The largest sequence a snapshot may have (storage keeps it in 64 bits)."""


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
        *,
        plain: PlainLogPort | None = None,
    ) -> None:
        self._port = port
        self._plain = plain
        self._codec = codec
        self._clock = clock
        self._scope = scope

    async def save_snapshot(
        self, snapshot_id: str, state: object, *, sequence: int
    ) -> Snapshot[Any]:
        """Durably store ``state`` as the fold of events 1..``sequence``. The
        app's close waits for a save in progress.

        ``sequence`` must be an int from 0 (the state before any event) to
        2**63 - 1, and, if a plain stream with the same id has events, at
        most its last sequence (one read of the log's end; appends only make
        it larger). Otherwise InvalidArgumentError, and nothing is written.
        For an id that names a replicated stream (where sequences are per
        replica) or no stream yet, only the range is checked: which events
        the state folds is then the caller's to record.
        """
        self._scope.ensure_open()
        validate_stream_id(snapshot_id, kind="snapshot id")
        if (
            not isinstance(sequence, int)
            or isinstance(sequence, bool)
            or not 0 <= sequence <= MAX_SEQUENCE
        ):
            raise InvalidArgumentError(
                f"sequence must be an int from 0 to 2**63 - 1 (the sequence of the last event "
                f"the state folds), got {sequence!r}"
            )
        if self._plain is not None and sequence:
            last = await self._plain.last_sequence(snapshot_id)
            if last and sequence > last:
                raise InvalidArgumentError(
                    f"snapshot {snapshot_id!r} at sequence {sequence} is past the end of stream "
                    f"{snapshot_id!r}, whose last event is {last}; nothing was written. Pass the "
                    f"sequence of the last event the state folds (its envelope's sequence)"
                )
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
        """The newest intact snapshot decoded as ``state_type``, or None.
        A ``state_type`` the codec cannot decode into is refused whether or
        not a snapshot exists (InvalidArgumentError)."""
        self._scope.ensure_open()
        validate_stream_id(snapshot_id, kind="snapshot id")
        codec = self._codec.for_type(state_type)
        record = await self._port.load(snapshot_id)
        if record is None:
            return None
        try:
            state: S = codec.decode(record.type_name, record.schema_version, record.data)
        except UnknownEventTypeError:
            raise UnknownEventTypeError(
                f"snapshot {snapshot_id!r} holds a {record.type_name!r}, not a "
                f"{getattr(state_type, '__name__', state_type)}: load it with the class "
                f"registered as {record.type_name!r} (or a Union that includes it), or save "
                f"a new snapshot of this type"
            ) from None
        return Snapshot(
            state=state, sequence=record.sequence, timestamp=from_timestamp_us(record.timestamp_us)
        )
