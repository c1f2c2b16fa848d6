"""Webhook endpoints in Redis: their configuration (admin API) and their health (dispatchers).

Configuration and health are kept apart so that neither writer overwrites
the other: the admin API owns `keys.webhook_endpoints()` (one JSON value per
endpoint), dispatchers own `keys.webhook_health(id)` (since when it fails,
whether and why it was disabled), and re-enabling an endpoint clears its
health.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from api.dispatcher.records import (
    EndpointHealth,
    EndpointSecret,
    WebhookEndpoint,
    decode_endpoint,
    decode_health,
    encode,
)
from state import keys


class EndpointStore:
    """Reads and writes endpoints and their health."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def get(self, endpoint_id: str) -> tuple[WebhookEndpoint, EndpointHealth] | None:
        """An endpoint and its health, in one round trip; None if there is no such endpoint."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hget(keys.webhook_endpoints(), endpoint_id)
            pipe.hgetall(keys.webhook_health(endpoint_id))
            raw, health = await pipe.execute()
        if raw is None:
            return None
        return decode_endpoint(raw), decode_health(health)

    async def all(self) -> list[tuple[WebhookEndpoint, EndpointHealth]]:
        """Every endpoint and its health, by id."""
        raw = cast("dict[bytes, bytes]", await self._client.hgetall(keys.webhook_endpoints()))
        endpoints = sorted((decode_endpoint(value) for value in raw.values()), key=lambda e: e.id)
        async with self._client.pipeline(transaction=False) as pipe:
            for endpoint in endpoints:
                pipe.hgetall(keys.webhook_health(endpoint.id))
            healths = await pipe.execute()
        return [(e, decode_health(h)) for e, h in zip(endpoints, healths, strict=True)]

    async def put(self, endpoint: WebhookEndpoint) -> None:
        """Create or replace an endpoint's configuration (its health is left as it is)."""
        await self._client.hset(keys.webhook_endpoints(), endpoint.id, encode(endpoint))

    async def update(self, endpoint_id: str,
                     change: Callable[[WebhookEndpoint | None], WebhookEndpoint]) -> WebhookEndpoint:
        """Read, change and write one endpoint atomically (retried if another write came in between)."""
        while True:
            async with self._client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(keys.webhook_endpoints())
                    raw = cast("bytes | None", await pipe.hget(keys.webhook_endpoints(), endpoint_id))
                    changed = change(decode_endpoint(raw) if raw is not None else None)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(keys.webhook_endpoints(), endpoint_id, encode(changed))
                    await pipe.execute()
                    return changed
                except WatchError:
                    continue

    async def delete(self, endpoint_id: str) -> bool:
        """Forget an endpoint and its health; whether it existed."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.webhook_endpoints(), endpoint_id)
            pipe.delete(keys.webhook_health(endpoint_id))
            removed, _ = await pipe.execute()
        return bool(removed)

    async def enable(self, endpoint_id: str) -> None:
        """Clear an endpoint's health: not disabled, not failing."""
        await self._client.delete(keys.webhook_health(endpoint_id))

    async def record_success(self, endpoint_id: str) -> None:
        """It answered 2xx: it is not failing any more."""
        await self._client.hdel(keys.webhook_health(endpoint_id), "failing_since")

    async def record_failure(self, endpoint_id: str, now: float) -> float:
        """It failed: remember since when it has been failing (the first failure after a success); return that."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(keys.webhook_health(endpoint_id), "failing_since", repr(now))
            pipe.hget(keys.webhook_health(endpoint_id), "failing_since")
            _, since = await pipe.execute()
        return float(since) if since is not None else now

    async def disable(self, endpoint_id: str, reason: str, now: float) -> None:
        """Stop sending to it until an operator enables it again."""
        await self._client.hset(keys.webhook_health(endpoint_id),
                                mapping={"disabled_at": repr(now), "disabled_reason": reason})


def rotated(endpoint: WebhookEndpoint, new_secret: str, now: float, grace_s: float) -> WebhookEndpoint:
    """The endpoint signing with `new_secret` from now on, its current secrets still signing for `grace_s`.

    Secrets whose grace is over are dropped; a secret already expiring
    keeps its earlier end.
    """
    until = now + grace_s
    kept = [msgspec.structs.replace(s, expires_at=min(until, s.expires_at) if s.expires_at is not None else until)
            for s in endpoint.secrets if s.expires_at is None or s.expires_at > now]
    if grace_s <= 0:
        kept = []
    return msgspec.structs.replace(endpoint, secrets=[EndpointSecret(secret=new_secret, created_at=now), *kept],
                                   updated_at=now)
