"""Flag: an enable-wins boolean."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from calliope.core.crdt.protocol import Tagged
from calliope.core.envelope import Dot
from calliope.core.version_vector import VersionVector
from calliope.errors import InvalidOperationError

__all__ = ["Disable", "Enable", "Flag"]


@attrs.frozen
class Enable:
    """Turn the flag on."""


@attrs.frozen
class Disable:
    """Turn the flag off: the enables the writer had seen."""


def _unseen(dots: frozenset[Dot], version: VersionVector) -> frozenset[Dot]:
    return frozenset(dot for dot in dots if dot[1] > version[dot[0]])


@attrs.frozen(kw_only=True)
class Flag:
    """A boolean where a concurrent enable wins: ``.enable()``, ``.disable()``.

    ``Flag()`` is off. Concurrent semantics: like an add-wins set holding one
    element. A disable turns off the enables its replica had seen; an enable
    concurrent with it keeps the flag on. No tombstones; at stability the
    enables' dots collapse into a plain "on".

    >>> from calliope.core.crdt import Flag, Tagged
    >>> a = b = Flag()
    >>> on = Tagged(replica_id="a", version={"a": 1}, op=a.enable())
    >>> off = Tagged(replica_id="b", version={"b": 1}, op=b.disable())
    >>> a = a.effect(on).effect(off)
    >>> b = b.effect(off).effect(on)
    >>> a == b, a.value
    (True, True)
    """

    op_types: ClassVar[tuple[type, ...]] = (Enable, Disable)

    dots: frozenset[Dot] = frozenset()
    stable: bool = False

    @property
    def value(self) -> bool:
        return self.stable or bool(self.dots)

    def __bool__(self) -> bool:
        return self.value

    def enable(self) -> Enable:
        """The operation turning the flag on."""
        return Enable()

    def disable(self) -> Disable:
        """The operation turning the flag off (as this replica sees it)."""
        return Disable()

    def effect(self, tagged: Tagged[Any], /) -> Flag:
        op = tagged.op
        if isinstance(op, Enable):
            return Flag(dots=_unseen(self.dots, tagged.version) | {tagged.dot})
        if isinstance(op, Disable):
            return Flag(dots=_unseen(self.dots, tagged.version))
        raise InvalidOperationError(f"a Flag cannot apply {op!r}")

    def compact(self, stable: VersionVector, /) -> Flag:
        unstable = _unseen(self.dots, stable)
        if len(unstable) == len(self.dots):
            return self
        return Flag(dots=unstable, stable=True)
