"""Flag: its documented two-replica example."""

from __future__ import annotations

from calliope import Flag, VersionVector
from calliope.testing import Replica
from tests.unit.crdt_support import run_docstring_example


def test_docstring_example() -> None:
    run_docstring_example(Flag)


def test_a_disable_that_saw_the_enable_turns_it_off() -> None:
    a, b = Replica("a", Flag), Replica("b", Flag)
    b.receive(*a.update(lambda f: f.enable()))
    a.receive(*b.update(lambda f: f.disable()))
    assert a.value is False and b.value is False


def test_compaction_keeps_the_flag_on_without_its_dots() -> None:
    replica = Replica("a", Flag)
    replica.update(lambda f: f.enable())
    replica.compact(VersionVector({"a": 1}))
    assert replica.state == Flag(stable=True)
    assert replica.value is True
    replica.update(lambda f: f.disable())
    assert replica.value is False
