"""Fixtures for the contract suite: one store target per adapter.

Every test taking ``target`` runs once per adapter (memory, file; PostgreSQL
joins when its adapter exists). ``open_app`` opens an app on that target.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import calliope

ADAPTERS = ["memory", "file"]


@pytest.fixture(params=ADAPTERS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://test-{uuid.uuid4().hex}"
    return str(tmp_path / "data")


OpenApp = Callable[..., calliope.App]


@pytest.fixture
def open_app(target: str) -> OpenApp:
    def opener(**options: Any) -> calliope.App:
        return calliope.open(target, **options)

    return opener
