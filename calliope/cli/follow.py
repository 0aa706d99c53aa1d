"""``calliope tail`` and ``calliope feed``: a stream's or the store's events
as JSON lines, and with ``-f`` the new ones as they come (until Ctrl-C).

Read-only, like every inspecting command; what is printed is as stored
(the command has none of the application's classes). Memory stays flat:
one page at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import click

from calliope.cli.common import raw_store, run_work
from calliope.cli.inspect import check_stream_id, event_lines, stream_kind
from calliope.core.feed_position import FeedPosition
from calliope.errors import InvalidArgumentError
from calliope.shell.feed import numbered
from calliope.shell.ports import StorePort

__all__ = ["feed", "tail"]

_PAGE = 1024


@contextlib.asynccontextmanager
async def _opened(target: str) -> AsyncIterator[StorePort]:
    store = raw_store(target)
    await store.open()
    try:
        yield store
    finally:
        await store.aclose()


@click.command()
@click.argument("target")
@click.argument("stream")
@click.option("--from", "first", type=click.IntRange(min=1), default=1, help="First sequence.")
@click.option("-f", "--follow", is_flag=True, help="Go on printing new events (Ctrl-C ends).")
def tail(target: str, stream: str, first: int, follow: bool) -> None:
    """Print the events of plain stream STREAM from a sequence as JSON lines;
    with -f, then each new one (waiting for the stream if it has none yet)."""
    check_stream_id(stream)

    async def printing() -> None:
        async with _opened(target) as store, store.changes.watch(stream) as watcher:
            replicated = await stream_kind(store, stream)
            if replicated:
                raise click.ClickException(
                    f"{stream!r} is a replicated stream: `calliope show {target} {stream}` "
                    "prints each replica's log (tail follows a plain stream)"
                )
            if replicated is None and not follow:
                raise click.ClickException(
                    f"{target} has no stream {stream!r}; `calliope streams {target}` lists them "
                    "(with -f, tail waits for it)"
                )
            after = first
            while True:
                async for batches in store.plain.read(stream, after, None):
                    for batch in batches:
                        click.echo("\n".join(event_lines(stream, batch)))
                        after = batch.last_sequence + 1
                if not follow:
                    return
                await watcher.wait()

    with contextlib.suppress(KeyboardInterrupt):
        run_work(printing)


@click.command()
@click.argument("target")
@click.option("--prefix", default=None, help="Only streams whose id starts with it.")
@click.option("--after", default=None, help="Resume after this position (as printed).")
@click.option("-f", "--follow", is_flag=True, help="Go on printing new events (Ctrl-C ends).")
def feed(target: str, prefix: str | None, after: str | None, follow: bool) -> None:
    """Print every event of every stream of TARGET in feed order as JSON
    lines, each with its "position"; with -f, then each new one."""
    try:
        resume = None if after is None else FeedPosition.parse(after)
    except InvalidArgumentError as error:
        raise click.BadParameter(str(error), param_hint="--after") from None

    async def printing() -> None:
        async with _opened(target) as store, store.feed.watch_feed() as watcher:
            start = 0 if resume is None else resume.entry
            while True:
                page = await store.feed.read_feed(start, prefix, limit=_PAGE)
                for entry, index in numbered(page.entries):
                    lines = event_lines(entry.stream_id, entry.batch, (entry.entry, index))
                    if resume is not None and entry.entry == resume.entry:
                        del lines[: max(0, resume.index - index + 1)]  # (printed before)
                    if lines:
                        click.echo("\n".join(lines))
                start = page.next_entry
                if page.more:
                    continue
                if not follow:
                    return
                await watcher.wait()

    with contextlib.suppress(KeyboardInterrupt):
        run_work(printing)
