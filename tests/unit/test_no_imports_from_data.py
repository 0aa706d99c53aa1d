"""Stored data never makes Calliope import or build anything it names."""

from __future__ import annotations

import sys

import attrs
import pytest

import calliope
from calliope.adapters.codec import Codec


@calliope.event_type("test.declared")
@attrs.frozen
class Declared:
    value: int


@pytest.mark.parametrize("name", ["tabnanny.Whitespace", "tabnanny", "builtins.eval"])
def test_a_stored_type_name_is_never_imported(name: str) -> None:
    assert "tabnanny" not in sys.modules  # an obscure module nothing else imports
    codec = Codec().for_type(Declared)
    with pytest.raises(calliope.UnknownEventTypeError):
        codec.decode(name, 1, {"value": 1})
    assert "tabnanny" not in sys.modules
