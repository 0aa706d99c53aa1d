"""The ``eventsourcing`` library's side of ``benchmarks.versus`` (and of
``benchmarks.postgres``'s recorder figure).

Its own module because it imports ``eventsourcing`` at the top (the
optional ``calliope[bench]`` extra: importers catch the ImportError) and
because an aggregate's event classes must live at a module's top level,
where the library's topics (``module:qualname``) find them again on replay.

The workload is the journal benchmark's: ``ItemAdded(sku, quantity,
price_cents)`` events (``benchmarks.journal.sample``), on one ``Cart``
aggregate whose state is the same fold as the Calliope side's
(``benchmarks.journal.add``: events, quantity, cents). The event class is
declared explicitly with an ``apply`` method, the library's documented
equivalent of the ``@event`` decorator (about 30% faster here: no method
signature to bind per event). Everything is synchronous, as the library is.
"""

from __future__ import annotations

import gc
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from benchmarks.journal import Totals, sample
from benchmarks.report import rate


class Cart(Aggregate):
    """One aggregate whose state is the Calliope side's fold: event count,
    total quantity, total cents."""

    def __init__(self) -> None:
        self.items = 0
        self.quantity = 0
        self.cents = 0

    class ItemAdded(Aggregate.Event):
        sku: str
        quantity: int
        price_cents: int

        def apply(self, aggregate: Any) -> None:
            aggregate.items += 1
            aggregate.quantity += self.quantity
            aggregate.cents += self.quantity * self.price_cents

    def add_item(self, sku: str, quantity: int, price_cents: int) -> None:
        self.trigger_event(self.ItemAdded, sku=sku, quantity=quantity, price_cents=price_cents)

    def add_sample(self, n: int) -> None:
        """Trigger the ``n``-th event of the workload (``journal.sample(n)``)."""
        event = sample(n)
        self.add_item(event.sku, event.quantity, event.price_cents)

    @property
    def totals(self) -> Totals:
        return (self.items, self.quantity, self.cents)


App = Application[uuid.UUID]


# -- configuration, by the environment as the library's docs say -----------------


def sqlite_env(path: str) -> dict[str, str]:
    """An application on the SQLite file ``path`` (the library sets WAL mode)."""
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path}


def popo_env() -> dict[str, str]:
    """An application on the library's in-memory recorders ("plain old Python objects")."""
    return {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def _postgres_params(dsn: str) -> dict[str, Any]:
    url = urlparse(dsn)
    return {
        "dbname": url.path.lstrip("/"),
        "host": url.hostname or "127.0.0.1",
        "port": url.port or 5432,
        "user": url.username or "postgres",
        "password": url.password or "",
    }


def postgres_env(dsn: str, schema: str, pool_size: int) -> dict[str, str]:
    """An application on PostgreSQL at ``dsn``, its tables in ``schema``
    (which must exist), with ``pool_size`` pooled connections (no overflow
    connections, which the pool opens and closes per use)."""
    params = _postgres_params(dsn)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": params["dbname"],
        "POSTGRES_HOST": params["host"],
        "POSTGRES_PORT": str(params["port"]),
        "POSTGRES_USER": params["user"],
        "POSTGRES_PASSWORD": params["password"],
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "0",
    }


def application(env: dict[str, str]) -> App:
    return App(env=env)


def sqlite_settings(app: App) -> tuple[str, str]:
    """The ``synchronous`` setting and journal mode of the application's
    SQLite connections, as the library opened them."""
    datastore = app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA synchronous")
        synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[cursor.fetchone()[0]]
        cursor.execute("PRAGMA journal_mode")
        journal_mode = str(cursor.fetchone()[0]).upper()
    return synchronous, journal_mode


# -- the workloads ----------------------------------------------------------------


def single_writer(app: App, count: int) -> float:
    """Seconds for ``count`` saves of one aggregate, one new event each (the
    aggregate is created and one event saved first, untimed)."""
    cart = Cart()
    cart.add_sample(0)
    app.save(cart)
    start = time.perf_counter()
    for n in range(count):
        cart.add_sample(n)
        app.save(cart)
    return time.perf_counter() - start


def threaded_writers(app: App, threads: int, per_thread: int) -> float:
    """Seconds for ``threads`` threads each saving its own aggregate
    ``per_thread`` times, one new event per save (aggregates created first,
    untimed)."""
    carts = [Cart() for _ in range(threads)]
    app.save(*carts)
    ready = threading.Barrier(threads + 1)

    def writer(task: int) -> None:
        cart = carts[task]
        ready.wait()
        for n in range(per_thread):
            cart.add_sample(task * per_thread + n)
            app.save(cart)

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(writer, task) for task in range(threads)]
        ready.wait()
        start = time.perf_counter()
        for future in futures:
            future.result()
        return time.perf_counter() - start


def fill(app: App, events: int, per_save: int = 10_000) -> uuid.UUID:
    """One aggregate with ``events`` events (and its creation event), saved
    ``per_save`` events at a time; its id."""
    cart = Cart()
    for n in range(events):
        cart.add_sample(n)
        if (n + 1) % per_save == 0:
            app.save(cart)
    app.save(cart)
    return cart.id


def replay(app: App, cart_id: uuid.UUID) -> tuple[float, Totals]:
    """Seconds for ``repository.get``, which reads the aggregate's events
    and folds them, and the state it reached."""
    gc.collect()
    start = time.perf_counter()
    cart: Cart = app.repository.get(cart_id)
    seconds = time.perf_counter() - start
    return seconds, cart.totals


def timed_app(env: dict[str, str], work: Callable[[App], float]) -> float:
    """``work(app)`` on a new application, which is closed afterwards."""
    app = application(env)
    try:
        return work(app)
    finally:
        app.close()


# -- the recorder alone (benchmarks.postgres) --------------------------------------


def recorder_rate(dsn: str, schema: str, count: int, size: int) -> float:
    """Events/s of the PostgreSQL application recorder inserting one stored
    event of ``size`` bytes per transaction (``insert_events`` in a loop)."""
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    datastore = PostgresDatastore(**_postgres_params(dsn), schema=schema)
    try:
        recorder = PostgresApplicationRecorder(datastore)
        recorder.create_table()
        originator = uuid.uuid4()
        state = b"x" * size
        start = time.perf_counter()
        for version in range(1, count + 1):
            recorder.insert_events([StoredEvent(originator, version, "bench.Event", state)])
        return rate(count, time.perf_counter() - start)
    finally:
        datastore.close()
