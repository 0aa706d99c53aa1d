"""The public names DESIGN.md promises are exported, and nothing is missing."""

from __future__ import annotations

import calliope
import calliope.core

PROMISED = {
    # DESIGN.md section 2 and the issues: these names are a contract.
    "open",
    "aggregate",
    "event_type",
    "CalliopeError",
    "ConcurrencyError",
    "CorruptJournalError",
    "Envelope",
    "PersistReply",
    "ConcurrentVersions",
    "Snapshot",
    "Ordering",
    "VersionVector",
    "stable_vector",
    "causal_order",
    "detect_concurrent",
    "GCounter",
    "PNCounter",
    "GSet",
    "ORSet",
    "LWWRegister",
    "MVRegister",
    "Flag",
    "ORMap",
    "RGA",
    "SkippedEvent",
}


def test_promised_names_are_exported() -> None:
    assert set(calliope.__all__) >= PROMISED


def test_every_exported_name_exists() -> None:
    for module in (calliope, calliope.core):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name} is in __all__ but missing"


def test_errors_are_calliope_errors() -> None:
    for name in calliope.__all__:
        value = getattr(calliope, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, calliope.CalliopeError), name
