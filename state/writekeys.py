"""Write keys: which sites may send events, from which origins, and how far their events are trusted.

A site has two kinds of key. Its *public* key sits in the page, so anyone
has it: it grants appending events and reading that site's decisions, its
allowed origins stop other sites from using it from a browser, and the user
ids its events claim are believed only with the user's signature
(`trust_browser_identity` is the old, trusting behaviour). Its *secret* key
is for the shop's back end (HTTP Basic): events sent with it are trusted.
A secret key is never stored: its record is filed under the SHA-256 of the
key (`lookup_name`), so a reader of Redis cannot send as the shop.
A rotated key stays valid until `expires_at` (the grace period).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final, Literal

import msgspec
import redis.asyncio as aioredis

from state import keys

KeyKind = Literal["public", "secret"]
PUBLIC_PREFIX: Final = "attimo_pk_"
SECRET_PREFIX: Final = "attimo_sk_"
"""Secret keys start with this, so a look-up knows to hash them, and so do secret scanners."""


class WriteKey(msgspec.Struct, frozen=True, omit_defaults=True):
    """A site's write key: its allowed browser origins and how far its events are trusted.

    `key` is the key itself for a public key, and only a hint of it
    (`attimo_sk_abcd…`) for a secret one. `identity_secrets` are the site's
    secrets that sign user ids (empty: the process's `ATTIMO_IDENTITY_SECRETS`).
    `trust_browser_identity` None follows the global setting.
    """

    key: str
    origins: list[str]
    id: str = ""
    site: str = "default"
    kind: KeyKind = "public"
    trust_browser_identity: bool | None = None
    identity_secrets: list[str] = msgspec.field(default_factory=list)
    created_at: float = 0.0
    expires_at: float | None = None

    def allows_origin(self, origin: str | None) -> bool:
        """Server-side callers send no Origin; browsers must match the list (a secret key: no browser)."""
        if origin is None:
            return True
        return self.kind == "public" and ("*" in self.origins or origin in self.origins)

    def expired(self, now: float) -> bool:
        """Whether a rotated key's grace period is over."""
        return self.expires_at is not None and now >= self.expires_at

    def trusts_browser_identity(self, default: bool) -> bool:
        """Whether user ids its browser events claim are believed without a signature (the old behaviour)."""
        return default if self.trust_browser_identity is None else self.trust_browser_identity


def lookup_name(key: str) -> str:
    """The name a key's record is filed under: the key itself, or a secret key's SHA-256."""
    if key.startswith(SECRET_PREFIX):
        return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


async def save_write_key(client: aioredis.Redis, write_key: WriteKey, plain_key: str | None = None) -> None:
    """Create or replace a write key (`plain_key`: the secret key a secret record's hint stands for)."""
    name = lookup_name(plain_key if plain_key is not None else write_key.key)
    async with client.pipeline(transaction=True) as pipe:
        if write_key.expires_at is not None:
            pipe.set(keys.write_key(name), msgspec.json.encode(write_key), exat=int(write_key.expires_at) + 1)
        else:
            pipe.set(keys.write_key(name), msgspec.json.encode(write_key))
        if write_key.id:
            pipe.hset(keys.write_key_index(), write_key.id, name)
        await pipe.execute()


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
        raw = await self.client.get(keys.write_key(lookup_name(key)))
        found = msgspec.json.decode(raw, type=WriteKey) if raw else None
        self._entries[key] = (now + (self.ttl_s if found is not None else self.negative_ttl_s), found)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return found
