"""The marker a replicator key's log holds once the key is deleted."""

from __future__ import annotations

__all__ = ["DELETED"]


class _Deleted:
    """Stored as an event named :attr:`name`; decodes to :data:`DELETED`."""

    name = "calliope.deleted"

    def __repr__(self) -> str:
        return "DELETED"


DELETED = _Deleted()
"""The operation ``app.replicator.delete`` writes (for every CRDT type)."""
