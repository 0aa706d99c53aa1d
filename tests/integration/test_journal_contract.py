"""The journal contract: every adapter passes the same tests."""

from __future__ import annotations

import asyncio
import datetime

import attrs
import pytest

import calliope
from tests.integration.conftest import OpenApp
from tests.integration.events import Cart, CartEvent, ItemAdded, ItemRemoved, update_cart


async def test_persist_then_query_returns_envelopes_in_order(open_app: OpenApp) -> None:
    async with open_app(replica_id="node-a") as app:
        stream = app.journal.event_stream("cart-1", CartEvent)
        before = datetime.datetime.now(datetime.UTC)
        first = await stream.persist(ItemAdded("apple"))
        rest = await stream.persist_all([ItemAdded("pear", 2), ItemRemoved("apple")])
        envelopes = await stream.query().to_list()
    assert [e.sequence for e in envelopes] == [1, 2, 3]
    assert [e.event for e in envelopes] == [
        ItemAdded("apple"),
        ItemAdded("pear", 2),
        ItemRemoved("apple"),
    ]
    assert envelopes[0] == first and envelopes[1:] == rest
    assert all(e.stream_id == "cart-1" and e.replica_id == "node-a" for e in envelopes)
    assert [e.version for e in envelopes] == [
        calliope.VersionVector({"node-a": n}) for n in (1, 2, 3)
    ]
    assert all(e.timestamp.tzinfo is not None and e.timestamp >= before for e in envelopes)


async def test_aggregate_folds_the_events(open_app: OpenApp) -> None:
    async with open_app() as app:
        stream = app.journal.event_stream("cart-1", CartEvent)
        await stream.persist_all([ItemAdded("a"), ItemAdded("b", 3), ItemRemoved("a")])
        cart = await stream.query().aggregate(update_cart, Cart())
        envelopes = await stream.query().to_list()
    assert cart == Cart(items={"b": 3})
    assert cart == calliope.aggregate([e.event for e in envelopes], update_cart, Cart())


async def test_query_bounds_are_inclusive(open_app: OpenApp) -> None:
    async with open_app() as app:
        stream = app.journal.event_stream("s", ItemAdded)
        await stream.persist_all([ItemAdded(str(n)) for n in range(1, 11)])
        middle = [e.sequence for e in await stream.query(3, 5).to_list()]
        tail = [e.sequence for e in await stream.query(from_sequence=9).to_list()]
        beyond = await stream.query(from_sequence=11).to_list()
        empty = await stream.query(5, 4).to_list()
        for bad in [0, -1]:
            with pytest.raises(calliope.InvalidArgumentError, match="from_sequence"):
                stream.query(from_sequence=bad)
    assert middle == [3, 4, 5]
    assert tail == [9, 10]
    assert beyond == [] and empty == []


async def test_empty_stream_queries_empty(open_app: OpenApp) -> None:
    async with open_app() as app:
        stream = app.journal.event_stream("nothing-here", ItemAdded)
        assert await stream.query().to_list() == []
        assert await stream.last_sequence() == 0
        assert await stream.persist_all([]) == []


async def test_expected_sequence_guards_the_append(open_app: OpenApp) -> None:
    async with open_app() as app:
        stream = app.journal.event_stream("s", ItemAdded)
        await stream.persist(ItemAdded("first"), expected_sequence=0)
        await stream.persist_all([ItemAdded("b"), ItemAdded("c")], expected_sequence=1)
        with pytest.raises(calliope.ConcurrencyError, match="not the expected 1") as caught:
            await stream.persist_all([ItemAdded("x"), ItemAdded("y")], expected_sequence=1)
        assert (caught.value.expected, caught.value.actual) == (1, 3)
        with pytest.raises(calliope.InvalidArgumentError):
            await stream.persist(ItemAdded("x"), expected_sequence=-1)
        events = [e.event.sku for e in await stream.query().to_list()]
    assert events == ["first", "b", "c"]


async def test_concurrent_persists_get_unique_contiguous_sequences(open_app: OpenApp) -> None:
    async with open_app() as app:
        stream = app.journal.event_stream("busy", ItemAdded)
        envelopes = await asyncio.gather(*(stream.persist(ItemAdded(str(n))) for n in range(300)))
        stored = await stream.query().to_list()
    assert sorted(e.sequence for e in envelopes) == list(range(1, 301))
    assert [e.sequence for e in stored] == list(range(1, 301))
    assert {e.event.sku for e in stored} == {str(n) for n in range(300)}


