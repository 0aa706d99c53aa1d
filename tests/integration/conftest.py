"""Fixtures for the contract suite: one store target per adapter.

Every test taking ``target`` runs once per adapter (memory, file,
PostgreSQL: a fresh schema per test, named in the target). ``open_app`` opens an app on that target.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import calliope
from tests.postgres import fresh_schema, postgres_dsn

ADAPTERS = ["memory", "file", "postgres"]


@pytest.fixture(params=ADAPTERS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield f"memory://test-{uuid.uuid4().hex}"
    elif request.param == "file":
        yield str(tmp_path / "data")
    else:
        dsn = postgres_dsn()
        with fresh_schema(dsn) as schema:
            yield f"{dsn}?schema={schema}"


OpenApp = Callable[..., calliope.App]


@pytest.fixture
def open_app(target: str) -> OpenApp:
    def opener(**options: Any) -> calliope.App:
        return calliope.open(target, **options)

    return opener
