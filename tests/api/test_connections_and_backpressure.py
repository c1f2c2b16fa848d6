"""The socket registry used for push, and the cached lag gauge used for pushback."""

from __future__ import annotations

import time

import pytest
import redis
import redis.asyncio as aioredis

from api.backpressure import Backpressure
from api.errors import OverloadedError
from api.gateway.connections import Connections
from state import keys
from tests.helpers import RedisServer


class TestConnections:
    """Sockets are found by any id they sent events for, and forgotten when closed."""

    def test_socket_is_found_by_each_id_it_spoke_for(self) -> None:
        """Anonymous and user ids both lead to the socket."""
        registry: Connections[str] = Connections()
        registry.learn("ws1", ["anon-1", "user-1"])
        registry.learn("ws2", ["anon-2"])
        assert registry.sockets_for(["user-1"]) == {"ws1"}
        assert registry.sockets_for(["anon-1", "anon-2", "nobody"]) == {"ws1", "ws2"}

    def test_forgotten_socket_leaves_no_trace(self) -> None:
        """Closing a socket removes it and ids nobody else holds."""
        registry: Connections[str] = Connections()
        registry.learn("ws1", ["anon-1"])
        registry.learn("ws2", ["anon-1"])
        registry.forget("ws1")
        assert registry.sockets_for(["anon-1"]) == {"ws2"}
        registry.forget("ws2")
        assert registry.sockets_for(["anon-1"]) == set()
        assert len(registry) == 0

    def test_ids_per_socket_are_capped(self) -> None:
        """A client spraying ids cannot grow the registry without bound."""
        registry: Connections[str] = Connections(max_ids_per_socket=3)
        registry.learn("ws", [f"id-{i}" for i in range(100)])
        assert len(registry.ids_of("ws")) == 3


class TestBackpressure:
    """Lag is measured at most once per interval and compared with the maximum."""

    async def test_lag_is_cached_between_checks(
            self, redis_server: RedisServer, redis_client: redis.Redis) -> None:
        """A new stale entry is only noticed once the interval has passed."""
        now = [100.0]
        client = aioredis.Redis.from_url(redis_server.url)
        gauge = Backpressure(client, shards=2, max_lag_s=1.0, check_interval_s=0.25, clock=lambda: now[0])
        try:
            assert not await gauge.overloaded()
            millis = int(time.time() * 1000) - 5000
            redis_client.xadd(keys.event_stream(1), {b"e": b"[]"}, id=f"{millis}-0")
            assert not await gauge.overloaded(), "still the cached answer"
            now[0] += 0.3
            assert await gauge.overloaded()
            with pytest.raises(OverloadedError) as raised:
                await gauge.check()
            assert raised.value.retry_after_s >= 1
            redis_client.hset(keys.dataflow_progress(), "1", f"{millis}-0")
            now[0] += 0.3
            assert await gauge.lag_s() == 0
        finally:
            await client.aclose()