async def test_concurrent_expected_sequence_lets_exactly_one_win(open_app: OpenApp) -> None:
    async with open_app() as app:
        stream = app.journal.event_stream("race", ItemAdded)
        results = await asyncio.gather(
            *(stream.persist(ItemAdded(str(n)), expected_sequence=0) for n in range(20)),
            return_exceptions=True,
        )
        assert await stream.last_sequence() == 1
    winners = [r for r in results if isinstance(r, calliope.Envelope)]
    losers = [r for r in results if isinstance(r, calliope.ConcurrencyError)]
    assert len(winners) == 1 and len(losers) == 19


async def test_two_writers_share_a_stream_and_versions_count_each(open_app: OpenApp) -> None:
    async with open_app(replica_id="a") as a, open_app(replica_id="b") as b:
        sa = a.journal.event_stream("shared", ItemAdded)
        sb = b.journal.event_stream("shared", ItemAdded)
        await sa.persist(ItemAdded("1"))
        await sb.persist(ItemAdded("2"))
        await sa.persist(ItemAdded("3"))
        envelopes = await sb.query().to_list()
    assert [(e.replica_id, e.sequence) for e in envelopes] == [("a", 1), ("b", 2), ("a", 3)]
    assert envelopes[2].version == calliope.VersionVector({"a": 2, "b": 1})
    assert envelopes[0].version < envelopes[1].version < envelopes[2].version


async def test_large_replay_streams_in_order(open_app: OpenApp) -> None:
    async with open_app(durability="flush") as app:
        stream = app.journal.event_stream("long", ItemAdded)
        for start in range(0, 5000, 500):
            await stream.persist_all([ItemAdded(str(n)) for n in range(start, start + 500)])
        seen = 0
        async for envelope in stream.query(from_sequence=1234):
            assert envelope.sequence == 1234 + seen
            assert envelope.event.sku == str(1233 + seen)
            seen += 1
    assert seen == 5000 - 1233


async def test_live_query_catches_up_then_follows(open_app: OpenApp) -> None:
    async with open_app() as app:
        stream = app.journal.event_stream("live", ItemAdded)
        await stream.persist_all([ItemAdded("old-1"), ItemAdded("old-2")])
        received: list[str] = []
        async with stream.live_query(from_sequence=2) as live:

            async def write_later() -> None:
                for n in range(3):
                    await asyncio.sleep(0.01)
                    await stream.persist(ItemAdded(f"new-{n}"))

            writer = asyncio.create_task(write_later())
            async for envelope in live:
                received.append(envelope.event.sku)
                if len(received) == 4:
                    break
            await writer
    assert received == ["old-2", "new-0", "new-1", "new-2"]


async def test_live_query_ends_on_close_from_another_task(open_app: OpenApp) -> None:
    async with open_app() as app:
        before = asyncio.all_tasks()  # (the store's own, e.g. a connection pool's)
        stream = app.journal.event_stream("live", ItemAdded)
        await stream.persist(ItemAdded("only"))
        live = stream.live_query()
        received: list[str] = []

        async def consume() -> None:
            async for envelope in live:
                received.append(envelope.event.sku)

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        await live.close()
        await asyncio.wait_for(consumer, 2)
        tasks_left = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()]
    assert received == ["only"]
    assert tasks_left == []


async def test_live_query_ends_on_cancellation_leaving_no_task(open_app: OpenApp) -> None:
    async with open_app() as app:
        before = asyncio.all_tasks()  # (the store's own, e.g. a connection pool's)
        stream = app.journal.event_stream("live", ItemAdded)

        async def consume() -> None:
            async with stream.live_query() as live:
                async for _ in live:
                    pass

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        await asyncio.sleep(0)
        tasks_left = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()]
    assert tasks_left == []


