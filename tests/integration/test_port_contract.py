"""The port contract suite (calliope.testing.contract) on our adapters."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

import pytest

from calliope.adapters.files.store import FileStore
from calliope.adapters.memory import MemoryStore
from calliope.adapters.postgres.store import PostgresStore
from calliope.shell.ports import StorePort
from calliope.testing import contract
from tests.postgres import fresh_schema, postgres_dsn


def memory_factory() -> contract.StoreFactory:
    """Stores on one fresh memory backend, each with its own replica id. The
    backend lives while a store on it does; every case keeps one open."""
    name = f"port-contract-{uuid.uuid4().hex}"
    counter = itertools.count(1)

    def new_store() -> StorePort:
        return MemoryStore(name, replica_id=f"store-{next(counter)}")

    return new_store


def file_factory(root: Path) -> contract.StoreFactory:
    """Stores on one directory, each with its own replica id; small
    segments so that reads and change polling cross segment rolls."""
    counter = itertools.count(1)

    def new_store() -> StorePort:
        return FileStore(
            root,
            replica_id=f"store-{next(counter)}",
            durability="flush",
            segment_bytes=4096,
            poll_interval=0.01,
        )

    return new_store


def postgres_factory(dsn: str, schema: str) -> contract.StoreFactory:
    """Stores on one schema, each with its own replica id."""
    counter = itertools.count(1)

    def new_store() -> StorePort:
        return PostgresStore(
            dsn, schema=schema, replica_id=f"store-{next(counter)}", poll_interval=0.01
        )

    return new_store


@pytest.mark.parametrize("case", contract.CASES, ids=lambda c: c.__name__)
async def test_postgres_store(case: contract.ContractCase) -> None:
    dsn = postgres_dsn()
    with fresh_schema(dsn) as schema:
        await contract.run_case(case, postgres_factory(dsn, schema))


@pytest.mark.parametrize("case", contract.CASES, ids=lambda c: c.__name__)
async def test_memory_store(case: contract.ContractCase) -> None:
    await contract.run_case(case, memory_factory())


@pytest.mark.parametrize("case", contract.CASES, ids=lambda c: c.__name__)
async def test_file_store(case: contract.ContractCase, tmp_path: Path) -> None:
    await contract.run_case(case, file_factory(tmp_path / "data"))


def test_every_case_is_documented_and_named_uniquely() -> None:
    names = [case.__name__ for case in contract.CASES]
    assert len(names) == len(set(names)) >= 30
    assert all(case.__doc__ for case in contract.CASES)
