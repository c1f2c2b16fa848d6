"""Concurrent appends share round trips and connections, and fail loudly together."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis

from api.appender import StreamAppender
from state import keys
from state.streams import decode_entry
from tests.factories import page
from tests.helpers import RedisServer

SHARDS = 2


def stored_message_ids(client: redis.Redis) -> list[str]:
    return [event.message_id or "" for shard in range(SHARDS)
            for _, fields in client.xrange(keys.event_stream(shard)) for event in decode_entry(fields[b"e"])]


class TestCoalescing:
    """Many sockets appending at once need neither many connections nor many round trips."""

    def test_500_concurrent_frames_are_all_stored_in_far_fewer_entries(self, redis_server: RedisServer) -> None:
        """500 frames at once (beyond redis-py's 100-connection pool): all stored, coalesced."""
        frames = [[page(f"v{i}"), page(f"v{i}")] for i in range(500)]

        async def run() -> None:
            client = aioredis.Redis.from_url(redis_server.url, max_connections=5)
            appender = StreamAppender(client, SHARDS)
            try:
                await asyncio.gather(*(appender.append(frame) for frame in frames))
            finally:
                await appender.close()
                await client.aclose()

        asyncio.run(run())
        sync = redis_server.client()
        assert sorted(stored_message_ids(sync)) == sorted(e.message_id or "" for f in frames for e in f)
        entries = sum(sync.xlen(keys.event_stream(s)) for s in range(SHARDS))
        assert entries < 100, f"{entries} entries for 500 frames: appends were not coalesced"

    def test_every_waiting_caller_hears_that_redis_failed(self, redis_server: RedisServer) -> None:
        """With Redis gone, each caller gets the error (so the gateway withholds every ack)."""
        async def run() -> list[BaseException | None]:
            client = aioredis.Redis.from_url(redis_server.url, socket_connect_timeout=0.5)
            appender = StreamAppender(client, SHARDS)
            redis_server.process.terminate()
            redis_server.process.wait(timeout=10)
            try:
                results = await asyncio.gather(*(appender.append([page(f"v{i}")]) for i in range(5)),
                                               return_exceptions=True)
            finally:
                await appender.close()
                await client.aclose()
            return [r if isinstance(r, BaseException) else None for r in results]

        failures = asyncio.run(run())
        assert all(isinstance(f, redis.ConnectionError | OSError) for f in failures), failures

