"""Identity: which contact an event belongs to, and merging a visitor into it.

An anonymous visitor's state lives in the *visitor* stage, keyed by the
shard of its anonymous id; known contacts live in the *contact* stage, keyed
by the shard of their user id. When a visitor identifies (an event carrying
both ids, or `alias`), the visitor stage records the link and hands the
visitor's whole state (counters, windows, score, cart, tags) to the contact
stage, which merges it; later events from that anonymous id are routed to
the contact. Several devices of one user merge the same way.

Guard rails (Segment's identity resolution): blocked ids such as `null`,
`anonymous`, `0`, `-1` or empty never identify anyone, and at most
`max_anonymous_ids` visitors merge into one contact.
"""

from __future__ import annotations

from dataflows.contact_state import ContactState
from dataflows.counters import MAX_CATEGORIES
from dataflows.dedup import DedupWindow, merge_seen
from dataflows.orders import merge_orders
from dataflows.scoring import merge_scores
from dataflows.sessions import merge_sessions
from dataflows.traits import merge_traits
from dataflows.windows import merge_logs
from state.config import ActiveConfig
from state.events import Alias, StreamEvent
from state.validation import is_blocked_id


def known_user(event: StreamEvent) -> str | None:
    """The user id an event identifies, unless it is missing or blocked."""
    user_id = event.user_id
    return None if user_id is None or is_blocked_id(user_id) else user_id


def device_id(event: StreamEvent) -> str | None:
    """The anonymous id an event comes from (`previousId` for alias)."""
    if isinstance(event, Alias):
        return event.previous_id
    return event.anonymous_id


def merge_contacts(into: ContactState, other: ContactState, now: float, config: ActiveConfig,
                   dedup: DedupWindow) -> bool:
    """Fold an anonymous visitor's state into a contact; False when the merge cap is reached."""
    cap = config.identity.max_anonymous_ids
    new_ids = [a for a in other.anonymous_ids if a not in into.anonymous_ids]
    if len(into.anonymous_ids) + len(new_ids) > cap:
        return False
    into.anonymous_ids.extend(new_ids)
    into.traits = merge_traits(into.traits, other.traits)
    if other.first_seen and (not into.first_seen or other.first_seen < into.first_seen):
        into.first_seen = other.first_seen
    into.last_seen = max(into.last_seen, other.last_seen)
    mine, theirs = into.counters, other.counters
    for name in ("events", "page_views", "product_views", "cart_adds", "cart_removes", "checkouts",
                 "orders", "sign_ups", "form_submits", "email_opens", "email_clicks"):
        setattr(mine, name, getattr(mine, name) + getattr(theirs, name))
    mine.revenue = round(mine.revenue + theirs.revenue, 2)
    by_category = mine.product_views_by_category
    for category, count in theirs.product_views_by_category.items():
        if category in by_category or len(by_category) < MAX_CATEGORIES:
            by_category[category] = by_category.get(category, 0) + count
    _merge_cart(into, other)
    merge_logs(into.activity, other.activity)
    merge_sessions(into.session, other.session)
    merge_orders(into.orders, other.orders)
    merge_scores(into.scoring, other.scoring, now, config)
    into.tags.extend(t for t in other.tags if t not in into.tags)
    into.lists.extend(x for x in other.lists if x not in into.lists)
    into.late_events += other.late_events
    merge_seen(into.seen, other.seen, dedup)
    return True


def _merge_cart(into: ContactState, other: ContactState) -> None:
    """The most recently touched cart wins whole: a cart is one shopping intent, not a sum."""
    if not other.cart:
        return
    if into.cart and (into.cart_updated_at or 0.0) >= (other.cart_updated_at or 0.0):
        return
    into.cart = other.cart
    into.cart_updated_at = other.cart_updated_at
    into.cart_abandoned = other.cart_abandoned
