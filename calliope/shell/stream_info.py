"""``app.journal.streams()``: the streams of a store, listed as they stand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import attrs

from calliope.core.ids import in_feed
from calliope.core.version_vector import VersionVector
from calliope.errors import InvalidArgumentError
from calliope.shell.ports import StorePort
from calliope.shell.scope import AppScope

__all__ = ["StreamInfo", "list_streams"]


@attrs.frozen
class StreamInfo:
    """One stream as a listing found it.

    ``kind`` is ``"plain"`` or ``"replicated"``. A plain stream has its
    ``last_sequence`` (``version`` None, ``replicas`` empty); a replicated
    one has its ``version`` (every replica's last event merged: what a reader
    of the whole stream would have seen) and its ``replicas``
    (``last_sequence`` None).
    """

    stream_id: str
    kind: Literal["plain", "replicated"]
    last_sequence: int | None = None
    version: VersionVector | None = None
    replicas: tuple[str, ...] = ()


async def list_streams(
    store: StorePort, scope: AppScope, prefix: str | None
) -> AsyncIterator[StreamInfo]:
    """Every stream holding events whose id starts with ``prefix`` (Calliope's own
    ``$calliope/`` streams only when the prefix asks for them), each once,
    in an order stable for the store. Streams a page at a time: memory stays
    flat however many streams there are; O(1) storage calls per stream."""
    if prefix is not None and not isinstance(prefix, str):
        raise InvalidArgumentError(f"prefix must be a str or None, got {prefix!r}")
    scope.ensure_open()
    async for page in store.catalog.list_streams(prefix):
        for stream_id, replicated in page:
            if not in_feed(stream_id, prefix):
                continue
            scope.ensure_open()
            if not replicated:
                last = await store.plain.last_sequence(stream_id)
                if last:  # (a stream whose first write was refused holds nothing)
                    yield StreamInfo(stream_id, "plain", last_sequence=last)
                continue
            replicas = await store.replicated.replicas(stream_id)
            if not replicas:
                continue
            version = VersionVector()
            for replica in replicas:
                version = version.merge(
                    VersionVector(await store.replicated.replica_version(stream_id, replica))
                )
            yield StreamInfo(stream_id, "replicated", version=version, replicas=tuple(replicas))
