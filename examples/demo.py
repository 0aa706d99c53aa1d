"""``make demo``: an event-sourced shopping cart on the embedded file store.

Persist, replay, snapshot, restart from the snapshot, and a live query that
sees events written by a second process. Everything lives in a fresh
temporary directory, removed at the end.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import calliope
from examples.cart import Cart, CartEvent, CheckedOut, ItemAdded, ItemRemoved, update_cart

ROOT = Path(__file__).resolve().parents[1]


def step(title: str) -> None:
    print(f"\n== {title}")


async def first_run(directory: str) -> None:
    step(f"1. persist events to cart-42 in {directory}")
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
            [sys.executable, "-m", "examples.cart_writer", directory, "cart-42"], cwd=ROOT
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


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="calliope-demo-") as directory:
        await first_run(directory)
        await restart(directory)
    print("\nDone: the demo's directory has been removed.")


if __name__ == "__main__":
    asyncio.run(main())
