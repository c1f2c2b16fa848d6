"""All-time counters: events, page views, product views by category, carts, sign-ups, e-mails.

Orders and revenue are not counted here: the `orders` capability owns them,
and the profile's `counters` shows its figures, so the two can never
disagree. Which track name bumps which counter is one table, and merging
adds up every field of `Tallies`, so a new counter is one line here and one
field in `state.profile.Counters`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec

from dataflows.capabilities.base import Capability, Context
from dataflows.capabilities.orders import OrderStats
from state import events as ev
from state.events import Event, Page, Screen, Track, category_of
from state.profile import Counters

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView

# Categories counted per contact: a client inventing categories cannot grow a contact without end.
MAX_CATEGORIES: Final = 100

TRACKED: Final[dict[str, str]] = {
    ev.PRODUCT_VIEWED: "product_views",
    ev.PRODUCT_ADDED: "cart_adds",
    ev.PRODUCT_REMOVED: "cart_removes",
    ev.CHECKOUT_STARTED: "checkouts",
    ev.SIGNED_UP: "sign_ups",
    ev.FORM_SUBMITTED: "form_submits",
    ev.EMAIL_OPENED: "email_opens",
    ev.EMAIL_LINK_CLICKED: "email_clicks",
}
"""Track name → the counter it increments."""


class Tallies(msgspec.Struct, array_like=True, gc=False):
    """The counts, stored without field names; `state.profile.Counters` minus the order figures."""

    events: int = 0
    page_views: int = 0
    product_views: int = 0
    product_views_by_category: dict[str, int] = msgspec.field(default_factory=dict)
    cart_adds: int = 0
    cart_removes: int = 0
    checkouts: int = 0
    sign_ups: int = 0
    form_submits: int = 0
    email_opens: int = 0
    email_clicks: int = 0


NUMERIC: Final = tuple(name for name in Tallies.__struct_fields__ if name != "product_views_by_category")


def _count_category(by_category: dict[str, int], category: str, amount: int) -> None:
    if category in by_category or len(by_category) < MAX_CATEGORIES:
        by_category[category] = by_category.get(category, 0) + amount


def apply_counters(tallies: Tallies, event: Event) -> None:
    """Count the event in the all-time counters."""
    tallies.events += 1
    if isinstance(event, Page | Screen):
        tallies.page_views += 1
    elif isinstance(event, Track):
        counter = TRACKED.get(event.event)
        if counter is not None:
            setattr(tallies, counter, getattr(tallies, counter) + 1)
            if counter == "product_views" and (category := category_of(event.properties)):
                _count_category(tallies.product_views_by_category, category, 1)


def merge_tallies(into: Tallies, other: Tallies) -> None:
    """Add `other`'s counts to `into`'s (identity merge)."""
    for name in NUMERIC:
        setattr(into, name, getattr(into, name) + getattr(other, name))
    for category, count in other.product_views_by_category.items():
        _count_category(into.product_views_by_category, category, count)


class CountersCapability(Capability[Tallies]):
    """All-time counters; the profile's `counters` (with the order figures of `orders`)."""

    name = "counters"
    part = Tallies

    def apply(self, part: Tallies, event: Event, ctx: Context) -> None:
        apply_counters(part, event)

    def merge(self, into: Tallies, other: Tallies, ctx: Context) -> None:
        merge_tallies(into, other)

    def render(self, part: Tallies, view: StateView) -> Mapping[str, Any]:
        orders: OrderStats = view.part("orders")
        return {"counters": Counters(**msgspec.structs.asdict(part), orders=orders.orders,
                                     revenue=round(orders.revenue, 2))}
