"""The contact profile: what the dataflow writes and the API serves.

The dataflow owns the truth (its snapshotted state) and writes each changed
contact's profile whole, as one JSON value: an overwrite is idempotent, so a
replay after a crash rewrites the same bytes instead of counting twice. The
API decodes with the same Struct, so both sides agree on every field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec


class CartLine(msgspec.Struct, kw_only=True):
    """One product in a contact's current cart."""

    product_id: str
    name: str = ""
    category: str = ""
    price: float = 0.0
    quantity: int = 1


class Counters(msgspec.Struct, kw_only=True, omit_defaults=True):
    """All-time counts of what the contact did (zeros are left out of the JSON)."""

    events: int = 0
    page_views: int = 0
    product_views: int = 0
    product_views_by_category: dict[str, int] = msgspec.field(default_factory=dict)
    cart_adds: int = 0
    cart_removes: int = 0
    checkouts: int = 0
    orders: int = 0
    revenue: float = 0.0
    sign_ups: int = 0
    form_submits: int = 0
    email_opens: int = 0
    email_clicks: int = 0


class SessionsSummary(msgspec.Struct, kw_only=True):
    """Visits: how many, and the current one (0 pages, 0 s once it has ended)."""

    sessions: int = 0
    current_session_pages: int = 0
    current_session_duration_s: float = 0.0
    returning: bool = False
    new_visitor: bool = True


class OrdersSummary(msgspec.Struct, kw_only=True):
    """All-time order figures (times in epoch seconds, event time)."""

    orders: int = 0
    revenue: float = 0.0
    average_order_value: float = 0.0
    first_order_at: float | None = None
    last_order_at: float | None = None
    average_days_between_orders: float | None = None


class WorkflowPosition(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where the contact is in one workflow: the step, and what it waits for until when."""

    workflow: str
    version: int
    step: str
    entered_at: float
    due_at: float | None = None
    waiting: bool = False
    branch: str | None = None


class ActionLogEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One of the contact's recent workflow actions and what became of it in the dataflow.

    `outcome`: `queued` (in the outbox; the dispatcher reports delivery),
    `held` (over the frequency cap, not sent), `skipped` (unsubscribed, no
    e-mail address …).
    """

    at: float
    workflow: str
    step: str
    outcome: str
    action_id: str | None = None
    reason: str | None = None


class RecentEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One of the contact's recent events, for the explorer's timeline (strings clipped by the dataflow).

    `value`: price × quantity for a product added or removed, the total for
    a checkout, cart view or order.
    """

    at: float
    type: str
    name: str = ""
    page: str = ""
    product_id: str = ""
    product: str = ""
    campaign: str = ""
    value: float | None = None


class Flags(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Small yes/no facts owned by capabilities."""

    cart_abandoned: bool = False


def _fields(kind: type[msgspec.Struct]) -> tuple[str, ...]:
    return tuple(f.name for f in msgspec.structs.fields(kind))


COUNTER_NAMES: Final = tuple(n for n in _fields(Counters) if n != "product_views_by_category")
"""Every numeric all-time counter, in one list: what merges add up and what `Total` may ask."""
TOTAL_FIGURES: Final = (*COUNTER_NAMES, "sessions", *(n for n in _fields(OrdersSummary) if n not in COUNTER_NAMES))
"""Every all-time figure a `Total` segment condition may compare."""


class Profile(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A contact as operators and widgets see it."""

    contact_id: str
    anonymous_ids: list[str] = msgspec.field(default_factory=list)
    user_id: str | None = None
    email: str | None = None
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    counters: Counters = msgspec.field(default_factory=Counters)
    cart: list[CartLine] = msgspec.field(default_factory=list)
    cart_value: float = 0.0
    cart_updated_at: datetime | None = None
    score: float = 0.0
    temperature: str = "cold"
    stage: str = "awareness"
    tags: list[str] = msgspec.field(default_factory=list)
    lists: list[str] = msgspec.field(default_factory=list)
    segments: list[str] = msgspec.field(default_factory=list)
    # Counts per event name, category and product over each sliding window.
    windows: dict[str, dict[str, dict[str, int]]] = msgspec.field(default_factory=dict)
    sessions: SessionsSummary = msgspec.field(default_factory=SessionsSummary)
    orders: OrdersSummary = msgspec.field(default_factory=OrdersSummary)
    rfm: tuple[int, int, int] = (0, 0, 0)
    # (epoch seconds, score) after each of the last changes, for charts.
    score_history: list[tuple[float, float]] = msgspec.field(default_factory=list)
    late_events: int = 0
    config_version: int = 0
    # Small flags owned by capabilities (cart_abandoned …); absent when none is set.
    extra: Flags | None = None
    updated_at: datetime | None = None
    workflows: list[WorkflowPosition] = msgspec.field(default_factory=list)
    actions: list[ActionLogEntry] = msgspec.field(default_factory=list)
    # The last events (`ATTIMO_EVENT_LOG_SIZE`), newest first.
    recent_events: list[RecentEvent] = msgspec.field(default_factory=list)
    # Parts of capabilities this schema has no field for (added by a deployment), by field name.
    extensions: dict[str, Any] = msgspec.field(default_factory=dict)


class Decisions(msgspec.Struct, kw_only=True):
    """What on-site widgets should do for a visitor right now."""

    contact_id: str | None = None
    popups: list[dict[str, Any]] = msgspec.field(default_factory=list)
    recommendations: dict[str, list[dict[str, Any]]] = msgspec.field(
        default_factory=lambda: {"cross_sell": [], "up_sell": [], "personal": []})
    segments: list[str] = msgspec.field(default_factory=list)
    temperature: str = "cold"
    score: float = 0.0
    cart_value: float = 0.0


_profile_encoder: Final = msgspec.json.Encoder()
_profile_decoder: Final = msgspec.json.Decoder(Profile)


def encode_profile(profile: Profile) -> bytes:
    """Profile → JSON bytes for Redis."""
    return _profile_encoder.encode(profile)


def decode_profile(raw: bytes) -> Profile:
    """JSON bytes from Redis → Profile."""
    return _profile_decoder.decode(raw)


def decisions_for(profile: Profile | None) -> Decisions:
    """The decisions a profile implies; empty for a visitor with no state."""
    if profile is None:
        return Decisions()
    return Decisions(
        contact_id=profile.contact_id,
        segments=list(profile.segments),
        temperature=profile.temperature,
        score=profile.score,
        cart_value=profile.cart_value,
    )
