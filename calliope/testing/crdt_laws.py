"""Check a CRDT with the laws Calliope's own CRDTs are held to.

``check_crdt(MyCRDT, operations)`` runs Hypothesis over random histories of a
few replicas: updates prepared at random replicas from ``operations`` (a
strategy of prepare steps, such as ``st.builds(call, st.just("add"), ...)``),
random deliveries through causal buffers (one operation, or everything at
once), compactions at each replica's causally stable point (in half the
histories, of every replica after every step), and finally every replica
receiving everything in its own random order. It checks that

* replicas that delivered the same operations, in any causal order, hold
  equal values and, compacted at the final stable point, equal states (and
  equal raw states if they never compacted);
* concurrent operations that are both deliverable commute;
* compaction at the stable point never changes the value;
* every operation and every state round-trips through plain data with the
  codec (what the journal stores);
* if you give a ``model`` (the value you expect from the operations a replica
  delivered), every replica's value matches it after every step. The laws
  above cannot tell a convergent-but-wrong CRDT (a counter that loses
  concurrent increments identically everywhere) from a right one; a model can.

A prepare step that raises :class:`~calliope.errors.InvalidOperationError`
is skipped (an index out of range for this replica's state, say).

A failure raises :class:`CRDTLawViolation` for a minimal example (Hypothesis
shrinks it), whose message tells the story: replicas, steps, operations,
delivery orders and the states that disagree.

Call ``check_crdt`` from a plain test function (it runs its own ``@given``).
For a stateful Hypothesis test instead, :func:`crdt_state_machine` returns a
``RuleBasedStateMachine`` class to run with ``run_state_machine_as_test`` or
its ``.TestCase``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from calliope.adapters.crdt_codec import CRDTCodec
from calliope.core.crdt.protocol import crdt_name
from calliope.testing.crdt_simulation import CRDTLawViolation, Model, Prepare, Simulation

__all__ = ["CRDTLawViolation", "check_crdt", "crdt_state_machine"]


def _phases(base: settings) -> tuple[Phase, ...]:
    # The report already tells the story; Hypothesis' "explain" phase would
    # re-run the failure hundreds of times to annotate it (tens of seconds).
    return tuple(phase for phase in base.phases if phase is not Phase.explain)


def _codec(crdt_type: type, types: Iterable[type]) -> CRDTCodec:
    return CRDTCodec([crdt_type, *types])


def _step(replicas: int, operations: st.SearchStrategy[Prepare]) -> st.SearchStrategy[Any]:
    replica = st.integers(min_value=0, max_value=replicas - 1)
    update = st.tuples(st.just("update"), replica, operations)
    deliver = st.tuples(st.just("deliver"), replica, st.integers(min_value=0, max_value=10_000))
    sync = st.tuples(st.just("sync"), replica, st.none())
    compact = st.tuples(st.just("compact"), replica, st.none())
    return st.one_of(update, update, update, deliver, deliver, sync, compact, compact)


def check_crdt(
    crdt_type: type,
    operations: st.SearchStrategy[Prepare],
    *,
    replicas: int = 3,
    model: Model | None = None,
    max_steps: int = 40,
    types: Iterable[type] = (),
    hypothesis_settings: settings | None = None,
) -> None:
    """Check ``crdt_type``'s laws on random histories; raise CRDTLawViolation if broken.

    * ``operations``: a strategy of prepare steps (callables from a state to
      its operation(s)); :func:`calliope.testing.call` makes readable ones.
    * ``replicas``: how many replicas exchange operations.
    * ``model``: optional specification, from the operations a replica
      delivered (tagged, in causal order) to the value it must show.
    * ``max_steps``: the longest history (updates, deliveries, compactions).
    * ``types``: further CRDT types the codec must know (nested in an ORMap).
    * ``hypothesis_settings``: defaults to the active Hypothesis profile.
    """
    codec = _codec(crdt_type, types)
    # A list of short runs of steps: a plain st.lists averages five elements,
    # too few to meet the interesting interleavings; runs average about 25
    # steps and still shrink element by element.
    runs = st.lists(_step(replicas, operations), min_size=1, max_size=10)
    steps = st.lists(runs, max_size=max(1, max_steps // 4)).map(
        lambda chunks: [step for chunk in chunks for step in chunk][:max_steps]
    )
    base = hypothesis_settings if hypothesis_settings is not None else settings()

    @settings(base, report_multiple_bugs=False, deadline=None, phases=_phases(base))
    @given(data=st.data())
    def laws(data: st.DataObject) -> None:
        simulation: Simulation[Any] = Simulation(
            crdt_type, replicas=replicas, codec=codec, model=model
        )
        # Half the histories compact every replica after every step, so that
        # each state a replica passes through is also met compacted.
        eager = data.draw(st.booleans(), label="compact after every step")
        for kind, replica, argument in data.draw(steps, label="steps"):
            if kind == "update":
                simulation.update(replica, argument)
            elif kind == "deliver":
                simulation.deliver(replica, argument)
            elif kind == "sync":
                simulation.drain(replica, range(len(simulation.network)))
            else:
                simulation.compact(replica)
            if eager:
                for index in range(replicas):
                    simulation.compact(index, quiet=True)
        count = len(simulation.network)
        for replica in range(replicas):
            simulation.check_commutation(replica)
            order = data.draw(st.permutations(range(count)), label=f"order {replica}")
            simulation.drain(replica, order)
        simulation.check_convergence()

    laws.__qualname__ = f"check_crdt[{crdt_name(crdt_type)}]"
    laws()


def crdt_state_machine(
    crdt_type: type,
    operations: st.SearchStrategy[Prepare],
    *,
    replicas: int = 3,
    model: Model | None = None,
    types: Iterable[type] = (),
) -> type[RuleBasedStateMachine]:
    """A Hypothesis state machine checking ``crdt_type`` with the same laws.

    Rules: update at a replica, deliver one operation, compact at the stable
    point, sync one replica with everything (checking commutation first).
    Teardown delivers everything everywhere and checks convergence. Use as
    ``TestMyCRDT = crdt_state_machine(MyCRDT, ops).TestCase``.
    """
    codec = _codec(crdt_type, types)
    replica = st.integers(min_value=0, max_value=replicas - 1)

    class CRDTLaws(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.simulation: Simulation[Any] = Simulation(
                crdt_type, replicas=replicas, codec=codec, model=model
            )

        @rule(replica=replica, prepare=operations)
        def update(self, replica: int, prepare: Prepare) -> None:
            self.simulation.update(replica, prepare)

        @rule(replica=replica, message=st.integers(min_value=0, max_value=10_000))
        def deliver(self, replica: int, message: int) -> None:
            self.simulation.deliver(replica, message)

        @rule(replica=replica)
        def compact(self, replica: int) -> None:
            self.simulation.compact(replica)

        @rule(replica=replica, data=st.data())
        def sync(self, replica: int, data: st.DataObject) -> None:
            self.simulation.check_commutation(replica)
            count = len(self.simulation.network)
            self.simulation.drain(replica, data.draw(st.permutations(range(count))))

        def teardown(self) -> None:
            simulation = self.simulation
            count = len(simulation.network)
            for index in range(replicas):
                simulation.drain(index, range(count))
            simulation.check_convergence()

    CRDTLaws.__name__ = CRDTLaws.__qualname__ = f"{crdt_name(crdt_type)}Laws"
    # One failure, shrunk, rather than a group of every distinct one.
    base = settings()
    return settings(report_multiple_bugs=False, deadline=None, phases=_phases(base))(CRDTLaws)
