"""Sites and their write keys: create, list, rotate, revoke, and change a key's origins or trust.

A site gets a public (browser) key, a secret (server) key and an identity
secret when it is created; the secret key and the identity secret are shown
in full only then. Each key's record (`state.writekeys.WriteKey`) carries
what the hot path needs — origins, trust, the site's identity secrets — so
checking an event costs one cached look-up. Keys are addressed by a short
id (`key_…`), never by the secret itself.
"""

from __future__ import annotations

import secrets
from typing import cast

import msgspec
import redis.asyncio as aioredis

from state import keys
from state.writekeys import PUBLIC_PREFIX, SECRET_PREFIX, KeyKind, WriteKey, lookup_name, save_write_key


class Site(msgspec.Struct, frozen=True, omit_defaults=True):
    """A shop: its name, the secret that signs its users' ids, and whether its browsers are trusted."""

    id: str
    name: str = ""
    identity_secret: str = ""
    trust_browser_identity: bool | None = None
    created_at: float = 0.0


class NewKey(msgspec.Struct, frozen=True):
    """A key just made: its record and the key itself (shown to the caller once)."""

    record: WriteKey
    key: str


def new_key_text(kind: KeyKind) -> str:
    """A fresh key: 128 bits (public) or 256 bits (secret) of randomness, prefixed by its kind."""
    if kind == "secret":
        return SECRET_PREFIX + secrets.token_urlsafe(32)
    return PUBLIC_PREFIX + secrets.token_urlsafe(16)


def hint(key: str) -> str:
    """What a list shows of a secret: its prefix and four characters."""
    return key[: len(SECRET_PREFIX) + 4] + "…"


def make_key(site: Site, kind: KeyKind, origins: list[str], now: float) -> NewKey:
    """A new key record for `site` (not yet saved)."""
    text = new_key_text(kind)
    record = WriteKey(
        key=text if kind == "public" else hint(text), origins=origins, id="key_" + secrets.token_hex(8),
        site=site.id, kind=kind, trust_browser_identity=site.trust_browser_identity,
        identity_secrets=[site.identity_secret] if site.identity_secret else [], created_at=now)
    return NewKey(record, text)


async def get_site(client: aioredis.Redis, site_id: str) -> Site | None:
    """The site's record, or None."""
    raw = cast("bytes | None", await client.hget(keys.sites(), site_id))
    return msgspec.json.decode(raw, type=Site) if raw else None


async def save_site(client: aioredis.Redis, site: Site) -> None:
    """Create or replace a site's record."""
    await client.hset(keys.sites(), site.id, msgspec.json.encode(site))


async def list_sites(client: aioredis.Redis) -> list[Site]:
    """Every site, by id."""
    raw = cast("dict[bytes, bytes]", await client.hgetall(keys.sites()))
    return sorted((msgspec.json.decode(v, type=Site) for v in raw.values()), key=lambda s: s.id)


async def create_site(client: aioredis.Redis, site: Site, origins: list[str], now: float) -> list[NewKey]:
    """Save `site` with a public and a secret key; returns both keys (their only showing)."""
    made = [make_key(site, "public", origins, now), make_key(site, "secret", [], now)]
    await save_site(client, site)
    for new in made:
        await save_write_key(client, new.record, new.key)
    return made


async def list_keys(client: aioredis.Redis) -> list[WriteKey]:
    """Every key the admin API made (and the dev key), expired ones left out and forgotten."""
    index = cast("dict[bytes, bytes]", await client.hgetall(keys.write_key_index()))
    if not index:
        return []
    ids = list(index)
    raws = await client.mget([keys.write_key(index[i].decode()) for i in ids])
    found: list[WriteKey] = []
    gone: list[bytes] = []
    for key_id, raw in zip(ids, raws, strict=True):
        if raw is None:
            gone.append(key_id)  # its grace period ended (Redis expired the record)
        else:
            found.append(msgspec.json.decode(raw, type=WriteKey))
    if gone:
        await client.hdel(keys.write_key_index(), *gone)
    return sorted(found, key=lambda k: (k.site, k.created_at, k.id))


async def _lookup_of(client: aioredis.Redis, key_id: str) -> str | None:
    raw = cast("bytes | None", await client.hget(keys.write_key_index(), key_id))
    return raw.decode() if raw else None


async def get_key(client: aioredis.Redis, key_id: str) -> tuple[str, WriteKey] | None:
    """A key's record by its id, with the name it is filed under; None when unknown or expired."""
    name = await _lookup_of(client, key_id)
    if name is None:
        return None
    raw = await client.get(keys.write_key(name))
    return (name, msgspec.json.decode(raw, type=WriteKey)) if raw else None


async def replace_key(client: aioredis.Redis, name: str, record: WriteKey) -> None:
    """Overwrite a key's record in place (origins, trust, expiry), keeping its name."""
    encoded = msgspec.json.encode(record)
    if record.expires_at is not None:
        await client.set(keys.write_key(name), encoded, exat=int(record.expires_at) + 1)
    else:
        await client.set(keys.write_key(name), encoded)


async def rotate_key(client: aioredis.Redis, key_id: str, grace_s: float, now: float) -> NewKey | None:
    """A new key of the same site, kind and origins; the old one keeps working `grace_s` more seconds."""
    found = await get_key(client, key_id)
    if found is None:
        return None
    name, old = found
    site = await get_site(client, old.site) or Site(old.site, trust_browser_identity=old.trust_browser_identity)
    new = make_key(site, old.kind, list(old.origins), now)
    record = msgspec.structs.replace(new.record, trust_browser_identity=old.trust_browser_identity,
                                     identity_secrets=list(old.identity_secrets))
    await save_write_key(client, record, new.key)
    if grace_s <= 0:
        await revoke_key(client, key_id)
    else:
        await replace_key(client, name, msgspec.structs.replace(old, expires_at=now + grace_s))
    return NewKey(record, new.key)


async def revoke_key(client: aioredis.Redis, key_id: str) -> bool:
    """Delete a key now (processes stop accepting it within their cache's TTL); False when unknown."""
    name = await _lookup_of(client, key_id)
    if name is None:
        return False
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.write_key(name))
        pipe.hdel(keys.write_key_index(), key_id)
        await pipe.execute()
    return True


__all__ = ["NewKey", "Site", "create_site", "get_key", "get_site", "hint", "list_keys", "list_sites",
           "lookup_name", "make_key", "replace_key", "revoke_key", "rotate_key", "save_site"]
