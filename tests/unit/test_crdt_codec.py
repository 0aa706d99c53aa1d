"""The CRDT codec: plain data out, the same values back, clear errors."""

from __future__ import annotations

import datetime
import json
from typing import Any, ClassVar

import attrs
import cattrs
import pytest

from calliope import (
    RGA,
    CRDTCodecError,
    GCounter,
    InvalidArgumentError,
    LWWRegister,
    ORMap,
    ORSet,
    Tagged,
    VersionVector,
)
from calliope.adapters.crdt_codec import CRDTCodec, configure_crdt_hooks, is_plain
from calliope.core.crdt import Add, Increment, Insert
from calliope.testing import Replica


def test_states_become_json_and_come_back() -> None:
    codec = CRDTCodec()
    doc = Replica("a", ORMap)
    doc.update(lambda m: m.update("text", RGA, lambda r: r.insert(0, "h")))
    doc.update(lambda m: m.update("text", RGA, lambda r: r.insert(1, "i")))
    doc.update(lambda m: m.update("text", RGA, lambda r: r.delete(0)))
    doc.update(lambda m: m.update("tags", ORSet, lambda s: s.add("x")))
    plain = codec.encode_state(doc.state)
    assert is_plain(plain)
    assert codec.decode_state(json.loads(json.dumps(plain)), ORMap) == doc.state


def test_tagged_operations_round_trip() -> None:
    codec = CRDTCodec()
    tagged = Tagged(replica_id="a", version={"a": 2, "b": 1}, op=Insert(after=None, value="x"))
    plain = codec.encode_tagged(tagged)
    assert plain == {
        "replica_id": "a",
        "version": {"a": 2, "b": 1},
        "op": {"type": "Insert", "after": None, "value": "x"},
    }
    assert codec.decode_tagged(plain, RGA) == tagged


def test_datetime_timestamps_round_trip() -> None:
    codec = CRDTCodec()
    when = datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.UTC)
    register = LWWRegister().effect(
        Tagged(replica_id="a", version={"a": 1}, op=LWWRegister().set("v", when))
    )
    plain = codec.encode_state(register)
    assert plain["timestamp"] == "2026-01-01T12:00:00+00:00"
    assert codec.decode_state(plain, LWWRegister) == register


def test_an_operation_of_another_type_is_refused() -> None:
    codec = CRDTCodec()
    with pytest.raises(CRDTCodecError, match="not an operation of GCounter"):
        codec.decode_op(codec.encode_op(Add("x")), GCounter)


def test_an_unknown_nested_type_is_refused_with_what_to_do() -> None:
    data = {"entries": [{"key": "k", "crdt": "Mystery", "state": {}, "log": [], "settled": False}]}
    with pytest.raises(CRDTCodecError, match=r"CRDTCodec\(types=\[\.\.\.\]\)"):
        CRDTCodec().decode_state(data, ORMap)


def test_data_of_the_wrong_shape_is_a_codec_error() -> None:
    with pytest.raises(CRDTCodecError, match="not a GCounter state"):
        CRDTCodec().decode_state({"counts": "nonsense"}, GCounter)
    with pytest.raises(CRDTCodecError, match="no 'type'"):
        CRDTCodec().decode_op({"n": 1}, GCounter)


@attrs.frozen(kw_only=True)
class Counter:
    op_types: ClassVar[tuple[type, ...]] = (Increment,)
    value: int = 0

    def effect(self, tagged: Tagged[Any], /) -> Counter:
        return Counter(value=self.value + tagged.op.n)

    def compact(self, stable: VersionVector, /) -> Counter:
        return self


def test_two_types_with_one_name_are_refused() -> None:
    other = type("GCounter", (Counter,), {})
    with pytest.raises(InvalidArgumentError, match="crdt_name"):
        CRDTCodec([other])


def test_user_types_nest_in_an_ormap_when_the_codec_knows_them() -> None:
    state = ORMap().effect(
        Tagged(
            replica_id="a",
            version={"a": 1},
            op=ORMap().update("k", Counter, lambda c: Increment(3)),
        )
    )
    with pytest.raises(CRDTCodecError, match="'Counter'"):
        CRDTCodec().decode_state(CRDTCodec([Counter]).encode_state(state), ORMap)
    codec = CRDTCodec([Counter])
    assert codec.decode_state(codec.encode_state(state), ORMap) == state


def test_hooks_install_on_a_converter_of_your_own() -> None:
    converter = cattrs.Converter()
    codec = configure_crdt_hooks(converter)
    assert codec.converter is converter
    assert converter.unstructure(VersionVector({"a": 1})) == {"a": 1}
    assert codec.decode_state(codec.encode_state(GCounter()), GCounter) == GCounter()
