"""The write-key cache: bounded, brief for unknown keys, and never a Redis amplifier."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis

from state.writekeys import MAX_KEY_LENGTH, WriteKey, WriteKeyCache, save_write_key
from tests.helpers import RedisServer


def gets(client: redis.Redis) -> int:
    """How many GET commands Redis has served."""
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


class TestWriteKeyCache:
    """Every frame checks its key, so the cache must stay cheap whatever keys clients invent."""

    async def test_an_implausible_key_costs_no_lookup_and_no_entry(self, redis_server: RedisServer,
                                                                    redis_client: redis.Redis) -> None:
        """A megabyte of 'key' (200 of them once added 203 MB to the API) is refused before Redis."""
        cache = WriteKeyCache(aioredis.Redis.from_url(redis_server.url))
        before = gets(redis_client)
        for key in ("k" * (1 << 20), "k" * (MAX_KEY_LENGTH + 1), "with space", ""):
            assert await cache.get(key) is None
        assert gets(redis_client) == before and len(cache) == 0

    async def test_the_cache_never_holds_more_than_its_bound(self, redis_server: RedisServer) -> None:
        """Random unknown keys evict each other, least recently used first."""
        cache = WriteKeyCache(aioredis.Redis.from_url(redis_server.url), max_entries=50)
        for i in range(500):
            await cache.get(f"random-{i}")
        assert len(cache) == 50

    async def test_an_unknown_key_is_remembered_only_briefly(self, redis_server: RedisServer) -> None:
        """A key created just after a miss works within the negative TTL, not the positive one."""
        client = aioredis.Redis.from_url(redis_server.url)
        cache = WriteKeyCache(client, ttl_s=60, negative_ttl_s=0.2)
        assert await cache.get("wk-new") is None
        await save_write_key(client, WriteKey("wk-new", ["*"]))
        await asyncio.sleep(0.25)
        found = await cache.get("wk-new")
        assert found is not None and found.key == "wk-new"
