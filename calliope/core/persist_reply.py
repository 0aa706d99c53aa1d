"""What a write to a replicated stream tells its writer."""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

from calliope.core.envelope import Envelope

__all__ = ["PersistReply"]

E_co = TypeVar("E_co", covariant=True)


@attrs.frozen(kw_only=True)
class PersistReply(Generic[E_co]):
    """The persisted ``envelope`` and the ``concurrent_updates``: events by
    other replicas (or other handles) not in the new event's causal past,
    which the writer did not know about when it wrote. They are in causal
    order. Of any two concurrent events, at least one writer is told."""

    envelope: Envelope[E_co]
    concurrent_updates: tuple[Envelope[E_co], ...] = ()

    @property
    def concurrent_update_detected(self) -> bool:
        """True when some other write was concurrent with this one."""
        return bool(self.concurrent_updates)
