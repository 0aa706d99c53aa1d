"""The error for a write to a store opened with ``read_only=True``, the same
in every adapter."""

from __future__ import annotations

from calliope.errors import ReadOnlyStoreError

__all__ = ["read_only_refused"]


def read_only_refused(store: str, what: str) -> ReadOnlyStoreError:
    """The error for doing ``what`` (e.g. "writing to stream 'x'") on the
    read-only ``store`` (its path or ``memory://name``)."""
    return ReadOnlyStoreError(
        f"the store {store} was opened with read_only=True, so {what} is refused "
        f"(nothing was written); open it without read_only to write"
    )
