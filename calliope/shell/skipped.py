"""What a query does with a stored event it cannot decode: raise, or skip it.

A stream may hold an event this reader cannot decode: written by older code
under a shape that changed without an upcaster, by a foreign writer, or of a
type the reader did not declare. By default a query raises
:class:`calliope.EventDecodingError` there (``undecodable="raise"``). With
``undecodable="skip"`` it leaves such an event out, logs a WARNING on the
``"calliope"`` logger, and hands a :class:`SkippedEvent` to ``on_skip`` if
given. A skipped event still counts as read: a replicated handle observes
its version, so its causal successors are delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import attrs

from calliope.core.replication import RecordBatch
from calliope.core.version_vector import VersionVector
from calliope.errors import EventDecodingError, InvalidArgumentError

__all__ = ["RAISE", "OnSkip", "SkippedEvent", "Undecodable", "UndecodablePolicy", "policy_of"]

logger = logging.getLogger("calliope")

Undecodable = Literal["raise", "skip"]
"""What a query does with an event it cannot decode."""


@attrs.frozen(kw_only=True)
class SkippedEvent:
    """A stored event a query left out because it could not be decoded.

    * ``stream_id``, ``replica_id`` (its writer), ``sequence`` and ``version``
      (including the event itself) as its envelope would have had them.
    * ``type_name`` and ``schema_version``: what it was stored as.
    * ``error``: why it could not be decoded (the error's class and message).
    """

    stream_id: str
    replica_id: str
    sequence: int
    version: VersionVector
    type_name: str
    schema_version: int
    error: str


OnSkip = Callable[[SkippedEvent], None]
"""Called with each event a query skips (in the order the query reads them)."""


@attrs.frozen
class UndecodablePolicy:
    """A query's choice: ``skip`` or raise, and whom to tell about a skip."""

    skip: bool
    on_skip: OnSkip | None = None

    def skipped(
        self, stream_id: str, batch: RecordBatch, index: int, error: EventDecodingError
    ) -> None:
        """Report that event ``index`` of ``batch`` was skipped: a WARNING on
        the "calliope" logger, then ``on_skip`` (whose exceptions propagate)."""
        name, schema, _ = batch.items[index]
        version = batch.version_at(index)
        event = SkippedEvent(
            stream_id=stream_id,
            replica_id=batch.writer,
            sequence=batch.first_sequence + index,
            version=VersionVector.unchecked(version),
            type_name=str(name),
            schema_version=int(schema),
            error=f"{type(error).__name__}: {error}",
        )
        logger.warning(
            "skipped undecodable event %s of stream %r (replica %r, type %r, schema %s): %s",
            event.sequence,
            stream_id,
            event.replica_id,
            event.type_name,
            event.schema_version,
            event.error,
        )
        if self.on_skip is not None:
            self.on_skip(event)


RAISE = UndecodablePolicy(skip=False)
"""The default: an undecodable event raises EventDecodingError."""


def policy_of(undecodable: object, on_skip: object) -> UndecodablePolicy:
    """The policy a query's ``undecodable`` and ``on_skip`` arguments ask for;
    InvalidArgumentError for anything else."""
    if not isinstance(undecodable, str) or undecodable not in ("raise", "skip"):
        raise InvalidArgumentError(
            f'undecodable must be "raise" (the default) or "skip", got {undecodable!r}'
        )
    if on_skip is not None and not callable(on_skip):
        raise InvalidArgumentError(
            f"on_skip must be a function taking a calliope.SkippedEvent (or None), got {on_skip!r}"
        )
    if undecodable == "raise":
        if on_skip is not None:
            raise InvalidArgumentError(
                'on_skip is only called when undecodable="skip"; pass undecodable="skip" '
                "with it, or leave on_skip out"
            )
        return RAISE
    return UndecodablePolicy(skip=True, on_skip=on_skip)
