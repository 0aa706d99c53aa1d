"""GSet: its documented two-replica example, and its errors."""

from __future__ import annotations

import pytest

from calliope import GSet, InvalidOperationError
from calliope.testing import Replica
from tests.unit.crdt_support import run_docstring_example


def test_docstring_example() -> None:
    run_docstring_example(GSet)


def test_adding_twice_changes_nothing() -> None:
    replica = Replica("a", GSet)
    replica.update(lambda s: s.add("x"))
    before = replica.state
    replica.update(lambda s: s.add("x"))
    assert replica.state == before
    assert "x" in replica.state and len(replica.state) == 1


def test_unhashable_elements_are_refused() -> None:
    with pytest.raises(InvalidOperationError, match="hashable"):
        GSet().add(["x"])
