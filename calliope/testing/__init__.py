"""Public test helpers: Hypothesis strategies for causal histories, and the
CRDT property-test harness (``check_crdt``, ``crdt_state_machine``).

Needs Hypothesis: ``pip install calliope[testing]``.
"""

from calliope.testing.crdt_laws import check_crdt, crdt_state_machine
from calliope.testing.crdt_simulation import Call, CRDTLawViolation, Simulation, call
from calliope.testing.replica import Replica

__all__ = [
    "CRDTLawViolation",
    "Call",
    "Replica",
    "Simulation",
    "call",
    "check_crdt",
    "crdt_state_machine",
]
