"""One id is one kind of stream: plain or replicated, never both.

A plain stream keeps one log (``log/``) and a replicated one a log per
replica (``replicas/``); writing one id as both kinds would make two
separate logs that never meet. The first writer of a stream records its kind
in the stream directory's ``kind`` file (``plain`` or ``replicated``).
"""

from __future__ import annotations

import os

from calliope.adapters.files.fsutil import create_file_exclusively
from calliope.adapters.kinds import other_kind

__all__ = ["check_kind"]


def check_kind(
    directory: str, stream_id: str, replica_id: str | None, *, reading: bool = False
) -> bool:
    """Refuse to write a stream as plain (``replica_id`` None) if it is a
    replicated stream, or as replicated if it is a plain one: one id must not
    become two separate logs. InvalidArgumentError naming the id and its kind.

    The first writer of a stream records its kind in the stream directory's
    ``kind`` file, created exclusively (so two processes writing a new id as
    two kinds at once cannot both win); a stream written before that file
    existed is known by its ``log``/``replicas`` directories. Blocking, a few
    system calls; the file journal checks once per log it opens.

    ``reading``: refuse to read the stream as the other kind (a query would
    otherwise find nothing, and a live query wait forever); nothing is
    created. Returns whether the stream's kind is known now.
    """
    wanted = "replicated" if replica_id is not None else "plain"
    path = os.path.join(directory, "kind")
    kind = _read_kind(path)
    if kind is None:
        other = "log" if replica_id is not None else "replicas"
        if os.path.isdir(os.path.join(directory, other)):
            kind = "plain" if other == "log" else "replicated"
        elif reading:
            return False
        elif create_file_exclusively(path, wanted.encode()):
            return True
        else:
            kind = _read_kind(path)
    if kind is None:
        return False
    if kind != wanted:
        raise other_kind(stream_id, replicated=kind == "replicated", reading=reading)
    return True


def _read_kind(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            kind = handle.read().decode("ascii", errors="replace")
    except FileNotFoundError:
        return None
    return kind if kind in ("plain", "replicated") else None
