"""Calliope: event sourcing and replication with causal consistency.

The public API lives here; see README.md and DESIGN.md for the contract.
"""

from calliope.core import (
    CausalBuffer,
    Envelope,
    Ordering,
    VersionVector,
    aggregate,
    causal_order,
    detect_concurrent,
    receive,
    receive_all,
    stable_vector,
)
from calliope.errors import CalliopeError, InvalidArgumentError, InvalidEnvelopeError

__all__ = [
    "CalliopeError",
    "CausalBuffer",
    "Envelope",
    "InvalidArgumentError",
    "InvalidEnvelopeError",
    "Ordering",
    "VersionVector",
    "aggregate",
    "causal_order",
    "detect_concurrent",
    "receive",
    "receive_all",
    "stable_vector",
]
