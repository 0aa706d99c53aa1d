"""``calliope verify``: read every event of every stream (and the feed), as
the store's own readers do, and say whether anything is damaged.

Every frame's checksum, every log's committed extent, sequences that must
follow on, the feed's index entries: whatever a reader would refuse is
reported with the file (or table) and offset it names, and the command
exits 3. Read-only: nothing is repaired (``app.journal.repair`` does that).
O(size of the store); memory one page.
"""

from __future__ import annotations

import asyncio
import sys

import click

from calliope.cli.inspect import raw_store
from calliope.core.ids import RESERVED_PREFIX
from calliope.errors import CalliopeError, CorruptJournalError

__all__ = ["verify"]

DAMAGED = 3
"""The exit code when damage was found."""


@click.command()
@click.argument("target")
def verify(target: str) -> None:
    """Read all of TARGET: exit 0 if every stream and the feed read back
    intact, 3 naming the file and offset of the first damage found."""
    show_progress = sys.stderr.isatty()

    async def reading() -> tuple[int, int, int]:
        store = raw_store(target)
        await store.open()
        streams = events = entries = 0
        try:
            for prefix in (None, RESERVED_PREFIX):  # (Calliope's own streams too)
                async for page in store.catalog.list_streams(prefix):
                    for stream_id, replicated in page:
                        if prefix is None and stream_id.startswith(RESERVED_PREFIX):
                            continue
                        streams += 1
                        readers = (
                            [
                                store.replicated.read_replica(stream_id, replica, 1)
                                for replica in await store.replicated.replicas(stream_id)
                            ]
                            if replicated
                            else [store.plain.read(stream_id, 1, None)]
                        )
                        for reader in readers:
                            async for batches in reader:
                                events += sum(len(batch.items) for batch in batches)
                        if show_progress:
                            click.echo(
                                f"\r{streams:,} streams, {events:,} events", err=True, nl=False
                            )
            for prefix in (None, RESERVED_PREFIX):
                start = 0
                while True:
                    feed_page = await store.feed.read_feed(start, prefix, limit=4096)
                    entries += len(feed_page.entries)
                    start = feed_page.next_entry
                    if not feed_page.more:
                        break
        finally:
            await store.aclose()
            if show_progress:
                click.echo("", err=True)
        return streams, events, entries

    try:
        streams, events, entries = asyncio.run(reading())
    except CorruptJournalError as error:
        click.echo(f"damage: {error}", err=True)
        sys.exit(DAMAGED)
    except CalliopeError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"intact: {streams:,} streams, {events:,} events, {entries:,} feed batches")
