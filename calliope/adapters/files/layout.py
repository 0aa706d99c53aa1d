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
from calliope.core.ids import validate_replica_id
from calliope.errors import InvalidArgumentError, ReplicaInUseError, StorageError

__all__ = [
    "FORMAT_VERSION",
    "ReplicaLease",
    "ensure_root",
    "read_root",
    "recorded_replica_ids",
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


def ensure_root(root: str, replica_id: str | None = None) -> str:
    """Create the data directory (0700) if needed; return its default replica id.

    The default replica id is created once, atomically, and kept in
    ``calliope.json``; every later open of the directory reads the same one.
    A directory without ``calliope.json`` becomes a store only if it is
    missing or empty: one holding other files is refused (StorageError), so
    Calliope never writes into, say, a home directory. One holding Calliope
    data (``streams/``, ``snapshots/``, ``replicas/``) whose ``calliope.json``
    was deleted is refused too, since a new default id would fork a replica's
    history; unless ``replica_id`` is given and is one the directory's
    replica locks record (or none is recorded): ``calliope.json`` is then
    recreated with it as the default. O(entries of the root) when
    ``calliope.json`` is missing, else O(1).
    """
    private_makedirs(root)
    meta_path = os.path.join(root, _META)
    if not os.path.exists(meta_path):
        entries = _entries(root)
        if _META not in entries:  # (else another process created it meanwhile)
            default = _default_to_create(root, entries, replica_id)
            _create_meta(root, meta_path, default)
    return _read_meta(root, meta_path)


def read_root(root: str, requested: str | None = None) -> str:
    """The default replica id of an existing store, creating nothing (for
    a read-only open). StorageError if ``root`` is not a Calliope store. A
    store whose ``calliope.json`` was lost still opens read-only (nothing is
    written, so no replica can fork): as ``requested``, else as
    ``"read-only"``."""
    meta_path = os.path.join(root, _META)
    if not os.path.exists(meta_path):
        if not os.path.isdir(root):
            what = "is not a directory" if os.path.exists(root) else "does not exist"
            raise StorageError(
                f"{root} {what}; a read_only open only inspects an existing store: "
                f"check the path, or open without read_only=True to create a store"
            )
        entries = _entries(root)
        if any(name in _DATA for name in entries):
            return requested or "read-only"
        raise StorageError(
            f"{root} is not a Calliope store (it has no {_META}); a read_only open only "
            f"inspects an existing store: check the path"
        )
    return _read_meta(root, meta_path)


_DATA = ("streams", "snapshots", "replicas")
"""Entries of a store's root that hold its data."""

_IGNORED = frozenset({"lost+found"})
"""Entries that do not make a directory non-empty (a fresh file system's)."""


def _entries(root: str) -> list[str]:
    """The root's entries, but for ignored ones and the temporary files of a
    ``calliope.json`` being created by another process. O(entries)."""
    return sorted(
        name
        for name in os.listdir(root)
        if name not in _IGNORED and not (name.startswith(f"{_META}.") and name.endswith(".tmp"))
    )


def _default_to_create(root: str, entries: list[str], replica_id: str | None) -> str:
    """The default replica id for a new ``calliope.json`` in ``root`` (a
    fresh one, or ``replica_id`` if it recreates a lost one); StorageError
    if none may be created there."""
    if any(name in _DATA for name in entries):
        recorded = recorded_replica_ids(root)
        if replica_id is not None and (not recorded or replica_id in recorded):
            return replica_id  # recreated with the replica id used before
        raise StorageError(_missing_meta(root, entries, replica_id))
    if entries:
        shown = ", ".join(repr(name) for name in entries[:5])
        more = f" and {len(entries) - 5} more" if len(entries) > 5 else ""
        raise StorageError(
            f"{root} is not empty ({shown}{more}) and is not a Calliope store (it has no "
            f"{_META}); Calliope will not write into it. Pass a new or empty directory, or "
            f"the directory of an existing store"
        )
    return f"replica-{uuid.uuid4().hex[:12]}"


def _missing_meta(root: str, entries: list[str], replica_id: str | None) -> str:
    """The message for a store whose ``calliope.json`` is missing: what is
    wrong, and the two ways back (write the file, or open once with the
    replica id used before), naming that id when the replica locks record
    only one."""
    recorded = recorded_replica_ids(root)
    data = ", ".join(f"{name}/" for name in entries if name in _DATA)
    meta_path = os.path.join(root, _META)
    if len(recorded) == 1:
        used = recorded[0]
        known = "the replica id that opened this store"
    else:
        used = None
        if recorded:
            ids = ", ".join(repr(replica) for replica in recorded)
            known = f"ID being the replica id its apps opened it with by default, one of {ids}"
        else:
            known = (
                "ID being the replica id its apps opened it with (none is recorded in replicas/)"
            )
    if replica_id is not None and recorded and replica_id not in recorded:
        known += f"; {replica_id!r} is not one of them"
    content = json.dumps({"format": FORMAT_VERSION, "default_replica_id": used or "ID"})
    if used is None:
        content = content.replace('"ID"', "ID")
    shown = repr(used) if used is not None else "ID"
    return (
        f"{root} holds Calliope data ({data}) but its {_META} is missing, so its default "
        f"replica id is unknown, and a new one would fork a replica's history: Calliope will "
        f"not open it for writing. To recover, write {meta_path} back holding {content} "
        f"({known}), or open it once with calliope.open({root!r}, replica_id={shown}), "
        f"which writes that file. Restore the file from a backup instead if you have one. "
        f"Read-only opens work meanwhile"
    )


def recorded_replica_ids(root: str) -> list[str]:
    """The replica ids recorded in ``replicas/*.lock`` (each holds the pid
    and the replica id, a line each, of the last app that took it), sorted;
    unreadable or empty lock files are skipped. O(lock files)."""
    directory = os.path.join(root, "replicas")
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    recorded = set()
    for name in names:
        if not name.endswith(".lock"):
            continue
        try:
            with open(os.path.join(directory, name), "rb") as handle:
                text = handle.read(4096).decode("utf-8", errors="replace")
        except OSError:
            continue
        # "<pid>\n<replica id>\n"; the id itself may hold a newline.
        _, _, replica = text.partition("\n")
        if replica.endswith("\n") and len(replica) > 1:
            recorded.add(replica[:-1])
    return sorted(recorded)


def _create_meta(root: str, meta_path: str, default_replica_id: str) -> None:
    """Write ``calliope.json`` atomically; if another process wrote it
    first, keep theirs."""
    meta = {"format": FORMAT_VERSION, "default_replica_id": default_replica_id}
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


def _read_meta(root: str, meta_path: str) -> str:
    """The default replica id in ``calliope.json``."""
    try:
        with open(meta_path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except PermissionError:
        raise  # the caller says what to do about permissions
    except (OSError, ValueError) as error:
        raise StorageError(
            f"{meta_path} is unreadable ({error}); it should hold the directory's format "
            f"and default replica id. Restore it, or pass replica_id= explicitly"
        ) from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise StorageError(
            f"{root} is in data format {found!r}; this Calliope reads format "
            f"{FORMAT_VERSION}. Use a matching Calliope version"
        )
    replica = meta.get("default_replica_id")
    if not isinstance(replica, str) or not replica:
        raise StorageError(f"{meta_path} has no default_replica_id; pass replica_id= explicitly")
    try:
        validate_replica_id(replica)
    except InvalidArgumentError as error:
        raise StorageError(
            f"{meta_path} holds a default_replica_id that is not a valid replica id ({error}); "
            f"restore the file, or pass replica_id= explicitly"
        ) from None
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
