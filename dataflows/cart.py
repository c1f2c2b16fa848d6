"""The contact's current cart, and when it counts as abandoned.

A cart is abandoned after `idle_s` without a cart event or an order; the
flag flips by timer, without any further event, so the profile (and later
the abandoned-cart workflow) sees it on time. A cart holds at most
`MAX_CART_LINES` products (more are ignored) and a line at most
`MAX_LINE_QUANTITY` units, so no client can blow a profile up.
"""

from __future__ import annotations

from typing import Any, Final

from dataflows.contact_state import ContactState
from state import events as ev
from state.events import Event, Track
from state.profile import CartLine

MAX_CART_LINES: Final = 100
MAX_LINE_QUANTITY: Final = 1_000_000


def _text(props: dict[str, Any], name: str) -> str:
    value = props.get(name)
    return str(value) if value is not None else ""


def _product_id(props: dict[str, Any]) -> str:
    return _text(props, "product_id") or _text(props, "sku") or _text(props, "name")


def _quantity(props: dict[str, Any]) -> int:
    quantity = props.get("quantity", 1)
    return int(quantity) if isinstance(quantity, int | float) and not isinstance(quantity, bool) else 1


def apply_cart(state: ContactState, event: Event, at: float, idle_s: float) -> None:
    """Update the cart from e-commerce events; schedule the abandonment check."""
    if not isinstance(event, Track):
        return
    name = event.event
    props = event.properties
    if name == ev.PRODUCT_ADDED:
        product_id = _product_id(props)
        if not product_id:
            return
        line = state.cart.get(product_id)
        if line is None:
            if len(state.cart) >= MAX_CART_LINES:
                return
            price = props.get("price", 0.0)
            state.cart[product_id] = CartLine(
                product_id=product_id, name=_text(props, "name"), category=_text(props, "category"),
                price=float(price) if isinstance(price, int | float) else 0.0, quantity=_quantity(props))
        else:
            line.quantity = min(MAX_LINE_QUANTITY, line.quantity + _quantity(props))
    elif name == ev.PRODUCT_REMOVED:
        product_id = _product_id(props)
        line = state.cart.get(product_id)
        if line is not None:
            line.quantity -= _quantity(props)
            if line.quantity <= 0:
                del state.cart[product_id]
    elif name == ev.ORDER_COMPLETED:
        state.cart.clear()
    else:
        return
    state.cart_updated_at = at
    state.cart_abandoned = False


def check_cart_idle(state: ContactState, now: float, idle_s: float) -> bool:
    """Mark the cart abandoned once it has been idle long enough; True if it changed."""
    if not state.cart or state.cart_abandoned or state.cart_updated_at is None:
        return False
    if now < state.cart_updated_at + idle_s:
        return False
    state.cart_abandoned = True
    return True


def cart_due(state: ContactState, idle_s: float) -> float | None:
    """When the cart will count as abandoned, if it is waiting for that."""
    if not state.cart or state.cart_abandoned or state.cart_updated_at is None:
        return None
    return state.cart_updated_at + idle_s
