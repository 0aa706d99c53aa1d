"""ORSet: an observed-remove set where a concurrent add wins.

Each add is identified by its dot. A remove takes away the adds of its
element that are in its causal past: because delivery is causal, those are
exactly the adds the remover had seen, and every one of them has already been
delivered wherever the remove is delivered. So a remove leaves no tombstone:
the state only holds the dots of elements that are present. An add concurrent
with a remove survives it (add wins); an add also supersedes the element's
earlier adds in its causal past, so an element holds at most one dot per
concurrent writer.

At causal stability an element's stable dots collapse into a plain
"present" mark: every later operation on the element has them in its past,
so the dots themselves are no longer needed. After any number of add/remove
cycles, a caught-up, compacted set holds its live elements and nothing else.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import immutables

from calliope.core.crdt.gset import Add
from calliope.core.crdt.protocol import Tagged, hashable
from calliope.core.envelope import Dot
from calliope.core.version_vector import VersionVector
from calliope.errors import InvalidOperationError

__all__ = ["Add", "ORSet", "Remove"]


@attrs.frozen
class Remove:
    """Remove ``element``: the adds of it that the remover had seen."""

    element: Any


def _unseen(dots: frozenset[Dot], version: VersionVector) -> frozenset[Dot]:
    """The dots not in the causal past of ``version``."""
    return frozenset(dot for dot in dots if dot[1] > version[dot[0]])


@attrs.frozen(kw_only=True)
class ORSet:
    """An add-wins set: ``.add(x)``, ``.remove(x)``; ``.value`` is a frozenset.

    Concurrent semantics: a remove only takes away the adds its replica had
    seen; an add concurrent with it survives (*add wins*). Removing an
    element that is not present is allowed and has no effect. Elements must be
    hashable plain data (str, int, float, bool, None) to be stored.

    Replica b removes ``"x"`` while replica a adds it again: ``"x"`` stays.

    >>> from calliope.core.crdt import ORSet, Tagged
    >>> a = b = ORSet()
    >>> first = Tagged(replica_id="a", version={"a": 1}, op=a.add("x"))
    >>> a, b = a.effect(first), b.effect(first)
    >>> again = Tagged(replica_id="a", version={"a": 2}, op=a.add("x"))
    >>> gone = Tagged(replica_id="b", version={"a": 1, "b": 1}, op=b.remove("x"))
    >>> a = a.effect(again).effect(gone)
    >>> b = b.effect(gone).effect(again)
    >>> a == b, a.value
    (True, frozenset({'x'}))
    """

    op_types: ClassVar[tuple[type, ...]] = (Add, Remove)

    # element -> the dots of its adds that are not yet causally stable
    dots: immutables.Map[Any, frozenset[Dot]] = attrs.field(factory=immutables.Map)
    # elements present through a causally stable add
    stable: immutables.Map[Any, bool] = attrs.field(factory=immutables.Map)

    @property
    def value(self) -> frozenset[Any]:
        if not self.stable:
            return frozenset(self.dots.keys())
        return frozenset(self.dots.keys()).union(self.stable.keys())

    def __contains__(self, element: object) -> bool:
        return element in self.dots or element in self.stable

    def add(self, element: Any) -> Add:
        """The operation adding ``element`` (hashable)."""
        return Add(hashable(element))

    def remove(self, element: Any) -> Remove:
        """The operation removing ``element`` as this replica sees it."""
        return Remove(element)

    def effect(self, tagged: Tagged[Any], /) -> ORSet:
        op = tagged.op
        if isinstance(op, Add):
            element = op.element
            old = self.dots.get(element)
            kept = _unseen(old, tagged.version) if old else frozenset()
            return ORSet(
                dots=self.dots.set(element, kept | {tagged.dot}),
                stable=self.stable.delete(element) if element in self.stable else self.stable,
            )
        if isinstance(op, Remove):
            element = op.element
            stable = self.stable.delete(element) if element in self.stable else self.stable
            old = self.dots.get(element)
            if old is None:
                return self if stable is self.stable else ORSet(dots=self.dots, stable=stable)
            kept = _unseen(old, tagged.version)
            dots = self.dots.set(element, kept) if kept else self.dots.delete(element)
            return ORSet(dots=dots, stable=stable)
        raise InvalidOperationError(f"an ORSet cannot apply {op!r}")

    def compact(self, stable: VersionVector, /) -> ORSet:
        changes = [
            (element, _unseen(dots, stable))
            for element, dots in self.dots.items()
            if any(dot[1] <= stable[dot[0]] for dot in dots)
        ]
        if not changes:
            return self
        dots = self.dots.mutate()
        marks = self.stable.mutate()
        for element, unstable in changes:
            marks[element] = True
            if unstable:
                dots[element] = unstable
            else:
                del dots[element]
        return ORSet(dots=dots.finish(), stable=marks.finish())
