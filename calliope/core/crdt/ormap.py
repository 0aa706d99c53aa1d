"""ORMap: a map from keys to nested CRDTs, keys add-wins.

Each key holds a nested CRDT, created empty by the first update and changed
only through operations: ``update(key, Type, prepare)`` runs ``prepare`` on
the key's current nested state and wraps the nested operation(s) it returns.

A remove takes away the updates of the key that the remover had seen (those
in its causal past); updates concurrent with it survive. To make that exact
whatever the delivery order, every key keeps the log of its updates that are
not yet causally stable. A remove discards the logged updates in its past;
if some remain (they were concurrent with the remove), the nested state is
rebuilt from them alone, from an empty state, in causal order; if none
remain, the key is gone. Updates that are stable are in the past of every
future remove, so they leave the log at compaction (the nested state keeps
their effect) and the log stays as small as the concurrency window.

A rebuilt nested state may meet an operation whose causal past was
discarded (an RGA insert after an element that the remove took away); the
nested CRDT must apply it deterministically (the RGA inserts it at the
start). Keep this in mind when nesting a CRDT of your own.

If two replicas concurrently create one key with different types, both
nested states are kept, side by side; ``value`` shows the one whose type
name sorts first and :meth:`ORMap.get` reads either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

import attrs
import immutables

from calliope.core.causal_order import causal_sort_key
from calliope.core.crdt.protocol import CRDT, Tagged, as_operations, crdt_name, hashable
from calliope.core.envelope import Dot
from calliope.core.version_vector import VersionVector
from calliope.errors import InvalidOperationError

__all__ = ["ORMap", "RemoveKey", "Update"]

C = TypeVar("C", bound=CRDT)


@attrs.frozen
class Update:
    """Apply the nested operation ``op`` to the ``crdt_type`` value at ``key``."""

    key: Any
    crdt_type: type
    op: Any


@attrs.frozen
class RemoveKey:
    """Remove ``key``: the updates of it that the remover had seen."""

    key: Any


@attrs.frozen(kw_only=True)
class Entry:
    """One key's nested state of one type, and its not-yet-stable updates."""

    crdt_type: type
    state: Any
    log: immutables.Map[Dot, Tagged[Any]] = attrs.field(factory=immutables.Map)
    # True once compaction took stable updates out of the log: the state then
    # holds effects the log cannot reproduce (every future remove discards them).
    settled: bool = False


def _rebuilt(crdt_type: type, survivors: list[Tagged[Any]]) -> Entry:
    state = crdt_type()
    for tagged in sorted(survivors, key=causal_sort_key):
        state = state.effect(tagged)
    return Entry(
        crdt_type=crdt_type,
        state=state,
        log=immutables.Map({tagged.dot: tagged for tagged in survivors}),
    )


