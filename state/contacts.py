"""Identity's one owner outside the dataflow: any id → its contact, and the stage that keeps it.

A contact is known by its anonymous ids, its user id and its e-mail (in any
case). The dataflow keeps an anonymous visitor in its *visitor* stage under
its anonymous id, and a known contact in its *contact* stage under its user
id (`dataflows.shard.stages`); whoever addresses a contact from outside —
the admin API appending internal events, the decisions route, the contact
explorer — resolves the id here and addresses the contact the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis

from state import keys
from state.profile import Profile, decode_profile


@dataclass(frozen=True, slots=True)
class ContactRef:
    """A resolved contact: its profile and how the dataflow keys it."""

    profile: Profile

    @property
    def contact_id(self) -> str:
        """The contact's own id (its user id when known, else its anonymous id)."""
        return self.profile.contact_id

    @property
    def anonymous(self) -> bool:
        """Whether the contact is an anonymous visitor (kept in the visitor stage)."""
        return self.profile.user_id is None


def event_ids(ref: ContactRef | None, given: str) -> tuple[str | None, str | None]:
    """(anonymousId, userId) an event about this contact must carry to reach the stage that keeps it.

    An id nobody knows yet (a CRM import naming a future customer) is taken
    as a user id, so the events route to the contact that id will be.
    """
    if ref is None:
        return None, given
    return (ref.contact_id, None) if ref.anonymous else (None, ref.contact_id)


async def resolve_contact(client: aioredis.Redis, any_id: str) -> ContactRef | None:
    """The contact known by `any_id` (anonymous id, user id, or e-mail in any case), or None.

    The direct key answers in one round trip; an id merged into another
    contact is followed through its alias; e-mail aliases are stored lower-case.
    """
    raw = cast("bytes | None", await client.get(keys.contact_profile(any_id)))
    if raw is None:
        owner = cast("bytes | None", await client.get(keys.contact_alias(any_id)))
        if owner is None and "@" in any_id:
            owner = cast("bytes | None", await client.get(keys.contact_alias(any_id.lower())))
        if owner is None:
            return None
        raw = cast("bytes | None", await client.get(keys.contact_profile(owner.decode())))
        if raw is None:
            return None
    return ContactRef(decode_profile(raw))


async def load_profile(client: aioredis.Redis, any_id: str) -> Profile | None:
    """The profile of the contact known by `any_id`, or None."""
    ref = await resolve_contact(client, any_id)
    return None if ref is None else ref.profile
