"""What every causally tagged value has: a writer and a version vector."""

from __future__ import annotations

from typing import Protocol

from calliope.core.version_vector import VersionVector

__all__ = ["Causal"]


class Causal(Protocol):
    """Anything tagged with the replica that made it and its version vector.

    The version counts the value itself at ``replica_id``: its *dot* is
    ``(replica_id, version[replica_id])``. Envelopes and CRDT operations are
    both ``Causal``; delivery, ordering and concurrency detection work on either.
    """

    @property
    def replica_id(self) -> str: ...

    @property
    def version(self) -> VersionVector: ...
