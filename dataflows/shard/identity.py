"""Identity: which contact an event belongs to, and merging a visitor into it.

An anonymous visitor's state lives in the *visitor* stage, keyed by the
shard of its anonymous id; known contacts live in the *contact* stage, keyed
by the shard of their user id. When a visitor identifies (an event carrying
both ids, or `alias`), the visitor stage records the link and hands the
visitor's whole state to the contact stage, which merges it part by part
(each capability's `merge`); later events from that anonymous id are routed
to the contact. Several devices of one user merge the same way.

Guard rails (Segment's identity resolution): blocked ids such as `null`,
`anonymous`, `0`, `-1` or empty never identify anyone, and at most
`max_anonymous_ids` visitors merge into one contact.
"""

from __future__ import annotations

from dataflows.capabilities.base import Context
from dataflows.shard.contact import ContactCore, Registry
from dataflows.shard.dedup import DedupWindow, merge_seen
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


def merge_contacts(into: ContactCore, other: ContactCore, registry: Registry, ctx: Context,
                   dedup: DedupWindow) -> bool:
    """Fold an anonymous visitor's state into a contact; False when the merge cap is reached."""
    cap = ctx.live.config.identity.max_anonymous_ids
    new_ids = [a for a in other.anonymous_ids if a not in into.anonymous_ids]
    if len(into.anonymous_ids) + len(new_ids) > cap:
        return False
    into.anonymous_ids.extend(new_ids)
    if other.first_seen and (not into.first_seen or other.first_seen < into.first_seen):
        into.first_seen = other.first_seen
    into.last_seen = max(into.last_seen, other.last_seen)
    merge_seen(into.seen, other.seen, dedup)
    for name, merge in registry.mergers:
        merge(getattr(into, name), getattr(other, name), ctx)
    return True
