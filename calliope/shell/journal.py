"""``app.journal``: where event streams are obtained."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from calliope.core.ids import validate_stream_id
from calliope.shell.event_stream import EventStream
from calliope.shell.ports import CodecPort, EventLogPort

__all__ = ["Journal"]

E = TypeVar("E")


class Journal:
    """Hands out stream handles; handles are cheap and hold no resources."""

    def __init__(
        self,
        events: EventLogPort,
        codec: CodecPort,
        *,
        replica_id: Callable[[], str],
        clock: Callable[[], Any],
        ensure_open: Callable[[], None],
    ) -> None:
        self._events = events
        self._codec = codec
        self._replica_id = replica_id
        self._clock = clock
        self._ensure_open = ensure_open

    @overload
    def event_stream(self, stream_id: str, event_type: type[E]) -> EventStream[E]: ...

    @overload
    def event_stream(self, stream_id: str, event_type: Any) -> EventStream[Any]: ...

    def event_stream(self, stream_id: str, event_type: Any) -> EventStream[Any]:
        """The plain stream ``stream_id`` of events of ``event_type`` (a class or
        a ``Union`` of classes: the types its events may be decoded into)."""
        validate_stream_id(stream_id)
        return EventStream(
            stream_id,
            event_type,
            events=self._events,
            codec=self._codec.for_type(event_type),
            writer=self._replica_id,
            clock=self._clock,
            ensure_open=self._ensure_open,
        )
