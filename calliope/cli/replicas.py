"""``calliope replicas``: the replicas a store's replicator has seen, their
heartbeats, and what each reported having applied of each key."""

from __future__ import annotations

import json
import time

import click

from calliope.cli.inspect import _run, raw_store
from calliope.shell.replicator import KEY_PREFIX

__all__ = ["replicas"]


@click.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def replicas(target: str, as_json: bool) -> None:
    """List the replicas of TARGET's replicator: running or stopped, seconds
    since their last heartbeat, and per key the operations each applied."""

    async def listing() -> None:
        store = raw_store(target)
        await store.open()
        try:
            now_us = time.time_ns() // 1000
            if not as_json:
                click.echo("replica\tstate\theartbeat_age_s")
            for beat in await store.progress.heartbeats():
                age = round(max(0, now_us - beat.timestamp_us) / 1e6, 1)
                state = "running" if beat.running else "stopped"
                if as_json:
                    line = {"replica": beat.replica_id, "state": state, "heartbeat_age_s": age}
                    click.echo(json.dumps(line, ensure_ascii=False))
                else:
                    click.echo(f"{beat.replica_id}\t{state}\t{age}")
            if not as_json:
                click.echo("\nkey\treplica\tapplied")
            async for page in store.catalog.list_streams(KEY_PREFIX):
                for stream_id, _ in page:
                    key = stream_id[len(KEY_PREFIX) :]
                    for report in await store.progress.reports(key):
                        applied = sum(report.delivered.values())
                        if as_json:
                            line = {"key": key, "replica": report.replica_id, "applied": applied}
                            click.echo(json.dumps(line, ensure_ascii=False))
                        else:
                            click.echo(f"{key}\t{report.replica_id}\t{applied}")
        finally:
            await store.aclose()

    _run(listing)
