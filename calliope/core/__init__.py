"""The pure core: values and functions only.

Nothing in this package performs I/O, uses asyncio, reads a clock or draws
random numbers; time and identities come in as arguments. Everything here
can be tested with plain values, and two replicas can be simulated with two
variables.
"""

from calliope.core.causal import Causal
from calliope.core.causal_delivery import CausalBuffer, receive, receive_all
from calliope.core.causal_order import causal_order, causal_sort_key, detect_concurrent
from calliope.core.concurrent_versions import ConcurrentVersions, Versioned
from calliope.core.crdt import (
    CRDT,
    RGA,
    Flag,
    GCounter,
    GSet,
    LWWRegister,
    MVRegister,
    ORMap,
    ORSet,
    PNCounter,
    Tagged,
    as_operations,
    compact,
    effect,
    effect_all,
    stable_point,
    tag_operations,
)
from calliope.core.envelope import Dot, Envelope
from calliope.core.fold import aggregate
from calliope.core.persist_reply import PersistReply
from calliope.core.version_vector import Ordering, VersionVector, stable_vector

__all__ = [
    "CRDT",
    "RGA",
    "Flag",
    "GCounter",
    "GSet",
    "LWWRegister",
    "MVRegister",
    "ORMap",
    "ORSet",
    "PNCounter",
    "Tagged",
    "as_operations",
    "compact",
    "effect",
    "effect_all",
    "stable_point",
    "tag_operations",
    "Causal",
    "ConcurrentVersions",
    "PersistReply",
    "Versioned",
    "CausalBuffer",
    "Dot",
    "Envelope",
    "Ordering",
    "VersionVector",
    "aggregate",
    "causal_order",
    "causal_sort_key",
    "detect_concurrent",
    "receive",
    "receive_all",
    "stable_vector",
]
