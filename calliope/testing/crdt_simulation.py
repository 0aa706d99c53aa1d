"""A few replicas of one CRDT, a network, and the laws checked as they run.

:class:`Simulation` is the engine behind :func:`calliope.testing.check_crdt`
and :func:`calliope.testing.crdt_state_machine`. Each replica has a state and
a :class:`~calliope.core.CausalBuffer`; an update prepares operations at one
replica, tags them with its delivered vector and delivers them there at once;
the network keeps every tagged operation, and any replica may receive any of
them at any time (the buffer holds back what arrives early). The simulation
knows everything, so it can compute the exact causally stable point of each
replica (see :mod:`calliope.core.crdt.stability`).

A broken law raises :class:`CRDTLawViolation` with the whole story: the
replicas, every step (updates with the operations they produced, deliveries,
compactions), the order in which each replica delivered the operations, and
the states that disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, NoReturn, TypeVar

import attrs

from calliope.adapters.crdt_codec import CRDTCodec, is_plain
from calliope.core.causal_delivery import CausalBuffer, receive
from calliope.core.crdt.protocol import Tagged, as_operations, covers, crdt_name, tag_operations
from calliope.core.version_vector import VersionVector, stable_vector
from calliope.errors import InvalidOperationError

__all__ = ["CRDTLawViolation", "Call", "Model", "Prepare", "Simulation", "call"]

C = TypeVar("C")

Prepare = Callable[[Any], object]
"""A prepare step: from a replica's current state to operation(s)."""

Model = Callable[[Sequence[Tagged[Any]]], object]
"""A specification: the expected value after delivering these operations (in causal order)."""

MAX_PAIRS = 12


class CRDTLawViolation(AssertionError):
    """A CRDT broke one of the laws; the message holds a replayable story."""


def _show(value: object) -> str:
    if isinstance(value, type):
        return value.__name__
    return repr(value)


@attrs.frozen
class Call:
    """A prepare step that calls ``state.<method>(*args, **kwargs)``, readable in reports.

    Arguments that are themselves prepare steps (for ``ORMap.update``) work
    as they are: ``call("update", "k", GCounter, call("increment", 2))``.
    """

    method: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __call__(self, state: Any) -> object:
        return getattr(state, self.method)(*self.args, **dict(self.kwargs))

    def __repr__(self) -> str:
        shown = [_show(arg) for arg in self.args]
        shown += [f"{name}={_show(value)}" for name, value in self.kwargs]
        return f"{self.method}({', '.join(shown)})"


def call(method: str, *args: Any, **kwargs: Any) -> Call:
    """A readable prepare step: ``call("add", "x")`` prepares ``state.add("x")``."""
    return Call(method, args, tuple(sorted(kwargs.items())))


