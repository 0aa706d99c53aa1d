"""Validation of user-chosen identifiers (stream, snapshot and replica ids)."""

from __future__ import annotations

from calliope.errors import InvalidArgumentError, InvalidStreamIdError

__all__ = [
    "MAX_ID_BYTES",
    "RESERVED_PREFIX",
    "in_feed",
    "validate_replica_id",
    "validate_stream_id",
]

MAX_ID_BYTES = 1024

RESERVED_PREFIX = "$calliope/"
"""Stream and snapshot ids starting with this are Calliope's own (the
replicator keeps each key in ``$calliope/crdt/<key>``)."""


def in_feed(stream_id: str, prefix: str | None) -> bool:
    """Whether a feed or listing for ``prefix`` (None: every stream) takes
    ``stream_id``: its id starts with the prefix, and Calliope's own
    ``$calliope/`` streams only when the prefix starts with ``"$calliope/"``."""
    if prefix is None:
        return not stream_id.startswith(RESERVED_PREFIX)
    return stream_id.startswith(prefix) and (
        prefix.startswith(RESERVED_PREFIX) or not stream_id.startswith(RESERVED_PREFIX)
    )


def validate_stream_id(
    stream_id: object, *, kind: str = "stream id", reserved: bool = False
) -> str:
    """Return ``stream_id`` if it is a non-empty str of at most 1,024 UTF-8
    bytes, not starting with ``"$calliope/"`` (Calliope's own; allowed with
    ``reserved``, for repairs);
    otherwise raise :class:`~calliope.errors.InvalidStreamIdError`.

    Any other such string is allowed (slashes, dots, NUL, any case): ids
    are never used as raw paths.
    """
    if not isinstance(stream_id, str):
        raise InvalidStreamIdError(f"a {kind} must be a str, got {type(stream_id).__name__}")
    if not stream_id:
        raise InvalidStreamIdError(f"a {kind} must not be empty")
    try:
        size = len(stream_id.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise InvalidStreamIdError(
            f"a {kind} must be encodable as UTF-8 (it contains a lone surrogate): {error}"
        ) from None
    if size > MAX_ID_BYTES:
        raise InvalidStreamIdError(
            f"a {kind} may be at most {MAX_ID_BYTES} UTF-8 bytes, this one is {size}; "
            f"use a shorter id (e.g. a hash of the long one)"
        )
    if not reserved and stream_id.startswith(RESERVED_PREFIX):
        raise InvalidStreamIdError(
            f"{kind}s starting with {RESERVED_PREFIX!r} are reserved for Calliope's own "
            f"streams (the replicator's keys live there); choose another id"
        )
    return stream_id


def validate_replica_id(replica_id: object) -> str:
    """Return ``replica_id`` if it is a non-empty str of at most 255 UTF-8 bytes."""
    if not isinstance(replica_id, str) or not replica_id:
        raise InvalidArgumentError(f"a replica id must be a non-empty str, got {replica_id!r}")
    try:
        size = len(replica_id.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgumentError(
            f"a replica id must be valid UTF-8, got {replica_id!r}"
        ) from None
    if size > 255:
        raise InvalidArgumentError(f"a replica id may be at most 255 UTF-8 bytes, got {size}")
    return replica_id
