"""All-time counters: page views, product views by category, carts, orders."""

from __future__ import annotations

from typing import Final

from dataflows.contact_state import ContactState
from dataflows.orders import order_revenue
from state import events as ev
from state.events import Event, Identify, Page, Screen, Track

# Categories counted per contact: a client inventing categories cannot grow a contact without end.
MAX_CATEGORIES: Final = 100


def apply_counters(state: ContactState, event: Event) -> None:
    """Count the event in the contact's all-time counters."""
    counters = state.counters
    counters.events += 1
    if isinstance(event, Page | Screen):
        counters.page_views += 1
        return
    if isinstance(event, Identify):
        return
    if not isinstance(event, Track):
        return
    name = event.event
    props = event.properties
    if name == ev.PRODUCT_VIEWED:
        counters.product_views += 1
        category = props.get("category")
        if isinstance(category, str) and category:
            by_category = counters.product_views_by_category
            if category in by_category or len(by_category) < MAX_CATEGORIES:
                by_category[category] = by_category.get(category, 0) + 1
    elif name == ev.PRODUCT_ADDED:
        counters.cart_adds += 1
    elif name == ev.PRODUCT_REMOVED:
        counters.cart_removes += 1
    elif name == ev.CHECKOUT_STARTED:
        counters.checkouts += 1
    elif name == ev.ORDER_COMPLETED:
        counters.orders += 1
        counters.revenue = round(counters.revenue + order_revenue(props), 2)
    elif name == ev.SIGNED_UP:
        counters.sign_ups += 1
    elif name == ev.FORM_SUBMITTED:
        counters.form_submits += 1
    elif name == ev.EMAIL_OPENED:
        counters.email_opens += 1
    elif name == ev.EMAIL_LINK_CLICKED:
        counters.email_clicks += 1
