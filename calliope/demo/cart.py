"""The shopping cart used by the demo: events, state, and the fold."""

from __future__ import annotations

import attrs

import calliope


@calliope.event_type("cart.item-added")
@attrs.frozen
class ItemAdded:
    sku: str
    quantity: int = 1


@calliope.event_type("cart.item-removed")
@attrs.frozen
class ItemRemoved:
    sku: str


@calliope.event_type("cart.checked-out")
@attrs.frozen
class CheckedOut:
    total_items: int


@calliope.event_type("cart.merged")
@attrs.frozen
class CartMerged:
    """Resolves concurrent edits: the cart's items as decided by the resolver."""

    items: dict[str, int]


CartEvent = ItemAdded | ItemRemoved | CheckedOut | CartMerged


@attrs.frozen
class Cart:
    items: dict[str, int] = attrs.field(factory=dict)
    checked_out: bool = False

    def describe(self) -> str:
        lines = ", ".join(f"{qty} x {sku}" for sku, qty in sorted(self.items.items()))
        return f"[{lines or 'empty'}]" + (" (checked out)" if self.checked_out else "")


def update_cart(cart: Cart, event: CartEvent) -> Cart:
    """The pure fold: one event applied to a cart."""
    if isinstance(event, ItemAdded):
        items = dict(cart.items)
        items[event.sku] = items.get(event.sku, 0) + event.quantity
        return attrs.evolve(cart, items=items)
    if isinstance(event, ItemRemoved):
        return attrs.evolve(cart, items={k: v for k, v in cart.items.items() if k != event.sku})
    if isinstance(event, CartMerged):
        return attrs.evolve(cart, items=dict(event.items))
    return attrs.evolve(cart, checked_out=True)


def merge_carts(carts: list[Cart]) -> Cart:
    """The shop's policy for concurrent edits: keep every item, at the largest
    quantity any replica chose."""
    items: dict[str, int] = {}
    for cart in carts:
        for sku, quantity in cart.items.items():
            items[sku] = max(items.get(sku, 0), quantity)
    return Cart(items=items, checked_out=any(cart.checked_out for cart in carts))
