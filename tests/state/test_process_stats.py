"""The per-process stats table in Redis: what reporters write and what readers see."""

from __future__ import annotations

import os
import time

import msgspec
import redis
import redis.asyncio

from state import keys
from state.process_stats import (
    ProcessStats,
    count_restart,
    quick_client,
    read_process_stats,
    reset_restarts,
    start_process_reporter,
)
from tests.helpers import RedisServer, free_port


class TestProcessStats:
    """A reporter's entries are read back fresh, restarts joined, stale ones dropped."""

    async def test_reporter_entry_is_read_with_restarts_and_stale_entries_go(
            self, redis_server: RedisServer, redis_client: redis.Redis) -> None:
        """The running process appears with its pid, memory and the supervisor's restart count."""
        start_process_reporter("tester", redis_server.url, interval_s=0.1)
        start_process_reporter("tester", redis_server.url, interval_s=0.1)  # idempotent
        count_restart(redis_client, "tester")
        count_restart(redis_client, "tester")
        old = ProcessStats(part="ghost", pid=1, started_at=0.0, cpu_percent=0.0, rss_bytes=1, restarts=0,
                           at=time.time() - 120)
        quiet = ProcessStats(part="quiet", pid=2, started_at=0.0, cpu_percent=0.0, rss_bytes=1, restarts=0,
                             at=time.time() - 10)
        redis_client.hset(keys.process_stats(),
                          mapping={"ghost:1": msgspec.json.encode(old), "quiet:2": msgspec.json.encode(quiet)})
        client = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            deadline = time.monotonic() + 5
            stats: list[ProcessStats] = []
            while time.monotonic() < deadline and not stats:
                stats = await read_process_stats(client)
                time.sleep(0.05)
            assert [(s.part, s.pid, s.restarts) for s in stats] == [("tester", os.getpid(), 2)]
            assert stats[0].rss_bytes > 10_000_000
            assert abs(stats[0].at - time.time()) < 5
            fields = set(redis_client.hkeys(keys.process_stats()))
            assert b"ghost:1" not in fields and b"quiet:2" in fields
            reset_restarts(redis_client)
            assert (await read_process_stats(client))[0].restarts == 0
        finally:
            await client.aclose()

    def test_supervisor_helpers_survive_redis_down(self) -> None:
        """Counting a restart with no Redis answering neither raises nor hangs long."""
        client = quick_client(f"redis://127.0.0.1:{free_port()}/0")
        started = time.monotonic()
        count_restart(client, "api")
        reset_restarts(client)
        assert time.monotonic() - started < 2
