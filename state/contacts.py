"""Finding a contact's profile by any of its ids."""

from __future__ import annotations

from typing import cast

import redis.asyncio as aioredis

from state import keys
from state.profile import Profile, decode_profile


async def load_profile(client: aioredis.Redis, any_id: str) -> Profile | None:
    """The profile of the contact known by `any_id` (anonymous id, user id, e-mail).

    The direct key answers in one round trip; an id that was merged into
    another contact is followed through its alias.
    """
    raw = cast("bytes | None", await client.get(keys.contact_profile(any_id)))
    if raw is None:
        owner = cast("bytes | None", await client.get(keys.contact_alias(any_id)))
        if owner is None and "@" in any_id:  # e-mail aliases are stored lower-case
            owner = cast("bytes | None", await client.get(keys.contact_alias(any_id.lower())))
        if owner is None:
            return None
        raw = cast("bytes | None", await client.get(keys.contact_profile(owner.decode())))
        if raw is None:
            return None
    return decode_profile(raw)
