"""Admin tokens: several, each with scopes, stored only as the SHA-256 of the token.

A token is 256 bits of randomness, so its SHA-256 is as good as a password
hash for it (no salt or stretching is needed: nothing can be guessed), and a
reader of Redis learns nothing that lets them call the API. A token is
looked up by its digest; the dev token (`ATTIMO_ADMIN_TOKEN`) is compared
in constant time and holds every scope.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final, Literal, cast, get_args

import msgspec
import redis.asyncio as aioredis

from state import keys

Scope = Literal["contacts:read", "config:write", "keys:manage", "contacts:erase", "admin"]
"""What a token may do:

- `contacts:read`: every admin read (contacts, their decisions, configuration, stats, the dashboard);
- `config:write`: every change of configuration or of a contact's tags / lists / workflows;
- `keys:manage`: sites, write keys and admin tokens;
- `contacts:erase`: erasing (and exporting) a contact's personal data;
- `admin`: all of the above.
"""
SCOPES: Final[tuple[str, ...]] = get_args(Scope)
ALL: Final = "admin"
TOKEN_PREFIX: Final = "attimo_at_"


class AdminToken(msgspec.Struct, frozen=True, omit_defaults=True):
    """An admin token's record (the token itself is never stored)."""

    id: str
    scopes: list[Scope]
    name: str = ""
    hint: str = ""
    created_at: float = 0.0

    def allows(self, scope: str) -> bool:
        """Whether the token holds `scope` (or `admin`)."""
        return grants(self.scopes, scope)


def grants(held: list[Scope] | frozenset[str] | tuple[str, ...], scope: str) -> bool:
    """Whether scopes `held` include `scope` (`admin` includes every scope)."""
    return ALL in held or scope in held


def digest(token: str) -> str:
    """The SHA-256 a token is filed under."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh admin token (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create_token(client: aioredis.Redis, scopes: list[Scope], name: str, now: float) -> tuple[str, AdminToken]:
    """Make and save a token; returns it (its only showing) and its record."""
    token = new_token()
    record = AdminToken(id="tok_" + secrets.token_hex(8), scopes=sorted(set(scopes)), name=name,
                        hint=token[: len(TOKEN_PREFIX) + 4] + "…", created_at=now)
    hashed = digest(token)
    async with client.pipeline(transaction=True) as pipe:
        pipe.set(keys.admin_token(hashed), msgspec.json.encode(record))
        pipe.hset(keys.admin_token_index(), record.id, hashed)
        await pipe.execute()
    return token, record


async def find_token(client: aioredis.Redis, token: str) -> AdminToken | None:
    """The record of the token presented, or None (unknown or revoked)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    raw = await client.get(keys.admin_token(digest(token)))
    return msgspec.json.decode(raw, type=AdminToken) if raw else None


async def list_tokens(client: aioredis.Redis) -> list[AdminToken]:
    """Every token's record (never the tokens)."""
    index = cast("dict[bytes, bytes]", await client.hgetall(keys.admin_token_index()))
    if not index:
        return []
    raws = await client.mget([keys.admin_token(v.decode()) for v in index.values()])
    found = [msgspec.json.decode(raw, type=AdminToken) for raw in raws if raw]
    return sorted(found, key=lambda t: (t.created_at, t.id))


async def revoke_token(client: aioredis.Redis, token_id: str) -> bool:
    """Delete a token: it stops working at once; False when unknown."""
    hashed = cast("bytes | None", await client.hget(keys.admin_token_index(), token_id))
    if hashed is None:
        return False
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.admin_token(hashed.decode()))
        pipe.hdel(keys.admin_token_index(), token_id)
        await pipe.execute()
    return True
