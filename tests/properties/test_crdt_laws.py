"""Every shipped CRDT passes the public harness, with its model."""

from __future__ import annotations

import pytest

from calliope.core.crdt import BUILTIN_CRDTS, RGA, ORSet, crdt_name
from calliope.testing import check_crdt, crdt_state_machine
from calliope.testing.crdt_specs import BUILTIN_SPECS


@pytest.mark.parametrize("crdt_type", BUILTIN_CRDTS, ids=crdt_name)
def test_builtin_crdt_obeys_the_laws(crdt_type: type) -> None:
    spec = BUILTIN_SPECS[crdt_type]
    check_crdt(crdt_type, spec.operations, model=spec.model)


# The same laws as a Hypothesis state machine (the factory users get too).
TestORSetMachine = crdt_state_machine(
    ORSet, BUILTIN_SPECS[ORSet].operations, model=BUILTIN_SPECS[ORSet].model
).TestCase
TestRGAMachine = crdt_state_machine(
    RGA, BUILTIN_SPECS[RGA].operations, replicas=2, model=BUILTIN_SPECS[RGA].model
).TestCase
