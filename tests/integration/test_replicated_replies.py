"""What a replicated ``persist`` replies, once its event is durable.

Two faults are guarded here, on every adapter:

* a replicated persist that has written must never raise afterwards: what
  it cannot decode (or read) after the write goes into the reply's
  ``errors``, the reply says it is not ``complete``, and the handle still
  observes its own write (so a retry is not needed and nothing is written
  twice);
* replies are bounded: a reply lists at most ``max_reported`` (default
  100) concurrent updates, the first in causal order, says how many more
  there are, and gives ``since``, from which ``query(since=...)`` reads
  them all.

The reply attributes and the ``max_reported`` keyword are new: the
Protocols below describe them, so the tests type-check before and after
they exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol, TypeVar, cast

import attrs
import pytest

import calliope
from calliope import PersistReply, VersionVector
from tests.integration.conftest import OpenApp
from tests.integration.events import ItemAdded

T = TypeVar("T")

LIMIT = 10.0  # seconds: a guard against hangs, never a measurement

BACKLOG = 300  # events replica b writes before a persists
DEFAULT_BOUND = 100


@calliope.event_type("test.replies.note-taken")
@attrs.frozen
class NoteTaken:
    """An event type replica a's handle does not declare."""

    text: str


class ReplyWithErrors(Protocol):
    """The reply attributes that report what failed after the write."""

    @property
    def errors(self) -> tuple[Exception, ...]: ...

    @property
    def complete(self) -> bool: ...


class BoundedReply(Protocol):
    """The reply attributes that bound the list of concurrent updates."""

    @property
    def more_concurrent_updates(self) -> int: ...

    @property
    def since(self) -> VersionVector: ...


class BoundedPersist(Protocol):
    """A replicated handle whose persist takes ``max_reported``."""

    def persist(
        self, event: ItemAdded, *, max_reported: int
    ) -> Awaitable[PersistReply[ItemAdded]]: ...


async def within(awaitable: Awaitable[T], what: str) -> T:
    """``await awaitable``, failing the test (not hanging it) past LIMIT."""
    try:
        async with asyncio.timeout(LIMIT):
            return await awaitable
    except TimeoutError:
        pytest.fail(f"{what} was still running after {LIMIT} s (it hangs)")


async def test_a_persist_after_an_undecodable_concurrent_event_replies_instead_of_raising(
    open_app: OpenApp,
) -> None:
    """Fault: a replicated persist raised after its event was durable.

    Replica b writes an event of a type a's handle does not declare; a's
    persist then reads it back to report it and cannot decode it. Today the
    decoding error escapes ``persist`` although a's event is already stored
    (and the handle never observed its own write, so a caller retrying
    would write it twice). Expected: a reply with the error in ``errors``,
    not ``complete``, a concurrent update detected, and the handle's
    version including its own event.
    """
    async with open_app(replica_id="node-a") as a, open_app(replica_id="node-b") as b:
        await b.journal.replicated_event_stream("s", NoteTaken).persist(NoteTaken("from b"))
        a_handle = a.journal.replicated_event_stream("s", ItemAdded)

        reply = await within(a_handle.persist(ItemAdded("apple")), "a's persist")

        assert reply.envelope.event == ItemAdded("apple")
        assert reply.envelope.replica_id == "node-a"
        assert reply.envelope.version["node-a"] == 1
        reported = cast(ReplyWithErrors, reply)
        assert isinstance(reported.errors, tuple)
        assert reported.errors, "the undecodable event of node-b is not reported in errors"
        for error in reported.errors:
            assert isinstance(error, calliope.EventDecodingError), repr(error)
            assert "node-b" in str(error), f"the error does not name replica node-b: {error}"
        assert reported.complete is False
        assert reply.concurrent_update_detected
        assert a_handle.version["node-a"] == 1

        # Exactly one event of a's is stored: the persist wrote once.
        both = a.journal.replicated_event_stream("s", ItemAdded | NoteTaken)
        stored = await within(both.query().to_list(), "the query of both types")
        assert [e.event for e in stored if e.replica_id == "node-a"] == [ItemAdded("apple")]

        second = await within(a_handle.persist(ItemAdded("pear")), "a's second persist")
        assert second.envelope.version["node-a"] == 2


async def _backlog_from_b(open_app: OpenApp) -> list[ItemAdded]:
    """Open replica b, write BACKLOG events with it and close it (its events
    stay: the caller keeps the target open); return them, in order."""
    b = open_app(replica_id="node-b", durability="flush")
    events = [ItemAdded(f"b-{i}") for i in range(BACKLOG)]
    async with b:
        b_handle = b.journal.replicated_event_stream("s", ItemAdded)
        for event in events:
            await b_handle.persist(event)
    return events


async def test_a_reply_lists_at_most_100_concurrent_updates_and_says_how_many_more(
    open_app: OpenApp,
) -> None:
    """Fault: a reply listed every concurrent update, however many (an
    unbounded read and an unbounded reply).

    Replica b wrote 300 events a has not seen. Expected: a's reply lists
    the first 100 of them in causal order, says 200 more, and its ``since``
    lets ``query(since=reply.since)`` read all 300.
    """
    async with open_app(replica_id="node-a") as a:
        b_events = await _backlog_from_b(open_app)
        a_handle = a.journal.replicated_event_stream("s", ItemAdded)

        reply = await within(a_handle.persist(ItemAdded("a-1")), "a's persist")

        listed = len(reply.concurrent_updates)
        assert listed == DEFAULT_BOUND, f"the reply lists {listed} concurrent updates"
        bounded = cast(BoundedReply, reply)
        assert bounded.more_concurrent_updates == BACKLOG - DEFAULT_BOUND
        assert reply.concurrent_update_detected
        assert [e.event for e in reply.concurrent_updates] == b_events[:DEFAULT_BOUND]
        assert all(e.replica_id == "node-b" for e in reply.concurrent_updates)
        assert isinstance(bounded.since, VersionVector)
        rest = await within(a_handle.query(since=bounded.since).to_list(), "query(since=...)")
        assert [e.event for e in rest if e.replica_id == "node-b"] == b_events


async def test_max_reported_bounds_the_reply(open_app: OpenApp) -> None:
    """Fault: a writer could not bound how many concurrent updates its reply
    lists. ``persist(event, max_reported=5)`` lists the first 5 of b's 300
    in causal order and says 295 more."""
    async with open_app(replica_id="node-a") as a:
        b_events = await _backlog_from_b(open_app)
        a_handle = a.journal.replicated_event_stream("s", ItemAdded)

        reply = await within(
            cast(BoundedPersist, a_handle).persist(ItemAdded("a-1"), max_reported=5),
            "a's persist",
        )

        assert [e.event for e in reply.concurrent_updates] == b_events[:5]
        assert cast(BoundedReply, reply).more_concurrent_updates == BACKLOG - 5
        assert reply.concurrent_update_detected
