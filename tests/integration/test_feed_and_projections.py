"""The feed and projections through the public API, on every adapter."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs
import pytest

import calliope
from tests.integration.conftest import OpenApp
from tests.integration.events import ItemAdded, ItemRemoved


@calliope.event_type("test.feed.price-set")
@attrs.frozen
class PriceSet:
    price: int


@calliope.event_type("test.feed.totals")
@attrs.frozen
class Totals:
    by_cart: dict[str, int] = attrs.field(factory=dict)
    events: int = 0


def count_items(totals: Totals, event: ItemAdded) -> Totals:
    by_cart = dict(totals.by_cart)
    by_cart[event.sku] = by_cart.get(event.sku, 0) + event.quantity
    return Totals(by_cart, totals.events + 1)


async def _fill(app: calliope.App, carts: int = 5, each: int = 3) -> None:
    for cart in range(carts):
        stream = app.journal.event_stream(f"cart-{cart}", ItemAdded)
        for n in range(each):
            await stream.persist(ItemAdded(f"cart-{cart}", n + 1))


async def test_the_feed_reads_every_matching_stream_and_resumes_anywhere(
    open_app: OpenApp,
) -> None:
    async with open_app() as app:
        await _fill(app)
        await app.journal.event_stream("order-1", ItemAdded).persist(ItemAdded("o"))
        rep = app.journal.replicated_event_stream("cart-shared", ItemAdded)
        await rep.persist(ItemAdded("shared", 7))
        feed = app.journal.feed(ItemAdded, prefix="cart-")
        found = await feed.query().to_list()
        assert [e.event.sku for e in found].count("o") == 0
        assert len(found) == 16
        assert found[-1].stream_id == "cart-shared" and found[-1].replica_id == app.replica_id
        positions = [e.position for e in found]
        assert all(p is not None for p in positions)
        for index, envelope in enumerate(found):
            assert envelope.position is not None
            for after in (envelope.position, str(envelope.position)):
                rest = await feed.query(after=after).to_list()
                assert rest == found[index + 1 :]
        everything = await app.journal.feed(ItemAdded).query().to_list()
        assert len(everything) == 17


async def test_events_of_other_types_are_passed_over_without_decoding(
    open_app: OpenApp,
) -> None:
    async with open_app() as app:
        await app.journal.event_stream("cart-1", ItemAdded | ItemRemoved).persist_all(
            [ItemAdded("a"), ItemRemoved("a"), ItemAdded("b")]
        )
        await app.journal.event_stream("cart-2", PriceSet).persist(PriceSet(3))
        # ItemRemoved and PriceSet are not types of this feed: decoding them
        # would raise UnknownEventTypeError.
        found = await app.journal.feed(ItemAdded).query().to_list()
        assert [e.event for e in found] == [ItemAdded("a"), ItemAdded("b")]
        assert [str(e.position) for e in found] == ["0.0", "0.2"]
        both = await app.journal.feed(ItemAdded | ItemRemoved).query().to_list()
        assert len(both) == 3


async def test_a_live_feed_yields_new_events_and_ends_when_the_app_closes(
    open_app: OpenApp,
) -> None:
    app = open_app(poll_interval=0.005)
    async with app:
        await _fill(app, carts=1, each=2)
        feed = app.journal.feed(ItemAdded)
        live = feed.live_query()
        async with live:
            first = [await anext(live), await anext(live)]
            assert live.position == first[-1].position
            waiting = asyncio.ensure_future(anext(live))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            await app.journal.event_stream("cart-9", ItemAdded).persist(ItemAdded("new"))
            late = await asyncio.wait_for(waiting, 5)
            assert late.event == ItemAdded("new") and late.stream_id == "cart-9"
            pending = asyncio.ensure_future(anext(live))
            await asyncio.sleep(0.02)
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, 5)
        live2 = feed.live_query(after=first[0].position)
        async with live2:
            assert (await anext(live2)).position == first[1].position
    with pytest.raises(calliope.AppClosedError):
        await feed.query().to_list()


@pytest.mark.parametrize(
    "bad", [3, 1.5, object(), "1", "1.", "-1.0", "01.0", "1.0.0", " 1.0", "1.99999999999"]
)
async def test_a_bad_position_is_refused_clearly(open_app: OpenApp, bad: Any) -> None:
    async with open_app() as app:
        feed = app.journal.feed(ItemAdded)
        with pytest.raises(calliope.InvalidArgumentError, match=r"position|FeedPosition|after"):
            feed.query(after=bad)
    with pytest.raises(calliope.InvalidArgumentError):
        calliope.FeedPosition(-1, 0)
    with pytest.raises(calliope.InvalidArgumentError):
        calliope.FeedPosition(True, 0)
    assert calliope.FeedPosition.parse("12.3") == calliope.FeedPosition(12, 3)
    assert calliope.FeedPosition(2, 0) > calliope.FeedPosition(1, 9)


async def test_a_projection_catches_up_saves_and_resumes_after_a_restart(
    open_app: OpenApp,
) -> None:
    async with open_app() as app:
        await _fill(app)
        totals = app.projection("cart-totals", ItemAdded, count_items, Totals(), prefix="cart-")
        state = await totals.catch_up()
        assert state.events == 15 and state.by_cart["cart-0"] == 6
        again = await totals.catch_up()
        assert again == state
        await app.journal.event_stream("cart-0", ItemAdded).persist(ItemAdded("cart-0", 10))
    async with open_app() as app:
        totals = app.projection("cart-totals", ItemAdded, count_items, Totals(), prefix="cart-")
        calls = 0

        def counting(state: Totals, event: ItemAdded) -> Totals:
            nonlocal calls
            calls += 1
            return count_items(state, event)

        counted = app.projection("cart-totals", ItemAdded, counting, Totals(), prefix="cart-")
        state = await counted.catch_up()
        assert calls == 1  # only the new event: the saved state and position were loaded
        assert state.events == 16 and state.by_cart["cart-0"] == 16
        assert totals.position is None  # (a second object loads on its own first use)


async def test_a_failing_projection_stops_at_the_event_and_resumes_there(
    open_app: OpenApp,
) -> None:
    async with open_app() as app:
        await _fill(app, carts=2, each=3)
        everything = await app.journal.feed(ItemAdded).query().to_list()
        broken = True

        def fragile(totals: Totals, event: ItemAdded) -> Totals:
            if broken and event.quantity == 2 and event.sku == "cart-1":
                raise ValueError("no twos")
            return count_items(totals, event)

        projection = app.projection("fragile", ItemAdded, fragile, Totals())
        with pytest.raises(calliope.ProjectionError) as raised:
            await projection.catch_up()
        failing = next(e for e in everything if e.event == ItemAdded("cart-1", 2))
        assert raised.value.position == failing.position
        assert raised.value.name == "fragile"
        assert isinstance(raised.value.__cause__, ValueError)
        assert projection.state.events == 4
        other = app.projection("others", ItemAdded, count_items, Totals())
        assert (await other.catch_up()).events == 6  # side by side, unaffected
        broken = False
    async with open_app() as app:
        projection = app.projection("fragile", ItemAdded, fragile, Totals())
        assert (await projection.catch_up()).events == 6


async def test_follow_yields_each_new_state_saved(open_app: OpenApp) -> None:
    async with open_app(poll_interval=0.005) as app:
        await _fill(app, carts=1, each=1)
        projection = app.projection("live", ItemAdded, count_items, Totals())
        async with projection.follow() as states:
            assert (await anext(states)).events == 1
            stream = app.journal.event_stream("cart-7", ItemAdded)
            await stream.persist_all([ItemAdded("x"), ItemAdded("y")])
            state = await asyncio.wait_for(anext(states), 5)
            while state.events < 3:
                state = await asyncio.wait_for(anext(states), 5)
            assert state.events == 3
        reloaded = app.projection("live", ItemAdded, count_items, Totals())
        assert (await reloaded.catch_up()).events == 3


async def test_projection_arguments_are_checked(open_app: OpenApp) -> None:
    async with open_app() as app:
        with pytest.raises(calliope.InvalidArgumentError):
            app.projection("", ItemAdded, count_items, Totals())
        with pytest.raises(calliope.InvalidArgumentError):
            app.projection("p", ItemAdded, "not a function", Totals())  # type: ignore[arg-type]
        with pytest.raises(calliope.InvalidArgumentError):
            app.journal.feed(ItemAdded, prefix=3)  # type: ignore[call-overload]


async def test_a_read_only_store_reads_the_feed_and_folds_without_saving(
    open_app: OpenApp, target: str
) -> None:
    async with open_app() as app:
        await _fill(app, carts=2, each=2)
        saved = app.projection("saved", ItemAdded, count_items, Totals())
        assert (await saved.catch_up()).events == 4
        await app.journal.event_stream("cart-0", ItemAdded).persist(ItemAdded("cart-0", 1))
        if target.startswith("memory://"):
            await _check_read_only(calliope.open(target, read_only=True))
    if not target.startswith("memory://"):
        await _check_read_only(calliope.open(target, read_only=True))


async def _check_read_only(opening: calliope.App) -> None:
    async with opening as reader:
        assert len(await reader.journal.feed(ItemAdded).query().to_list()) == 5
        projection = reader.projection("saved", ItemAdded, count_items, Totals())
        assert (await projection.catch_up()).events == 5  # loaded 4, folded 1, saved nothing
        fresh = reader.projection("fresh", ItemAdded, count_items, Totals())
        assert (await fresh.catch_up()).events == 5
        with pytest.raises(calliope.InvalidArgumentError):
            reader.projection("x" * 1020, ItemAdded, count_items, Totals())


async def test_one_projection_used_by_several_tasks_folds_each_event_once(
    open_app: OpenApp, target: str
) -> None:
    async with open_app(poll_interval=0.005) as app:
        stream = app.journal.event_stream("cart-1", ItemAdded)
        for _ in range(30):
            await stream.persist(ItemAdded("cart-1"))
        projection = app.projection("shared", ItemAdded, count_items, Totals())
        states = await asyncio.gather(*(projection.catch_up() for _ in range(3)))
        assert [state.events for state in states] == [30, 30, 30]
        async with projection.follow() as following:
            assert (await anext(following)).events == 30
            for _ in range(10):
                await stream.persist(ItemAdded("cart-1"))
                await projection.catch_up()
            state = await asyncio.wait_for(anext(following), 5)
            while state.events < 40:
                state = await asyncio.wait_for(anext(following), 5)
            assert state.events == 40
        assert projection.state.events == 40
    if target.startswith("memory://"):
        return
    async with open_app() as app:
        reloaded = app.projection("shared", ItemAdded, count_items, Totals())
        assert (await reloaded.catch_up()).events == 40


@calliope.event_type("test.feed.evolving", version=2, upcasters={1: lambda data: data})
@attrs.frozen
class EvolvingV2:
    size: int


@calliope.event_type("test.feed.evolving")
@attrs.frozen
class EvolvingV1:
    size: int


def count_any(totals: Totals, event: object) -> Totals:
    return Totals(totals.by_cart, totals.events + 1)


async def test_an_undecodable_event_stops_a_feed_and_a_projection_at_its_position(
    open_app: OpenApp,
) -> None:
    async with open_app() as app:
        await app.journal.event_stream("cart-1", ItemAdded).persist(ItemAdded("a"))
        await app.journal.event_stream("cart-2", EvolvingV2).persist(EvolvingV2(3))
        await app.journal.event_stream("cart-1", ItemAdded).persist(ItemAdded("b"))
        feed = app.journal.feed(ItemAdded | EvolvingV1)
        seen = []
        with pytest.raises(calliope.EventDecodingError, match="newer") as raised:
            async for envelope in feed.query():
                seen.append(envelope.event)
        assert seen == [ItemAdded("a")]
        assert str(raised.value.position) == "1.0"
        skipped: list[calliope.SkippedEvent] = []
        kept = await feed.query(undecodable="skip", on_skip=skipped.append).to_list()
        assert [e.event for e in kept] == [ItemAdded("a"), ItemAdded("b")]
        assert [s.type_name for s in skipped] == ["test.feed.evolving"]
        async with feed.live_query() as live:
            assert (await anext(live)).event == ItemAdded("a")
            with pytest.raises(calliope.EventDecodingError):
                await anext(live)
            with pytest.raises(calliope.EventDecodingError):  # and again, until closed
                await anext(live)
        projection = app.projection("evolving", ItemAdded | EvolvingV1, count_any, Totals())
        with pytest.raises(calliope.ProjectionError) as stopped:
            await projection.catch_up()
        assert str(stopped.value.position) == "1.0"
        assert isinstance(stopped.value.__cause__, calliope.EventDecodingError)
        assert projection.state.events == 1 and str(projection.position) == "0.0"
        again = app.projection("evolving", ItemAdded | EvolvingV2, count_any, Totals())
        assert (await again.catch_up()).events == 3  # resumed at the event, with the new code


async def test_a_bad_update_state_is_named_at_the_event(open_app: OpenApp) -> None:
    async with open_app() as app:
        await _fill(app, carts=1, each=4)

        def turns_to_text(totals: Totals, event: ItemAdded) -> Any:
            return "oops" if event.quantity == 3 else count_items(totals, event)

        projection = app.projection("bad-return", ItemAdded, turns_to_text, Totals())
        with pytest.raises(calliope.ProjectionError, match="returned a str") as raised:
            await projection.catch_up()
        assert str(raised.value.position) == "2.0"
        assert projection.state.events == 2  # the last good state, saved

        async def asynchronous(totals: Totals, event: ItemAdded) -> Totals:
            return totals

        with pytest.raises(calliope.InvalidArgumentError, match="async"):
            app.projection("async", ItemAdded, asynchronous, Totals())  # type: ignore[arg-type]
        with pytest.raises(calliope.InvalidArgumentError, match="envelopes"):
            app.projection("p", ItemAdded, count_items, Totals(), envelopes="yes")  # type: ignore[arg-type]


async def test_a_position_past_the_end_of_the_feed_is_refused(open_app: OpenApp) -> None:
    async with open_app() as app:
        await _fill(app, carts=1, each=2)
        feed = app.journal.feed(ItemAdded)
        with pytest.raises(calliope.InvalidArgumentError, match="past the end"):
            await feed.query(after="50.0").to_list()
        async with feed.live_query(after="50.0") as live:
            with pytest.raises(calliope.InvalidArgumentError, match="past the end"):
                await anext(live)
        last = (await feed.query().to_list())[-1].position
        assert await feed.query(after=last).to_list() == []


async def test_a_large_group_commit_and_positions_whatever_the_prefix(open_app: OpenApp) -> None:
    """1,500 concurrent persists to as many streams (on PostgreSQL, a few
    transactions, each one feed entry larger than a page): every event once,
    and a position names the same event in every feed."""
    async with open_app() as app:
        await asyncio.gather(
            *(
                app.journal.event_stream(f"{'a' if n % 2 else 'b'}-{n}", ItemAdded).persist(
                    ItemAdded(str(n))
                )
                for n in range(1500)
            )
        )
        everything = await app.journal.feed(ItemAdded).query().to_list()
        assert sorted(e.event.sku for e in everything) == sorted(str(n) for n in range(1500))
        positions = {e.event.sku: e.position for e in everything}
        assert len(set(positions.values())) == 1500
        only_a = await app.journal.feed(ItemAdded, prefix="a-").query().to_list()
        assert len(only_a) == 750
        assert all(positions[e.event.sku] == e.position for e in only_a)
        middle = everything[700].position
        assert middle is not None
        rest = await app.journal.feed(ItemAdded).query(after=middle).to_list()
        assert [e.event.sku for e in rest] == [e.event.sku for e in everything[701:]]
