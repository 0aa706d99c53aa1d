"""The envelope: one persisted event with its identity and causal clock."""

from __future__ import annotations

import datetime
from typing import Generic, TypeVar

import attrs

from calliope.core.feed_position import FeedPosition
from calliope.core.version_vector import VersionVector

__all__ = ["Dot", "Envelope"]

E = TypeVar("E")
E_co = TypeVar("E_co", covariant=True)

Dot = tuple[str, int]
"""An event's unique causal identity: (replica id, that replica's counter)."""


@attrs.frozen(kw_only=True)
class Envelope(Generic[E_co]):
    """An event as stored: where it belongs, who wrote it, when, and after what.

    * ``stream_id``: the stream (aggregate) the event belongs to.
    * ``replica_id``: the replica that wrote it.
    * ``sequence``: its position, counted from 1. In a plain stream it is the
      stream's sequence; in a replicated stream it is the writing replica's own
      sequence in the stream, which equals ``version[replica_id]``.
    * ``version``: the writer's version vector *including this event*: its own
      replica's entry counts it, so ``a.version <= b.version`` means ``a`` is
      ``b`` or in its causal past.
    * ``timestamp``: when it was written (UTC, supplied by the shell).
    * ``event``: the application's event value.
    * ``position``: where a feed (``app.journal.feed``) found it, to resume
      after; None for events read from one stream.
    """

    stream_id: str
    replica_id: str
    sequence: int
    version: VersionVector
    timestamp: datetime.datetime
    event: E_co
    position: FeedPosition | None = None

    @property
    def dot(self) -> Dot:
        """The causal identity (replica id, counter at that replica)."""
        return (self.replica_id, self.version[self.replica_id])