@attrs.frozen(kw_only=True)
class ORMap:
    """A map of nested CRDTs: ``.update(key, Type, prepare)``, ``.remove(key)``.

    ``ORMap()`` is empty; ``.value`` maps each key to its nested ``.value``
    (a read-only mapping, equal to the dict of the same items); ``.get(key)``
    returns the nested state. Keys must be hashable plain data.

    Concurrent semantics: keys are add-wins. A remove discards the updates of
    the key its replica had seen; an update concurrent with the remove keeps
    the key, whose value is then rebuilt from the updates the remove had not
    seen (and what follows them), as if the key had been created by them.

    Replica b removes the key while replica a increments it again: the key
    stays, with only the increment b had not seen.

    >>> from calliope.core.crdt import GCounter, ORMap, Tagged
    >>> a = b = ORMap()
    >>> five = Tagged(replica_id="a", version={"a": 1},
    ...               op=a.update("hits", GCounter, lambda c: c.increment(5)))
    >>> a, b = a.effect(five), b.effect(five)
    >>> one = Tagged(replica_id="a", version={"a": 2},
    ...              op=a.update("hits", GCounter, lambda c: c.increment(1)))
    >>> gone = Tagged(replica_id="b", version={"a": 1, "b": 1}, op=b.remove("hits"))
    >>> a = a.effect(one).effect(gone)
    >>> b = b.effect(gone).effect(one)
    >>> a == b, a.value == {'hits': 1}
    (True, True)
    """

    op_types: ClassVar[tuple[type, ...]] = (Update, RemoveKey)

    # key -> its entries, one per nested type (almost always one), sorted by type name
    entries: immutables.Map[Any, tuple[Entry, ...]] = attrs.field(factory=immutables.Map)

    @property
    def value(self) -> Mapping[Any, Any]:
        return MappingProxyType(
            {key: entries[0].state.value for key, entries in self.entries.items()}
        )

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.entries)

    def get(self, key: Any, crdt_type: type[C] | None = None) -> Any:
        """The nested state at ``key`` (of ``crdt_type`` if given), or None."""
        for entry in self.entries.get(key, ()):
            if crdt_type is None or entry.crdt_type is crdt_type:
                return entry.state
        return None

    def states(self) -> Mapping[Any, Any]:
        """The nested states by key (of the first type, as in ``value``)."""
        return MappingProxyType({key: entries[0].state for key, entries in self.entries.items()})

    # -- prepare ----------------------------------------------------------------

    def update(
        self, key: Any, crdt_type: type[C], prepare: Callable[[C], object]
    ) -> Update | tuple[Update, ...]:
        """The operation(s) applying ``prepare``'s nested operation(s) to ``key``.

        ``prepare`` gets the key's current ``crdt_type`` state (an empty one
        if the key is absent) and returns operations of it.
        """
        hashable(key, "ORMap keys")
        if not isinstance(crdt_type, type) or not hasattr(crdt_type, "op_types"):
            raise InvalidOperationError(
                f"ORMap.update needs a CRDT type such as GCounter, got {crdt_type!r}"
            )
        current = self.get(key, crdt_type)
        if current is None:
            others = self.entries.get(key, ())
            if others:
                raise InvalidOperationError(
                    f"key {key!r} holds a {crdt_name(others[0].crdt_type)}, not a "
                    f"{crdt_name(crdt_type)}; remove the key first or use another key"
                )
            current = crdt_type()
        operations = tuple(Update(key, crdt_type, op) for op in as_operations(prepare(current)))
        return operations[0] if len(operations) == 1 else operations

    def remove(self, key: Any) -> RemoveKey:
        """The operation removing ``key`` as this replica sees it."""
        return RemoveKey(key)

    # -- effect and compaction ---------------------------------------------------

    def effect(self, tagged: Tagged[Any], /) -> ORMap:
        op = tagged.op
        if isinstance(op, Update):
            nested = attrs.evolve(tagged, op=op.op)
            entries = self.entries.get(op.key, ())
            for position, entry in enumerate(entries):
                if entry.crdt_type is op.crdt_type:
                    changed = attrs.evolve(
                        entry,
                        state=entry.state.effect(nested),
                        log=entry.log.set(nested.dot, nested),
                    )
                    new = (*entries[:position], changed, *entries[position + 1 :])
                    return ORMap(entries=self.entries.set(op.key, new))
            fresh = Entry(
                crdt_type=op.crdt_type,
                state=op.crdt_type().effect(nested),
                log=immutables.Map({nested.dot: nested}),
            )
            new = tuple(sorted((*entries, fresh), key=lambda entry: crdt_name(entry.crdt_type)))
            return ORMap(entries=self.entries.set(op.key, new))
        if isinstance(op, RemoveKey):
            present = self.entries.get(op.key)
            if present is None:
                return self
            version = tagged.version
            kept: list[Entry] = []
            for entry in present:
                survivors = [
                    logged for dot, logged in entry.log.items() if dot[1] > version[dot[0]]
                ]
                if len(survivors) == len(entry.log) and not entry.settled:
                    kept.append(entry)  # the remover had seen none of it: untouched
                elif survivors:
                    kept.append(_rebuilt(entry.crdt_type, survivors))
            if kept:
                return ORMap(entries=self.entries.set(op.key, tuple(kept)))
            return ORMap(entries=self.entries.delete(op.key))
        raise InvalidOperationError(f"an ORMap cannot apply {op!r}")

    def compact(self, stable: VersionVector, /) -> ORMap:
        changed = self.entries.mutate()
        touched = False
        for key, entries in self.entries.items():
            new = tuple(_compacted(entry, stable) for entry in entries)
            if any(after is not before for after, before in zip(new, entries, strict=True)):
                changed[key] = new
                touched = True
        if not touched:
            return self
        return ORMap(entries=changed.finish())


def _compacted(entry: Entry, stable: VersionVector) -> Entry:
    state = entry.state.compact(stable)
    settled = [dot for dot in entry.log if dot[1] <= stable[dot[0]]]
    if not settled and state is entry.state:
        return entry
    log = entry.log
    if settled:
        mutable = log.mutate()
        for dot in settled:
            del mutable[dot]
        log = mutable.finish()
    return Entry(
        crdt_type=entry.crdt_type, state=state, log=log, settled=entry.settled or bool(settled)
    )