class Simulation(Generic[C]):
    """Replicas of ``crdt_type`` exchanging operations; each step checks what it can."""

    def __init__(
        self,
        crdt_type: type[C],
        *,
        replicas: int = 3,
        codec: CRDTCodec | None = None,
        model: Model | None = None,
    ) -> None:
        if replicas < 1:
            raise ValueError("a simulation needs at least one replica")
        self.crdt_type = crdt_type
        self.codec = codec if codec is not None else CRDTCodec([crdt_type])
        self.model = model
        self.ids = [f"r{index}" for index in range(replicas)]
        try:
            empty = crdt_type()
        except Exception as error:
            raise CRDTLawViolation(
                f"{crdt_type.__qualname__}() failed ({error!r}): a CRDT type must build its "
                f"empty state with no arguments"
            ) from error
        self.states: list[Any] = [empty for _ in self.ids]
        self.buffers: list[CausalBuffer[Tagged[Any]]] = [CausalBuffer() for _ in self.ids]
        self.orders: list[list[int]] = [[] for _ in self.ids]
        self.compacted = [False for _ in self.ids]
        self.network: list[Tagged[Any]] = []
        self.numbers: dict[tuple[str, int], int] = {}
        self.story: list[str] = []

    # -- steps -----------------------------------------------------------------

    def update(self, replica: int, prepare: Prepare) -> None:
        """Prepare at ``replica``; tag, record and deliver the operations there."""
        name = self.ids[replica]
        try:
            prepared = prepare(self.states[replica])
            operations = as_operations(prepared)
        except InvalidOperationError as error:
            self.story.append(f"{name}: {prepare!r} refused ({error}); skipped")
            return
        except Exception as error:
            self._fail("prepare raised", f"{name}: {prepare!r}", error)
        tagged = tag_operations(name, self.buffers[replica].delivered, operations)
        shown = []
        for operation in tagged:
            self.network.append(operation)
            number = len(self.network)
            self.numbers[operation.dot] = number
            shown.append(f"#{number} {operation.op!r} at {operation.version!r}")
            self._round_trip_op(operation)
        self.story.append(f"{name}: {prepare!r} -> {'; '.join(shown) or 'no operation'}")
        for operation in tagged:
            self._receive(replica, operation, local=True)
        self._round_trip_state(replica)
        self._check_model(replica)

    def deliver(self, replica: int, message: int) -> None:
        """``replica`` receives network operation number ``message`` (modulo the count)."""
        if not self.network:
            return
        operation = self.network[message % len(self.network)]
        number = self.numbers[operation.dot]
        released = self._receive(replica, operation)
        shown = " ".join(f"#{n}" for n in released) if released else "nothing (held back)"
        if not covers(self.buffers[replica].delivered, operation.dot) or released:
            self.story.append(f"{self.ids[replica]}: receives #{number}, delivers {shown}")
        self._check_model(replica)

    def compact(self, replica: int, *, quiet: bool = False) -> None:
        """Compact ``replica`` at its causally stable point; the value must not change.

        ``quiet``: tell the story only if the state changed.
        """
        stable = self.stable_point(replica)
        state = self.states[replica]
        try:
            compacted = state.compact(stable)
        except Exception as error:
            self._fail("compact raised", f"{self.ids[replica]}: compact({stable!r})", error)
        if not quiet or compacted != state:
            self.story.append(f"{self.ids[replica]}: compact at stable {stable!r}")
        before, after = self._value(state), self._value(compacted)
        if before != after:
            self._fail(
                "compaction changed the value",
                f"{self.ids[replica]} compacted at {stable!r}:\n"
                f"    before: {state!r}  value={before!r}\n"
                f"    after:  {compacted!r}  value={after!r}",
            )
        if compacted != state:
            self.states[replica] = compacted
            self.compacted[replica] = True
        self._round_trip_state(replica)

    def drain(self, replica: int, order: Sequence[int]) -> None:
        """``replica`` receives every network operation, in ``order`` (indexes)."""
        for index in order:
            self._receive(replica, self.network[index])
        self.story.append(
            f"{self.ids[replica]}: receives everything, in the order "
            + " ".join(f"#{index + 1}" for index in order)
        )
        self._check_model(replica)

    # -- laws --------------------------------------------------------------------

    def check_commutation(self, replica: int) -> None:
        """Concurrent operations both deliverable at ``replica`` commute there."""
        delivered = self.buffers[replica].delivered
        ready = [op for op in self.network if _deliverable(delivered, op)]
        pairs = 0
        state = self.states[replica]
        for position, first in enumerate(ready):
            for second in ready[position + 1 :]:
                if pairs >= MAX_PAIRS:
                    return
                if not first.version.concurrent_with(second.version):
                    continue
                pairs += 1
                one = self._effect(self._effect(state, first, replica), second, replica)
                other = self._effect(self._effect(state, second, replica), first, replica)
                if one != other or self._value(one) != self._value(other):
                    a, b = self.numbers[first.dot], self.numbers[second.dot]
                    self._fail(
                        "concurrent operations do not commute",
                        f"at {self.ids[replica]}, from {state!r}:\n"
                        f"    #{a} then #{b}: {one!r}  value={self._value(one)!r}\n"
                        f"    #{b} then #{a}: {other!r}  value={self._value(other)!r}",
                    )

    def check_convergence(self) -> None:
        """Every replica delivered everything: equal values and, compacted, equal states."""
        for replica, order in enumerate(self.orders):
            if len(order) != len(self.network):
                raise AssertionError(
                    f"{self.ids[replica]} delivered {len(order)} of {len(self.network)} "
                    f"operations; drain every replica before checking convergence"
                )
        values = [self._value(state) for state in self.states]
        if any(value != values[0] for value in values):
            self._fail("replicas diverged", "they delivered the same operations" + self._states())
        raw = [state for state, done in zip(self.states, self.compacted, strict=True) if not done]
        if any(state != raw[0] for state in raw):
            self._fail(
                "replicas diverged",
                "their values agree but their states differ (none had compacted)" + self._states(),
            )
        for replica in range(len(self.ids)):
            self.compact(replica)
        if any(state != self.states[0] for state in self.states):
            self._fail(
                "replicas diverged",
                "compacted at the final stable point, their states differ" + self._states(),
            )

    def stable_point(self, replica: int) -> VersionVector:
        """The causally stable vector at ``replica``: delivered everywhere, and below
        every operation it has yet to deliver."""
        stable = stable_vector(buffer.delivered for buffer in self.buffers)
        delivered = self.buffers[replica].delivered
        for operation in self.network:
            if not covers(delivered, operation.dot):
                stable = stable.meet(operation.version)
        return stable

    def describe(self) -> str:
        """The story so far: replicas, steps, delivery orders, states."""
        lines = [f"{crdt_name(self.crdt_type)} on replicas {', '.join(self.ids)}", "Steps:"]
        lines += [f"  {index}. {line}" for index, line in enumerate(self.story, 1)]
        lines.append("Operations delivered, per replica, in order:")
        for name, order in zip(self.ids, self.orders, strict=True):
            lines.append(f"  {name}: {' '.join(f'#{n}' for n in order) or '(none)'}")
        return "\n".join(lines)

    # -- internals -------------------------------------------------------------------

    def _receive(self, replica: int, operation: Tagged[Any], *, local: bool = False) -> list[int]:
        buffer, released = receive(self.buffers[replica], operation)
        self.buffers[replica] = buffer
        if local and released != [operation]:
            raise AssertionError("a replica's own operation must be deliverable at once")
        numbers = []
        for item in released:
            self.states[replica] = self._effect(self.states[replica], item, replica)
            number = self.numbers[item.dot]
            self.orders[replica].append(number)
            numbers.append(number)
        return numbers

    def _effect(self, state: Any, operation: Tagged[Any], replica: int) -> Any:
        try:
            return state.effect(operation)
        except Exception as error:
            self._fail(
                "effect raised",
                f"{self.ids[replica]}: effect of #{self.numbers[operation.dot]} on {state!r}",
                error,
            )

    def _value(self, state: Any) -> object:
        try:
            return state.value
        except Exception as error:
            self._fail("value raised", f"reading .value of {state!r}", error)

    def _check_model(self, replica: int) -> None:
        if self.model is None:
            return
        delivered = [self.network[number - 1] for number in self.orders[replica]]
        expected = self.model(delivered)
        actual = self._value(self.states[replica])
        if actual != expected:
            self._fail(
                "the value differs from the model",
                f"{self.ids[replica]} delivered "
                f"{' '.join(f'#{n}' for n in self.orders[replica]) or 'nothing'}:\n"
                f"    value: {actual!r}\n    model: {expected!r}\n"
                f"    state: {self.states[replica]!r}",
            )

    def _round_trip_op(self, operation: Tagged[Any]) -> None:
        try:
            plain = self.codec.encode_tagged(operation)
            back = self.codec.decode_tagged(plain, self.crdt_type)
        except Exception as error:
            self._fail("an operation does not round-trip", f"{operation!r}", error)
        if not is_plain(plain) or back != operation:
            self._fail(
                "an operation does not round-trip",
                f"{operation!r}\n    as plain data: {plain!r}\n    decoded: {back!r}",
            )

    def _round_trip_state(self, replica: int) -> None:
        state = self.states[replica]
        try:
            plain = self.codec.encode_state(state)
            back = self.codec.decode_state(plain, self.crdt_type)
        except Exception as error:
            self._fail("a state does not round-trip", f"{self.ids[replica]}: {state!r}", error)
        if not is_plain(plain) or back != state:
            self._fail(
                "a state does not round-trip",
                f"{self.ids[replica]}: {state!r}\n    as plain data: {plain!r}\n"
                f"    decoded: {back!r}",
            )

    def _states(self) -> str:
        return "".join(
            f"\n    {name}: {state!r}  value={self._value(state)!r}"
            for name, state in zip(self.ids, self.states, strict=True)
        )

    def _fail(self, law: str, detail: str, cause: BaseException | None = None) -> NoReturn:
        """Raise CRDTLawViolation: the law, the detail, what was raised (if
        anything: also chained as the cause), then the story."""
        raised = "" if cause is None else f"\n  raised {cause!r}"
        message = f"CRDT law broken: {law}\n  {detail}{raised}\n\n{self.describe()}"
        raise CRDTLawViolation(message) from cause


def _deliverable(delivered: VersionVector, operation: Tagged[Any]) -> bool:
    replica, counter = operation.dot
    if delivered[replica] != counter - 1:
        return False
    return all(
        count <= delivered[other] for other, count in operation.version.items() if other != replica
    )
