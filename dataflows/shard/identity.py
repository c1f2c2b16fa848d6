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

Verified identity (`state.events.Trust`): a browser's claim to a user id
counts only when the ingest proved it. An unproved claim is taken off the
event (`believed`), which then stays on the anonymous visitor: it merges
nothing, and a known contact's traits and decisions are not its to touch.
And since anonymous ids and user ids share one name space (profiles,
aliases, decisions are keyed by either), the visitor stage remembers which
ids of its shard are users (`mark_user`) and never lets a browser make an
anonymous visitor under one (`is_known_user`).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Final

import msgspec

from dataflows.capabilities.base import Context
from dataflows.shard.book import ContactBook
from dataflows.shard.contact import ContactCore, Registry
from dataflows.shard.dedup import DedupWindow, merge_seen
from state.events import BROWSER, Alias, Identify, StreamEvent
from state.shards import shard_of
from state.validation import is_blocked_id

# Known users are kept among the shard's links under this prefix: ids never hold a control
# character (`state.validation`), so no client id can collide with a marker, and the markers
# ride along in the shard's snapshot. Unlike device links, markers are kept (`shard.purge_links`): they
# guard the user's id for good, at about 50 bytes per user; an erase removes them (`shard.erase`).
USER_MARK: Final = "\x00user:"


@dataclass(frozen=True, slots=True)
class KnownUser:
    """Tells the visitor shard of `user_id` that it is a user (sent by the router beside an identify)."""

    user_id: str


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


def proved(event: StreamEvent) -> bool:
    """Whether the event's ids are believed: not a browser's unproved claim (unmarked events are internal)."""
    return event.trust != BROWSER


def believed(event: StreamEvent) -> StreamEvent | None:
    """The event as identity may take it: a browser's unproved `userId` is dropped from it.

    What is left stays on the anonymous visitor (its `trust` still says
    `browser`, so it is flagged unverified downstream). An unproved alias
    says nothing else and goes (None), as does an event with no device id.
    """
    if event.trust != BROWSER or event.user_id is None:
        return event
    if isinstance(event, Alias) or event.anonymous_id is None:
        return None
    return msgspec.structs.replace(event, user_id=None)


def user_notices(event: StreamEvent, shards: int) -> list[tuple[str, KnownUser]]:
    """A `KnownUser` for the visitor shard of a user an identify or alias proves, if any."""
    if not isinstance(event, Identify | Alias) or not proved(event):
        return []
    user_id = known_user(event)
    return [] if user_id is None else [(str(shard_of(user_id, shards)), KnownUser(user_id))]


def mark_user(links: MutableMapping[str, str], user_id: str) -> bool:
    """Remember that `user_id` is a user; True the first time."""
    if USER_MARK + user_id in links:
        return False
    links[USER_MARK + user_id] = user_id
    return True


def is_known_user(links: MutableMapping[str, str], any_id: str) -> bool:
    """Whether `any_id` is a user this visitor shard knows of."""
    return USER_MARK + any_id in links


def learn_user(links: MutableMapping[str, str], book: ContactBook, touched: dict[str, None], user_id: str) -> None:
    """Mark `user_id` a user of this shard; a browser's visitor made under that id before is dropped.

    Dropped without output: the contact stage writes the id's profile, and a
    retired visitor's segment exits or profile delete would hit the user's.
    """
    if mark_user(links, user_id) and book.get(user_id) is not None:
        book.pop(user_id)
        touched.pop(user_id, None)


def on_visitor(event: StreamEvent) -> StreamEvent:
    """The event as an anonymous visitor takes it: its own traits, so an identify's are not held back.

    A browser's traits only fill a known contact's gaps (`capabilities.traits`);
    a visitor's traits are all the browser's, so there the newest wins.
    """
    if isinstance(event, Identify) and event.trust == BROWSER:
        return msgspec.structs.replace(event, trust=None)
    return event
