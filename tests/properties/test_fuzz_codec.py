"""Fuzzing the decode side of the codecs.

``DeclaredTypeCodec.decode`` gets arbitrary type names, schema versions
(negative, huge, not ints) and plain data, for attrs event classes with
nested, Optional, list and dict fields: a value of a declared class or
EventDecodingError come out, nothing else. The CRDT codec's
``decode_state``, ``decode_op`` and ``decode_tagged`` get arbitrary plain
data, and encoded values with parts replaced: only CRDTCodecError.

Each test runs a fixed number of examples (see ``fuzz_settings`` in
tests/conftest.py); ``CALLIOPE_FUZZ_EXAMPLES=100000`` runs that many in each.
"""

from __future__ import annotations

import contextlib
import datetime
from typing import Any

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import calliope
from calliope.adapters.codec import Codec
from calliope.adapters.crdt_codec import CRDTCodec
from calliope.core.crdt import (
    BUILTIN_CRDTS,
    RGA,
    GCounter,
    LWWRegister,
    ORMap,
    ORSet,
    PNCounter,
)
from calliope.core.crdt.protocol import Tagged
from calliope.testing import Replica
from tests.conftest import fuzz_settings


@attrs.frozen
class Line:
    sku: str
    quantity: int
    price: float | None = None


@calliope.event_type("fuzz.order", version=3, upcasters={1: lambda d: d["x"], 2: lambda d: d})
@attrs.frozen
class Order:
    lines: list[Line]
    notes: dict[str, int]
    at: datetime.datetime
    parent: Line | None = None
    tags: tuple[str, ...] = ()


@calliope.event_type("fuzz.flag")
@attrs.frozen
class Flag:
    on: bool
    counts: dict[str, list[int]] = attrs.field(factory=dict)


Declared = Order | Flag | Line
NAMES = ["fuzz.order", "fuzz.flag", f"{Line.__module__}.{Line.__qualname__}"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=6),
    st.binary(max_size=4),
)
keys = st.none() | st.integers(-3, 3) | st.text(max_size=3)
plain = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def near_events(draw: st.DrawFn) -> dict[str, Any]:
    """Data shaped like an Order or a Flag, with any field replaced."""
    line = st.fixed_dictionaries(
        {"sku": st.text(max_size=3), "quantity": st.integers()},
        optional={"price": st.none() | st.floats()},
    )
    shapes: list[dict[str, st.SearchStrategy[Any]]] = [
        {
            "lines": st.lists(line, max_size=2),
            "notes": st.just({"a": 1}),
            "at": st.just("2026-01-01T00:00:00+00:00"),
            "parent": st.none() | line,
            "tags": st.just(["t"]),
        },
        {"on": st.booleans(), "counts": st.just({"a": [1, 2]})},
        {"sku": st.text(max_size=3), "quantity": st.integers()},
    ]
    shape = draw(st.sampled_from(shapes))
    data = {key: draw(value) for key, value in shape.items()}
    for key in draw(st.lists(st.sampled_from(sorted(data)), max_size=2)):
        data[key] = draw(plain)
    return data


CODEC = Codec().for_type(Declared)
type_names = st.sampled_from(NAMES) | st.text(max_size=8) | plain
schema_versions = st.integers(-3, 5) | st.integers(-(2**70), 2**70) | plain


@fuzz_settings(500)
@given(type_names, schema_versions, plain | near_events())
@example("fuzz.flag", "1", {"on": True})  # a str schema version: was TypeError
@example("fuzz.flag", None, {"on": True})
@example("fuzz.flag", 1.5, {"on": True})
@example(["fuzz.flag"], 1, {"on": True})  # an unhashable type name: was TypeError
@example({}, 1, {})
@example("fuzz.order", -(2**70), {"x": {}})  # a negative version: every upcaster and more
@example("fuzz.order", 0, {})
@example("fuzz.flag", True, {"on": True})  # a bool is not a schema version
@example("fuzz.order", 1, {"x": 7})
@example("fuzz.order", 3, {"lines": [], "notes": {}, "at": "not a date"})
def test_decode_gives_a_declared_value_or_event_decoding_error(
    type_name: Any, schema_version: Any, data: Any
) -> None:
    codec = CODEC  # shared: what one example leaves remembered must not matter
    for _ in range(2):  # the second time through the remembered fast path
        try:
            value = codec.decode(type_name, schema_version, data)
        except calliope.EventDecodingError:
            continue
        assert isinstance(value, Order | Flag | Line)
        assert type(schema_version) is int and schema_version >= 1


