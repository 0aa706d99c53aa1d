"""``app.projection(...)``: a read model folded from a feed, saved with its
position.

A projection folds ``update_state(state, event)`` over the events of a feed
(:mod:`calliope.shell.feed`) and saves the state *and* the feed position it
folds up to as one snapshot (``$calliope/projection/<name>``), written
whole or not at all: after a crash it resumes from a saved pair, so no event
is folded twice into a saved state nor left out. One app at a time should
run a given projection name (two would both fold and save, the last save
winning). On a read-only store a projection folds and saves nothing.

If ``update_state`` raises (or returns a state of another type than
``init``'s), or an event cannot be decoded, the projection saves what it
folded before that event and raises :class:`calliope.ProjectionError`
carrying the event's position; the next ``catch_up`` (or ``follow``) starts
at that event again. One projection object may be used by several tasks at
once (a ``follow()`` and a ``catch_up()``): an event one of them folded is
never folded again by another.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from calliope.core.feed_position import FeedPosition
from calliope.core.ids import validate_stream_id
from calliope.errors import (
    CalliopeError,
    CorruptJournalError,
    EventDecodingError,
    InvalidArgumentError,
    ProjectionError,
    ReadOnlyStoreError,
)
from calliope.shell.feed import Feed, FeedLiveQuery
from calliope.shell.ports import SnapshotPort, SnapshotRecord, TypeCodec
from calliope.shell.records import to_timestamp_us
from calliope.shell.scope import AppScope

__all__ = ["Following", "Projection"]

S = TypeVar("S")
E = TypeVar("E")

SAVE_EVERY = 10_000
"""Events folded between two saves during a long catch-up."""


class Projection(Generic[S, E]):
    """``catch_up()`` folds what is new and saves; ``follow()`` keeps folding.

    ``update_state(state, event)`` gets each event; with ``envelopes`` it
    gets each :class:`calliope.Envelope` instead (its ``stream_id``,
    ``sequence``, ``position``...), for read models keyed by stream.

    ``state`` and ``position`` are the last folded (``init`` and None
    before anything was loaded or folded).
    """

    def __init__(
        self,
        name: str,
        feed: Feed[E],
        update_state: Callable[[S, E], S],
        init: S,
        *,
        snapshots: SnapshotPort,
        state_codec: TypeCodec[Any],
        clock: Callable[[], Any],
        scope: AppScope,
        envelopes: bool = False,
    ) -> None:
        validate_stream_id(name, kind="projection name")
        validate_stream_id(f"$calliope/projection/{name}", kind="projection name", reserved=True)
        if not callable(update_state) or inspect.iscoroutinefunction(update_state):
            raise InvalidArgumentError(
                f"update_state must be a plain (not async) function (state, event) -> state, "
                f"got {update_state!r}"
            )
        if not isinstance(envelopes, bool):
            raise InvalidArgumentError(f"envelopes must be True or False, got {envelopes!r}")
        self.name = name
        self._envelopes = envelopes
        self._id = f"$calliope/projection/{name}"
        self._feed = feed
        self._update = update_state
        self._codec = state_codec
        self._snapshots = snapshots
        self._clock = clock
        self._scope = scope
        self.state: S = init
        self._state_type = type(init)
        self.position: FeedPosition | None = None
        self._saves = 0
        self._loaded = False
        self._saved_position: FeedPosition | None = None

    def __repr__(self) -> str:
        return f"<calliope.Projection {self.name!r} at {self.position}>"

    async def _load(self) -> None:
        """The saved state and position, once per projection object."""
        if self._loaded:
            return
        record = await self._snapshots.load(self._id)
        if record is not None:
            data = record.data
            if not isinstance(data, dict) or set(data) != {"position", "state"}:
                raise CorruptJournalError(
                    f"the saved state of projection {self.name!r} does not have the shape "
                    f"Calliope writes; delete snapshot {self._id!r} to fold it again from "
                    f"the start",
                    path=self._id,
                    offset=0,
                )
            saved = data["position"]
            self.position = None if saved is None else FeedPosition.parse(saved)
            self.state = self._codec.decode(record.type_name, record.schema_version, data["state"])
            self._saves = record.sequence
        self._saved_position = self.position
        self._loaded = True

    async def _save(self) -> None:
        """Save state and position as one snapshot (if they moved)."""
        if self.position == self._saved_position:
            return
        encoded = self._codec.encode(self.state)
        self._saves += 1
        record = SnapshotRecord(
            self._saves,
            to_timestamp_us(self._clock()),
            encoded.type_name,
            encoded.schema_version,
            {
                "position": None if self.position is None else str(self.position),
                "state": encoded.data,
            },
        )
        self._scope.begin()
        try:
            await self._snapshots.save(self._id, record)
        except ReadOnlyStoreError:
            return  # a read-only store folds, and saves nothing
        finally:
            self._scope.end()
        self._saved_position = self.position

    def _fold(self, envelope: Any) -> None:
        """Fold one event, unless it is folded already (another task using
        this projection got there first); on an error, raise ProjectionError
        (the caller saves what came before)."""
        if self.position is not None and envelope.position <= self.position:
            return
        try:
            state = self._update(self.state, envelope if self._envelopes else envelope.event)
        except Exception as error:
            raise self._failed(envelope, f"update_state raised {error!r}") from error
        if not isinstance(state, self._state_type):
            raise self._failed(
                envelope,
                f"update_state returned a {type(state).__qualname__}, not a "
                f"{self._state_type.__qualname__} like its init (the state must stay one type "
                f"to be saved; an async update_state is not supported)",
            )
        self.state = state
        self.position = envelope.position

    def _failed(self, envelope: Any, what: str) -> ProjectionError:
        return ProjectionError(
            f"projection {self.name!r}: {what} on the event at feed position "
            f"{envelope.position} (stream {envelope.stream_id!r}, sequence "
            f"{envelope.sequence}); the state up to the event before is saved. Fix it "
            f"and catch up again: it resumes at that event",
            name=self.name,
            position=envelope.position,
        )

    def _undecodable(self, error: EventDecodingError) -> ProjectionError:
        return ProjectionError(
            f"projection {self.name!r} stopped at an event it cannot decode: {error}. The "
            f"state up to the event before is saved; once the code can read it (an upcaster, "
            f"the type in the Union) catch up again: it resumes at that event",
            name=self.name,
            position=error.position,
        )

    async def catch_up(self) -> S:
        """Fold every event after the saved position, save, return the state.
        O(new events); saves every ``SAVE_EVERY`` events and at the end."""
        self._scope.ensure_open()
        await self._load()
        folded = 0
        try:
            async for envelope in self._feed.query(self.position):
                self._fold(envelope)
                folded += 1
                if folded % SAVE_EVERY == 0:
                    await self._save()
        except EventDecodingError as error:
            await self._save_after_error()
            raise self._undecodable(error) from error
        except BaseException:
            await self._save_after_error()
            raise
        await self._save()
        return self.state

    async def _save_after_error(self) -> None:
        """Save what was folded before an error; a failure to save (the app
        closing, the disk) leaves the last save, and the error is the first."""
        with contextlib.suppress(CalliopeError):
            await self._save()

    def follow(self) -> Following[S, E]:
        """``async with projection.follow() as states: async for state in
        states``: the caught-up state first, then a new state (saved first)
        after each group of new events, until the block is left or the app
        closes."""
        return Following(self)


class Following(Generic[S, E]):
    """What :meth:`Projection.follow` returns (an async context manager and
    iterator of states)."""

    def __init__(self, projection: Projection[S, E]) -> None:
        self._projection = projection
        self._live: FeedLiveQuery[E] | None = None
        self._first = True

    async def __aenter__(self) -> Following[S, E]:
        projection = self._projection
        await projection.catch_up()
        self._live = projection._feed.live_query(projection.position)
        await self._live.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._live is not None:
            await self._live.close()

    def __aiter__(self) -> Following[S, E]:
        return self

    async def __anext__(self) -> S:
        projection = self._projection
        if self._first:
            self._first = False
            return projection.state
        live = self._live
        if live is None:
            raise StopAsyncIteration
        try:
            async for envelope in live:
                projection._fold(envelope)
                if not live.buffered:
                    break
            else:
                raise StopAsyncIteration
        except EventDecodingError as error:
            await projection._save_after_error()
            raise projection._undecodable(error) from error
        except BaseException:
            await projection._save_after_error()
            raise
        await projection._save()
        return projection.state
