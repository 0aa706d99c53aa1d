"""Nothing undecodable is written; the standard types read back exactly.

Each test opens an app on the memory store (which packs and unpacks every
record with msgpack, as the file store does) and persists through a plain
or a replicated stream, or saves a snapshot.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest

import calliope
from calliope.errors import EventEncodingError, InvalidArgumentError

PARIS = ZoneInfo("Europe/Paris")
SEVEN = uuid.UUID(int=7)


@calliope.event_type("test.item-added")
@attrs.frozen
class ItemAdded:
    sku: str
    qty: int
    price: float = 0.0


@calliope.event_type("test.item-added-with-note")
@attrs.frozen
class ItemAddedWithNote(ItemAdded):
    note: str = ""


@calliope.event_type("test.line")
@attrs.frozen
class Line:
    sku: str
    qty: int


@calliope.event_type("test.order")
@attrs.frozen
class Order:
    first: Line
    lines: list[Line] = attrs.field(factory=list)
    by_cell: dict[tuple[int, int], str] = attrs.field(factory=dict)


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


class Mood(enum.StrEnum):
    CALM = "calm"


@calliope.event_type("test.everything")
@attrs.frozen
class Everything:
    at: datetime
    day: date = date(2024, 1, 2)
    clock: time = time(12, 30)
    id: uuid.UUID = SEVEN
    amount: Decimal = Decimal("1.10")
    colour: Colour = Colour.RED
    size: Size = Size.LARGE
    mood: Mood = Mood.CALM
    tags: frozenset[str] = frozenset()
    seen: set[int] = attrs.field(factory=set)
    pair: tuple[int, str] = (1, "a")
    blob: bytes = b""
    ratio: float = 0.5
    weight: float = 1.0


@pytest.fixture
async def app() -> AsyncIterator[calliope.App]:
    async with calliope.open(f"memory://codec-{uuid.uuid4().hex}", replica_id="a") as opened:
        yield opened


async def persist(app: calliope.App, kind: str, event: Any, declared: Any) -> None:
    """Persist ``event`` the way ``kind`` names."""
    if kind == "persist":
        await app.journal.event_stream("s", declared).persist(event)
    elif kind == "persist_all":  # a good event first: all or none
        await app.journal.event_stream("s", declared).persist_all([ItemAdded("ok", 1), event])
    else:
        await app.journal.replicated_event_stream("r", declared).persist(event)


async def stored(app: calliope.App, kind: str, declared: Any) -> list[Any]:
    """The events the stream ``kind`` wrote to holds, read back."""
    query: Any
    if kind == "replicated":
        query = app.journal.replicated_event_stream("r", declared).query()
    else:
        query = app.journal.event_stream("s", declared).query()
    return [envelope.event async for envelope in query]


async def read_back(app: calliope.App, event: Any) -> Any:
    stream = app.journal.event_stream(f"one-{uuid.uuid4().hex}", type(event))
    await stream.persist(event)
    (back,) = [envelope.event async for envelope in stream.query()]
    return back


KINDS = ["persist", "persist_all", "replicated"]

REFUSED = [
    (ItemAdded("x", "2"), "ItemAdded.qty", "'2' is a str"),  # type: ignore[arg-type]
    (ItemAdded("x", math.nan), "ItemAdded.qty", "nan is a float"),  # type: ignore[arg-type]
    (ItemAdded("x", 1.9), "ItemAdded.qty", "read back as 1"),  # type: ignore[arg-type]
    (ItemAdded("x", True), "ItemAdded.qty", "True is a bool"),
    (ItemAdded(b"x", 1), "ItemAdded.sku", "b'x' is a bytes"),  # type: ignore[arg-type]
    (ItemAdded("x", 2**64), "ItemAdded.qty", "msgpack cannot store"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("event", "field", "detail"), REFUSED)
async def test_a_value_that_would_not_read_back_is_refused_naming_its_field(
    app: calliope.App, kind: str, event: ItemAdded, field: str, detail: str
) -> None:
    with pytest.raises(EventEncodingError) as raised:
        await persist(app, kind, event, ItemAdded)
    message = str(raised.value)
    assert message.startswith(f"{field}: ")
    assert detail in message
    assert "declared type" in message
    assert await stored(app, kind, ItemAdded) == []


@pytest.mark.parametrize("kind", KINDS)
async def test_a_subclass_on_its_parents_stream_is_refused(app: calliope.App, kind: str) -> None:
    with pytest.raises(EventEncodingError, match="ItemAddedWithNote is a subclass of ItemAdded"):
        await persist(app, kind, ItemAddedWithNote("x", 1, note="lost"), ItemAdded)
    assert await stored(app, kind, ItemAdded | ItemAddedWithNote) == []


@pytest.mark.parametrize(
    ("order", "field"),
    [
        (Order(Line("a", "1")), "Order.first.qty"),  # type: ignore[arg-type]
        (Order(Line("a", 1), [Line("b", 2), Line("c", 2.5)]), "Order.lines[1].qty"),  # type: ignore[arg-type]
        (Order(Line("a", 1), by_cell={(1, 2): "x"}), "Order.by_cell[(1, 2)]"),
    ],
)
async def test_nested_fields_are_named_by_their_path(
    app: calliope.App, order: Order, field: str
) -> None:
    with pytest.raises(EventEncodingError) as raised:
        await app.journal.event_stream("o", Order).persist(order)
    assert str(raised.value).startswith(f"{field}")
    assert await stored_orders(app) == []


async def stored_orders(app: calliope.App) -> list[Order]:
    return [envelope.event async for envelope in app.journal.event_stream("o", Order).query()]


MOMENTS = [
    datetime(2024, 3, 31, 2, 30, 0, 500),  # naive: stays naive, same wall time
    datetime(2024, 3, 31, 2, 30, tzinfo=UTC),
    datetime(2024, 3, 31, 2, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2024, 3, 31, 2, 30, tzinfo=timezone(-timedelta(hours=3))),
    datetime(2024, 7, 1, 12, 0, 0, 123456, tzinfo=PARIS),
    datetime(2024, 10, 27, 2, 30, tzinfo=PARIS),  # ambiguous: the first 02:30
    datetime(2024, 10, 27, 2, 30, tzinfo=PARIS, fold=1),  # and the second
]


@pytest.mark.parametrize("moment", MOMENTS, ids=repr)
async def test_datetimes_read_back_exactly_with_their_tzinfo(
    app: calliope.App, moment: datetime
) -> None:
    back = (await read_back(app, Everything(moment))).at
    assert type(back) is datetime
    assert back == moment
    assert back.utcoffset() == moment.utcoffset()
    assert back.tzinfo == moment.tzinfo
    if isinstance(moment.tzinfo, ZoneInfo):
        assert back.tzinfo is PARIS


async def test_the_standard_types_read_back_exactly_and_nan_is_not_refused(
    app: calliope.App,
) -> None:
    event = Everything(
        at=datetime(2024, 1, 1, tzinfo=PARIS),
        day=date(1999, 12, 31),
        clock=time(23, 59, 58, 999999, tzinfo=timezone(timedelta(hours=-2))),
        id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        amount=Decimal("-0.000100"),
        colour=Colour.GREEN,
        size=Size.SMALL,
        mood=Mood.CALM,
        tags=frozenset({"a", "b"}),
        seen={3, 1, 2},
        pair=(9, "z"),
        blob=b"\x00\xff",
        ratio=math.nan,  # legitimate, though nan != nan
        weight=3,  # an int in a float field reads back as the equal float
    )
    back = await read_back(app, event)
    assert attrs.evolve(back, ratio=0.0) == attrs.evolve(event, ratio=0.0)
    assert math.isnan(back.ratio)
    assert type(back.weight) is float
    for field in attrs.fields(Everything)[:-1]:
        assert type(getattr(back, field.name)) is type(getattr(event, field.name)), field.name
    assert str(back.amount) == "-0.000100"
    assert back.clock.tzinfo == timezone(timedelta(hours=-2))


@pytest.mark.parametrize("amount", ["1.10", "1E+3", "-0", "NaN", "Infinity", "0.000"])
async def test_decimals_keep_their_digits_and_exponent(app: calliope.App, amount: str) -> None:
    back = (await read_back(app, Everything(datetime(2024, 1, 1), amount=Decimal(amount)))).amount
    assert back.as_tuple() == Decimal(amount).as_tuple()


async def test_a_named_fixed_offset_that_would_lose_its_name_is_refused(
    app: calliope.App,
) -> None:
    named = timezone(timedelta(hours=1), "CET")
    with pytest.raises(EventEncodingError, match=r"^Everything\.at: .*tzinfo"):
        await app.journal.event_stream("e", Everything).persist(
            Everything(datetime(2024, 1, 1, tzinfo=named))
        )


async def test_a_snapshot_state_that_would_not_read_back_is_refused(app: calliope.App) -> None:
    with pytest.raises(EventEncodingError, match=r"^Line\.qty: "):
        await app.snapshots.save_snapshot("snap", Line("a", 1.5), sequence=1)  # type: ignore[arg-type]
    assert await app.snapshots.load_snapshot("snap", Line) is None


def script_class(decorated: bool) -> type:
    """An attrs class as a script (module ``__main__``) would define it."""
    cls = attrs.frozen(
        type("Clicked", (), {"__annotations__": {"n": int}, "__module__": "__main__"})
    )
    return calliope.event_type("test.clicked")(cls) if decorated else cls


async def test_only_an_undecorated_class_of_a_script_is_refused_when_a_stream_opens(
    app: calliope.App,
) -> None:
    with pytest.raises(InvalidArgumentError, match=r"@calliope\.event_type\(\"a-stable-name\"\)"):
        app.journal.event_stream("c", script_class(decorated=False))
    with pytest.raises(InvalidArgumentError, match="__main__"):
        await app.snapshots.save_snapshot("c", script_class(decorated=False)(1), sequence=1)

    cls = script_class(decorated=True)  # a decorated one is fine
    assert await read_back(app, cls(3)) == cls(3)
