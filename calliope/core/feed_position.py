"""Where an event sits in a store's feed (all streams, one order).

A feed is a sequence of *entries*, one per stored batch, numbered by the
store in the order their batches became visible; an event's position is its
entry and its index in that batch. Positions compare as (entry, index)
pairs: totally ordered, and a reader that resumes *after* a position gets
exactly the events that come later in the feed.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from calliope.errors import InvalidArgumentError

__all__ = ["FeedPosition", "check_after"]

_TEXT = re.compile(r"(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,9})")
_MAX_ENTRY = (1 << 63) - 1
_MAX_INDEX = (1 << 32) - 1


def _check_int(name: str, maximum: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(_: object, __: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
            raise InvalidArgumentError(
                f"a FeedPosition's {name} must be an int from 0 to {maximum}, got {value!r}"
            )

    return check


@attrs.frozen(order=True)
class FeedPosition:
    """An event's place in a feed: ``entry`` (the stored batch's number in
    the store's feed) and ``index`` (the event's, from 0, in that batch).

    Serialise it with ``str(position)`` (``"<entry>.<index>"``) and read it
    back with :meth:`parse`; positions from one store compare in feed order.
    """

    entry: int = attrs.field(validator=_check_int("entry", _MAX_ENTRY))
    index: int = attrs.field(validator=_check_int("index", _MAX_INDEX))

    def __str__(self) -> str:
        return f"{self.entry}.{self.index}"

    @classmethod
    def unchecked(cls, entry: int, index: int) -> FeedPosition:
        """Build from two ints known to be in range (a store's own numbers),
        without the checks: for the feed's hot path only."""
        position = object.__new__(cls)
        object.__setattr__(position, "entry", entry)
        object.__setattr__(position, "index", index)
        return position

    @classmethod
    def parse(cls, text: str) -> FeedPosition:
        """The position ``str(position)`` made; InvalidArgumentError for
        anything else."""
        if not isinstance(text, str):
            raise InvalidArgumentError(
                f"FeedPosition.parse takes the str of a position, got {type(text).__name__}"
            )
        match = _TEXT.fullmatch(text)
        if match is None:
            raise InvalidArgumentError(
                f"{text[:100]!r} is not a feed position: expected '<entry>.<index>' as "
                f"str(position) writes it, e.g. '1042.0'"
            )
        return cls(int(match.group(1)), int(match.group(2)))


def check_after(after: object) -> FeedPosition | None:
    """``after`` if it is a FeedPosition or None; a str is parsed. Anything
    else is InvalidArgumentError."""
    if after is None or isinstance(after, FeedPosition):
        return after
    if isinstance(after, str):
        return FeedPosition.parse(after)
    raise InvalidArgumentError(
        f"after must be a FeedPosition (or its str), or None for the start; got "
        f"{type(after).__name__}"
    )
