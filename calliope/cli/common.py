"""What every ``calliope`` command shares: how it runs its work (errors as
one line and an exit code) and how it opens a store read-only."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from calliope.errors import CalliopeError, CorruptJournalError
from calliope.shell.ports import StorePort
from calliope.shell.targets import store_for

__all__ = ["DAMAGED", "check_target", "raw_store", "run_work"]

T = TypeVar("T")

DAMAGED = 3
"""The exit code when a command met damaged data."""


def run_work(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work``; a CalliopeError becomes one line on stderr and exit 1,
    or exit 3 (:data:`DAMAGED`) for damaged data."""
    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except CorruptJournalError as error:
        click.echo(f"damage: {error}", err=True)
        sys.exit(DAMAGED)
    except CalliopeError as error:
        raise click.ClickException(str(error)) from None


def check_target(target: str) -> None:
    """A click usage error for a target the command cannot look into."""
    if target.startswith("memory://"):
        raise click.BadParameter(
            "a memory:// store lives inside the process that opened it; the command can look "
            "into a directory or a postgresql:// DSN",
            param_hint="TARGET",
        )


def raw_store(target: str) -> StorePort:
    """The store at ``target``, unopened, read-only: its ports give stored
    records as plain data."""
    check_target(target)
    store, _, _ = store_for(
        target,
        replica_id=None,
        durability="fsync",
        segment_bytes=64 * 1024 * 1024,
        poll_interval=0.01,
        read_only=True,
    )
    return store
