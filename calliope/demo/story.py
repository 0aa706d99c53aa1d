"""``calliope demo`` (``make demo``): an event-sourced shopping cart, told in steps.

Persist, replay, snapshot, restart from the snapshot, a live query that
sees events written by a second process; three processes editing one
replicated cart at once: the conflict is detected, resolved, and every
replica ends with the same cart; three processes incrementing one
replicated counter and adding to one set through the replicator, each
waiting until the counter reaches the total, and an update that asks for
more replicas than are running timing out (and succeeding once they run);
last, a projection folding every cart into one read model, and after a
restart folding only what came since. Each other process is this package's
own module run with ``python -m``, so the demo runs wherever Calliope is
installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

import calliope
from calliope import GCounter, ORSet
from calliope.demo.cart import Cart, CartEvent, CheckedOut, ItemAdded, ItemRemoved, update_cart
from calliope.demo.cart_totals import CartTotals, cart_totals, update_totals
from calliope.demo.replicated_cart import cart_versions


def step(title: str) -> None:
    print(f"\n== {title}")


async def first_run(directory: str) -> None:
    where = re.sub(r"//[^@/]*@", "//***@", directory)  # (no password on the screen)
    step(f"1. persist events to cart-42 in {where}")
    async with calliope.open(directory, replica_id="web-shop") as app:
        cart = app.journal.event_stream("cart-42", CartEvent)
        first = await cart.persist(ItemAdded("apples", 3))
        print(f"  #{first.sequence} {first.event}  version {first.version}")
        batch = await cart.persist_all(
            [ItemAdded("pears", 2), ItemRemoved("apples"), ItemAdded("plums", 5)],
            expected_sequence=first.sequence,
        )
        for envelope in batch:
            print(f"  #{envelope.sequence} {envelope.event}  (atomic batch)")
        try:
            await cart.persist(ItemAdded("stale"), expected_sequence=1)
        except calliope.ConcurrencyError as error:
            print(f"  a stale writer is refused: {error}")

        step("2. replay: fold the events into the cart")
        state = await cart.query().aggregate(update_cart, Cart())
        print(f"  cart after {batch[-1].sequence} events: {state.describe()}")

        step("3. snapshot the state, then keep writing")
        await app.snapshots.save_snapshot("cart-42", state, sequence=batch[-1].sequence)
        print(f"  snapshot saved at sequence {batch[-1].sequence}")
        await cart.persist(ItemAdded("cherries", 10))
        print("  #5 ItemAdded(cherries, 10) persisted after the snapshot")


async def restart(directory: str) -> None:
    step("4. restart: load the snapshot, replay only what came after it")
    async with calliope.open(directory, replica_id="web-shop") as app:
        cart = app.journal.event_stream("cart-42", CartEvent)
        snapshot = await app.snapshots.load_snapshot("cart-42", Cart)
        assert snapshot is not None
        replayed = await cart.query(from_sequence=snapshot.sequence + 1).to_list()
        state = calliope.aggregate([e.event for e in replayed], update_cart, snapshot.state)
        print(f"  snapshot at #{snapshot.sequence}, replayed {len(replayed)} event(s)")
        print(f"  cart: {state.describe()}")
        full = await cart.query().aggregate(update_cart, Cart())
        print(f"  same as a full replay: {state == full}")

        step("5. a live query sees what another process writes")
        writer = subprocess.Popen(
            [sys.executable, "-m", "calliope.demo.cart_writer", directory, "cart-42"]
        )
        seen = 0
        async with cart.live_query(from_sequence=await cart.last_sequence() + 1) as live:
            async for envelope in live:
                lag = (time.time() - envelope.timestamp.timestamp()) * 1000
                state = update_cart(state, envelope.event)
                print(
                    f"  #{envelope.sequence} from {envelope.replica_id}: {envelope.event} "
                    f"(seen {lag:.0f} ms after it was written)"
                )
                seen += 1
                if seen == 3:
                    break
        writer.wait(timeout=30)
        done = await cart.persist(CheckedOut(sum(state.items.values())))
        state = update_cart(state, done.event)
        print(f"  cart: {state.describe()}")


class Replica:
    """A replica of the shared cart in its own process, driven line by line."""

    def __init__(self, directory: str, name: str) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "calliope.demo.replicated_cart", directory, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def do(self, command: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        print(f"  {self.name:>8} $ {command:<12} -> {self.process.stdout.readline().strip()}")

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("quit\n")
        self.process.stdin.close()
        self.process.wait(timeout=30)


async def replicated(directory: str) -> None:
    step("6. three processes edit one replicated cart at the same time")
    async with calliope.open(directory, replica_id="web-shop") as app:
        cart = app.journal.replicated_event_stream("shared-cart", CartEvent)
        reply = await cart.persist(ItemAdded("bread"))
        print(f"  web-shop started the cart: {reply.envelope.event} at {reply.envelope.version}")
    replicas = [Replica(directory, name) for name in ("laptop", "phone", "tablet")]
    laptop, phone, tablet = replicas
    try:
        for each in replicas:
            each.do("observe")
        laptop.do("add apples 2")  # none has seen the others' edits:
        phone.do("add apples 3")  # each later writer is told of the earlier ones
        tablet.do("add pears 1")
        tablet.do("resolve")
        step("7. every replica ends with the same cart")
        for each in replicas:
            each.do("show")
    finally:
        for each in replicas:
            each.close()
    async with calliope.open(directory, replica_id="web-shop") as app:
        cart = app.journal.replicated_event_stream("shared-cart", CartEvent)
        versions = await cart_versions(cart)
        print(f"  web-shop $ {'show':<12} -> cart {versions.state.describe()}")


async def replicator(directory: str) -> None:
    step("8. three processes count page views with a replicated counter (CRDT)")
    each, names = 200, ["berlin", "lagos", "lima"]
    total = each * len(names)
    replica = [sys.executable, "-m", "calliope.demo.counter_replica", directory]
    counters = [
        subprocess.Popen([*replica, name, "count", str(each), str(total)]) for name in names
    ]
    for process in counters:
        process.wait(timeout=120)
    async with calliope.open(directory, replica_id="web-shop") as app:
        views = await app.replicator.wait_until(
            "views", GCounter, lambda c: c.value >= total, timeout=30
        )
        visitors = await app.replicator.get("visitors", ORSet)
        print(f"  web-shop: views={views.value} (= {len(names)} x {each})")
        print(f"  visitors={sorted(visitors.value)}: every add seen by every replica")

        step("9. an update that asks for 3 replicas while only this one runs")
        try:
            await app.replicator.update(
                "views", GCounter, lambda c: c.increment(), replicas=3, timeout=1
            )
        except calliope.ReplicationTimeout as error:
            print(f"  ReplicationTimeout: {error.acknowledged} of {error.required} replicas had it")
            print("  the increment is durable all the same; it reaches the others when they run")
        holders = [
            subprocess.Popen(
                [*replica, name, "hold"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for name in names[:2]
        ]
        try:
            for holder in holders:
                assert holder.stdout is not None
                holder.stdout.readline()  # "ready": it holds a replica of "views"
            views = await app.replicator.update(
                "views", GCounter, lambda c: c.increment(), replicas=3, timeout=30
            )
            print(
                f"  {names[0]} and {names[1]} run again: views={views.value}, applied by 3 replicas"
            )
        finally:
            for holder in holders:
                assert holder.stdin is not None
                holder.stdin.close()
                holder.wait(timeout=30)


async def projection(directory: str) -> None:
    step("10. a projection folds every cart of the store into one read model")
    async with calliope.open(directory) as app:
        await app.journal.event_stream("cart-7", CartEvent).persist_all(
            [ItemAdded("pears", 3), ItemAdded("figs", 1)]
        )
        totals = cart_totals(app)
        state = await totals.catch_up()
        print(f"  {state.describe()}")
        print(f"  saved with its feed position {totals.position}")
    step("11. restart: the projection folds only what was written since")
    async with calliope.open(directory) as app:
        await app.journal.event_stream("cart-7", CartEvent).persist(ItemRemoved("figs"))
        folded = 0

        def counting(state: CartTotals, envelope: calliope.Envelope[CartEvent]) -> CartTotals:
            nonlocal folded
            folded += 1
            return update_totals(state, envelope)

        again = app.projection("cart-totals", CartEvent, counting, CartTotals(), envelopes=True)
        state = await again.catch_up()
        print(
            f"  folded {folded} new event(s), at {again.position}: cart-7 is now "
            f"{Cart(items=state.carts['cart-7']).describe()}"
        )


async def run_all(target: str) -> None:
    await first_run(target)
    await restart(target)
    await replicated(target)
    await replicator(target)
    await projection(target)


def run(target: str | None = None) -> None:
    """Run the whole story on ``target``: a directory that is new or empty
    (kept afterwards), a ``postgresql://`` DSN (with ``?schema=``: that
    schema, new or empty, kept; without: a fresh schema, dropped at the
    end), or None for a fresh temporary directory (removed at the end).
    Raises CalliopeError for a target that holds anything, since the story
    expects an empty store, or that cannot be used."""
    if target is None:
        with tempfile.TemporaryDirectory(prefix="calliope-demo-") as directory:
            asyncio.run(run_all(os.path.join(directory, "store")))
        print("\nDone: the demo's temporary directory has been removed.")
        return
    if not target:
        raise calliope.InvalidArgumentError(
            "the demo's target is empty: give a directory, a postgresql:// DSN, or nothing"
        )
    if target.startswith(("postgresql://", "postgres://")):
        run_on_postgresql(target)
        return
    try:
        holds_anything = os.path.exists(target) and (
            not os.path.isdir(target) or bool(os.listdir(target))
        )
    except OSError as error:
        raise calliope.StorageError(
            f"cannot use {target!r} for the demo: {error.strerror}"
        ) from None
    if holds_anything:
        raise calliope.InvalidArgumentError(
            f"the demo needs a new or empty directory, and {target!r} is not one: "
            "give another path, or none for a temporary directory"
        )
    asyncio.run(run_all(target))
    print(f"\nDone: the store is kept in {target}; look inside with `calliope streams {target}`.")


def run_on_postgresql(dsn: str) -> None:
    """Every process of the story (the second writer and the replicas
    included) shares only the server. A schema named in the DSN must be new
    or empty and is kept; else a fresh schema, dropped at the end."""
    try:
        import psycopg
    except ImportError:
        raise calliope.InvalidArgumentError(
            "the demo on PostgreSQL needs the driver: pip install 'calliope[postgres]'"
        ) from None
    parts = urllib.parse.urlsplit(dsn)
    query = urllib.parse.parse_qsl(parts.query)
    named = [value for key, value in query if key == "schema"]
    base = urllib.parse.urlunsplit(
        parts._replace(query=urllib.parse.urlencode([(k, v) for k, v in query if k != "schema"]))
    )
    schema = named[-1] if named else f"calliope_demo_{uuid.uuid4().hex[:8]}"
    if named:
        with psycopg.connect(base, autocommit=True) as db:
            tables = db.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchone()
        if tables is not None and tables[0]:
            raise calliope.InvalidArgumentError(
                f"the demo needs a new or empty schema, and {schema!r} holds tables: name "
                "another (?schema=...), or none for a fresh schema dropped at the end"
            )
    where = f"{base}{'&' if '?' in base else '?'}schema={schema}"
    try:
        asyncio.run(run_all(where))
    finally:
        if not named:
            with contextlib.suppress(psycopg.Error), psycopg.connect(base, autocommit=True) as db:
                db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    if named:
        print(
            f"\nDone: the store is kept in schema {schema}; look inside with `calliope streams "
            f"'{where}'`."
        )
    else:
        print(f"\nDone: the demo's schema {schema} has been dropped.")
