"""A stream that holds an event this reader cannot decode stays readable.

Each test writes with one declared type, then reads the same stream with a
type that cannot decode some of it (a Union missing a member, or a class
whose shape changed without an upcaster), on every adapter. By default a
query raises; ``undecodable="skip"`` leaves such events out and reports
each one; a live query that raised raises again instead of hanging.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import attrs
import pytest

import calliope
from tests.integration.conftest import OpenApp
from tests.integration.events import CartEvent, ItemAdded, ItemRemoved

T = TypeVar("T")

PATIENCE = 5.0
"""Seconds a step may take before it counts as hung (never reached when correct)."""


@calliope.event_type("test.item-added")
@attrs.frozen
class ItemAddedWithColour:
    """ItemAdded's name with a shape that changed without an upcaster."""

    sku: str
    colour: str


def skus(envelopes: list[calliope.Envelope[Any]]) -> list[str]:
    return [envelope.event.sku for envelope in envelopes]


async def step(live: AsyncIterator[T]) -> T:
    """The next item, or a failure if the live query hangs."""
    return await asyncio.wait_for(anext(live), PATIENCE)


def count_added(total: int, event: ItemAdded) -> int:
    return total + event.quantity


# -- plain streams ---------------------------------------------------------------


async def test_a_plain_query_raises_by_default_and_skips_on_request(
    open_app: OpenApp, caplog: pytest.LogCaptureFixture
) -> None:
    skipped: list[calliope.SkippedEvent] = []
    async with open_app(replica_id="node-a") as app:
        writer = app.journal.event_stream("cart-1", CartEvent)
        await writer.persist_all([ItemAdded("a"), ItemRemoved("a"), ItemAdded("b", 3)])
        reader = app.journal.event_stream("cart-1", ItemAdded)
        with pytest.raises(calliope.UnknownEventTypeError, match=r"test\.item-removed"):
            await reader.query(undecodable="raise").to_list()
        with pytest.raises(calliope.UnknownEventTypeError):
            await reader.query().aggregate(count_added, 0)
        with caplog.at_level(logging.WARNING, logger="calliope"):
            read = await reader.query(undecodable="skip", on_skip=skipped.append).to_list()
        total = await reader.query(undecodable="skip").aggregate(count_added, 0)
    assert skus(read) == ["a", "b"]
    assert [envelope.sequence for envelope in read] == [1, 3]
    assert total == 4
    [one] = skipped
    assert (one.stream_id, one.replica_id, one.sequence) == ("cart-1", "node-a", 2)
    assert one.version == calliope.VersionVector({"node-a": 2})
    assert (one.type_name, one.schema_version) == ("test.item-removed", 1)
    assert one.error.startswith("UnknownEventTypeError: ")
    records = [r for r in caplog.records if r.name == "calliope"]
    assert len(records) == 2  # the query's skip, then the aggregate's
    record = records[0]
    assert record.levelno == logging.WARNING
    for part in ("cart-1", "2", "test.item-removed", "UnknownEventTypeError"):
        assert part in record.getMessage()


async def test_a_changed_shape_is_skipped_across_slices_and_after_reopening(
    open_app: OpenApp,
) -> None:
    events: list[ItemAdded | ItemRemoved] = [ItemRemoved(str(n)) for n in range(2500)]
    events[1500] = ItemAdded("old")  # stored before ItemAdded grew a colour
    async with open_app() as app:
        await app.journal.event_stream("s", CartEvent).persist_all(events)
    skipped: list[calliope.SkippedEvent] = []
    async with open_app() as app:  # the same store, opened again by newer code
        reader = app.journal.event_stream("s", ItemAddedWithColour | ItemRemoved)
        with pytest.raises(calliope.EventDecodingError, match="does not fit"):
            await reader.query().to_list()
        read = await reader.query(undecodable="skip", on_skip=skipped.append).to_list()
        tail = await reader.query(1400, 1600, undecodable="skip").to_list()
    assert [envelope.sequence for envelope in read] == [n for n in range(1, 2501) if n != 1501]
    assert [s.sequence for s in skipped] == [1501]
    assert skipped[0].type_name == "test.item-added"
    assert "EventDecodingError" in skipped[0].error
    assert len(tail) == 200


async def test_a_plain_live_query_skips_on_request_and_goes_on(open_app: OpenApp) -> None:
    skipped: list[calliope.SkippedEvent] = []
    async with open_app() as app:
        writer = app.journal.event_stream("s", CartEvent)
        await writer.persist(ItemRemoved("x"))
        await writer.persist(ItemAdded("a"))
        reader = app.journal.event_stream("s", ItemAdded)
        async with reader.live_query(undecodable="skip", on_skip=skipped.append) as live:
            first = await step(live)
            await writer.persist(ItemRemoved("y"))
            await writer.persist(ItemAdded("b"))
            second = await step(live)
    assert (first.sequence, first.event.sku) == (2, "a")
    assert (second.sequence, second.event.sku) == (4, "b")
    assert [s.sequence for s in skipped] == [1, 3]


AFTER_THE_BAD_ONE = pytest.mark.parametrize(
    "after", [[], [ItemAdded("b")]], ids=["nothing-after", "more-after"]
)


