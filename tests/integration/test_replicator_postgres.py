"""The replicator's suite (tests/unit/test_replicator.py), unchanged, on
PostgreSQL: each ``store()`` it asks for is a fresh schema."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.postgres import fresh_schema, postgres_dsn
from tests.unit import test_replicator as suite


@pytest.fixture(autouse=True)
def on_postgres(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    dsn = postgres_dsn()
    with contextlib.ExitStack() as schemas:

        def store() -> str:
            return f"{dsn}?schema={schemas.enter_context(fresh_schema(dsn))}"

        monkeypatch.setattr(suite, "store", store)
        yield


for _name in dir(suite):
    if _name.startswith("test_"):
        globals()[_name] = getattr(suite, _name)
