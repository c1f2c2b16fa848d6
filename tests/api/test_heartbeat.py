"""The heartbeat sender against a real gateway and Redis: one sender at a time, losses recorded and shown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from api.dashboard.snapshot import live_snapshot
from api.gateway import serve_gateway
from api.heartbeat import HeartbeatSender
from state import keys
from state.events import Track
from state.heartbeat import HEARTBEAT_EVENT, read_points
from state.rates import HEARTBEAT, read_rates
from state.settings import Settings
from state.streams import decode_entry
from tests.helpers import RedisServer, free_port

pytestmark = pytest.mark.timeout(60)
SHARDS = 2


def make_settings(redis_server: RedisServer) -> Settings:
    return Settings(redis_url=redis_server.url, write_key="wk-hb", admin_token="admin-test", gateway_port=free_port(),
                    stream_shards=SHARDS, heartbeat_interval_s=0.1, heartbeat_lost_after_s=0.3)


@contextlib.asynccontextmanager
async def running(coroutine: Any) -> AsyncIterator[None]:
    task = asyncio.create_task(coroutine)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def heartbeats_in_streams(client: aioredis.Redis) -> list[str]:
    """Sender of every heartbeat event appended to the streams."""
    senders = []
    for shard in range(SHARDS):
        for _id, fields in cast("list[Any]", await client.xrange(keys.event_stream(shard))):
            senders += [str(e.properties["sender"]) for e in decode_entry(fields[b"e"])
                        if isinstance(e, Track) and e.event == HEARTBEAT_EVENT]
    return senders


class TestSender:
    """Without a dataflow nothing is processed: every heartbeat is sent, then lost."""

    async def test_two_api_processes_send_one_heartbeat_stream_and_losses_are_shown(
            self, redis_server: RedisServer) -> None:
        settings = make_settings(redis_server)
        client = aioredis.Redis.from_url(redis_server.url)
        watch = aioredis.Redis.from_url(redis_server.url)
        first, second = HeartbeatSender(settings, client, watch), HeartbeatSender(settings, client, watch)
        ready = asyncio.Event()
        try:
            async with running(serve_gateway(settings, ready)):
                await asyncio.wait_for(ready.wait(), 10)
                async with running(first.run()), running(second.run()):
                    for _ in range(100):
                        points = await read_points(client, 0)
                        if sum(p.latency_s is None for p in points) >= 3:
                            break
                        await asyncio.sleep(0.05)
            senders = await heartbeats_in_streams(client)
            assert len(senders) >= 3 and len(set(senders)) == 1  # the lease: one sender at a time
            assert all(p.latency_s is None for p in points)
            snap = await live_snapshot(client, settings)
            assert snap.heartbeat.lost_last_minute >= 3 and snap.heartbeat.p50_s is None
            assert any("lost" in alert for alert in snap.alerts)
            # The heartbeat frames count as heartbeats, not as the shop's gateway events.
            counts = await read_rates(client, int(points[0].sent_at) - 1, int(points[-1].sent_at) + 1)
            assert sum(c["gateway"] for c in counts) == 0 and sum(c[HEARTBEAT] for c in counts) >= 3
        finally:
            await client.aclose()
            await watch.aclose()

    async def test_a_gateway_that_cannot_be_reached_counts_heartbeats_lost(self, redis_server: RedisServer) -> None:
        """After a grace of the loss timeout (a gateway still starting), each heartbeat not sent is lost."""
        settings = make_settings(redis_server)  # nothing listens on its gateway port
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            async with running(HeartbeatSender(settings, client, client).run()):
                await asyncio.sleep(0.2)
                assert await read_points(client, 0) == []  # within the grace
                for _ in range(100):
                    if len(await read_points(client, 0)) >= 2:
                        break
                    await asyncio.sleep(0.05)
            points = await read_points(client, 0)
            assert len(points) >= 2 and all(p.latency_s is None for p in points)
        finally:
            await client.aclose()


class TestStopping:
    """A stopping API never hangs on its heartbeat sender."""

    async def test_a_sender_cancelled_mid_session_stops_at_once(self, redis_server: RedisServer) -> None:
        """Cancelled while its socket is open (its reply and watch tasks running): it ends, it does not loop on."""
        settings = make_settings(redis_server)
        client = aioredis.Redis.from_url(redis_server.url)
        gateway = asyncio.create_task(serve_gateway(settings))
        sender = HeartbeatSender(settings, client, aioredis.Redis.from_url(redis_server.url))
        task = asyncio.create_task(sender.run())
        try:
            for _ in range(100):  # bounded: until a heartbeat went out over the socket
                if sender.seq >= 2:
                    break
                await asyncio.sleep(0.05)
            assert sender.seq >= 2
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=2)
            assert done and task.cancelled()
        finally:
            gateway.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gateway
            await client.aclose()

    async def test_the_lifespan_goes_on_without_a_sender_that_ignores_its_stop(
            self, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
        """A sender that swallowed its cancellation is left behind after STOP_TIMEOUT_S, not waited for."""
        import api.heartbeat as heartbeat

        async def stubborn(self: HeartbeatSender) -> None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)
            await asyncio.sleep(1.0)  # ignores its stop for a second, then ends on its own

        monkeypatch.setattr(heartbeat.HeartbeatSender, "run", stubborn)
        monkeypatch.setattr(heartbeat, "STOP_TIMEOUT_S", 0.2)
        client = aioredis.Redis.from_url(redis_server.url)
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with heartbeat.heartbeat_running(make_settings(redis_server), client):
            await asyncio.sleep(0.05)
        assert loop.time() - started < 0.8  # 0.05 s of work + the 0.2 s bound, not the sender's 1 s
        await asyncio.sleep(1.0)  # let it end before the loop closes
        await client.aclose()
