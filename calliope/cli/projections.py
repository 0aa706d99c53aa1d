"""``calliope projections``: the projections a store holds, where each has
folded to, and how far the feed has gone past it.

A projection's state and feed position are saved together as the snapshot
``$calliope/projection/<name>`` (:mod:`calliope.shell.projection`); this
reads those snapshots as plain data (the command has none of the
application's classes) and counts the feed's events after each position.
"""

from __future__ import annotations

import click

from calliope.cli.common import raw_store, run_work
from calliope.cli.output import Listing
from calliope.core.feed_position import FeedPosition
from calliope.errors import CalliopeError
from calliope.shell.feed import numbered
from calliope.shell.ports import StorePort
from calliope.shell.records import from_timestamp_us

__all__ = ["PROJECTION_PREFIX", "events_after", "projections"]

PROJECTION_PREFIX = "$calliope/projection/"
"""The snapshot ids of projections: this, then the projection's name."""

COUNT_LIMIT = 100_000
"""Events ``projections`` counts behind a position before it says "more"."""


async def events_after(store: StorePort, position: FeedPosition | None, limit: int) -> int:
    """How many of the feed's events (of every stream and type) come after
    ``position`` (all of them for None), counting at most ``limit`` + 1.
    O(entries and events after the position, up to the limit); memory one
    page. Events are counted, never decoded."""
    start = 0 if position is None else position.entry
    count = 0
    while count <= limit:
        page = await store.feed.read_feed(start, None, limit=4096)
        for entry, index in numbered(page.entries):
            size = len(entry.batch.items)
            if position is not None and entry.entry == position.entry:
                count += max(0, min(size, index + size - 1 - position.index))
            else:
                count += size
        start = page.next_entry
        if not page.more:
            break
    return count


@click.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def projections(target: str, as_json: bool) -> None:
    """List the projections of TARGET: name, the feed position it has folded
    to, when it last saved, its state's type, and how many of the feed's
    events (of every stream) come after its position ("100000+" past that).
    Sorted by name (memory O(projections) for their names)."""

    async def listing() -> None:
        store = raw_store(target)
        await store.open()
        columns = ("projection", "position", "saved", "state_type", "feed_events_after")
        try:
            names = sorted(
                [i async for page in store.snapshots.ids(PROJECTION_PREFIX) for i in page]
            )
            with Listing(columns, as_json=as_json) as rows:
                for snapshot_id in names:
                    record = await store.snapshots.load(snapshot_id)
                    name = snapshot_id[len(PROJECTION_PREFIX) :]
                    if record is None:  # (every kept copy damaged: `calliope verify` names them)
                        rows.add(name, None, None, "damaged: folds again from the start", None)
                        continue
                    data = record.data
                    saved = data.get("position") if isinstance(data, dict) else None
                    try:
                        position = None if saved is None else FeedPosition.parse(saved)
                    except CalliopeError:
                        position = None
                    behind = await events_after(store, position, COUNT_LIMIT)
                    rows.add(
                        name,
                        None if position is None else str(position),
                        from_timestamp_us(record.timestamp_us).isoformat(),
                        record.type_name,
                        behind if behind <= COUNT_LIMIT else f"{COUNT_LIMIT}+",
                    )
        finally:
            await store.aclose()

    run_work(listing)
