"""GCounter: its documented two-replica example, and its errors."""

from __future__ import annotations

import pytest

from calliope import GCounter, InvalidOperationError
from calliope.testing import Replica
from tests.unit.crdt_support import run_docstring_example


def test_docstring_example() -> None:
    run_docstring_example(GCounter)


def test_empty_counter_is_zero() -> None:
    assert GCounter().value == 0


def test_concurrent_increments_all_count() -> None:
    a, b = Replica("a", GCounter), Replica("b", GCounter)
    from_a = a.update(lambda c: c.increment(2))
    from_b = b.update(lambda c: c.increment(3))
    a.receive(*from_b)
    b.receive(*from_a)
    assert a.value == b.value == 5
    assert a.state == b.state


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_increment_refuses_what_is_not_a_non_negative_int(bad: object) -> None:
    with pytest.raises(InvalidOperationError, match="non-negative int"):
        GCounter().increment(bad)  # type: ignore[arg-type]


def test_a_negative_increment_points_to_the_pncounter() -> None:
    with pytest.raises(InvalidOperationError, match="PNCounter"):
        GCounter().increment(-3)
