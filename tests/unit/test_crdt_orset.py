"""ORSet: its documented example, compaction, and O(live) state after long histories."""

from __future__ import annotations

from typing import Any

import msgpack

from calliope import ORSet, Tagged, VersionVector, stable_vector
from calliope.adapters.crdt_codec import CRDTCodec
from calliope.testing import Replica, Simulation, call
from calliope.testing.crdt_specs import BUILTIN_SPECS
from tests.unit.crdt_support import run_docstring_example


def test_docstring_example() -> None:
    run_docstring_example(ORSet)


def test_remove_of_an_absent_element_changes_nothing() -> None:
    replica = Replica("a", ORSet)
    replica.update(lambda s: s.remove("ghost"))
    assert replica.state == ORSet()


def test_an_add_keeps_one_dot_per_concurrent_writer() -> None:
    a, b = Replica("a", ORSet), Replica("b", ORSet)
    from_a = [op for _ in range(5) for op in a.update(lambda s: s.add("x"))]
    from_b = b.update(lambda s: s.add("x"))
    a.receive(*from_b)
    b.receive(*from_a)
    assert a.state == b.state
    # Each add superseded the earlier ones of its writer; b's was concurrent.
    assert a.state.dots["x"] == frozenset({("a", 5), ("b", 1)})


def test_compaction_of_a_partly_stable_element_keeps_its_concurrent_dots() -> None:
    # x is added at r0 and, concurrently, at r1. r0's add reaches everyone;
    # r1's only reaches r0, which then compacts: the r0 dot is stable, the r1
    # dot is not. r2, which only saw r0's add, removes x: r1's add survives.
    simulation = Simulation(ORSet, replicas=3, model=BUILTIN_SPECS[ORSet].model)
    simulation.update(0, call("add", "x"))
    simulation.update(1, call("add", "x"))
    simulation.deliver(1, 0)
    simulation.deliver(2, 0)
    simulation.deliver(0, 1)
    simulation.compact(0)
    assert simulation.states[0].stable and simulation.states[0].dots
    simulation.update(2, call("remove", "x"))
    for replica in range(3):
        simulation.drain(replica, range(len(simulation.network)))
    simulation.check_convergence()
    assert simulation.states[0].value == frozenset({"x"})


def test_state_stays_proportional_to_live_elements_after_10000_cycles() -> None:
    replicas = [Replica(name, ORSet) for name in ("a", "b", "c")]
    codec = CRDTCodec()

    def broadcast(sent: list[Tagged[Any]]) -> None:
        for replica in replicas:
            replica.receive(*sent)

    def cycle(round_number: int) -> None:
        writer, remover = replicas[round_number % 3], replicas[(round_number + 1) % 3]
        element = f"item-{round_number % 7}"
        broadcast(writer.update(lambda s: s.add(element)))
        broadcast(writer.update(lambda s: s.add(f"keep-{round_number % 3}")))
        broadcast(remover.update(lambda s: s.remove(element)))

    def encoded_size() -> int:
        stable = stable_vector(replica.delivered for replica in replicas)
        for replica in replicas:
            replica.compact(stable)
            assert replica.state == replicas[0].state
        return len(msgpack.packb(codec.encode_state(replicas[0].state)))

    for round_number in range(30):
        cycle(round_number)
    early = encoded_size()
    for round_number in range(30, 10_000):
        cycle(round_number)
    late = encoded_size()
    assert replicas[0].value == frozenset({"keep-0", "keep-1", "keep-2"})
    assert len(replicas[0].state.dots) == 0 and len(replicas[0].state.stable) == 3
    # 30,000 adds and removes later, the stored state has not grown at all.
    assert late == early, (early, late)


def test_without_compaction_only_dots_of_live_elements_remain() -> None:
    replica = Replica("a", ORSet)
    for _ in range(1000):
        replica.update(lambda s: s.add("x"))
        replica.update(lambda s: s.remove("x"))
    assert replica.state == ORSet()
    assert replica.delivered == VersionVector({"a": 2000})
