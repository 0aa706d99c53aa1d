"""One replica of a shared cart, driven by commands on stdin.

``python -m calliope.demo.replicated_cart DIR REPLICA`` opens the file store at
DIR as REPLICA and reads commands, one per line:

    observe            read the cart (the handle observes every event)
    add SKU QTY        persist ItemAdded; report concurrent updates
    resolve            if replicas disagree, persist a CartMerged that follows them all
    show               print this replica's view of the cart
    quit

Concurrent edits are folded with ConcurrentVersions: while replicas
disagree there are several versions of the cart; a CartMerged event, written
by a replica that has seen them all, joins them again everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import calliope
from calliope import ConcurrentVersions
from calliope.demo.cart import Cart, CartEvent, CartMerged, ItemAdded, merge_carts, update_cart

STREAM = "shared-cart"


async def cart_versions(
    stream: calliope.ReplicatedEventStream[CartEvent],
) -> ConcurrentVersions[Cart, CartEvent]:
    """Every replica's events folded into the cart's concurrent versions."""
    versions: ConcurrentVersions[Cart, CartEvent] = ConcurrentVersions(Cart(), update_cart)
    async for envelope in stream.query():
        versions = versions.update(envelope)
    return versions


async def resolve(stream: calliope.ReplicatedEventStream[CartEvent]) -> str:
    versions = await cart_versions(stream)
    if not versions.conflict:
        return "nothing to resolve"
    views = " vs ".join(leaf.state.describe() for leaf in versions.all)
    merged = merge_carts([leaf.state for leaf in versions.all])
    reply = await stream.persist(CartMerged(merged.items))
    return f"resolved {views} -> {merged.describe()} (event at {reply.envelope.version})"


async def replica(directory: str, replica_id: str) -> None:
    async with calliope.open(directory, replica_id=replica_id) as app:
        stream = app.journal.replicated_event_stream(STREAM, CartEvent)
        for line in sys.stdin:
            command, *args = line.split()
            if command == "observe":
                versions = await cart_versions(stream)
                print(f"sees {versions.state.describe()} at {stream.version}", flush=True)
            elif command == "add":
                reply = await stream.persist(ItemAdded(args[0], int(args[1])))
                news = [f"{e.replica_id}: {e.event}" for e in reply.concurrent_updates]
                said = f"CONFLICT with {news}" if news else "no conflict"
                print(f"added {args[1]} {args[0]} at {reply.envelope.version}: {said}", flush=True)
            elif command == "resolve":
                print(await resolve(stream), flush=True)
            elif command == "show":
                versions = await cart_versions(stream)
                state = " | ".join(leaf.state.describe() for leaf in versions.all)
                print(f"cart {state}{' (CONFLICT)' if versions.conflict else ''}", flush=True)
            elif command == "quit":
                return


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # (Ctrl-C stops the demo: no traceback)
        asyncio.run(replica(sys.argv[1], sys.argv[2]))
