"""The port contract suite: the cases every storage adapter must pass.

Each case is an async function ``case(new_store)`` checking one promise of
the ports in :mod:`calliope.shell.ports` (plain logs, replica logs, change
notification, snapshots, replica progress, the store's feed, the store's
lifecycle and leases) with plain data, below the public API. Our adapters
(memory, files) run it, and so should yours: the same cases, one
adapter-specific factory.

A factory (:data:`StoreFactory`) returns a fresh, unopened store on each call.
Two calls must give two stores on the **same** backing storage (the same
memory name, directory or database), each with **its own replica id**, so
that a case can open both at once and check that one sees what the other
wrote or holds. Cases use ids unique to each run, so the storage may be
shared between cases (a fresh one per test works too). Stores a case opens
are closed when it ends, passing or failing (:func:`opened`).

Run it with pytest (nothing here imports pytest)::

    import pytest

    from calliope.testing import contract

    @pytest.mark.parametrize("case", contract.CASES, ids=lambda c: c.__name__)
    async def test_contract(case: contract.ContractCase) -> None:
        await contract.run_case(case, my_factory)

where ``my_factory`` is a :data:`StoreFactory`, for example
``lambda: MyStore(dsn, replica_id=f"r-{next(counter)}")``. A failure is a
plain :class:`AssertionError` whose message says what the port did wrong;
the case's docstring states the contract it checks.
"""

from __future__ import annotations

from calliope.testing.contract._support import CASE_SECONDS as CASE_SECONDS
from calliope.testing.contract._support import (
    CASES,
    WAKE_SECONDS,
    ContractCase,
    StoreFactory,
    opened,
    run_case,
)
from calliope.testing.contract._support import QUIET_SECONDS as QUIET_SECONDS

# Importing a case module registers its cases in CASES, so the order of these
# imports is the order of CASES: keep it (plain logs, replica logs, change
# notification, snapshots, progress, the store), not sorted.
# isort: off
from calliope.testing.contract import plain_log as plain_log
from calliope.testing.contract import replica_logs as replica_logs
from calliope.testing.contract import changes as changes
from calliope.testing.contract import snapshots as snapshots
from calliope.testing.contract import progress as progress
from calliope.testing.contract import catalog as catalog
from calliope.testing.contract import feed as feed
from calliope.testing.contract import store as store

# isort: on

__all__ = [
    "CASES",
    "WAKE_SECONDS",
    "ContractCase",
    "StoreFactory",
    "opened",
    "run_case",
]
