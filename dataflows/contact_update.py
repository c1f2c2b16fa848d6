"""Applying one event, or the passing of time, to a contact's state.

Every capability updates its own part; the order matters only where one
reads another (the cart before the abandonment deadline, windows before
segments), and segments are evaluated once per contact per activation by
`evaluation.evaluate`, not here.
"""

from __future__ import annotations

from dataflows.cart import apply_cart, check_cart_idle
from dataflows.contact_state import ContactState
from dataflows.counters import apply_counters
from dataflows.live_config import LiveConfig
from dataflows.orders import apply_order
from dataflows.scoring import apply_scoring, on_scoring_time
from dataflows.sessions import apply_session
from dataflows.tags import apply_admin_change, apply_tag_rules
from dataflows.traits import set_traits
from dataflows.windows import record_activity
from state.events import Identify, ListChanged, Page, Screen, StreamEvent, TagsChanged, event_time


def apply_event(state: ContactState, event: StreamEvent, live: LiveConfig, cart_idle_s: float) -> None:
    """Fold one (deduplicated) event into the contact's state."""
    config = live.config
    if isinstance(event, TagsChanged | ListChanged):
        apply_admin_change(state, event)
        return
    at = event_time(event).timestamp()
    received = event.received_at.timestamp() if event.received_at else at
    if not state.first_seen or at < state.first_seen:
        state.first_seen = at
    state.last_seen = max(state.last_seen, at)
    anonymous_id = event.anonymous_id
    if (anonymous_id and anonymous_id not in state.anonymous_ids
            and len(state.anonymous_ids) < config.identity.max_anonymous_ids):
        state.anonymous_ids.append(anonymous_id)
    if isinstance(event, Identify):
        set_traits(state.traits, event.traits)
    apply_counters(state, event)
    apply_cart(state, event, at, cart_idle_s)
    apply_order(state.orders, event, at)
    apply_session(state.session, at, isinstance(event, Page | Screen), config.windows)
    if not record_activity(state.activity, event, at, received, config.windows):
        state.late_events += 1
    apply_scoring(state.scoring, event, at, config)
    apply_tag_rules(state, event, config)


def apply_time(state: ContactState, now: float, live: LiveConfig, cart_idle_s: float) -> None:
    """What the clock alone changes: due absence rules and cart idleness.

    Old window entries are pruned by `evaluation.evaluate`, which always follows.
    """
    on_scoring_time(state.scoring, now, live.config)
    check_cart_idle(state, now, cart_idle_s)
