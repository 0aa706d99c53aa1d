"""What the CRDT law harness reports when a CRDT's own code raises."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import pytest

from calliope.core.crdt import Tagged
from calliope.core.version_vector import VersionVector
from calliope.testing import CRDTLawViolation, Simulation, call


@attrs.frozen
class Poke:
    label: str


@attrs.frozen(kw_only=True)
class RaisingEffect:
    """Broken: its effect raises on every operation."""

    op_types: ClassVar[tuple[type, ...]] = (Poke,)
    value: int = 0

    def poke(self, label: str) -> Poke:
        return Poke(label)

    def effect(self, tagged: Tagged[Any], /) -> RaisingEffect:
        raise KeyError(f"no slot for {tagged.op.label}")

    def compact(self, stable: VersionVector, /) -> RaisingEffect:
        return self


def test_an_effect_that_raises_is_reported_with_its_error() -> None:
    simulation = Simulation(RaisingEffect, replicas=2)
    with pytest.raises(CRDTLawViolation) as caught:
        simulation.update(0, call("poke", "p1"))
    message = str(caught.value)
    assert "effect raised" in message
    assert "KeyError('no slot for p1')" in message
    assert isinstance(caught.value.__cause__, KeyError)
