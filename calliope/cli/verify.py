"""``calliope verify``: read all of a store, as its own readers do, and say
whether anything is damaged (:mod:`calliope.cli.scan`): every log's frames
and committed extent, the feed's index, every kept snapshot.

Read-only: nothing is repaired (``calliope repair`` does that). Exit 0 when
all is intact, 3 when anything is damaged, each damage on its own line
naming the file (or table) and offset. O(size of the store); memory one
page (and the stream ids, for the progress bar).
"""

from __future__ import annotations

import sys

import click

from calliope.cli.common import DAMAGED, run_work
from calliope.cli.scan import Scan, scan_target

__all__ = ["DAMAGED", "verify"]


def damage_lines(scan: Scan) -> list[str]:
    """One line per damage the scan found."""
    lines = [f"damage: {line}" for line in scan.damaged_store]
    lines += [f"damage: {log.describe()}" for log in scan.damaged_logs]
    if scan.feed_damage is not None:
        lines.append(f"damage: the feed: {scan.feed_damage}")
    lines.extend(f"damage: {line}" for line in scan.damaged_snapshots)
    return lines


def summary(scan: Scan) -> str:
    return (
        f"{scan.streams:,} streams, {scan.events:,} events, "
        f"{scan.feed_batches:,} feed batches, {scan.snapshots:,} snapshots"
    )


@click.command()
@click.argument("target")
def verify(target: str) -> None:
    """Read all of TARGET: exit 0 if every stream, the feed and every
    snapshot read back intact; 3 if not, naming the file and offset of each
    damage found (on stderr). A progress bar on a terminal."""

    scan = run_work(lambda: scan_target(target))
    if scan.intact:
        click.echo(f"intact: {summary(scan)}")
        return
    for line in damage_lines(scan):
        click.echo(line, err=True)
    click.echo(f"read: {summary(scan)}; `calliope repair {target}` moves damaged logs' tails aside")
    sys.exit(DAMAGED)
