"""All-time order statistics: count, revenue, first and last order, ordering rhythm, RFM.

The one owner of orders and revenue: the profile's counters show these
figures too. The average gap between orders is (last − first) / (orders − 1),
so four numbers give every figure exactly, whatever order the orders arrive
in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from dataflows.capabilities.base import Capability, Context
from state import events as ev
from state.config import DAY
from state.events import Event, Track
from state.profile import OrdersSummary

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView


class OrderStats(msgspec.Struct, array_like=True, gc=False):
    """A contact's orders so far (times are event time, epoch seconds)."""

    orders: int = 0
    revenue: float = 0.0
    first_order_at: float | None = None
    last_order_at: float | None = None


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def order_revenue(properties: dict[str, Any]) -> float:
    """Revenue of an order as Segment defines it: revenue, else total, else value."""
    for name in ("revenue", "total", "value"):
        if name in properties:
            return _number(properties[name])
    return 0.0


def apply_order(stats: OrderStats, event: Event, at: float) -> bool:
    """Count an `Order Completed` event; False (and nothing changed) for any other event."""
    if not isinstance(event, Track) or event.event != ev.ORDER_COMPLETED:
        return False
    stats.orders += 1
    stats.revenue = round(stats.revenue + order_revenue(event.properties), 2)
    if stats.first_order_at is None or at < stats.first_order_at:
        stats.first_order_at = at
    if stats.last_order_at is None or at > stats.last_order_at:
        stats.last_order_at = at
    return True


def order_summary(stats: OrderStats) -> OrdersSummary:
    """Order figures for the profile and `Total` conditions (AOV 0 without orders)."""
    orders = stats.orders
    gap: float | None = None
    if orders >= 2 and stats.first_order_at is not None and stats.last_order_at is not None:
        gap = round((stats.last_order_at - stats.first_order_at) / (orders - 1) / DAY, 3)
    return OrdersSummary(
        orders=orders,
        revenue=round(stats.revenue, 2),
        average_order_value=round(stats.revenue / orders, 2) if orders else 0.0,
        first_order_at=stats.first_order_at,
        last_order_at=stats.last_order_at,
        average_days_between_orders=gap,
    )


def merge_orders(into: OrderStats, other: OrderStats) -> None:
    """Fold `other`'s orders into `into` (identity merge)."""
    into.orders += other.orders
    into.revenue = round(into.revenue + other.revenue, 2)
    if other.first_order_at is not None and (into.first_order_at is None
                                             or other.first_order_at < into.first_order_at):
        into.first_order_at = other.first_order_at
    if other.last_order_at is not None and (into.last_order_at is None
                                            or other.last_order_at > into.last_order_at):
        into.last_order_at = other.last_order_at


class OrdersCapability(Capability[OrderStats]):
    """Orders: the profile's `orders` figures and RFM scores."""

    name = "orders"
    part = OrderStats

    def apply(self, part: OrderStats, event: Event, ctx: Context) -> None:
        apply_order(part, event, ctx.at)

    def merge(self, into: OrderStats, other: OrderStats, ctx: Context) -> None:
        merge_orders(into, other)

    def render(self, part: OrderStats, view: StateView) -> Mapping[str, Any]:
        return {"orders": order_summary(part), "rfm": view.rfm()}
