"""The contact's current cart, and when it counts as abandoned.

A cart is abandoned after `cart_idle_s` without a cart event or an order; the
flag flips by timer, without any further event, so the profile (and the
abandoned-cart workflow) sees it on time. A cart holds at most
`MAX_CART_LINES` products (more are ignored) and a line at most
`MAX_LINE_QUANTITY` units, so no client can blow a profile up.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec

from dataflows.capabilities.base import Capability, Context
from state import events as ev
from state.events import Event, Track, category_of, product_of
from state.profile import CartLine, Flags

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView

MAX_CART_LINES: Final = 100
MAX_LINE_QUANTITY: Final = 1_000_000


class CartState(msgspec.Struct, array_like=True):
    """The products in the cart, when it last changed, and whether it has been abandoned."""

    lines: dict[str, CartLine] = msgspec.field(default_factory=dict)
    updated_at: float | None = None
    abandoned: bool = False


def _quantity(props: dict[str, Any]) -> int:
    """Units added or removed: a whole number, at least 1 for any positive amount (0.5 kg is one line unit)."""
    quantity = props.get("quantity", 1)
    if not isinstance(quantity, int | float) or isinstance(quantity, bool):
        return 1
    return max(1, round(quantity)) if quantity > 0 else 0


def _text(props: dict[str, Any], name: str) -> str:
    value = props.get(name)
    return value if isinstance(value, str) else ""


def apply_cart(cart: CartState, event: Event, at: float) -> None:
    """Update the cart from e-commerce events (a line needs a `product_id` or `sku`)."""
    if not isinstance(event, Track):
        return
    name = event.event
    props = event.properties
    if name == ev.PRODUCT_ADDED:
        product_id = product_of(props)
        if product_id is None or _quantity(props) == 0:
            return
        line = cart.lines.get(product_id)
        if line is None:
            if len(cart.lines) >= MAX_CART_LINES:
                return
            price = props.get("price", 0.0)
            cart.lines[product_id] = CartLine(
                product_id=product_id, name=_text(props, "name"), category=category_of(props) or "",
                price=float(price) if isinstance(price, int | float) else 0.0, quantity=_quantity(props))
        else:
            line.quantity = min(MAX_LINE_QUANTITY, line.quantity + _quantity(props))
    elif name == ev.PRODUCT_REMOVED:
        line = cart.lines.get(product_of(props) or "")
        if line is not None:
            line.quantity -= _quantity(props)
            if line.quantity <= 0:
                del cart.lines[line.product_id]
    elif name == ev.ORDER_COMPLETED:
        cart.lines.clear()
    else:
        return
    cart.updated_at = at
    cart.abandoned = False


def waiting_since(cart: CartState) -> float | None:
    """When the cart last changed, if it is non-empty and not yet abandoned (so it may become so)."""
    return None if not cart.lines or cart.abandoned else cart.updated_at


def check_cart_idle(cart: CartState, now: float, idle_s: float) -> None:
    """Mark the cart abandoned once it has been idle long enough."""
    since = waiting_since(cart)
    if since is not None and now >= since + idle_s:
        cart.abandoned = True


def cart_due(cart: CartState, idle_s: float) -> float | None:
    """When the cart will count as abandoned, if it is waiting for that."""
    since = waiting_since(cart)
    return None if since is None else since + idle_s


def cart_value(cart: CartState) -> float:
    """What the cart is worth (0 when empty)."""
    return sum((line.price * line.quantity for line in cart.lines.values()), 0.0)


def merge_carts(into: CartState, other: CartState) -> None:
    """The most recently touched cart wins whole: a cart is one shopping intent, not a sum."""
    if not other.lines:
        return
    if into.lines and (into.updated_at or 0.0) >= (other.updated_at or 0.0):
        return
    into.lines, into.updated_at, into.abandoned = other.lines, other.updated_at, other.abandoned


def _moment(epoch_s: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch_s, UTC) if epoch_s else None


class CartCapability(Capability[CartState]):
    """The cart; abandoned after `cart_idle_s` idle, by timer."""

    name = "cart"
    part = CartState

    def apply(self, part: CartState, event: Event, ctx: Context) -> None:
        apply_cart(part, event, ctx.at)

    def tick(self, part: CartState, ctx: Context) -> None:
        check_cart_idle(part, ctx.now, ctx.settings.cart_idle_s)

    def merge(self, into: CartState, other: CartState, ctx: Context) -> None:
        merge_carts(into, other)

    def due(self, part: CartState, view: StateView) -> float | None:
        return cart_due(part, view.settings.cart_idle_s)

    def render(self, part: CartState, view: StateView) -> Mapping[str, Any]:
        fields: dict[str, Any] = {"cart": list(part.lines.values()), "cart_value": round(cart_value(part), 2),
                                  "cart_updated_at": _moment(part.updated_at)}
        if part.abandoned:
            fields["extra"] = Flags(cart_abandoned=True)
        return fields
