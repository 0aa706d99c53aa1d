"""A snapshot: a state folded up to a sequence."""

from __future__ import annotations

import datetime
from typing import Generic, TypeVar

import attrs

__all__ = ["Snapshot"]

S_co = TypeVar("S_co", covariant=True)


@attrs.frozen(kw_only=True)
class Snapshot(Generic[S_co]):
    """``state`` is the fold of a stream's events 1..``sequence``; replay
    resumes with ``query(from_sequence=sequence + 1)``. ``timestamp`` (UTC) is
    when it was saved."""

    state: S_co
    sequence: int
    timestamp: datetime.datetime
