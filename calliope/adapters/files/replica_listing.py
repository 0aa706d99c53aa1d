"""Which replicas have a log in a replicated stream, as its directory says.

A replicated stream keeps one log per replica in
``streams/<h2>/<h>/replicas/<sha256(replica id)>/``, the replica id in that
directory's ``id`` file. Listing them costs a ``listdir`` and, for a
directory not seen before, reading its ``id``: the ids are cached (bounded),
and so is each stream's list, kept while the ``replicas`` directory's link
count (2 + its subdirectories) says no replica was added since.

Contract: blocking, safe to call from worker threads (the caches are
guarded by the caller's lock); a replica log being created (its directory
made, its ``id`` not yet written) is left out until its ``id`` exists.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["ReplicaListing"]

_REPLICA_NAMES = 4096


class ReplicaListing:
    """The replica logs of replicated streams (``stream_directory`` maps a
    stream id to its directory); at most ``bound`` streams' lists kept."""

    def __init__(
        self, stream_directory: Callable[[str], str], caches: threading.Lock, bound: int
    ) -> None:
        self._stream_directory = stream_directory
        self._caches = caches
        self._bound = bound
        self._names: OrderedDict[str, str] = OrderedDict()  # directory name -> replica id
        # stream -> (link count of its replicas directory, replica ids then)
        self._lists: OrderedDict[str, tuple[int, list[str]]] = OrderedDict()

    def replica_ids(self, stream_id: str) -> list[str]:
        """The replicas with a log in this replicated stream, sorted.
        O(replicas); each replica's id file is read once (cached)."""
        return self.list_replicas(stream_id)[0]

    def list_replicas(self, stream_id: str) -> tuple[list[str], bool]:
        """The replicas with a log, and whether every entry of the
        ``replicas`` directory was one (False while one is being created:
        its directory exists, its id file not yet, and it has no events)."""
        directory = os.path.join(self._stream_directory(stream_id), "replicas")
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return [], True
        replicas = []
        complete = True
        for name in names:
            replica = self._names.get(name)
            if replica is None:
                try:
                    with open(os.path.join(directory, name, "id"), "rb") as handle:
                        replica = handle.read().decode("utf-8")
                except (FileNotFoundError, NotADirectoryError):
                    complete = False  # being created right now, or not a replica log
                    continue
                with self._caches:
                    self._names[name] = replica
                    if len(self._names) > _REPLICA_NAMES:
                        self._names.popitem(last=False)
            replicas.append(replica)
        return sorted(replicas), complete

    def cached(self, stream_id: str) -> list[str] | None:
        """The replicas of a stream as last listed, if the ``replicas``
        directory's link count says none was added since (else listed
        again); None if the stream has no ``replicas`` directory."""
        directory = os.path.join(self._stream_directory(stream_id), "replicas")
        try:
            links = os.stat(directory).st_nlink
        except FileNotFoundError:
            return None
        cached = self._lists.get(stream_id)
        if cached is not None and cached[0] == links:
            return cached[1]
        replicas, complete = self.list_replicas(stream_id)
        if complete:  # a replica being created is listed again next time
            self._lists[stream_id] = (links, replicas)
            if len(self._lists) > self._bound:
                self._lists.popitem(last=False)
        return replicas
