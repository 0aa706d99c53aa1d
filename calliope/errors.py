"""Every error a user of Calliope can cause.

Each class says whose fault it is (the caller, the data on disk, the storage)
and each message says what to do. All derive from :class:`CalliopeError`, so
``except calliope.CalliopeError`` catches everything the library raises on
purpose. Where a standard exception also fits (``ValueError`` for bad
arguments, ``TimeoutError`` for timeouts) the class derives from it too.
"""

from __future__ import annotations

__all__ = [
    "CalliopeError",
    "InvalidArgumentError",
    "InvalidEnvelopeError",
]


class CalliopeError(Exception):
    """Base class of every error Calliope raises on purpose."""


class InvalidArgumentError(CalliopeError, ValueError):
    """The caller passed a value the API does not accept; the message says which."""


class InvalidEnvelopeError(CalliopeError, ValueError):
    """An envelope violates the causal invariants (for example its version does
    not count the event itself at its own replica)."""
