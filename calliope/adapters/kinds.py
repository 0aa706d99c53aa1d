"""One id is one kind of stream, plain or replicated: the error for using
it as the other kind, the same in every adapter."""

from __future__ import annotations

from calliope.errors import InvalidArgumentError

__all__ = ["other_kind"]


def other_kind(stream_id: str, *, replicated: bool, reading: bool) -> InvalidArgumentError:
    """The error for using a stream, plain or ``replicated``, as the other
    kind; ``reading`` or writing it."""
    kind, call, other = (
        ("replicated", "replicated_event_stream", "plain")
        if replicated
        else ("plain", "event_stream", "replicated")
    )
    if reading:
        return InvalidArgumentError(
            f"stream {stream_id!r} is a {kind} stream (written with app.journal.{call}); "
            f"reading it as a {other} stream would find nothing. Use "
            f"app.journal.{call}({stream_id!r}, ...)"
        )
    return InvalidArgumentError(
        f"stream {stream_id!r} is a {kind} stream (written with app.journal.{call}); it "
        f"cannot also be written as a {other} stream, or it would hold two separate logs. "
        f"Use app.journal.{call}({stream_id!r}, ...), or another id for the {other} stream"
    )
