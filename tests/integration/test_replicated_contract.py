"""The replicated stream contract, on every adapter."""

from __future__ import annotations

import asyncio

import pytest

import calliope
from calliope import VersionVector
from tests.integration.conftest import OpenApp
from tests.integration.events import Cart, CartEvent, ItemAdded, ItemRemoved, update_cart


async def test_concurrent_writes_are_reported_and_a_resolution_follows_them(
    open_app: OpenApp,
) -> None:
    async with open_app(replica_id="a") as a, open_app(replica_id="b") as b:
        cart_a = a.journal.replicated_event_stream("cart", CartEvent)
        cart_b = b.journal.replicated_event_stream("cart", CartEvent)
        first = await cart_a.persist(ItemAdded("apple"))
        second = await cart_b.persist(ItemAdded("pear"))
        assert not first.concurrent_update_detected
        assert second.concurrent_update_detected
        assert [e.event for e in second.concurrent_updates] == [ItemAdded("apple")]
        assert second.envelope.version.concurrent_with(first.envelope.version)
        # The handle now observes what it was told: its next event follows both.
        assert cart_b.version == VersionVector({"a": 1, "b": 1})
        resolution = await cart_b.persist(ItemRemoved("apple"))
        assert first.envelope.version < resolution.envelope.version
        assert second.envelope.version < resolution.envelope.version
        assert not resolution.concurrent_update_detected


async def test_every_replica_queries_the_same_causal_order(open_app: OpenApp) -> None:
    async with (
        open_app(replica_id="a") as a,
        open_app(replica_id="b") as b,
        open_app(replica_id="c") as c,
    ):
        streams = [app.journal.replicated_event_stream("s", ItemAdded) for app in (a, b, c)]
        for round_ in range(5):
            await asyncio.gather(
                *(stream.persist(ItemAdded(f"{i}-{round_}")) for i, stream in enumerate(streams))
            )
            if round_ % 2:
                await streams[round_ % 3].query().to_list()  # one replica catches up
        orders = [await stream.query().to_list() for stream in streams]
    assert orders[0] == orders[1] == orders[2]
    envelopes = orders[0]
    assert len(envelopes) == 15
    for i, earlier in enumerate(envelopes):
        for later in envelopes[i + 1 :]:
            assert not later.version < earlier.version
    for replica in "abc":
        assert [e.sequence for e in envelopes if e.replica_id == replica] == [1, 2, 3, 4, 5]


async def test_a_query_makes_the_handle_observe_and_since_skips_the_past(
    open_app: OpenApp,
) -> None:
    async with open_app(replica_id="a") as a, open_app(replica_id="b") as b:
        cart_a = a.journal.replicated_event_stream("cart", CartEvent)
        cart_b = b.journal.replicated_event_stream("cart", CartEvent)
        await cart_a.persist(ItemAdded("apple", 2))
        await cart_a.persist(ItemAdded("fig"))
        state = await cart_b.query().aggregate(update_cart, Cart())
        assert state == Cart({"apple": 2, "fig": 1})
        assert cart_b.version == VersionVector({"a": 2})
        reply = await cart_b.persist(ItemRemoved("fig"))
        assert not reply.concurrent_update_detected
        later = await cart_a.query(since=VersionVector({"a": 2})).to_list()
    assert [e.event for e in later] == [ItemRemoved("fig")]


async def test_a_restarted_replica_resumes_its_sequence_and_knowledge(open_app: OpenApp) -> None:
    async with open_app(replica_id="a") as a, open_app(replica_id="b") as b:
        await b.journal.replicated_event_stream("s", ItemAdded).persist(ItemAdded("b1"))
        cart_a = a.journal.replicated_event_stream("s", ItemAdded)
        await cart_a.query().to_list()
        before = await cart_a.persist(ItemAdded("a1"))
    async with open_app(replica_id="a") as a:
        cart_a = a.journal.replicated_event_stream("s", ItemAdded)
        after = await cart_a.persist(ItemAdded("a2"))
    assert after.envelope.sequence == 2
    assert after.envelope.version == VersionVector({"a": 2, "b": 1})
    assert before.envelope.version < after.envelope.version
    assert not after.concurrent_update_detected


async def test_replicated_live_query_follows_every_replica_in_causal_order(
    open_app: OpenApp,
) -> None:
    async with open_app(replica_id="a") as a, open_app(replica_id="b") as b:
        cart_a = a.journal.replicated_event_stream("s", ItemAdded)
        cart_b = b.journal.replicated_event_stream("s", ItemAdded)
        await cart_a.persist(ItemAdded("a1"))
        seen: list[calliope.Envelope[ItemAdded]] = []
        async with cart_b.live_query() as live:

            async def write() -> None:
                await asyncio.sleep(0.02)
                await cart_a.persist(ItemAdded("a2"))
                await cart_b.query().to_list()
                await cart_b.persist(ItemAdded("b1"))

            writer = asyncio.create_task(write())
            async for envelope in live:
                seen.append(envelope)
                if len(seen) == 3:
                    break
            await writer
    assert [e.event.sku for e in seen] == ["a1", "a2", "b1"]
    assert seen[2].version == VersionVector({"a": 2, "b": 1})


async def test_another_replica_id_on_one_app_is_leased(open_app: OpenApp) -> None:
    async with open_app(replica_id="a") as a, open_app(replica_id="b") as b:
        extra = a.journal.replicated_event_stream("s", ItemAdded, replica_id="a-2")
        reply = await extra.persist(ItemAdded("x"))
        assert reply.envelope.replica_id == "a-2"
        taken = b.journal.replicated_event_stream("s", ItemAdded, replica_id="a-2")
        with pytest.raises(calliope.ReplicaInUseError, match="a-2"):
            await taken.persist(ItemAdded("y"))


async def test_first_uses_of_an_extra_replica_id_at_once_share_one_lease(
    open_app: OpenApp,
) -> None:
    async with open_app(replica_id="a") as a:
        one = a.journal.replicated_event_stream("s", ItemAdded, replica_id="extra")
        other = a.journal.replicated_event_stream("t", ItemAdded, replica_id="extra")
        replies = await asyncio.gather(
            one.persist(ItemAdded("1")), one.persist(ItemAdded("2")), other.persist(ItemAdded("3"))
        )
    assert sorted(r.envelope.sequence for r in replies) == [1, 1, 2]
