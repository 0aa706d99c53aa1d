"""``calliope replicas``: the replicas a store's replicator has seen, their
heartbeats, and what each reported having applied of each key."""

from __future__ import annotations

import time

import click

from calliope.cli.common import raw_store, run_work
from calliope.cli.output import Listing
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
            columns = ("replica", "state", "heartbeat_age_s")
            with Listing(columns, as_json=as_json, title="replicas") as rows:
                for beat in await store.progress.heartbeats():
                    age = round(max(0, now_us - beat.timestamp_us) / 1e6, 1)
                    rows.add(beat.replica_id, "running" if beat.running else "stopped", age)
            if not as_json:
                click.echo("")
            columns = ("key", "replica", "applied")
            with Listing(columns, as_json=as_json, title="applied per key") as rows:
                async for page in store.catalog.list_streams(KEY_PREFIX):
                    for stream_id, _ in page:
                        key = stream_id[len(KEY_PREFIX) :]
                        for report in await store.progress.reports(key):
                            rows.add(key, report.replica_id, sum(report.delivered.values()))
        finally:
            await store.aclose()

    run_work(listing)
