"""Event and state types shared by the integration tests and worker processes."""

from __future__ import annotations

import attrs

import calliope


@calliope.event_type("test.item-added")
@attrs.frozen
class ItemAdded:
    sku: str
    quantity: int = 1


@calliope.event_type("test.item-removed")
@attrs.frozen
class ItemRemoved:
    sku: str


CartEvent = ItemAdded | ItemRemoved


@attrs.frozen
class Cart:
    items: dict[str, int] = attrs.field(factory=dict)

    def apply(self, event: CartEvent) -> Cart:
        items = dict(self.items)
        if isinstance(event, ItemAdded):
            items[event.sku] = items.get(event.sku, 0) + event.quantity
        else:
            items.pop(event.sku, None)
        return Cart(items=items)


def update_cart(cart: Cart, event: CartEvent) -> Cart:
    return cart.apply(event)
