"""``calliope streams`` and ``calliope show``: what a store holds.

Both open the store read-only (nothing is written, no replica lease taken)
and stream what they print: a store of a million streams, or a stream of a
million events, prints in constant memory. ``show`` prints events as JSON
lines as stored (type name, schema version, data): the command has none of
the application's classes, so nothing is decoded into them.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import click

from calliope.cli.common import check_target, raw_store, run_work
from calliope.cli.output import Listing
from calliope.cli.scan import lost_replica_events
from calliope.core.ids import validate_stream_id
from calliope.errors import CalliopeError
from calliope.shell.app import open_app
from calliope.shell.ports import RecordBatch, StorePort
from calliope.shell.records import from_timestamp_us

__all__ = ["check_stream_id", "event_lines", "show", "stream_kind", "streams"]


def _plain(value: Any) -> Any:
    """Stored plain data as JSON can hold it: bytes as {"$bytes": base64},
    a float JSON has no number for (NaN, ±infinity) as {"$float": "nan"}."""
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": str(value)}
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


@click.command()
@click.argument("target")
@click.option("--prefix", default=None, help="Only streams whose id starts with it.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def streams(target: str, prefix: str | None, as_json: bool) -> None:
    """List the streams of TARGET: id, kind, events, replicas."""

    check_target(target)

    async def listing() -> None:
        async with open_app(target, read_only=True) as app:
            with Listing(("stream", "kind", "events", "replicas"), as_json=as_json) as rows:
                async for info in app.journal.streams(prefix):
                    events = (
                        info.last_sequence
                        if info.last_sequence is not None
                        else (info.version.total if info.version is not None else 0)
                    )
                    rows.add(info.stream_id, info.kind, events, list(info.replicas))

    run_work(listing)


def check_stream_id(stream: str) -> None:
    """A click usage error (exit 2) for a STREAM argument no stream can have."""
    try:
        validate_stream_id(stream, reserved=True)
    except CalliopeError as error:
        raise click.BadParameter(str(error), param_hint="STREAM") from None


async def stream_kind(store: StorePort, stream: str) -> bool | None:
    """Whether ``stream`` is replicated (True), plain (False), or absent
    (None). O(streams whose id starts with it)."""
    async for page in store.catalog.list_streams(stream):
        for stream_id, replicated in page:
            if stream_id == stream:
                return replicated
    return None


def _since(since: str | None, replicated: bool) -> dict[str, int]:
    """``--since`` as the sequence each log was seen up to ("" for a plain
    stream's log); a click usage error (exit 2) if it does not parse."""
    if since is None:
        return {}
    try:
        if not replicated:
            sequence = int(since)
            if sequence < 0:
                raise ValueError(since)
            return {"": sequence}
        seen = {}
        for part in since.split(","):
            replica, _, count = part.strip().rpartition(":")
            if not replica or int(count) < 0:
                raise ValueError(part)
            seen[replica] = int(count)
        return seen
    except ValueError:
        wanted = (
            "a sequence (e.g. 12)" if not replicated else "a version such as 'laptop:3,phone:1'"
        )
        raise click.BadParameter(f"{since!r} is not {wanted}", param_hint="--since") from None


def event_lines(
    stream_id: str, batch: RecordBatch, position: tuple[int, int] | None = None
) -> list[str]:
    """The batch's events as JSON lines, as stored; with ``position`` (its
    first event's feed entry and index), each line also has its
    ``"position"``. Strict JSON (no NaN)."""
    lines = []
    timestamp = from_timestamp_us(batch.timestamp_us).isoformat()
    for index, (type_name, schema_version, data) in enumerate(batch.items):
        record = {
            "stream": stream_id,
            "sequence": batch.first_sequence + index,
            "replica": batch.writer,
            "version": batch.version_at(index),
            "timestamp": timestamp,
            "type": type_name,
            "schema_version": schema_version,
            "data": _plain(data),
        }
        if position is not None:
            record["position"] = f"{position[0]}.{position[1] + index}"
        lines.append(json.dumps(record, ensure_ascii=False, allow_nan=False))
    return lines


async def _check_not_lost(port: StorePort, stream: str, replicas: list[str]) -> None:
    """Raise if a replica log lost events the others' versions name (what
    was printed then has causes that are gone): scan.lost_replica_events.
    O(replicas): each log's last version."""
    versions = {r: await port.replicated.replica_version(stream, r) for r in replicas}
    lost = lost_replica_events(stream, versions)
    if lost:
        raise lost[0].error


@click.command()
@click.argument("target")
@click.argument("stream")
@click.option("--from", "first", type=click.IntRange(min=1), default=1, help="First sequence.")
@click.option("--to", "last", type=click.IntRange(min=0), default=None, help="Last sequence.")
@click.option(
    "--since",
    default=None,
    metavar="VERSION",
    help="Only events after VERSION: a sequence for a plain stream; for a replicated "
    "stream a version such as 'laptop:3,phone:1' (the events it has not seen).",
)
def show(target: str, stream: str, first: int, last: int | None, since: str | None) -> None:
    """Print the events of STREAM in TARGET as JSON lines (as stored). A
    replicated stream prints each replica's log in turn."""

    check_stream_id(stream)
    if last is not None and last < first:
        raise click.BadParameter(f"--to {last} is before --from {first}", param_hint="--to")

    async def printing() -> None:
        port = raw_store(target)
        await port.open()
        try:
            replicated = await stream_kind(port, stream)
            if replicated is None:
                raise click.ClickException(
                    f"{target} has no stream {stream!r}; `calliope streams {target}` lists them"
                )
            seen = _since(since, replicated)
            if not replicated:
                start = max(first, seen.get("", 0) + 1)
                async for batches in port.plain.read(stream, start, last):
                    for batch in batches:
                        click.echo("\n".join(event_lines(stream, batch)))
                return
            replicas = await port.replicated.replicas(stream)
            for replica in replicas:
                start = max(first, seen.get(replica, 0) + 1)
                reader = port.replicated.read_replica(stream, replica, start, last)
                async for batches in reader:
                    for batch in batches:
                        click.echo("\n".join(event_lines(stream, batch)))
            await _check_not_lost(port, stream, replicas)
        finally:
            await port.aclose()

    run_work(printing)
