"""``calliope repair``: find the damaged logs of a store (as ``verify``
does) and move each one's damaged tail aside, after saying what it will do.

For each damaged log it calls ``app.journal.repair`` (see its docstring):
the log keeps its intact prefix, everything from the first damaged batch on
is moved aside beside it, never deleted, and those events are lost to
readers; the stream's next event takes the sequence after the prefix. It
asks before doing anything unless ``--yes``. Then it reads the store again
and exits as ``verify`` would: 0 intact, 3 if damage remains that this
command does not mend (a damaged snapshot is passed over by loads already;
restore a damaged feed index or anything else from a backup).
"""

from __future__ import annotations

import sys

import click

from calliope.cli.common import run_work
from calliope.cli.scan import DamagedLog, Scan, scan_target
from calliope.cli.verify import DAMAGED, damage_lines, summary
from calliope.shell.app import open_app
from calliope.shell.ports import RepairReport

__all__ = ["repair"]


async def _repair(target: str, logs: tuple[DamagedLog, ...]) -> list[RepairReport]:
    async with open_app(target) as app:
        return [await app.journal.repair(log.stream_id, replica_id=log.replica_id) for log in logs]


@click.command()
@click.argument("target")
@click.option("--yes", is_flag=True, help="Repair without asking first.")
def repair(target: str, yes: bool) -> None:
    """Move the damaged tail of each damaged log of TARGET aside (never
    deleting it), so that its stream reads and takes writes again; the
    events there are lost. Says what it will do and asks unless --yes.
    Exit 0 when the store then reads back intact, 3 if damage remains."""
    scan = run_work(lambda: scan_target(target))
    logs = tuple(log for log in scan.damaged_logs if log.repairable)
    if not logs:
        if scan.intact:
            click.echo(f"nothing to repair: {summary(scan)} read back intact")
            return
        _remaining(scan, target)
    click.echo(f"{len(logs)} damaged log(s):")
    for log in logs:
        click.echo(f"  {log.describe()}")
    click.echo(
        "Each keeps its events before the damage; the rest of it is moved aside beside the "
        "log (never deleted) and its events are lost to readers: restore the file from a "
        "backup or another replica instead if you have one."
    )
    if not yes:
        if not sys.stdin.isatty():
            raise click.ClickException(
                "not repairing: there is no terminal to ask on; pass --yes to repair without asking"
            )
        click.confirm("Repair them?", abort=True)
    for report in run_work(lambda: _repair(target, logs)):
        name = report.stream_id
        if report.replica_id is not None:
            name = f"{name} ({report.replica_id})"
        if not report.repaired:
            click.echo(
                f"not repaired {name}: this store moved nothing aside (PostgreSQL keeps no "
                "files to cut; restore the stream from a backup)"
            )
            continue
        click.echo(
            f"repaired {name}: keeps sequences 1..{report.last_sequence}; every event after "
            f"{report.last_sequence} is lost to readers ({report.bytes_moved:,} bytes moved "
            f"aside, never deleted: {', '.join(report.moved_aside)})"
        )
    after = run_work(lambda: scan_target(target))
    if after.intact:
        click.echo(f"intact now: {summary(after)}")
        return
    _remaining(after, target)


def _remaining(scan: Scan, target: str) -> None:
    for line in damage_lines(scan):
        click.echo(line, err=True)
    if scan.damaged_logs or scan.feed_damage or scan.damaged_store:
        advice = "restore what it names from a backup"
    else:  # only snapshots: a cache of the events
        advice = (
            "no event is lost: loads pass over a damaged snapshot, and later saves replace "
            "it; delete the files named to be rid of them now"
        )
    click.echo(
        f"{target}: damage remains that `calliope repair` does not mend (above); {advice}",
        err=True,
    )
    sys.exit(DAMAGED)
