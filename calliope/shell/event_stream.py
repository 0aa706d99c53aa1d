"""The handle on one plain event stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from calliope.core.envelope import Envelope
from calliope.errors import InvalidArgumentError, StorageError
from calliope.shell.ports import ChangesPort, NewEvent, PlainLogPort, TypeCodec
from calliope.shell.queries import SLICE, LiveQuery, Query, StreamSource, slices
from calliope.shell.records import envelopes_of, to_timestamp_us
from calliope.shell.scope import AppScope
from calliope.shell.skipped import OnSkip, Undecodable, policy_of

__all__ = ["EventStream"]

E = TypeVar("E")


class EventStream(Generic[E]):
    """One aggregate's events, any number of writers, one total order.

    Obtained from ``app.journal.event_stream(stream_id, EventType)``.
    Sequences start at 1 and stay contiguous across every process writing
    the stream. Each envelope's version counts, per writer replica, the
    events up to and including it, so later events dominate earlier ones.
    """

    def __init__(
        self,
        stream_id: str,
        event_type: Any,
        *,
        log: PlainLogPort,
        changes: ChangesPort,
        codec: TypeCodec[Any],
        writer: Callable[[], str],
        clock: Callable[[], Any],
        scope: AppScope,
    ) -> None:
        self.stream_id = stream_id
        self.event_type = event_type
        self._log = log
        self._codec = codec
        self._writer = writer
        self._clock = clock
        self._scope = scope
        self._source = StreamSource(stream_id, log, changes, codec, scope)

    def __repr__(self) -> str:
        kind = getattr(self.event_type, "__name__", self.event_type)
        return f"EventStream({self.stream_id!r}, {kind})"

    def query(
        self,
        from_sequence: int = 1,
        to_sequence: int | None = None,
        *,
        undecodable: Undecodable = "raise",
        on_skip: OnSkip | None = None,
    ) -> Query[E]:
        """Events ``from_sequence..to_sequence``, both inclusive (None: to the end).

        An event this handle cannot decode raises
        :class:`calliope.EventDecodingError` (``undecodable="raise"``); with
        ``undecodable="skip"`` it is left out, logged at WARNING on the
        "calliope" logger, and passed to ``on_skip`` as a
        :class:`calliope.SkippedEvent`.
        """
        return Query(self._source, from_sequence, to_sequence, policy_of(undecodable, on_skip))

    def live_query(
        self,
        from_sequence: int = 1,
        *,
        undecodable: Undecodable = "raise",
        on_skip: OnSkip | None = None,
    ) -> LiveQuery[E]:
        """Events from ``from_sequence`` on: catch-up first, then new ones as
        written. ``undecodable`` and ``on_skip`` as for :meth:`query`."""
        return LiveQuery(self._source, from_sequence, policy_of(undecodable, on_skip))

    async def last_sequence(self) -> int:
        """The sequence of the stream's last event (0 when empty)."""
        self._scope.ensure_open()
        return await self._log.last_sequence(self.stream_id)

    async def persist(self, event: E, expected_sequence: int | None = None) -> Envelope[E]:
        """Append one event; durable when this returns (per the durability setting).

        With ``expected_sequence``, the append happens only if the stream's
        last sequence is exactly that (0 for an empty stream); otherwise
        :class:`calliope.ConcurrencyError` is raised and nothing is written.
        """
        scope = self._scope
        scope.ensure_open()
        if expected_sequence is not None:
            _check_expected(expected_sequence)
        encoded = self._codec.encode(event)
        stamp = to_timestamp_us(self._clock())
        scope.begin()  # the app's close waits for this persist
        try:
            stored = await self._log.append(
                self.stream_id,
                self._writer(),
                (encoded,),
                expected_sequence=expected_sequence,
                timestamp_us=stamp,
            )
        finally:
            scope.end()
        if stored is None:  # pragma: no cover - one event always makes a batch
            raise StorageError("the journal stored nothing for a persist; report this as a bug")
        return envelopes_of(self.stream_id, stored, (event,))[0]

    async def persist_all(
        self, events: Iterable[E], expected_sequence: int | None = None
    ) -> list[Envelope[E]]:
        """Append events atomically: all of them or none, contiguous sequences."""
        if isinstance(events, str | bytes) or not isinstance(events, Iterable):
            raise InvalidArgumentError(
                f"persist_all takes an iterable of events (a list, say), got {events!r}"
            )
        return await self._append(list(events), expected_sequence)

    async def _append(self, batch: list[E], expected_sequence: int | None) -> list[Envelope[E]]:
        self._scope.ensure_open()
        if expected_sequence is not None:
            _check_expected(expected_sequence)
        encode = self._codec.encode
        encoded: list[NewEvent] = []
        for start in range(0, len(batch), SLICE):  # other tasks run between slices
            if start:
                await asyncio.sleep(0)
            encoded.extend(encode(event) for event in batch[start : start + SLICE])
        self._scope.begin()  # the app's close waits for this persist
        try:
            stored = await self._log.append(
                self.stream_id,
                self._writer(),
                encoded,
                expected_sequence=expected_sequence,
                timestamp_us=to_timestamp_us(self._clock()),
            )
        finally:
            self._scope.end()
        if stored is None:
            return []
        envelopes: list[Envelope[E]] = []
        for part in slices([stored]):
            if envelopes:
                await asyncio.sleep(0)
            first = part.first_sequence - stored.first_sequence
            envelopes.extend(
                envelopes_of(self.stream_id, part, batch[first : first + len(part.items)])
            )
        return envelopes


def _check_expected(expected_sequence: object) -> None:
    if (
        not isinstance(expected_sequence, int)
        or isinstance(expected_sequence, bool)
        or expected_sequence < 0
    ):
        raise InvalidArgumentError(
            f"expected_sequence must be None or an int >= 0, got {expected_sequence!r}"
        )