def test_decode_of_a_known_value_still_works() -> None:
    codec = Codec().for_type(Declared)
    flag = Flag(on=True, counts={"a": [1]})
    encoded = codec.encode(flag)
    assert codec.decode(encoded.type_name, encoded.schema_version, encoded.data) == flag
    assert codec.decode("fuzz.order", 1, {"x": codec.encode(order()).data}) == order()


def order() -> Order:
    return Order(
        lines=[Line("a", 1)], notes={"n": 2}, at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    )


@pytest.mark.parametrize("schema_version", [0, -1, -(2**70), True])
def test_a_schema_version_below_1_is_event_decoding_error(schema_version: int) -> None:
    codec = Codec().for_type(Declared)
    with pytest.raises(calliope.EventDecodingError, match="schema version"):
        codec.decode("fuzz.flag", schema_version, {"on": True})


# -- the CRDT codec -------------------------------------------------------------


def _sample_states() -> list[tuple[type, Any]]:
    doc = Replica("a", ORMap)
    doc.update(lambda m: m.update("text", RGA, lambda r: r.insert(0, "h")))
    doc.update(lambda m: m.update("text", RGA, lambda r: r.delete(0)))
    doc.update(lambda m: m.update("tags", ORSet, lambda s: s.add("x")))
    samples: list[tuple[type, Any]] = [(ORMap, doc.state)]
    for crdt_type in BUILTIN_CRDTS:
        samples.append((crdt_type, crdt_type()))
    return samples


SAMPLES = _sample_states()
CRDT_CODEC = CRDTCodec()
ENCODED = [(t, CRDT_CODEC.encode_state(s)) for t, s in SAMPLES]


@st.composite
def replaced(draw: st.DrawFn, data: Any, depth: int = 0) -> Any:
    """``data`` with one of its parts, at any depth, replaced by junk."""
    if depth < 6 and draw(st.integers(0, 3)):
        if isinstance(data, dict) and data:
            key = draw(st.sampled_from(sorted(data)))
            return {**data, key: draw(replaced(data[key], depth + 1))}
        if isinstance(data, list) and data:
            at = draw(st.integers(0, len(data) - 1))
            return [*data[:at], draw(replaced(data[at], depth + 1)), *data[at + 1 :]]
    return draw(plain)


@fuzz_settings(400)
@given(st.sampled_from(ENCODED).flatmap(lambda e: st.tuples(st.just(e[0]), replaced(e[1]))))
@example(
    (ORMap, {"entries": [{"key": [1], "crdt": "ORSet", "state": {}, "log": [], "settled": 1}]})
)
@example((RGA, {"elements": [[[1], "x", None]]}))
def test_decode_state_gives_a_state_or_crdt_codec_error(case: tuple[type, Any]) -> None:
    crdt_type, damaged = case
    try:
        state: object = CRDT_CODEC.decode_state(damaged, crdt_type)
    except calliope.CRDTCodecError:
        return
    assert isinstance(state, crdt_type)


WHEN = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
OPS: list[tuple[type, Any]] = [
    (GCounter, GCounter().increment(2)),
    (PNCounter, PNCounter().decrement(1)),
    (ORSet, ORSet().add("x")),
    (LWWRegister, LWWRegister().set("v", WHEN)),
    (RGA, RGA().insert(0, "h")),
    (ORMap, ORMap().update("k", ORSet, lambda s: s.add(1))),
    (ORMap, ORMap().remove("k")),
]
ENCODED_OPS = [
    (t, CRDT_CODEC.encode_tagged(Tagged(replica_id="a", version={"a": 1}, op=op))) for t, op in OPS
]


@fuzz_settings(400)
@given(st.sampled_from(ENCODED_OPS).flatmap(lambda e: st.tuples(st.just(e[0]), replaced(e[1]))))
@example(
    (
        ORMap,
        {
            "replica_id": "a",
            "version": {"a": 1},
            "op": {"type": "Update", "key": 1, "crdt": ["x"], "op": {}},
        },
    )
)
def test_decode_tagged_and_op_give_an_op_or_crdt_codec_error(case: tuple[type, Any]) -> None:
    crdt_type, damaged = case
    try:
        tagged = CRDT_CODEC.decode_tagged(damaged, crdt_type)
    except calliope.CRDTCodecError:
        pass
    else:
        assert isinstance(tagged.op, crdt_type.op_types)  # type: ignore[attr-defined]
    op = damaged.get("op") if isinstance(damaged, dict) else damaged
    with contextlib.suppress(calliope.CRDTCodecError):
        CRDT_CODEC.decode_op(op, crdt_type)
