"""The harness fails plausible broken CRDTs, with a readable counterexample.

Each broken CRDT here is a mistake one could make: it passes a casual unit
test with one replica, and the harness must reject it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from calliope.core.crdt import Tagged
from calliope.core.version_vector import VersionVector
from calliope.testing import CRDTLawViolation, call, check_crdt, crdt_state_machine

# Enough examples to find each bug reliably, whatever the active profile.
FIND = settings(
    max_examples=300,
    deadline=None,
    database=None,
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)


@attrs.frozen
class Write:
    value: str


@attrs.frozen(kw_only=True)
class LastDeliveredRegister:
    """Broken: the last *delivered* write wins, so replicas that deliver two
    concurrent writes in different orders disagree forever."""

    op_types: ClassVar[tuple[type, ...]] = (Write,)
    value: str | None = None

    def set(self, value: str) -> Write:
        return Write(value)

    def effect(self, tagged: Tagged[Any], /) -> LastDeliveredRegister:
        return LastDeliveredRegister(value=tagged.op.value)

    def compact(self, stable: VersionVector, /) -> LastDeliveredRegister:
        return self


@attrs.frozen
class SetTotal:
    total: int


@attrs.frozen(kw_only=True)
class MaxCounter:
    """Broken: increment ships the new total it computed locally, and effect
    keeps the largest total seen. Concurrent increments from the same total
    collapse into one. Every replica agrees (the max is a fine CRDT), but on
    the wrong number: only a model catches it."""

    op_types: ClassVar[tuple[type, ...]] = (SetTotal,)
    value: int = 0

    def increment(self, n: int = 1) -> SetTotal:
        return SetTotal(self.value + n)

    def effect(self, tagged: Tagged[Any], /) -> MaxCounter:
        return MaxCounter(value=max(self.value, tagged.op.total))

    def compact(self, stable: VersionVector, /) -> MaxCounter:
        return self


def counter_model(history: Sequence[Tagged[Any]]) -> int:
    # What the user meant: every increment counts. The ops carry totals, so the
    # intended amount is recovered from the call the strategy made: n = 1 always.
    return len(history)


@attrs.frozen
class Put:
    element: str


@attrs.frozen
class Drop:
    element: str


@attrs.frozen(kw_only=True)
class RemoveWinsSet:
    """Broken: remove deletes every dot of the element, including adds it had
    not seen, so a concurrent add is lost on some replicas but not others."""

    op_types: ClassVar[tuple[type, ...]] = (Put, Drop)
    dots: frozenset[tuple[str, tuple[str, int]]] = frozenset()

    @property
    def value(self) -> frozenset[str]:
        return frozenset(element for element, _ in self.dots)

    def add(self, element: str) -> Put:
        return Put(element)

    def remove(self, element: str) -> Drop:
        return Drop(element)

    def effect(self, tagged: Tagged[Any], /) -> RemoveWinsSet:
        op = tagged.op
        if isinstance(op, Put):
            return RemoveWinsSet(dots=self.dots | {(op.element, tagged.dot)})
        return RemoveWinsSet(dots=frozenset(d for d in self.dots if d[0] != op.element))

    def compact(self, stable: VersionVector, /) -> RemoveWinsSet:
        return self


def test_a_register_where_the_last_delivered_write_wins_is_rejected() -> None:
    with pytest.raises(CRDTLawViolation) as failure:
        check_crdt(
            LastDeliveredRegister,
            st.builds(call, st.just("set"), st.sampled_from("xy")),
            hypothesis_settings=FIND,
        )
    message = str(failure.value)
    assert "replicas diverged" in message or "do not commute" in message
    # The counterexample names the replicas, the operations and the delivery orders.
    assert "r0" in message and "r1" in message
    assert "set(" in message and "Write(value=" in message
    assert "Operations delivered, per replica, in order:" in message


def test_a_counter_that_drops_concurrent_increments_is_rejected_by_its_model() -> None:
    increments = st.just(call("increment"))
    with pytest.raises(CRDTLawViolation) as failure:
        check_crdt(MaxCounter, increments, model=counter_model, hypothesis_settings=FIND)
    assert "the value differs from the model" in str(failure.value)


def test_a_set_where_remove_wins_by_accident_is_rejected() -> None:
    operations = st.builds(call, st.sampled_from(["add", "remove"]), st.sampled_from("ab"))
    with pytest.raises(CRDTLawViolation) as failure:
        check_crdt(RemoveWinsSet, operations, hypothesis_settings=FIND)
    message = str(failure.value)
    assert "replicas diverged" in message or "do not commute" in message


def test_the_counterexample_is_minimal() -> None:
    # Two concurrent writes and one delivery order each: nothing more is needed.
    with pytest.raises(CRDTLawViolation) as failure:
        check_crdt(
            LastDeliveredRegister,
            st.builds(call, st.just("set"), st.sampled_from("xy")),
            hypothesis_settings=FIND,
        )
    message = str(failure.value)
    assert "concurrent operations do not commute" in message
    assert message.count("-> #") == 2, message


def test_the_state_machine_rejects_a_broken_crdt_too() -> None:
    operations = st.builds(call, st.sampled_from(["add", "remove"]), st.sampled_from("ab"))
    machine = crdt_state_machine(RemoveWinsSet, operations)
    with pytest.raises(CRDTLawViolation):
        run_state_machine_as_test(machine, settings=settings(FIND, stateful_step_count=20))


@attrs.frozen(kw_only=True)
class ForgetfulCounter:
    """Broken: compaction "forgets" the increments that are stable, as if stable
    meant "no longer needed" rather than "no longer concurrent with anything"."""

    op_types: ClassVar[tuple[type, ...]] = (SetTotal,)
    increments: frozenset[tuple[str, int]] = frozenset()

    @property
    def value(self) -> int:
        return len(self.increments)

    def increment(self) -> SetTotal:
        return SetTotal(1)

    def effect(self, tagged: Tagged[Any], /) -> ForgetfulCounter:
        return ForgetfulCounter(increments=self.increments | {tagged.dot})

    def compact(self, stable: VersionVector, /) -> ForgetfulCounter:
        return ForgetfulCounter(
            increments=frozenset(dot for dot in self.increments if dot[1] > stable[dot[0]])
        )


def test_a_compaction_that_changes_the_value_is_rejected() -> None:
    with pytest.raises(CRDTLawViolation) as failure:
        check_crdt(ForgetfulCounter, st.just(call("increment")), hypothesis_settings=FIND)
    assert "compaction changed the value" in str(failure.value)


@attrs.frozen
class PutPair:
    pair: Any


@attrs.frozen(kw_only=True)
class PairSet:
    """Broken for storage: elements are tuples, which plain data turns into lists."""

    op_types: ClassVar[tuple[type, ...]] = (PutPair,)
    value: frozenset[Any] = frozenset()

    def add(self, first: int, second: int) -> PutPair:
        return PutPair((first, second))

    def effect(self, tagged: Tagged[Any], /) -> PairSet:
        return PairSet(value=self.value | {tagged.op.pair})

    def compact(self, stable: VersionVector, /) -> PairSet:
        return self


def test_operations_that_do_not_survive_plain_data_are_rejected() -> None:
    pairs = st.builds(call, st.just("add"), st.integers(0, 3), st.integers(0, 3))
    with pytest.raises(CRDTLawViolation) as failure:
        check_crdt(PairSet, pairs, hypothesis_settings=FIND)
    message = str(failure.value)
    assert "an operation does not round-trip" in message
    assert "'pair': [0, 0]" in message  # the plain data shows what went wrong


@attrs.frozen
class PutTwo:
    first: int
    second: int


@attrs.frozen(kw_only=True)
class PairStateSet:
    """Broken for storage: its operations are plain, but the state keeps a
    tuple of tuples under an ``Any`` annotation, which comes back as lists."""

    op_types: ClassVar[tuple[type, ...]] = (PutTwo,)
    pairs: Any = ()

    @property
    def value(self) -> frozenset[tuple[int, int]]:
        return frozenset(self.pairs)

    def add(self, first: int, second: int) -> PutTwo:
        return PutTwo(first, second)

    def effect(self, tagged: Tagged[Any], /) -> PairStateSet:
        pair = (tagged.op.first, tagged.op.second)
        return PairStateSet(pairs=tuple(sorted({*self.pairs, pair})))

    def compact(self, stable: VersionVector, /) -> PairStateSet:
        return self


def test_states_that_do_not_survive_plain_data_are_rejected() -> None:
    pairs = st.builds(call, st.just("add"), st.integers(0, 3), st.integers(0, 3))
    with pytest.raises(CRDTLawViolation) as failure:
        check_crdt(PairStateSet, pairs, hypothesis_settings=FIND)
    assert "a state does not round-trip" in str(failure.value)
