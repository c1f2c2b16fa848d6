"""Factories for realistic events and the counts they must produce."""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from state.events import Event, Page, Track

FIXED_NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CATEGORIES = ("shoes", "bags", "hats", "coats")


def page(anonymous_id: str, at: datetime = FIXED_NOW, **props: object) -> Page:
    """A page view by an anonymous visitor."""
    return Page(message_id=str(uuid.uuid4()), anonymous_id=anonymous_id, timestamp=at,
                received_at=at, properties=dict(props))


def track(anonymous_id: str, name: str, at: datetime = FIXED_NOW, user_id: str | None = None,
          **props: object) -> Track:
    """A track event by an anonymous (or known) visitor."""
    return Track(message_id=str(uuid.uuid4()), anonymous_id=anonymous_id, user_id=user_id,
                 event=name, timestamp=at, received_at=at, properties=dict(props))


def shopping_events(count: int, contacts: int, seed: int = 7) -> list[Event]:
    """`count` page views, product views, adds and orders spread over `contacts` visitors."""
    rng = random.Random(seed)
    out: list[Event] = []
    for i in range(count):
        who = f"anon-{rng.randrange(contacts):05d}"
        at = FIXED_NOW + timedelta(milliseconds=i)
        kind = rng.random()
        if kind < 0.4:
            out.append(page(who, at))
        elif kind < 0.8:
            out.append(track(who, "Product Viewed", at, category=rng.choice(CATEGORIES),
                             product_id=f"p{rng.randrange(50)}", price=10.0))
        elif kind < 0.95:
            out.append(track(who, "Product Added", at, product_id=f"p{rng.randrange(50)}", price=10.0,
                             quantity=1))
        else:
            out.append(track(who, "Order Completed", at, order_id=str(i), revenue=25.5))
    return out


def expected_counters(events: list[Event]) -> dict[str, Counter[str]]:
    """What each contact's counters must say after `events`, computed plainly."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for event in events:
        who = event.anonymous_id or event.user_id or ""
        c = counts[who]
        c["events"] += 1
        if isinstance(event, Page):
            c["page_views"] += 1
        elif isinstance(event, Track):
            if event.event == "Product Viewed":
                c["product_views"] += 1
            elif event.event == "Product Added":
                c["cart_adds"] += 1
            elif event.event == "Order Completed":
                c["orders"] += 1
    return counts
