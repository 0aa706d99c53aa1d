"""``calliope demo``: the story of :mod:`calliope.demo.story`, on a fresh store."""

from __future__ import annotations

import click

from calliope.errors import CalliopeError

__all__ = ["demo"]


@click.command()
@click.argument("target", required=False)
def demo(target: str | None) -> None:
    """Show Calliope at work: a cart replicated across processes, conflicts
    resolved, a CRDT counter, a projection, a snapshot and a fast restart.

    TARGET: a new or empty directory (kept afterwards, to look inside), or a
    postgresql:// DSN (a fresh schema, dropped at the end). Without it, a
    temporary directory, removed at the end."""
    from calliope.demo.story import run  # (registers the demo's event types)

    try:
        run(target)
    except CalliopeError as error:
        raise click.ClickException(str(error)) from None
