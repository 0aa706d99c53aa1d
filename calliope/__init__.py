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
)
from calliope.core.event_types import event_type
from calliope.core.feed_position import FeedPosition
from calliope.core.persist_reply import PersistReply
from calliope.core.snapshot import Snapshot
from calliope.errors import (
    AppClosedError,
    CalliopeError,
    ConcurrencyError,
    CorruptJournalError,
    CRDTCodecError,
    EventDecodingError,
    EventEncodingError,
    InvalidArgumentError,
    InvalidEnvelopeError,
    InvalidOperationError,
    InvalidStreamIdError,
    KeyDeletedError,
    ProjectionError,
    ReadOnlyStoreError,
    ReplicaInUseError,
    ReplicationTimeout,
    StorageError,
    UnknownEventTypeError,
    WaitTimeout,
    WrongCRDTTypeError,
)
from calliope.shell.app import App
from calliope.shell.app import open_app as open
from calliope.shell.event_stream import EventStream
from calliope.shell.feed import Feed, FeedLiveQuery, FeedQuery
from calliope.shell.ports import RepairReport
from calliope.shell.projection import Projection
from calliope.shell.queries import LiveQuery, Query
from calliope.shell.replicated_queries import ReplicatedLiveQuery, ReplicatedQuery
from calliope.shell.replicated_stream import ReplicatedEventStream
from calliope.shell.replicator import ReplicaStatus, Replicator, Updates
from calliope.shell.skipped import SkippedEvent
from calliope.shell.stream_info import StreamInfo

__all__ = [
    "Feed",
    "FeedLiveQuery",
    "FeedPosition",
    "FeedQuery",
    "Projection",
    "ProjectionError",
    "CRDT",
    "CRDTCodecError",
    "Flag",
    "GCounter",
    "GSet",
    "InvalidOperationError",
    "KeyDeletedError",
    "ReplicaStatus",
    "ReplicationTimeout",
    "Replicator",
    "Updates",
    "WaitTimeout",
    "WrongCRDTTypeError",
    "LWWRegister",
    "MVRegister",
    "ORMap",
    "ORSet",
    "PNCounter",
    "RGA",
    "Tagged",
    "App",
    "AppClosedError",
    "ConcurrencyError",
    "ConcurrentVersions",
    "PersistReply",
    "RepairReport",
    "ReplicatedEventStream",
    "ReplicatedLiveQuery",
    "ReplicatedQuery",
    "Versioned",
    "CorruptJournalError",
    "EventDecodingError",
    "EventEncodingError",
    "EventStream",
    "InvalidStreamIdError",
    "LiveQuery",
    "Query",
    "ReadOnlyStoreError",
    "ReplicaInUseError",
    "SkippedEvent",
    "Snapshot",
    "StorageError",
    "StreamInfo",
    "UnknownEventTypeError",
    "event_type",
    "open",
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
