"""LWWRegister: its documented two-replica example, ties, timestamps."""

from __future__ import annotations

import datetime

import pytest

from calliope import InvalidOperationError, LWWRegister
from calliope.testing import Replica
from tests.unit.crdt_support import run_docstring_example


def test_docstring_example() -> None:
    run_docstring_example(LWWRegister)


def test_equal_timestamps_are_broken_by_replica_id() -> None:
    a, b = Replica("a", LWWRegister), Replica("b", LWWRegister)
    from_a = a.update(lambda r: r.set("from a", 7))
    from_b = b.update(lambda r: r.set("from b", 7))
    a.receive(*from_b)
    b.receive(*from_a)
    assert a.value == b.value == "from b"


def test_a_later_write_of_the_same_replica_with_the_same_timestamp_wins() -> None:
    replica = Replica("a", LWWRegister)
    replica.update(lambda r: r.set("first", 7))
    replica.update(lambda r: r.set("second", 7))
    assert replica.value == "second"


def test_aware_datetimes_are_timestamps() -> None:
    replica = Replica("a", LWWRegister)
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    replica.update(lambda r: r.set("x", now))
    assert replica.state.timestamp == now and replica.state.writer == "a"


@pytest.mark.parametrize(
    "bad",
    [datetime.datetime(2026, 1, 1), "noon", None, True, float("nan")],
)
def test_unusable_timestamps_are_refused(bad: object) -> None:
    with pytest.raises(InvalidOperationError, match=r"timestamp|finite|timezone"):
        LWWRegister().set("x", bad)  # type: ignore[arg-type]
