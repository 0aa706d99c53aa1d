"""RGA: a replicated sequence (lists, text).

The Replicated Growable Array gives every element a unique id and inserts
each new element *after* the element it was typed after (its anchor). Ids
are ``ElementId(lamport, replica, counter)``, taken from the inserting
operation's tag: ``lamport`` is the total of its version vector, so an id is
greater than the id of everything in its causal past. When several elements
were inserted concurrently after the same anchor, the one with the greatest
id comes first: the insert skips, right after its anchor, every element whose
id is greater than its own (those are concurrent inserts at the same anchor
and everything typed after them) and lands before the first smaller one.
Every replica reaches the same order whatever the delivery order.

Deleting marks the element as a tombstone: it stays in the sequence, hidden,
because an insert concurrent with the delete may still use it as anchor.
Once the delete is causally stable, nothing can refer to the tombstone any
more; it is taken out when its successor is stable too (or there is none),
because an insert scanning right from an earlier anchor must stop where it
stopped before: at a stable element, whose id is smaller than any future id.

Complexity (n elements, tombstones included; see :mod:`rga_tree`):
``insert``/``delete`` prepare O(log n), ``effect`` O(log n) plus the skip over
concurrent inserts at the same anchor, ``len`` O(1), ``value`` O(n),
``compact`` O(t log n) for t tombstones.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, NamedTuple

import attrs
import immutables

from calliope.core.crdt import rga_tree
from calliope.core.crdt.protocol import Tagged
from calliope.core.version_vector import VersionVector
from calliope.errors import InvalidOperationError

__all__ = ["RGA", "Delete", "ElementId", "Insert"]


class ElementId(NamedTuple):
    """A sequence element's identity: the inserting operation's tag.

    Ordered by ``lamport`` (the total of the insert's version vector), then
    by ``replica``; ``counter`` is the insert's ``version[replica]``.
    """

    lamport: int
    replica: str
    counter: int

    def __repr__(self) -> str:
        return f"{self.replica}.{self.counter}@{self.lamport}"


def element_id(tagged: Tagged[Any]) -> ElementId:
    """The id an operation's tag gives the element it inserts (or the delete's own id)."""
    version = tagged.version
    return ElementId(version.total, tagged.replica_id, version[tagged.replica_id])


@attrs.frozen
class Insert:
    """Insert ``value`` right after element ``after`` (None: at the start)."""

    after: ElementId | None
    value: Any


@attrs.frozen
class Delete:
    """Delete element ``target``."""

    target: ElementId


def _stable(identity: ElementId, stable: VersionVector) -> bool:
    return identity.counter <= stable[identity.replica]


@attrs.frozen(kw_only=True, eq=False, repr=False)
class RGA:
    """A sequence: ``.insert(index, value)``, ``.delete(index)``; ``.value`` is a tuple.

    ``RGA()`` is empty. For text, insert one character per operation and
    read ``.text`` (``"".join(.value)``).

    Concurrent semantics: an element stays after the element it was inserted
    after. Elements inserted concurrently at the same place are ordered by
    id, the greatest first, the same on every replica, and a run typed by
    one replica is never interleaved with another's. Concurrent deletes of one
    element delete it once; an insert after an element deleted concurrently
    still lands after it. An index is only a way to name an element at
    prepare time: the operation refers to element ids.

    Both replicas type at the start of the shared ``"c"``; the greater id
    (replica b, same Lamport time) comes first on both replicas:

    >>> from calliope.core.crdt import RGA, Tagged
    >>> a = b = RGA()
    >>> c = Tagged(replica_id="a", version={"a": 1}, op=a.insert(0, "c"))
    >>> a, b = a.effect(c), b.effect(c)
    >>> x = Tagged(replica_id="a", version={"a": 2}, op=a.insert(0, "x"))
    >>> y = Tagged(replica_id="b", version={"a": 1, "b": 1}, op=b.insert(0, "y"))
    >>> a = a.effect(x).effect(y)
    >>> b = b.effect(y).effect(x)
    >>> a == b, a.text
    (True, 'yxc')
    """

    op_types: ClassVar[tuple[type, ...]] = (Insert, Delete)

    _tree: rga_tree.Tree = attrs.field(default=rga_tree.EMPTY, alias="tree")
    # tombstone id -> id of the (smallest) delete operation that deleted it
    _tombstones: immutables.Map[ElementId, ElementId] = attrs.field(
        factory=immutables.Map, alias="tombstones"
    )

    @classmethod
    def from_elements(cls, items: list[tuple[ElementId, Any, ElementId | None]]) -> RGA:
        """Rebuild from :meth:`elements` output (used by the codec)."""
        tombstones = {identity: deleted for identity, _, deleted in items if deleted is not None}
        return cls(tree=rga_tree.build(items), tombstones=immutables.Map(tombstones))

    # -- reading --------------------------------------------------------------

    @property
    def value(self) -> tuple[Any, ...]:
        return tuple(item[1] for item in rga_tree.elements(self._tree) if item[2] is None)

    @property
    def text(self) -> str:
        """The elements joined as a string (each must be a str)."""
        values = self.value
        if not all(isinstance(value, str) for value in values):
            raise InvalidOperationError("RGA.text needs every element to be a str; use .value")
        return "".join(values)

    def __len__(self) -> int:
        return self._tree.visible

    def __getitem__(self, index: int) -> Any:
        return rga_tree.visible_at(self._tree, self._checked(index, len(self) - 1, "index"))[1]

    def __iter__(self) -> Iterator[Any]:
        return (item[1] for item in rga_tree.elements(self._tree) if item[2] is None)

    def elements(self) -> list[tuple[ElementId, Any, ElementId | None]]:
        """Every element in order as (id, value, deleting op id or None), tombstones included."""
        return list(rga_tree.elements(self._tree))

    @property
    def tombstones(self) -> int:
        """How many deleted elements are still kept (until their delete is stable)."""
        return len(self._tombstones)

    def id_at(self, index: int) -> ElementId:
        """The id of the live element at ``index``."""
        return rga_tree.visible_at(self._tree, self._checked(index, len(self) - 1, "index"))[0]  # type: ignore[no-any-return]

    def _checked(self, index: object, highest: int, what: str) -> int:
        if not isinstance(index, int) or isinstance(index, bool):
            raise InvalidOperationError(f"an RGA {what} must be an int, got {index!r}")
        if not 0 <= index <= highest:
            allowed = "the sequence is empty" if highest < 0 else f"use 0..{highest}"
            raise InvalidOperationError(
                f"RGA {what} {index} is out of range for a sequence of length {len(self)}; "
                f"{allowed}"
            )
        return index

    # -- prepare ----------------------------------------------------------------

    def insert(self, index: int, value: Any) -> Insert:
        """The operation inserting ``value`` so that it ends up at ``index`` (0..len)."""
        index = self._checked(index, len(self), "insert index")
        after = None if index == 0 else self.id_at(index - 1)
        return Insert(after=after, value=value)

    def append(self, value: Any) -> Insert:
        """The operation inserting ``value`` at the end."""
        return self.insert(len(self), value)

    def delete(self, index: int) -> Delete:
        """The operation deleting the element at ``index`` (0..len-1)."""
        return Delete(target=self.id_at(self._checked(index, len(self) - 1, "delete index")))

    # -- effect and compaction ---------------------------------------------------

    def effect(self, tagged: Tagged[Any], /) -> RGA:
        op = tagged.op
        tree = self._tree
        if isinstance(op, Insert):
            identity = element_id(tagged)
            if identity in tree.leaf_of:
                return self
            cursor = None if op.after is None else rga_tree.locate(tree, op.after)
            if cursor is None:
                # At the start; also where an anchor that is not here (its insert was
                # discarded by an ORMap remove) puts the element, on every replica.
                cursor = rga_tree.first_cursor(tree)
            while (following := rga_tree.next_cursor(cursor)) is not None:
                if following.element[0] < identity:
                    break
                cursor = following
            return RGA(
                tree=rga_tree.insert_after(tree, cursor, (identity, op.value, None)),
                tombstones=self._tombstones,
            )
        if isinstance(op, Delete):
            cursor = rga_tree.locate(tree, op.target)
            if cursor is None:
                return self
            identity, value, deleted = cursor.element
            by = element_id(tagged)
            if deleted is not None and deleted <= by:
                return self
            return RGA(
                tree=rga_tree.replace_at(tree, cursor, (identity, value, by)),
                tombstones=self._tombstones.set(identity, by),
            )
        raise InvalidOperationError(f"an RGA cannot apply {op!r}")

    def compact(self, stable: VersionVector, /) -> RGA:
        tree = self._tree
        removed: list[ElementId] = []
        for identity, deleted_by in self._tombstones.items():
            if not _stable(deleted_by, stable):
                continue
            cursor = rga_tree.locate(tree, identity)
            assert cursor is not None
            following = rga_tree.next_cursor(cursor)
            if following is not None and not _stable(following.element[0], stable):
                continue
            tree = rga_tree.remove_at(tree, cursor)
            removed.append(identity)
        if not removed:
            return self
        tombstones = self._tombstones.mutate()
        for identity in removed:
            del tombstones[identity]
        return RGA(tree=tree, tombstones=tombstones.finish())

    # -- value semantics ----------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RGA):
            return NotImplemented
        if self._tree is other._tree:
            return True
        if len(self._tree.leaf_of) != len(other._tree.leaf_of) or len(self) != len(other):
            return False
        return all(
            mine == theirs
            for mine, theirs in zip(
                rga_tree.elements(self._tree), rga_tree.elements(other._tree), strict=True
            )
        )

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self) -> int:
        return hash(tuple(rga_tree.elements(self._tree)))

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{'~' if deleted is not None else ''}{value!r}@{identity!r}"
            for identity, value, deleted in rga_tree.elements(self._tree)
        )
        return f"RGA([{shown}])"