async def test_live_query_sees_another_apps_writes(open_app: OpenApp) -> None:
    async with open_app(replica_id="reader") as reader, open_app(replica_id="writer") as writer:
        source = writer.journal.event_stream("feed", ItemAdded)
        async with reader.journal.event_stream("feed", ItemAdded).live_query() as live:
            await source.persist(ItemAdded("hello"))
            envelope = await asyncio.wait_for(anext(live), 5)
    assert envelope.event == ItemAdded("hello") and envelope.replica_id == "writer"


@attrs.frozen
class Unrelated:
    note: str


async def test_types_outside_the_declared_union_are_refused(open_app: OpenApp) -> None:
    async with open_app() as app:
        stream = app.journal.event_stream("s", CartEvent)
        with pytest.raises(calliope.EventEncodingError, match="Unrelated"):
            await stream.persist(Unrelated("x"))
        assert await stream.last_sequence() == 0
        await stream.persist(ItemRemoved("x"))
        narrow = app.journal.event_stream("s", ItemAdded)
        with pytest.raises(calliope.UnknownEventTypeError, match=r"test\.item-removed"):
            await narrow.query().to_list()


async def test_stable_names_survive_renaming_a_class(open_app: OpenApp) -> None:
    @calliope.event_type("shop.order-placed")
    @attrs.frozen
    class OrderPlaced:
        order: str

    @calliope.event_type("shop.order-placed")
    @attrs.frozen
    class OrderWasPlaced:  # the same event after a rename and a move
        order: str

    async with open_app() as app:
        await app.journal.event_stream("o", OrderPlaced).persist(OrderPlaced("o-1"))
        events = await app.journal.event_stream("o", OrderWasPlaced).query().to_list()
    assert [e.event for e in events] == [OrderWasPlaced("o-1")]


async def test_old_schema_versions_are_upcast_on_read(open_app: OpenApp) -> None:
    @calliope.event_type("shop.line-added")
    @attrs.frozen
    class LineAddedV1:
        sku: str

    def add_quantity(data: dict[str, object]) -> dict[str, object]:
        return {**data, "quantity": 1}

    def rename_sku(data: dict[str, object]) -> dict[str, object]:
        return {"product": data["sku"], "quantity": data["quantity"]}

    @calliope.event_type("shop.line-added", version=3, upcasters={1: add_quantity, 2: rename_sku})
    @attrs.frozen
    class LineAdded:
        product: str
        quantity: int

    async with open_app() as app:
        await app.journal.event_stream("l", LineAddedV1).persist(LineAddedV1("apple"))
        await app.journal.event_stream("l", LineAdded).persist(LineAdded("pear", 4))
        events = [e.event for e in await app.journal.event_stream("l", LineAdded).query().to_list()]
        folded = (
            await app.journal.event_stream("l", LineAdded)
            .query()
            .aggregate(lambda seen, event: [*seen, event], list[LineAdded]())
        )
        assert folded == events
        with pytest.raises(calliope.EventDecodingError, match="newer than"):
            await app.journal.event_stream("l", LineAddedV1).query().to_list()
    assert events == [LineAdded("apple", 1), LineAdded("pear", 4)]


async def test_stream_ids_are_never_paths(open_app: OpenApp) -> None:
    ids = ["../x", "a/b", "NUL\x00", "Case", "case", "CASE", ".", "/etc/passwd", "ü" * 512]
    async with open_app() as app:
        for index, stream_id in enumerate(ids):
            await app.journal.event_stream(stream_id, ItemAdded).persist(ItemAdded(str(index)))
        found = {
            stream_id: [
                e.event.sku
                for e in await app.journal.event_stream(stream_id, ItemAdded).query().to_list()
            ]
            for stream_id in ids
        }
    assert found == {stream_id: [str(index)] for index, stream_id in enumerate(ids)}


@pytest.mark.parametrize("bad", ["", "x" * 1025, "ü" * 513, "\ud800", 42])
async def test_bad_stream_ids_are_refused(open_app: OpenApp, bad: object) -> None:
    async with open_app() as app:
        with pytest.raises(calliope.InvalidStreamIdError):
            app.journal.event_stream(bad, ItemAdded)  # type: ignore[call-overload]


