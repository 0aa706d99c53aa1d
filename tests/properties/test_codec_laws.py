"""The codec's law: what persist accepts reads back equal; nothing else is written.

For generated attrs classes whose fields are of the supported types, and
values that are of the declared types or (for some fields) of other types,
``persist`` either accepts the event and a query returns an equal value of
the same types (an int in a float field reads back as the equal float), or
raises ``EventEncodingError`` naming a field that was given a value of
another type, and the stream stays empty. A value whose fields all have
their declared types is always accepted.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

import calliope
from calliope.errors import EventEncodingError


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


@calliope.event_type("laws.inner")
@attrs.frozen
class Inner:
    n: int
    label: str


offsets = st.builds(
    timezone, st.integers(-23 * 60 + 1, 23 * 60 - 1).map(lambda m: timedelta(minutes=m))
)
naive_or_fixed = st.none() | st.just(UTC) | offsets
msgpack_ints = st.integers(-(2**63), 2**64 - 1)  # msgpack stores no others

inners = st.builds(Inner, st.integers(-5, 5), st.text(max_size=3))

# The supported field types, each with values of exactly that type.
KINDS: dict[str, tuple[Any, st.SearchStrategy[Any]]] = {
    "int": (int, msgpack_ints),
    "float": (float, st.floats()),
    "str": (str, st.text(max_size=20)),
    "bool": (bool, st.booleans()),
    "bytes": (bytes, st.binary(max_size=20)),
    "datetime": (
        datetime,
        st.datetimes(timezones=naive_or_fixed | st.timezones(), allow_imaginary=False),
    ),
    "date": (date, st.dates()),
    "time": (time, st.times(timezones=naive_or_fixed)),
    "uuid": (uuid.UUID, st.uuids()),
    "decimal": (Decimal, st.decimals(places=None)),
    "enum": (Colour, st.sampled_from(Colour)),
    "intenum": (Size, st.sampled_from(Size)),
    "frozenset": (frozenset[int], st.frozensets(st.integers(-100, 100), max_size=4)),
    "set": (set[str], st.sets(st.text(max_size=3), max_size=4)),
    "tuple": (tuple[int, ...], st.lists(st.integers(0, 9), max_size=4).map(tuple)),
    "list": (list[float], st.lists(st.floats(), max_size=4)),
    "dict": (dict[str, int], st.dictionaries(st.text(max_size=3), msgpack_ints, max_size=3)),
    "optional": (int | None, st.none() | st.integers(-5, 5)),
    "inner": (Inner, inners),
    "inners": (list[Inner], st.lists(inners, max_size=3)),
    "nested": (dict[str, list[int]], st.dictionaries(st.text(max_size=2), st.lists(msgpack_ints))),
}


@attrs.frozen
class Case:
    cls: type
    value: Any
    expected: Any  # what a query should return if persist accepts
    mismatched: frozenset[str]  # the fields given a value of another type


@st.composite
def cases(draw: st.DrawFn, mismatches: bool) -> Case:
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=5))
    names = [f"f{index}_{kind}" for index, kind in enumerate(kinds)]
    cls = attrs.make_class(
        "Generated",
        {name: attrs.field(type=KINDS[kind][0]) for name, kind in zip(names, kinds, strict=True)},
    )
    cls.__module__ = __name__
    calliope.event_type(f"laws.generated.{uuid.uuid4().hex}")(cls)
    values: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    mismatched: set[str] = set()
    for name, kind in zip(names, kinds, strict=True):
        source = kind
        if mismatches and draw(st.booleans()):
            source = draw(st.sampled_from(sorted(KINDS)))
        value = draw(KINDS[source][1])
        values[name] = expected[name] = value
        if source != kind:
            mismatched.add(name)
            if kind == "float" and type(value) is int and abs(value) < 2**53:
                expected[name] = float(value)
    return Case(cls, cls(**values), cls(**expected), frozenset(mismatched))


def canonical(value: Any) -> Any:
    """A form equal for equal values of the same types (NaN included, set
    order, tzinfo, fold and Decimal exponents compared through repr)."""
    kind = type(value)
    if attrs.has(kind):
        fields = attrs.fields(kind)
        return kind.__qualname__, tuple(canonical(getattr(value, f.name)) for f in fields)
    if kind is list or kind is tuple:
        return kind.__name__, tuple(canonical(item) for item in value)
    if kind is set or kind is frozenset:
        return kind.__name__, tuple(sorted(repr(canonical(item)) for item in value))
    if kind is dict:
        return "dict", tuple((canonical(k), canonical(v)) for k, v in value.items())
    return kind.__qualname__, repr(value)


async def persist_and_read(case: Case) -> tuple[EventEncodingError | None, list[Any]]:
    async with calliope.open(f"memory://laws-{uuid.uuid4().hex}") as app:
        stream: calliope.EventStream[Any] = app.journal.event_stream("s", case.cls)
        refused = None
        try:
            await stream.persist(case.value)
        except EventEncodingError as error:
            refused = error
        return refused, [envelope.event async for envelope in stream.query()]


@given(cases(mismatches=True))
def test_persist_accepts_what_reads_back_equal_or_refuses_naming_a_field(case: Case) -> None:
    refused, stored = asyncio.run(persist_and_read(case))
    if refused is None:
        assert len(stored) == 1
        assert canonical(stored[0]) == canonical(case.expected)
    else:
        assert stored == []
        named = str(refused).split(":", 1)[0]
        assert any(
            named == f"Generated.{field}" or named.startswith(f"Generated.{field}")
            for field in case.mismatched
        ), str(refused)


@given(cases(mismatches=False))
def test_values_of_the_declared_types_are_always_accepted(case: Case) -> None:
    refused, stored = asyncio.run(persist_and_read(case))
    assert refused is None, str(refused)
    assert [canonical(event) for event in stored] == [canonical(case.value)]
