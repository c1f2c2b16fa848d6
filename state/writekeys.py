"""Write keys: which sites may send events, and from which origins.

A write key is public (it sits in the page), so it only grants appending
events and reading that site's decisions; its allowed origins stop other
sites from using it from a browser.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec
import redis.asyncio as aioredis

from state import keys


class WriteKey(msgspec.Struct, frozen=True):
    """A site's write key and the browser origins allowed to use it."""

    key: str
    origins: list[str]

    def allows_origin(self, origin: str | None) -> bool:
        """Server-side callers send no Origin; browsers must match the list."""
        return origin is None or "*" in self.origins or origin in self.origins


async def save_write_key(client: aioredis.Redis, write_key: WriteKey) -> None:
    """Create or replace a write key."""
    await client.set(keys.write_key(write_key.key), msgspec.json.encode(write_key))


@dataclass
class WriteKeyCache:
    """Looks write keys up in Redis, remembering answers for a few seconds.

    Every frame and request checks its key; a short cache keeps that off the
    hot path while a revoked key still stops working within `ttl_s`.
    """

    client: aioredis.Redis
    ttl_s: float = 5.0

    def __post_init__(self) -> None:
        self._entries: dict[str, tuple[float, WriteKey | None]] = {}

    async def get(self, key: str) -> WriteKey | None:
        """The write key record, or None when no such key exists."""
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        raw = await self.client.get(keys.write_key(key))
        found = msgspec.json.decode(raw, type=WriteKey) if raw else None
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key] = (now, found)
        return found
