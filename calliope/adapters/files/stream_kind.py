"""One id is one kind of stream: plain or replicated, never both.

A plain stream keeps one log (``log/``) and a replicated one a log per
replica (``replicas/``); writing one id as both kinds would make two
separate logs that never meet. The first writer of a stream records its kind
in the stream directory's ``kind`` file (``plain`` or ``replicated``).
"""

from __future__ import annotations

import os

from calliope.adapters.files.fsutil import create_file_exclusively
from calliope.errors import InvalidArgumentError

__all__ = ["check_kind"]


def check_kind(directory: str, stream_id: str, replica_id: str | None) -> None:
    """Refuse to write a stream as plain (``replica_id`` None) if it is a
    replicated stream, or as replicated if it is a plain one: one id must not
    become two separate logs. InvalidArgumentError naming the id and its kind.

    The first writer of a stream records its kind in the stream directory's
    ``kind`` file, created exclusively (so two processes writing a new id as
    two kinds at once cannot both win); a stream written before that file
    existed is known by its ``log``/``replicas`` directories. Blocking, a few
    system calls; the file journal checks once per log it opens.
    """
    wanted = "replicated" if replica_id is not None else "plain"
    path = os.path.join(directory, "kind")
    kind = _read_kind(path)
    if kind is None:
        other = "log" if replica_id is not None else "replicas"
        if os.path.isdir(os.path.join(directory, other)):
            kind = "plain" if other == "log" else "replicated"
        elif create_file_exclusively(path, wanted.encode()):
            return
        else:
            kind = _read_kind(path)
    if kind is None or kind == wanted:
        return
    if kind == "plain":
        raise InvalidArgumentError(
            f"stream {stream_id!r} is a plain stream (written with app.journal.event_stream); "
            f"it cannot also be written as a replicated stream, or it would hold two separate "
            f"logs. Use app.journal.event_stream({stream_id!r}, ...), or another id for the "
            f"replicated stream"
        )
    raise InvalidArgumentError(
        f"stream {stream_id!r} is a replicated stream (written with "
        f"app.journal.replicated_event_stream); it cannot also be written as a plain stream, "
        f"or it would hold two separate logs. Use "
        f"app.journal.replicated_event_stream({stream_id!r}, ...), or another id for the "
        f"plain stream"
    )


def _read_kind(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            kind = handle.read().decode("ascii", errors="replace")
    except FileNotFoundError:
        return None
    return kind if kind in ("plain", "replicated") else None
