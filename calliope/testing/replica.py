"""One in-memory replica of a CRDT, for examples and unit tests.

>>> from calliope import ORSet
>>> from calliope.testing import Replica
>>> a, b = Replica("a", ORSet), Replica("b", ORSet)
>>> sent = a.update(lambda s: s.add("x"))
>>> b.receive(*sent)
>>> b.value
frozenset({'x'})

It does what the replicator does, without I/O: prepares operations on its
state, tags them with its delivered vector, applies them locally, and
receives other replicas' operations through a causal buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from calliope.core.causal_delivery import CausalBuffer, receive
from calliope.core.crdt.protocol import Tagged, as_operations, tag_operations
from calliope.core.version_vector import VersionVector

__all__ = ["Replica"]

C = TypeVar("C")


class Replica(Generic[C]):
    """A named replica holding a ``crdt_type`` state (mutable, unlike the core)."""

    def __init__(self, replica_id: str, crdt_type: type[C]) -> None:
        self.replica_id = replica_id
        self.state: C = crdt_type()
        self.buffer: CausalBuffer[Tagged[Any]] = CausalBuffer()
        self.log: list[Tagged[Any]] = []

    @property
    def value(self) -> Any:
        return self.state.value  # type: ignore[attr-defined]

    @property
    def delivered(self) -> VersionVector:
        return self.buffer.delivered

    def update(self, prepare: Callable[[C], object]) -> list[Tagged[Any]]:
        """Prepare, tag and apply operations here; return them to send to others."""
        operations = as_operations(prepare(self.state))
        tagged = tag_operations(self.replica_id, self.buffer.delivered, operations)
        self.receive(*tagged)
        return tagged

    def receive(self, *operations: Tagged[Any]) -> None:
        """Receive operations in any order; apply each once, in causal order."""
        for operation in operations:
            self.buffer, released = receive(self.buffer, operation)
            for item in released:
                self.state = self.state.effect(item)  # type: ignore[attr-defined]
                self.log.append(item)

    def compact(self, stable: VersionVector) -> None:
        """Compact at ``stable`` (which must be causally stable here)."""
        self.state = self.state.compact(stable)  # type: ignore[attr-defined]
