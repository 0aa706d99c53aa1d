"""What a replicator key keeps besides its log: CRDT snapshots and this
replica's progress report.

A CRDT snapshot is one record under the key's stream id in the snapshot
port: the CRDT type's name, and as data the state (compacted at the stable
point when it was taken), the delivered vector it includes, and who deleted
the key, if anyone did. Any replica may load any replica's snapshot: the
operations it does not include are exactly those not at or below its
vector, and the stable point it was compacted at is in the causal past of
every one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from calliope.errors import ReadOnlyStoreError, WrongCRDTTypeError
from calliope.shell.ports import CRDTTypeCodec, ProgressPort, SnapshotPort, SnapshotRecord
from calliope.shell.records import to_timestamp_us

__all__ = ["LARGE_STATE", "KeyStorage", "Loaded", "state_size"]

Loaded = tuple[Any, dict[str, int], str | None]
"""A loaded snapshot: (state, delivered counts, deleted by)."""

LARGE_STATE = 4096
"""States with more entries than this are encoded and decoded off the event loop."""


class KeyStorage:
    """One key's snapshots and this replica's progress reports."""

    def __init__(
        self,
        key: str,
        stream_id: str,
        replica_id: str,
        *,
        snapshots: SnapshotPort,
        progress: ProgressPort,
        codec: CRDTTypeCodec,
        clock: Callable[[], Any],
    ) -> None:
        self.key = key
        self.stream_id = stream_id
        self.replica_id = replica_id
        self.progress = progress
        self._snapshots = snapshots
        self._codec = codec
        self._clock = clock

    async def claim_type(self) -> None:
        """Claim the key for this CRDT type, or raise WrongCRDTTypeError if
        it holds another (before anything is read or written)."""
        held = await self.progress.claim_type(self.key, self._codec.name)
        if held != self._codec.name:
            raise WrongCRDTTypeError(
                f"replicator key {self.key!r} holds a {held}, not a {self._codec.name}; a key "
                f"has one CRDT type for its whole life: use that type, or another key"
            )

    async def load(self) -> Loaded | None:
        """The key's newest CRDT snapshot, or None. O(size of the state)."""
        record = await self._snapshots.load(self.stream_id)
        if record is None:
            return None
        data = record.data
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("delivered"), dict)
            or "state" not in data
        ):
            raise WrongCRDTTypeError(
                f"the snapshot of replicator key {self.key!r} is not a CRDT snapshot "
                f"(it holds a {record.type_name!r}); use another key"
            )
        if _plain_size(data["state"]) > LARGE_STATE:  # off the loop: it may take 100 ms
            state = await asyncio.to_thread(
                self._codec.decode_state, record.type_name, data["state"]
            )
        else:
            state = self._codec.decode_state(record.type_name, data["state"])
        deleted_by = data.get("deleted_by")
        return state, dict(data["delivered"]), deleted_by if isinstance(deleted_by, str) else None

    async def save(self, state: Any, counts: Mapping[str, int], deleted_by: str | None) -> None:
        """Save ``state`` (which includes exactly ``counts``) as the key's
        snapshot. O(size of the state), off the event loop when large."""
        if state_size(state) > LARGE_STATE:
            encoded = await asyncio.to_thread(self._codec.encode_state, state)
        else:
            encoded = self._codec.encode_state(state)
        data = {"delivered": dict(counts), "state": encoded, "deleted_by": deleted_by}
        record = SnapshotRecord(
            sequence=sum(counts.values()),
            timestamp_us=to_timestamp_us(self._clock()),
            type_name=self._codec.name,
            schema_version=1,
            data=data,
        )
        with contextlib.suppress(ReadOnlyStoreError):  # a reader keeps nothing
            await self._snapshots.save(self.stream_id, record)

    async def report(self, counts: Mapping[str, int]) -> None:
        """Record that this replica has applied ``counts`` (nothing on a
        read-only store: a replica that cannot write holds nothing back)."""
        with contextlib.suppress(ReadOnlyStoreError):
            await self.progress.report(
                self.key,
                self.replica_id,
                dict(counts),
                timestamp_us=to_timestamp_us(self._clock()),
            )


def state_size(state: object) -> int:
    """A rough size of a CRDT state: its length if it has one, else small."""
    try:
        return len(state)  # type: ignore[arg-type]
    except TypeError:
        value = getattr(state, "value", None)
        try:
            return len(value)  # type: ignore[arg-type]
        except TypeError:
            return 0


def _plain_size(data: object) -> int:
    """A rough size of plain data: the lengths of its top-level containers."""
    if isinstance(data, dict):
        return sum(len(value) for value in data.values() if isinstance(value, list | dict))
    return len(data) if isinstance(data, list) else 0
