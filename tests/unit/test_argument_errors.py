"""A caller's mistake is an InvalidArgumentError that says what to pass.

Faults guarded here: a clock returning a naive datetime (or no datetime)
made persist raise a raw TypeError; a directory path with a NUL character
raised a raw ValueError from ``os``; ``poll_interval=True`` was taken for 1
second; ``load_snapshot`` with a type it cannot decode into answered None
while no snapshot existed.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest

import calliope


@attrs.frozen
class Added:
    sku: str


@attrs.frozen
class State:
    count: int = 0


def memory() -> str:
    return f"memory://arguments-{uuid.uuid4().hex}"


NAIVE = datetime.datetime(2026, 1, 1, 12)


@pytest.mark.parametrize(
    ("reading", "said"),
    [(NAIVE, "a naive datetime"), ("now", "'now'"), (NAIVE.timestamp(), "17")],
)
async def test_a_clock_must_return_an_aware_datetime(reading: object, said: str) -> None:
    async with calliope.open(memory(), clock=lambda: reading) as app:  # type: ignore[arg-type,return-value]
        plain = app.journal.event_stream("s", Added)
        shared = app.journal.replicated_event_stream("r", Added)
        writes = [
            plain.persist(Added("a")),
            plain.persist_all([Added("a")]),
            shared.persist(Added("a")),
            app.snapshots.save_snapshot("s", State(), sequence=0),
        ]
        for write in writes:
            with pytest.raises(calliope.InvalidArgumentError, match="aware UTC datetime") as caught:
                await write
            assert said in str(caught.value) and "datetime.now" in str(caught.value)
        assert await plain.last_sequence() == 0  # nothing written
        assert await shared.query().to_list() == []
        assert await app.snapshots.load_snapshot("s", State) is None

    # An aware datetime in another zone is converted to UTC.
    paris = datetime.datetime(2026, 7, 1, 14, tzinfo=ZoneInfo("Europe/Paris"))
    async with calliope.open(memory(), clock=lambda: paris) as app:
        envelope = await app.journal.event_stream("s", Added).persist(Added("a"))
        snapshot = await app.snapshots.save_snapshot("s", State(), sequence=1)
    utc = datetime.datetime(2026, 7, 1, 12, tzinfo=datetime.UTC)
    assert envelope.timestamp == utc and envelope.timestamp.tzinfo is datetime.UTC
    assert snapshot.timestamp == utc


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"clock": datetime.datetime.now(datetime.UTC)}, "clock must be a function"),
        ({"poll_interval": True}, "poll_interval"),
        ({"read_only": "yes"}, "read_only must be True or False"),
    ],
)
def test_open_refuses_bad_options_before_any_io(options: dict[str, Any], said: str) -> None:
    with pytest.raises(calliope.InvalidArgumentError, match=said):
        calliope.open(memory(), **options)


def test_a_path_with_a_nul_character_is_refused() -> None:
    with pytest.raises(calliope.InvalidArgumentError, match="NUL"):
        calliope.open("data\0dir")


async def test_load_snapshot_refuses_a_type_it_cannot_decode_into() -> None:
    async with calliope.open(memory()) as app:
        load: Callable[..., Any] = app.snapshots.load_snapshot
        with pytest.raises(calliope.InvalidArgumentError, match="class"):
            await load("absent", 42)
