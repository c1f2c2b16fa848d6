"""Write keys: which sites may send events, and from which origins.

A write key is public (it sits in the page), so it only grants appending
events and reading that site's decisions; its allowed origins stop other
sites from using it from a browser.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

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


MAX_KEY_LENGTH: Final = 128
_PLAUSIBLE_KEY: Final = re.compile(rf"[!-~]{{1,{MAX_KEY_LENGTH}}}")


def plausible_key(key: str) -> bool:
    """Whether `key` could be a write key at all: 1–128 printable ASCII characters, no spaces.

    Checked before any look-up, so a megabyte of "key" costs neither a Redis
    round trip nor a cache entry.
    """
    return _PLAUSIBLE_KEY.fullmatch(key) is not None


@dataclass
class WriteKeyCache:
    """Looks write keys up in Redis, remembering answers for a few seconds.

    Every frame and request checks its key; a short cache keeps that off the
    hot path while a revoked key still stops working within `ttl_s`. Unknown
    keys are remembered only `negative_ttl_s` and the cache holds at most
    `max_entries` (least recently used go first), so clients sending random
    keys can neither grow it nor turn it into a Redis amplifier.
    """

    client: aioredis.Redis
    ttl_s: float = 5.0
    negative_ttl_s: float = 1.0
    max_entries: int = 10_000

    def __post_init__(self) -> None:
        self._entries: OrderedDict[str, tuple[float, WriteKey | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> WriteKey | None:
        """The write key record, or None when no such key exists."""
        if not plausible_key(key):
            return None
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now < hit[0]:
            self._entries.move_to_end(key)
            return hit[1]
        raw = await self.client.get(keys.write_key(key))
        found = msgspec.json.decode(raw, type=WriteKey) if raw else None
        self._entries[key] = (now + (self.ttl_s if found is not None else self.negative_ttl_s), found)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return found
