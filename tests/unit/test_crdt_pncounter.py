"""PNCounter: its documented two-replica example, and its errors."""

from __future__ import annotations

import pytest

from calliope import InvalidOperationError, PNCounter
from calliope.testing import Replica
from tests.unit.crdt_support import run_docstring_example


def test_docstring_example() -> None:
    run_docstring_example(PNCounter)


def test_it_may_go_negative() -> None:
    replica = Replica("a", PNCounter)
    replica.update(lambda c: (c.increment(1), c.decrement(4)))
    assert replica.value == -3


def test_a_negative_decrement_says_to_increment() -> None:
    with pytest.raises(InvalidOperationError, match=r"use \.increment\(2\)"):
        PNCounter().decrement(-2)
