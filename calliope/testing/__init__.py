"""Public test kits.

* The CRDT property-test harness (``check_crdt``, ``crdt_state_machine``,
  ``Simulation``, ``Replica``) and Hypothesis strategies for causal
  histories: needs Hypothesis (``pip install calliope[testing]``).
* :mod:`calliope.testing.contract`: the port contract suite every storage
  adapter must pass (no Hypothesis needed).

The harness is imported on first use, so ``from calliope.testing import
contract`` works without Hypothesis installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "check_crdt": "calliope.testing.crdt_laws",
    "crdt_state_machine": "calliope.testing.crdt_laws",
    "CRDTLawViolation": "calliope.testing.crdt_simulation",
    "Call": "calliope.testing.crdt_simulation",
    "Simulation": "calliope.testing.crdt_simulation",
    "call": "calliope.testing.crdt_simulation",
    "Replica": "calliope.testing.replica",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'calliope.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