async def test_snapshots_round_trip_and_keep_the_newest(open_app: OpenApp) -> None:
    async with open_app() as app:
        assert await app.snapshots.load_snapshot("cart-1", Cart) is None
        await app.snapshots.save_snapshot("cart-1", Cart({"a": 1}), sequence=3)
        saved = await app.snapshots.save_snapshot("cart-1", Cart({"a": 1, "b": 2}), sequence=7)
        loaded = await app.snapshots.load_snapshot("cart-1", Cart)
        other = await app.snapshots.load_snapshot("cart-2", Cart)
    assert loaded is not None and other is None
    assert loaded.state == Cart({"a": 1, "b": 2}) and loaded.sequence == 7
    assert loaded.timestamp == saved.timestamp


async def test_snapshot_then_replay_from_it_equals_full_replay(open_app: OpenApp) -> None:
    async with open_app() as app:
        stream = app.journal.event_stream("cart-9", CartEvent)
        await stream.persist_all([ItemAdded("a"), ItemAdded("b"), ItemRemoved("a")])
        state = await stream.query().aggregate(update_cart, Cart())
        await app.snapshots.save_snapshot("cart-9", state, sequence=3)
        await stream.persist_all([ItemAdded("c", 5)])
        snapshot = await app.snapshots.load_snapshot("cart-9", Cart)
        assert snapshot is not None
        resumed = await stream.query(snapshot.sequence + 1).aggregate(update_cart, snapshot.state)
        full = await stream.query().aggregate(update_cart, Cart())
    assert resumed == full == Cart({"b": 1, "c": 5})


async def test_a_replica_id_is_held_by_one_live_app(open_app: OpenApp) -> None:
    async with open_app(replica_id="solo") as first:
        with pytest.raises(calliope.ReplicaInUseError, match="solo"):
            async with open_app(replica_id="solo"):
                pass
        assert first.replica_id == "solo"
    async with open_app(replica_id="solo") as again:
        assert again.replica_id == "solo"


async def test_the_default_replica_id_is_kept(open_app: OpenApp) -> None:
    async with open_app() as app:
        first = app.replica_id
    async with open_app() as app:
        assert app.replica_id == first


async def test_a_closed_app_refuses_use(open_app: OpenApp) -> None:
    async with open_app() as app:
        stream = app.journal.event_stream("s", ItemAdded)
    with pytest.raises(calliope.AppClosedError):
        await stream.persist(ItemAdded("late"))
    with pytest.raises(calliope.AppClosedError):
        await stream.query().to_list()
    with pytest.raises(calliope.AppClosedError):
        await app.snapshots.load_snapshot("s", Cart)


async def test_types_cattrs_cannot_convert_are_a_clear_error(open_app: OpenApp) -> None:
    class Opaque:
        pass

    @attrs.frozen
    class Holder:
        thing: Opaque

    async with open_app() as app:
        with pytest.raises(calliope.InvalidArgumentError, match="Holder cannot be stored"):
            app.journal.event_stream("s", Holder)
        with pytest.raises(calliope.EventEncodingError, match="msgpack"):
            await app.snapshots.save_snapshot("s", {"k": Opaque()}, sequence=1)
        assert await app.snapshots.load_snapshot("s", dict) is None


async def test_a_closed_live_query_yields_nothing_more_even_if_it_had_buffered(
    open_app: OpenApp,
) -> None:
    async with open_app() as app:
        stream = app.journal.event_stream("s", ItemAdded)
        await stream.persist_all([ItemAdded(str(n)) for n in range(5)])
        async with stream.live_query() as live:
            assert (await anext(live)).event.sku == "0"  # the rest are buffered
            await live.close()
            assert [e async for e in live] == []


async def test_data_that_does_not_fit_its_class_is_a_clear_error_when_folding(
    open_app: OpenApp,
) -> None:
    @calliope.event_type("shop.price-set")
    @attrs.frozen
    class PriceSet:
        sku: str

    @calliope.event_type("shop.price-set")
    @attrs.frozen
    class PriceSetChanged:  # a field added without a new version and upcaster
        sku: str
        cents: int

    async with open_app() as app:
        await app.journal.event_stream("p", PriceSet).persist(PriceSet("apple"))
        stream = app.journal.event_stream("p", PriceSetChanged)
        with pytest.raises(calliope.EventDecodingError, match="add an upcaster"):
            await stream.query().aggregate(lambda n, _: n + 1, 0)
