"""A second process that adds items to a cart:
``python -m calliope.demo.cart_writer DIR STREAM``."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import calliope
from calliope.demo.cart import CartEvent, ItemAdded


async def main(directory: str, stream_id: str) -> None:
    async with calliope.open(directory, replica_id="phone-app") as app:
        cart = app.journal.event_stream(stream_id, CartEvent)
        for sku in ["socks", "scarf", "gloves"]:
            await asyncio.sleep(0.2)
            await cart.persist(ItemAdded(sku))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # (Ctrl-C stops the demo: no traceback)
        asyncio.run(main(sys.argv[1], sys.argv[2]))
