"""Every error a user of Calliope can cause.

Each class says whose fault it is (the caller, the data on disk, the storage)
and each message says what to do. All derive from :class:`CalliopeError`, so
``except calliope.CalliopeError`` catches everything the library raises on
purpose. Where a standard exception also fits (``ValueError`` for bad
arguments, ``TimeoutError`` for timeouts) the class derives from it too.
"""

from __future__ import annotations

__all__ = [
    "AppClosedError",
    "CalliopeError",
    "ConcurrencyError",
    "CorruptJournalError",
    "CRDTCodecError",
    "EventDecodingError",
    "EventEncodingError",
    "InvalidArgumentError",
    "InvalidEnvelopeError",
    "InvalidOperationError",
    "InvalidStreamIdError",
    "KeyDeletedError",
    "ProjectionError",
    "ReadOnlyStoreError",
    "ReplicaInUseError",
    "ReplicationTimeout",
    "StorageError",
    "UnknownEventTypeError",
    "WaitTimeout",
    "WrongCRDTTypeError",
]


class CalliopeError(Exception):
    """Base class of every error Calliope raises on purpose."""


class InvalidArgumentError(CalliopeError, ValueError):
    """The caller passed a value the API does not accept; the message says which."""


class InvalidEnvelopeError(CalliopeError, ValueError):
    """An envelope violates the causal invariants (for example its version does
    not count the event itself at its own replica)."""


class InvalidOperationError(CalliopeError, ValueError):
    """A CRDT operation cannot be prepared from these arguments (an index out of
    range, a negative increment, an unusable timestamp); the message says which."""


class CRDTCodecError(CalliopeError, ValueError):
    """A CRDT state or operation cannot be turned into plain data or back: a value
    inside it is not plain data, or the data names a CRDT or operation type the
    codec was not given."""


class InvalidStreamIdError(InvalidArgumentError):
    """A stream or snapshot id is empty, not a string, or too long."""


class ConcurrencyError(CalliopeError):
    """``expected_sequence`` did not match the stream's last sequence; nothing
    was written. Re-read the stream (or its last sequence) and retry."""

    def __init__(self, message: str, *, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class EventEncodingError(CalliopeError, TypeError):
    """An event (or snapshot state) cannot be encoded: it is not an instance of
    the type the stream or snapshot was declared with, or cattrs cannot
    unstructure it."""


class EventDecodingError(CalliopeError):
    """Stored data of a known type does not fit the type's current shape (add an
    upcaster for the old schema version) or was written by newer code.

    ``position``: where a feed found the event (a
    :class:`calliope.FeedPosition`), when a feed raised it; else None."""

    def __init__(self, message: str, *, position: object = None) -> None:
        super().__init__(message)
        self.position = position


class UnknownEventTypeError(EventDecodingError):
    """Stored data names an event type the stream was not opened with.

    Nothing is ever imported because stored data names it: pass the type (or
    a ``Union`` containing it) as the stream's event type, with the same
    ``@calliope.event_type`` name it was written under.
    """


class ReplicaInUseError(CalliopeError):
    """Another live app (in this or another process) already holds this replica
    id on this store. Use a different ``replica_id`` or close the other app."""


class StorageError(CalliopeError):
    """The storage itself failed or is in a state Calliope did not write."""


class ReadOnlyStoreError(StorageError):
    """A write (a persist, a snapshot save) on a store opened with
    ``read_only=True``. Open it without ``read_only`` (where it may be
    written) to write."""


class CorruptJournalError(StorageError):
    """A journal holds damaged or missing data that was acknowledged (``path``
    and ``offset`` say where, when it is one file). Data is never silently
    skipped or cut: restore the file from a replica or backup, or call
    ``app.journal.repair`` to move the damaged part aside, losing its events."""

    def __init__(self, message: str, *, path: str, offset: int) -> None:
        super().__init__(message)
        self.path = path
        self.offset = offset


class AppClosedError(CalliopeError):
    """The app (or a handle from it) was used after it was closed; open it again."""


class ReplicationTimeout(CalliopeError, TimeoutError):
    """Fewer replicas than asked for (``required``) applied an update, or
    reported progress for a read, within the timeout; ``acknowledged`` says
    how many did. An update is durable all the same and spreads to the
    others later: wait again, or ask for fewer replicas."""

    def __init__(self, message: str, *, acknowledged: int, required: int) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged
        self.required = required


class WaitTimeout(CalliopeError, TimeoutError):
    """``wait_until``'s predicate did not hold within its timeout."""


class WrongCRDTTypeError(InvalidArgumentError):
    """A replicator key holds one CRDT type and was used as another (each key
    has one type for its whole life); use the key's type or another key."""


class KeyDeletedError(CalliopeError):
    """The replicator key was deleted (``app.replicator.delete``); a deleted
    key stays deleted on every replica. Use another key."""


class ProjectionError(CalliopeError):
    """A projection's ``update_state`` raised. The projection saved its state
    up to the event before, and stopped: ``position`` is the failing event's
    (:class:`calliope.FeedPosition`), ``name`` the projection's; the cause is
    chained. Fix the function (or the data) and catch up again: it resumes
    at that event."""

    def __init__(self, message: str, *, name: str, position: object) -> None:
        super().__init__(message)
        self.name = name
        self.position = position
