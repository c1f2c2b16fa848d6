"""The lean pipelined Redis connection: order, errors, lost connections, a Redis that never answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.decisions.redis_wire import PipelinedRedis, RedisAddress
from tests.helpers import RedisServer


@pytest.fixture
async def wire(redis_server: RedisServer) -> AsyncIterator[PipelinedRedis]:
    client = PipelinedRedis.from_url(redis_server.url, timeout_s=2.0)
    yield client
    await client.close()


class TestWire:
    """Commands from concurrent callers share one connection; each gets its own reply."""

    async def test_concurrent_commands_get_their_own_replies(self, wire: PipelinedRedis,
                                                             redis_client: redis.Redis) -> None:
        """Replies come in order and resolve the callers in order, whatever the batching."""
        redis_client.mset({f"k{i}": f"v{i}" for i in range(500)})
        replies = await asyncio.gather(*(wire.call("GET", f"k{i}") for i in range(500)))
        assert replies == [f"v{i}".encode() for i in range(500)]
        assert redis_client.client_list(_type="normal").__len__() == 2  # this test's client and the wire

    async def test_an_error_reply_fails_only_its_command(self, wire: PipelinedRedis) -> None:
        """A wrong command raises ResponseError; the ones around it succeed."""
        results = await asyncio.gather(wire.call("PING"), wire.call("NOSUCHCOMMAND"), wire.call("PING"),
                                       return_exceptions=True)
        assert results[0] == b"PONG" and results[2] == b"PONG"
        assert isinstance(results[1], ResponseError)

    async def test_a_lost_connection_fails_waiting_commands_and_the_next_reconnects(
            self, wire: PipelinedRedis, redis_client: redis.Redis) -> None:
        """Killed by the server while a command waits: ConnectionError, then business as usual."""
        await wire.call("CLIENT", "SETNAME", "wire")
        waiting = asyncio.ensure_future(wire.call("BLPOP", "nothing-here", 10))
        await asyncio.sleep(0.1)
        redis_client.execute_command("CLIENT", "KILL", "SKIPME", "yes")
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(waiting, 5)
        assert await wire.call("PING") == b"PONG"

    async def test_a_redis_that_never_answers_times_out(self) -> None:
        """A hung server means a TimeoutError after `timeout_s`, not a request stuck forever."""
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1 << 16)
            await asyncio.sleep(10)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = PipelinedRedis(RedisAddress(port=port), timeout_s=0.3)
        try:
            with pytest.raises(RedisTimeoutError):
                await asyncio.wait_for(client.call("PING"), 5)
        finally:
            await client.close()
            server.close()

    async def test_nothing_listening_is_a_connection_error(self) -> None:
        """So the route answers 503."""
        client = PipelinedRedis(RedisAddress(port=1), timeout_s=0.5)
        with pytest.raises(ConnectionError):
            await client.call("PING")

    async def test_database_and_password_come_from_the_url(self) -> None:
        """`redis://user:pass@host:port/db`."""
        address = RedisAddress.from_url("rediss://ann:s%40cret@cache.example:6380/3")
        assert address == RedisAddress("cache.example", 6380, 3, "ann", "s@cret", True)
        with pytest.raises(ValueError):
            RedisAddress.from_url("unix:///tmp/redis.sock")
