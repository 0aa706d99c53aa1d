"""A read model across carts: every cart's items, folded from the feed.

``python -m calliope.demo.cart_totals DIR`` catches the projection up on the
store in DIR and prints each cart; run it again and it folds only what was
written since (its state and feed position are saved together).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import attrs

import calliope
from calliope.demo.cart import Cart, CartEvent, update_cart


@calliope.event_type("cart.totals")
@attrs.frozen
class CartTotals:
    """Each cart's items, by stream id."""

    carts: dict[str, dict[str, int]] = attrs.field(factory=dict)

    def describe(self) -> str:
        return "; ".join(
            f"{cart}: {Cart(items=items).describe()}" for cart, items in sorted(self.carts.items())
        )


def update_totals(totals: CartTotals, envelope: calliope.Envelope[CartEvent]) -> CartTotals:
    """The fold: one cart event, applied to that cart (the envelope's stream)."""
    cart = update_cart(Cart(items=totals.carts.get(envelope.stream_id, {})), envelope.event)
    return CartTotals({**totals.carts, envelope.stream_id: cart.items})


def cart_totals(app: calliope.App) -> calliope.Projection[CartTotals, CartEvent]:
    """The projection over every cart stream of ``app``'s store."""
    return app.projection("cart-totals", CartEvent, update_totals, CartTotals(), envelopes=True)


async def main(directory: str) -> None:
    async with calliope.open(directory) as app:
        totals = await cart_totals(app).catch_up()
        print(totals.describe())


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # (Ctrl-C stops the demo: no traceback)
        asyncio.run(main(sys.argv[1]))