@AFTER_THE_BAD_ONE
async def test_a_plain_live_query_that_raised_raises_again_until_closed(
    open_app: OpenApp, after: list[ItemAdded]
) -> None:
    async with open_app() as app:
        writer = app.journal.event_stream("s", CartEvent)
        await writer.persist(ItemAdded("a"))
        await writer.persist(ItemRemoved("a"))
        for event in after:
            await writer.persist(event)
        reader = app.journal.event_stream("s", ItemAdded)
        async with reader.live_query() as live:
            assert (await step(live)).event == ItemAdded("a")
            for _ in range(3):
                with pytest.raises(calliope.UnknownEventTypeError):
                    await step(live)
            assert live.next_sequence == 2  # where it stopped: nothing was passed over
            await live.close()
            with pytest.raises(StopAsyncIteration):
                await step(live)


# -- replicated streams -------------------------------------------------------------


async def test_a_replicated_query_skips_and_still_delivers_what_follows(
    open_app: OpenApp,
) -> None:
    skipped: list[calliope.SkippedEvent] = []
    async with open_app(replica_id="a") as app:
        a = app.journal.replicated_event_stream("r", CartEvent)
        b = app.journal.replicated_event_stream("r", CartEvent, replica_id="b")
        await a.persist(ItemRemoved("x"))  # undecodable for the reader below
        await b.query().to_list()
        await b.persist(ItemAdded("after-x"))  # in the undecodable event's causal future
        reader = app.journal.replicated_event_stream("r", ItemAdded, replica_id="c")
        with pytest.raises(calliope.UnknownEventTypeError):
            await reader.query(undecodable="raise").to_list()
        read = await reader.query(undecodable="skip", on_skip=skipped.append).to_list()
        version_after_query = reader.version
        fresh = app.journal.replicated_event_stream("r", ItemAdded, replica_id="d")
        total = await fresh.query(undecodable="skip").aggregate(count_added, 0)
        version_after_aggregate = fresh.version
        reply = await reader.persist(ItemAdded("c"))
    assert skus(read) == ["after-x"]
    assert total == 1
    [one] = skipped
    assert (one.stream_id, one.replica_id, one.sequence) == ("r", "a", 1)
    assert one.version == calliope.VersionVector({"a": 1})
    assert one.type_name == "test.item-removed"
    everything = calliope.VersionVector({"a": 1, "b": 1})
    assert version_after_query == everything  # the skipped event counts as read
    assert version_after_aggregate == everything
    assert reply.envelope.version == calliope.VersionVector({"a": 1, "b": 1, "c": 1})


async def test_a_replicated_live_query_skips_and_delivers_the_causal_successors(
    open_app: OpenApp,
) -> None:
    skipped: list[calliope.SkippedEvent] = []
    async with open_app(replica_id="a") as app:
        a = app.journal.replicated_event_stream("r", CartEvent)
        b = app.journal.replicated_event_stream("r", CartEvent, replica_id="b")
        reader = app.journal.replicated_event_stream("r", ItemAdded, replica_id="c")
        await a.persist(ItemAdded("a1"))
        async with reader.live_query(undecodable="skip", on_skip=skipped.append) as live:
            first = await step(live)
            await a.persist(ItemRemoved("a1"))
            await b.query().to_list()
            await b.persist(ItemAdded("b1"))  # follows the undecodable a:2
            second = await step(live)
            version = reader.version
    assert [first.event.sku, second.event.sku] == ["a1", "b1"]
    assert [(s.replica_id, s.sequence) for s in skipped] == [("a", 2)]
    assert version == calliope.VersionVector({"a": 2, "b": 1})


@AFTER_THE_BAD_ONE
async def test_a_replicated_live_query_that_raised_raises_again_until_closed(
    open_app: OpenApp, after: list[ItemAdded]
) -> None:
    async with open_app(replica_id="a") as app:
        writer = app.journal.replicated_event_stream("r", CartEvent)
        await writer.persist(ItemAdded("a"))
        await writer.persist(ItemRemoved("a"))
        for event in after:
            await writer.persist(event)
        reader = app.journal.replicated_event_stream("r", ItemAdded, replica_id="c")
        async with reader.live_query() as live:
            assert (await step(live)).event == ItemAdded("a")
            for _ in range(3):
                with pytest.raises(calliope.UnknownEventTypeError):
                    await step(live)
            assert reader.version == calliope.VersionVector({"a": 1})  # nothing passed over
            await live.close()
            with pytest.raises(StopAsyncIteration):
                await step(live)


async def test_the_choice_is_checked(open_app: OpenApp) -> None:
    async with open_app() as app:
        plain = app.journal.event_stream("s", ItemAdded)
        shared = app.journal.replicated_event_stream("r", ItemAdded)
        opens: list[Any] = [plain.query, plain.live_query, shared.query, shared.live_query]
        for open_query in opens:
            for wrong in ["ignore", "Skip", None, True]:
                with pytest.raises(calliope.InvalidArgumentError, match="undecodable"):
                    open_query(undecodable=wrong)
            with pytest.raises(calliope.InvalidArgumentError, match="on_skip"):
                open_query(undecodable="skip", on_skip="print")
            with pytest.raises(calliope.InvalidArgumentError, match='undecodable="skip"'):
                open_query(on_skip=print)
