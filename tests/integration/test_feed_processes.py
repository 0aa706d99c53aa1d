"""The feed across processes: slow and fast writers, a live reader that
stops and resumes, and a resume after every position.

Two slow writers (each fsync followed by a pause, so their entries are
taken long before they commit) and two fast ones write to their own
streams, a shared plain stream and a replicated stream at once, while this
process follows the feed live, closing and resuming it from its last
position every few events. A feed that skipped a late committer, or
repeated an event on resuming, would show it here: what the live reader
saw must be exactly the final feed, which must hold every event once, each
stream in order, causes before effects; and resuming after any position
must give exactly the rest.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

import calliope
from tests.integration.events import ItemAdded
from tests.postgres import fresh_schema, postgres_dsn

_ROOT = Path(__file__).resolve().parents[2]
_COUNT = 100  # events per writer


def _start_writer(directory: str, replica: str, slow: bool, seed: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.feed_worker",
            directory,
            replica,
            "1" if slow else "0",
            str(_COUNT),
            str(seed),
        ],
        env=env,
        cwd=_ROOT,
    )


Key = tuple[str, str, int]  # stream, replica, sequence


def _key(envelope: calliope.Envelope[ItemAdded]) -> Key:
    return envelope.stream_id, envelope.replica_id, envelope.sequence


async def _follow(
    app: calliope.App, writers: list[subprocess.Popen[bytes]], seed: int
) -> list[Key]:
    """Follow the feed live until every writer exited and the feed is read
    to its end, resuming from the last position every few events."""
    feed = app.journal.feed(ItemAdded, prefix="feed/")
    choices = random.Random(seed)
    seen: list[Key] = []
    after: calliope.FeedPosition | None = None
    while True:
        stop_after = choices.randrange(1, 40)
        async with feed.live_query(after=after) as live:
            while stop_after:
                try:
                    envelope = await asyncio.wait_for(anext(live), 0.5)
                except TimeoutError:
                    if all(writer.poll() is not None for writer in writers):
                        return seen
                    continue
                seen.append(_key(envelope))
                after = envelope.position
                assert str(after) == str(calliope.FeedPosition.parse(str(after)))
                stop_after -= 1


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_resumed_feed_never_skips_a_late_commit_nor_repeats(
    tmp_path: Path, seed: int
) -> None:
    await _check_feed(str(tmp_path / "store"), seed)


async def test_on_postgresql_too() -> None:
    """Each writer process a 'machine' of its own: nothing shared but the server."""
    dsn = postgres_dsn()
    with fresh_schema(dsn) as schema:
        await _check_feed(f"{dsn}?schema={schema}", 4)


async def _check_feed(directory: str, seed: int) -> None:
    async with calliope.open(directory, replica_id="reader") as app:
        writers = [
            _start_writer(directory, f"w{n}", slow=n < 2, seed=seed * 10 + n) for n in range(4)
        ]
        try:
            seen = await _follow(app, writers, seed)
        finally:
            for writer in writers:
                if writer.poll() is None:
                    writer.kill()
                writer.wait()
        assert [writer.returncode for writer in writers] == [0, 0, 0, 0]
        feed = app.journal.feed(ItemAdded, prefix="feed/")
        final = await feed.query().to_list()
        keys = [_key(envelope) for envelope in final]

        # Every event once: the feed holds what the streams hold.
        assert len(keys) == len(set(keys)) == 4 * _COUNT
        stored: set[Key] = set()
        async for info in app.journal.streams("feed/"):
            if info.kind == "plain":
                stream = app.journal.event_stream(info.stream_id, ItemAdded)
                stored.update([_key(e) async for e in stream.query()])
            else:
                rep = app.journal.replicated_event_stream(info.stream_id, ItemAdded)
                stored.update([_key(e) async for e in rep.query()])
        assert set(keys) == stored

        # The live reader, stopped and resumed all along, saw exactly that.
        assert seen == keys

        # Each stream's (each log's) order, and causes before effects.
        last: dict[tuple[str, str], int] = {}
        for stream_id, replica, sequence in keys:
            log = (stream_id, replica if stream_id == "feed/rep" else "")
            assert sequence > last.get(log, 0), f"{log} out of order at {sequence}"
            last[log] = sequence
        replicated = [e for e in final if e.stream_id == "feed/rep"]
        for later_index, later in enumerate(replicated):
            for earlier in replicated[later_index + 1 :]:
                assert not earlier.version < later.version, "an effect came before its cause"

        # Resuming after any position gives exactly the rest.
        positions = [envelope.position for envelope in final if envelope.position is not None]
        assert positions == sorted(positions) and len(positions) == len(final)
        for index, envelope in enumerate(final):
            assert envelope.position is not None
            rest = [_key(e) async for e in feed.query(after=str(envelope.position))]
            assert rest == keys[index + 1 :], f"resumed after {envelope.position}"
