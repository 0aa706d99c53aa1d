"""Where things live in a data directory, and the directory's own metadata.

::

    <root>/                     0700
      calliope.json             format version and the default replica id
      replicas/<h>.lock         held (flock) by the live app of a replica id
      streams/<h2>/<h>/id       the stream id, as UTF-8
      streams/<h2>/<h>/log/     the plain stream's segments (segment_files.py)
      snapshots/<h2>/<h>/id     the snapshot id
      snapshots/<h2>/<h>/*.snap snapshots, newest by sequence

``<h>`` is the SHA-256 of the UTF-8 id in hex and ``<h2>`` its first two
characters, so an id never becomes a path: ``"../x"``, ``"a/b"``, NUL and
ids differing only in case all get their own directory inside the root.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import uuid

from calliope.adapters.files.fsutil import (
    fsync_directory,
    private_makedirs,
    write_file_atomically,
)
from calliope.errors import ReplicaInUseError, StorageError

__all__ = [
    "FORMAT_VERSION",
    "ReplicaLease",
    "ensure_root",
    "id_digest",
    "id_directory",
    "log_directory",
    "stream_directory",
]

FORMAT_VERSION = 1
_META = "calliope.json"


def id_digest(identifier: str) -> str:
    return hashlib.sha256(identifier.encode("utf-8")).hexdigest()


def id_directory(root: str, kind: str, identifier: str) -> str:
    """The directory of a stream or snapshot id, created (with its ``id`` file)."""
    digest = id_digest(identifier)
    directory = os.path.join(root, kind, digest[:2], digest)
    id_path = os.path.join(directory, "id")
    if not os.path.exists(id_path):
        private_makedirs(directory)
        write_file_atomically(id_path, identifier.encode("utf-8"))
    else:
        with open(id_path, "rb") as handle:
            stored = handle.read().decode("utf-8", errors="replace")
        if stored != identifier:
            raise StorageError(
                f"{directory} belongs to id {stored!r}, not {identifier!r} (a SHA-256 "
                f"collision or a hand-edited directory); move it aside"
            )
    return directory


def stream_directory(root: str, stream_id: str) -> str:
    """Where a stream's logs live (``streams/<h2>/<h>``)."""
    digest = id_digest(stream_id)
    return os.path.join(root, "streams", digest[:2], digest)


def log_directory(root: str, stream_id: str, replica_id: str | None) -> str:
    """A plain stream's log directory (``replica_id`` None) or one replica's."""
    if replica_id is None:
        return os.path.join(stream_directory(root, stream_id), "log")
    return os.path.join(stream_directory(root, stream_id), "replicas", id_digest(replica_id))


def ensure_root(root: str) -> str:
    """Create the data directory (0700) if needed; return its default replica id.

    The default replica id is created once, atomically, and kept in
    ``calliope.json``; every later open of the directory reads the same one.
    """
    private_makedirs(root)
    meta_path = os.path.join(root, _META)
    if not os.path.exists(meta_path):
        meta = {"format": FORMAT_VERSION, "default_replica_id": f"replica-{uuid.uuid4().hex[:12]}"}
        temporary = f"{meta_path}.{uuid.uuid4().hex}.tmp"
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temporary, meta_path)  # fails if another process won the race
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
        fsync_directory(root)
    try:
        with open(meta_path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError) as error:
        raise StorageError(
            f"{meta_path} is unreadable ({error}); it should hold the directory's format "
            f"and default replica id. Restore it, or pass replica_id= explicitly"
        ) from error
    if meta.get("format") != FORMAT_VERSION:
        raise StorageError(
            f"{root} is in data format {meta.get('format')!r}; this Calliope reads format "
            f"{FORMAT_VERSION}. Use a matching Calliope version"
        )
    replica = meta.get("default_replica_id")
    if not isinstance(replica, str) or not replica:
        raise StorageError(f"{meta_path} has no default_replica_id; pass replica_id= explicitly")
    return replica


class ReplicaLease:
    """An exclusive claim on a replica id in a data directory (``flock``).

    Held for the app's lifetime; released on ``release()`` or when the
    process dies, so a crashed app never leaves a stale lock behind.
    """

    def __init__(self, root: str, replica_id: str) -> None:
        directory = os.path.join(root, "replicas")
        private_makedirs(directory)
        path = os.path.join(directory, f"{id_digest(replica_id)}.lock")
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise ReplicaInUseError(
                f"replica id {replica_id!r} is already in use on {root} by another live app "
                f"(in this or another process); close it, or open with a different replica_id"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n{replica_id}\n".encode())

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
