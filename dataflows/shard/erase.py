"""Erasing contacts in a contact shard, and the tombstones that keep them erased (`state.erasure`).

An erase control reaches every contact shard of both stages in stream order.
Each shard adds the control's hashes to its tombstones (part of its
snapshot), forgets every contact whose key hashes to one of them and every
visitor → user link with such an id at either end, and reports what it
forgot. Because the forgetting happens to the shard's own state, the next
snapshot no longer holds the contact, and a replay after a crash re-reads
the control (it holds only hashes, so it stays in the stream) and forgets
again whatever the replayed events rebuilt.

Per erase the shard hashes each contact key it holds once (~1 µs each);
that is erase work, not per-event work. Per event, `blocked` hashes the
event's ids only while the shard holds tombstones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dataflows.io.outputs import BlockedEvents, ContactErased, EraseDone, Output
from dataflows.shard.contact import ContactCore
from dataflows.shard.identity import USER_MARK
from state.erasure import EraseAnswer, EraseControl, id_hash
from state.events import Alias, Identify, StreamEvent
from state.shards import shard_answer_field

if TYPE_CHECKING:
    from dataflows.shard.shard import ContactShard


def event_ids(event: StreamEvent) -> list[str]:
    """The ids an event names: anonymous id, user id, alias's previous id, identify's e-mail trait."""
    ids = [i for i in (event.anonymous_id, event.user_id) if i]
    if isinstance(event, Alias):
        ids.append(event.previous_id)
    elif isinstance(event, Identify):
        email = event.traits.get("email")
        if isinstance(email, str) and email:
            ids.append(email.lower())
    return ids


def blocked(tombstones: dict[str, float], ids: Iterable[str]) -> bool:
    """Whether any of `ids` is tombstoned (callers skip this when there are no tombstones)."""
    return any(id_hash(any_id) in tombstones for any_id in ids)


def stopped(event: StreamEvent, ids: list[str], now: float) -> BlockedEvents:
    """What the sink needs to drop a stopped event's stream entry: its ids, and since when to look."""
    received = event.received_at.timestamp() if event.received_at is not None else now
    return BlockedEvents(tuple(ids), int((min(received, now) - 60) * 1000))


def contact_ids(state: ContactCore) -> list[str]:
    """Every id a contact is known by: its own, user id, devices, e-mail (any case)."""
    ids = [state.contact_id, *state.anonymous_ids]
    if state.user_id:
        ids.append(state.user_id)
    traits: Any = getattr(state, "traits", None)
    values = getattr(traits, "values", None)
    email = values.get("email") if isinstance(values, dict) else None
    if isinstance(email, str) and email:
        ids += [email, email.lower()]
    return list(dict.fromkeys(ids))


def apply_erase(shard: ContactShard, control: EraseControl, stage: str) -> list[Output]:
    """Tombstone the control's hashes (or lift them) and forget matching contacts and links."""
    field = shard_answer_field(stage, shard.shard)
    if control.lift:
        for digest in control.hashes:
            shard.tombstones.pop(digest, None)
        return [EraseDone(control.id, field, EraseAnswer(0, 0))]
    wanted = set(control.hashes)
    for digest in control.hashes:
        shard.tombstones[digest] = control.requested_at
    forgotten: dict[str, None] = {}
    contacts = 0
    for contact_id in shard.book.all_ids():
        if id_hash(contact_id) not in wanted:
            continue
        state = shard.book.pop(contact_id)
        contacts += 1
        forgotten.update(dict.fromkeys(contact_ids(state) if state is not None else [contact_id]))
    links = 0
    for anonymous_id in [a for a in shard.link_seen if a in forgotten or id_hash(a) in wanted]:
        del shard.link_seen[anonymous_id]
    for anonymous_id, user_id in list(shard.links.items()):
        if (anonymous_id in forgotten or user_id in forgotten
                or id_hash(anonymous_id) in wanted or id_hash(user_id) in wanted):
            del shard.links[anonymous_id]
            shard.link_seen.pop(anonymous_id, None)
            links += 1
            forgotten.update(dict.fromkeys((anonymous_id, user_id)))
    if contacts or links:
        shard.ctx.count("contacts_erased", contacts)
    ids = tuple(i for i in forgotten if not i.startswith(USER_MARK))  # a user marker names no key of its own
    out: list[Output] = [ContactErased(ids)] if ids else []
    out.append(EraseDone(control.id, field, EraseAnswer(contacts, links)))
    return out
