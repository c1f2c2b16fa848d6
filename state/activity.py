"""Who is active and how many contacts there are, kept by the dataflow for the dashboard.

- `keys.active_contacts()`: a sorted set of the visitor / contact ids whose
  events the dataflow processed, scored by when. The sink adds one batch's
  ids in one ZADD and drops ids older than the window now and then, so it
  holds about the visitors of the last `active_window_s`; a visitor who
  signs in leaves it (its anonymous id's profile is deleted) and comes
  back as the contact.
- `keys.population()`: each contact shard's size per stage, written as an
  absolute number when it changed (replays rewrite the same value):
  `visitors:<shard>:contacts` anonymous visitors, `contacts:<shard>:contacts`
  known contacts (the `<stage>:<shard>:<counter>` fields of every tally hash).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final, cast

import redis.asyncio as aioredis

from state import keys

VISITORS: Final = "visitors"
CONTACTS: Final = "contacts"


def queue_seen(pipe: Any, seen: Mapping[str, float]) -> None:
    """Mark ids as active at their time (one ZADD for a whole sink batch)."""
    if seen:
        pipe.zadd(keys.active_contacts(), dict(seen))


def queue_trim(pipe: Any, now: float, window_s: float) -> None:
    """Drop ids not active within `window_s` of `now`."""
    pipe.zremrangebyscore(keys.active_contacts(), "-inf", f"({now - window_s}")


async def count_active(client: aioredis.Redis, window_s: float, now: float | None = None) -> int:
    """Visitors and contacts with an event processed within the last `window_s`."""
    at = time.time() if now is None else now
    return int(await client.zcount(keys.active_contacts(), at - window_s, "+inf"))


def sum_population(raw: Mapping[bytes, bytes]) -> tuple[int, int]:
    """(known contacts, anonymous visitors) from the population hash."""
    known = anonymous = 0
    for field, value in raw.items():
        if field.startswith(CONTACTS.encode() + b":"):
            known += int(value)
        elif field.startswith(VISITORS.encode() + b":"):
            anonymous += int(value)
    return known, anonymous


async def read_population(client: aioredis.Redis) -> tuple[int, int]:
    """(known contacts, anonymous visitors) the dataflow holds now."""
    return sum_population(cast("dict[bytes, bytes]", await client.hgetall(keys.population())))
