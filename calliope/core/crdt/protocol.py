"""The CRDT protocol: prepare, tag, deliver, effect, compact.

Calliope's CRDTs are *pure operation-based*. A replica changes a CRDT in
four steps, of which the CRDT itself provides the two pure ones:

1. **prepare** (the CRDT): a method of the state reads the local state and
   *returns* one operation or several (a tuple or list); it never mutates.
   ``ORSet.add(x)`` returns ``Add(element=x)``; ``RGA.insert(3, "a")`` looks
   up the element now at index 2 and returns ``Insert(after=<its id>, ...)``.
   Normalise the result with :func:`as_operations`.
2. **tag** (the caller): each operation is wrapped in a :class:`Tagged` with
   the writing replica's id and its version vector *counting the operation
   itself* (:func:`tag_operations`); it is persisted and sent to every replica.
3. **deliver** (the caller): every replica, the writer included, receives the
   tagged operations through a :class:`~calliope.core.CausalBuffer`, which
   releases them in causal order, each exactly once.
4. **effect** (the CRDT): ``state.effect(tagged)`` returns the new state. It is
   pure and total: whatever a correct replica delivered, it applies.

And, from time to time, **compact**: ``state.compact(stable)`` drops what is
no longer needed once operations are causally stable (see
:mod:`calliope.core.crdt.stability` for what ``stable`` must mean).

Operations do not carry the writer's replica id: the prepare step does not
need to know it. Where a CRDT needs it (per-replica counters, RGA element
ids, the dots of an add-wins set) ``effect`` reads it from the tag, together
with the version, so an operation's causal identity, its *dot*
``(replica_id, version[replica_id])``, is assigned by tagging, never by the
CRDT. Several operations from one prepare step were all prepared against the
same state and are tagged in order, with consecutive counters.

Writing a CRDT needs no base class: a frozen attrs class that satisfies
:class:`CRDT` (``value``, ``effect``, ``compact``, an ``op_types`` tuple
naming its operation classes, and a constructor taking no arguments for the
empty state) is one, and ``calliope.testing.check_crdt`` checks its laws.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar, runtime_checkable

import attrs

from calliope.core.envelope import Dot
from calliope.core.version_vector import VersionVector
from calliope.errors import InvalidOperationError

__all__ = [
    "CRDT",
    "Tagged",
    "as_operations",
    "compact",
    "covers",
    "crdt_name",
    "effect",
    "effect_all",
    "tag_operations",
]

Op = TypeVar("Op")
Op_co = TypeVar("Op_co", covariant=True)
C = TypeVar("C", bound="CRDT")
T = TypeVar("T")


def _to_version(version: VersionVector | Mapping[str, int]) -> VersionVector:
    return version if isinstance(version, VersionVector) else VersionVector(version)


@attrs.frozen(kw_only=True)
class Tagged(Generic[Op_co]):
    """An operation with its causal metadata, as delivered to ``effect``.

    * ``replica_id``: the replica that prepared the operation.
    * ``version``: that replica's version vector including this operation
      (a plain mapping is accepted and converted); ``version[replica_id]``
      counts it, so the operation's dot is ``(replica_id, version[replica_id])``.
    * ``op``: the operation value returned by the prepare step.

    Tagged values are :class:`~calliope.core.Causal`, so the causal buffer,
    ``causal_order`` and ``detect_concurrent`` work on them.
    """

    replica_id: str
    version: VersionVector = attrs.field(converter=_to_version)
    op: Op_co

    @property
    def dot(self) -> Dot:
        """The operation's unique causal identity: (replica id, its counter there)."""
        return (self.replica_id, self.version[self.replica_id])


@runtime_checkable
class CRDT(Protocol):
    """What a CRDT state is: structural, nothing to inherit.

    * ``CRDTType()`` builds the empty state (every replica starts there).
    * ``value``: the user-visible value.
    * prepare methods (any names, any arguments) return operations.
    * ``effect(tagged)`` applies one delivered operation, returning a new
      state. It is called in causal order, exactly once per operation, on
      every replica including the writer.
    * ``compact(stable)`` returns an equivalent state without what causal
      stability at ``stable`` made unnecessary (return ``self`` if nothing).
    * ``op_types``: the operation classes ``effect`` accepts, so the codec
      can decode stored operations (by class name).
    """

    op_types: ClassVar[tuple[type, ...]]

    @property
    def value(self) -> Any: ...

    def effect(self, tagged: Tagged[Any], /) -> Self: ...

    def compact(self, stable: VersionVector, /) -> Self: ...


def hashable(element: T, what: str = "set elements") -> T:
    """``element``, checked to be hashable (set members, map keys)."""
    try:
        hash(element)
    except TypeError:
        raise InvalidOperationError(
            f"{what} must be hashable, got {element!r}; "
            f"use a str, an int or another hashable plain value"
        ) from None
    return element


def crdt_name(crdt_type: type) -> str:
    """The name a CRDT type is stored under: its ``crdt_name`` attribute, else ``__name__``."""
    name = getattr(crdt_type, "crdt_name", None)
    return name if isinstance(name, str) else crdt_type.__name__


def covers(version: VersionVector, dot: Dot) -> bool:
    """True when the operation with ``dot`` is in the causal past of ``version`` (or is it)."""
    return dot[1] <= version[dot[0]]


def as_operations(prepared: object) -> tuple[Any, ...]:
    """Normalise what a prepare step returned: one operation, or a tuple/list of them.

    ``None`` is refused: a prepare function that forgot to ``return`` is a bug
    worth hearing about.
    """
    if prepared is None:
        raise InvalidOperationError(
            "the prepare step returned None; return the operation(s) the state's "
            "methods give you, e.g. `lambda counter: counter.increment(5)`"
        )
    if isinstance(prepared, tuple | list):
        if any(op is None for op in prepared):
            raise InvalidOperationError(
                f"the prepare step returned {prepared!r}, which contains None; "
                f"return only operations"
            )
        return tuple(prepared)
    return (prepared,)


def tag_operations(
    replica_id: str, delivered: VersionVector, operations: Iterable[Op]
) -> list[Tagged[Op]]:
    """Tag operations prepared at ``replica_id`` after it delivered ``delivered``.

    The first operation gets ``delivered`` incremented at ``replica_id``, the
    next one that incremented again, and so on: each counts itself and the
    ones before it.
    """
    tagged: list[Tagged[Op]] = []
    version = delivered
    for operation in operations:
        version = version.increment(replica_id)
        tagged.append(Tagged(replica_id=replica_id, version=version, op=operation))
    return tagged


def effect(state: C, tagged: Tagged[Any]) -> C:
    """Apply one delivered operation to ``state``: ``state.effect(tagged)``."""
    return state.effect(tagged)


def effect_all(state: C, tagged: Sequence[Tagged[Any]]) -> C:
    """Apply delivered operations in the given (causal) order."""
    for operation in tagged:
        state = state.effect(operation)
    return state


def compact(state: C, stable: VersionVector) -> C:
    """Drop what causal stability at ``stable`` made unnecessary: ``state.compact(stable)``."""
    return state.compact(stable)
