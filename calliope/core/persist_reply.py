"""What a write to a replicated stream tells its writer."""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

from calliope.core.envelope import Envelope
from calliope.core.version_vector import VersionVector

__all__ = ["PersistReply"]

E_co = TypeVar("E_co", covariant=True)


@attrs.frozen(kw_only=True)
class PersistReply(Generic[E_co]):
    """What a replicated persist wrote and what its writer did not know.

    * ``envelope``: the persisted event.
    * ``concurrent_updates``: events by other replicas concurrent with it
      (not in its causal past), which its writer did not know about when it
      wrote; in causal order, at most the persist's ``max_reported``.
    * ``more_concurrent_updates``: how many more concurrent events there are
      (beyond the bound, or that could not be decoded).
      ``query(since=reply.since)`` reads them: ``since`` is the new event's
      causal past, so that query yields every event not in it (the new
      event itself and anything concurrent with it).
    * ``errors``: what went wrong while building the reply *after* the event
      was written (an event that cannot be decoded, a storage error on the
      read, cancellation); the write itself stands. ``complete`` is False
      when there are any.

    Of any two concurrent events, at least one writer is told.
    """

    envelope: Envelope[E_co]
    concurrent_updates: tuple[Envelope[E_co], ...] = ()
    more_concurrent_updates: int = 0
    errors: tuple[Exception, ...] = ()

    @property
    def since(self) -> VersionVector:
        """The new event's causal past (its version without itself)."""
        version = self.envelope.version.to_dict()
        version[self.envelope.replica_id] -= 1
        return VersionVector({r: c for r, c in version.items() if c})

    @property
    def complete(self) -> bool:
        """True when the reply reports everything it should (no ``errors``)."""
        return not self.errors

    @property
    def concurrent_update_detected(self) -> bool:
        """True when some other write was concurrent with this one."""
        return bool(self.concurrent_updates) or self.more_concurrent_updates > 0
