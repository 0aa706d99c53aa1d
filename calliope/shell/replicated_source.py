"""What a replicated stream handle and its queries share: the ports, the
codec, the app's scope, and what the handle has observed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from calliope.core.envelope import Envelope
from calliope.core.replication import RecordBatch
from calliope.core.version_vector import VersionVector
from calliope.shell.ports import ChangesPort, ReplicaLogPort, TypeCodec
from calliope.shell.records import from_timestamp_us
from calliope.shell.scope import AppScope

__all__ = ["ReplicatedSource"]

E = TypeVar("E")


class ReplicatedSource(Generic[E]):
    """One replicated stream as one replica's handle sees it."""

    def __init__(
        self,
        stream_id: str,
        replica_id: str,
        log: ReplicaLogPort,
        changes: ChangesPort,
        codec: TypeCodec[Any],
        scope: AppScope,
        before_first_use: Callable[[], Awaitable[None] | None],
    ) -> None:
        self.stream_id = stream_id
        self.replica_id = replica_id
        self.log = log
        self.changes = changes
        self.codec = codec
        self.scope = scope
        self._before_first_use = before_first_use
        self.counts: dict[str, int] = {}  # what the handle has observed
        self._version: VersionVector | None = VersionVector()
        self.started = False
        self._starting = asyncio.Lock()

    @property
    def version(self) -> VersionVector:
        """What the handle has observed, as a vector."""
        if self._version is None:
            self._version = VersionVector.unchecked(dict(self.counts))
        return self._version

    async def start(self) -> None:
        """Resume the replica's knowledge from its own log (once, even when
        several tasks start using the handle at the same time)."""
        self.scope.ensure_open()
        if self.started:
            return
        async with self._starting:
            if not self.started:
                pending = self._before_first_use()
                if pending is not None:
                    await pending
                own = await self.log.replica_version(self.stream_id, self.replica_id)
                self.observe(own)
                self.started = True

    def observe(self, version: Mapping[str, int]) -> None:
        """Merge an observed version into what the handle has seen. O(replicas)."""
        counts = self.counts
        for replica, counter in version.items():
            if counter > counts.get(replica, 0):
                counts[replica] = counter
                self._version = None

    def observe_next(self, replica: str, counter: int) -> None:
        """Observe one event whose causal past the handle has already seen."""
        if counter > self.counts.get(replica, 0):
            self.counts[replica] = counter
            self._version = None

    def envelope(self, batch: RecordBatch, index: int) -> Envelope[E]:
        """Event ``index`` of ``batch``, decoded, with its version."""
        name, schema, data = batch.items[index]
        version = batch.version_at(index)
        return Envelope(
            stream_id=self.stream_id,
            replica_id=batch.writer,
            sequence=version[batch.writer],
            version=VersionVector.unchecked(version),
            timestamp=from_timestamp_us(batch.timestamp_us),
            event=self.codec.decode(name, schema, data),
        )
