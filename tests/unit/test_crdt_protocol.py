"""The protocol's helpers: normalising prepared operations, tagging, stability."""

from __future__ import annotations

from typing import Any

import pytest

import calliope
import calliope.core
from calliope import GCounter, InvalidArgumentError, InvalidOperationError, VersionVector
from calliope.core.crdt import (
    BUILTIN_CRDTS,
    Increment,
    as_operations,
    is_stable,
    stable_point,
    tag_operations,
)


def test_every_crdt_is_exported_and_starts_empty() -> None:
    for crdt_type in BUILTIN_CRDTS:
        assert getattr(calliope, crdt_type.__name__) is crdt_type
        assert getattr(calliope.core, crdt_type.__name__) is crdt_type
        assert crdt_type.__name__ in calliope.__all__
        assert isinstance(crdt_type(), calliope.CRDT)
    assert {"Tagged", "CRDT", "InvalidOperationError", "CRDTCodecError"} <= set(calliope.__all__)


def test_as_operations_takes_one_or_several() -> None:
    one = Increment(1)
    assert as_operations(one) == (one,)
    assert as_operations([one, one]) == (one, one)
    assert as_operations(()) == ()
    with pytest.raises(InvalidOperationError, match="returned None"):
        as_operations(None)
    with pytest.raises(InvalidOperationError, match="contains None"):
        as_operations((one, None))


def test_tagging_counts_each_operation() -> None:
    delivered = VersionVector({"a": 1, "b": 4})
    first, second = tag_operations("a", delivered, [Increment(1), Increment(2)])
    assert first.version == VersionVector({"a": 2, "b": 4}) and first.dot == ("a", 2)
    assert second.version == VersionVector({"a": 3, "b": 4}) and second.dot == ("a", 3)
    state = GCounter()
    for tagged in (first, second):
        state = state.effect(tagged)
    assert state.value == 3


def test_stable_point_is_the_meet_of_usable_reports() -> None:
    mine = VersionVector({"a": 3, "b": 2, "c": 1})
    reports = {"b": VersionVector({"a": 2, "b": 2}), "c": VersionVector({"a": 3, "c": 1})}
    assert stable_point(mine, reports) == VersionVector({"a": 2})
    assert is_stable(("a", 2), VersionVector({"a": 2}))
    assert not is_stable(("a", 3), VersionVector({"a": 2}))


def test_a_report_ahead_of_what_was_delivered_here_is_refused() -> None:
    mine = VersionVector({"a": 3, "b": 1})
    with pytest.raises(InvalidArgumentError, match="previous report"):
        stable_point(mine, {"b": VersionVector({"a": 3, "b": 2})})


@pytest.mark.parametrize(
    ("prepare", "what"),
    [
        (lambda: calliope.GSet().add([1]), "set elements"),
        (lambda: calliope.ORSet().add({"a": 1}), "set elements"),
        (
            lambda: calliope.ORMap().update([1], calliope.GCounter, lambda c: c.increment()),
            "ORMap keys",
        ),
    ],
)
def test_unhashable_members_are_a_clear_error(prepare: Any, what: str) -> None:
    with pytest.raises(calliope.InvalidOperationError, match=f"{what} must be hashable"):
        prepare()
