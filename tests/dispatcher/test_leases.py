"""Outbox shards are delivered by one dispatcher at a time: two never send the same action at once.

svix-webhooks PR #2181: a queue visibility timeout shorter than the HTTP
timeout let a second worker send a message while the first was still
sending it. Here an attempt begins only while its lease outlasts the
attempt's timeout, so a shard changes hands only after every attempt of its
old owner has ended — even when that owner is killed mid-attempt.
"""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from fastapi.testclient import TestClient

from api.dispatcher.leases import Lease, LeaseKeeper, fair_share
from benchmarks.webhook_receiver import Reply, WebhookReceiver
from tests.dispatcher.conftest import DispatcherFactory, action, admin_client, create_endpoint, queue, wait_quiet
from tests.helpers import RedisServer, wait_for

pytestmark = pytest.mark.timeout(90)


class TestLease:
    """A lease is good for a known time; an attempt waits for a renewal or gives up."""

    async def test_good_for_waits_for_a_renewal_and_gives_up_when_the_lease_is_lost(self) -> None:
        now = [100.0]
        lease = Lease(0, valid_until=103.0, clock=lambda: now[0])
        assert await lease.good_for(2.5)

        async def renew_soon() -> None:
            await asyncio.sleep(0.05)
            lease.extend(110.0)

        renewal = asyncio.create_task(renew_soon())
        assert await lease.good_for(5.0)  # 3 s left were not enough: it waited for the renewal
        await renewal
        lease.lose()
        assert not await lease.good_for(0.1)

    async def test_a_held_shard_cannot_be_taken_until_released(self, redis_server: RedisServer) -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        first, second = LeaseKeeper(client, "first", 5.0), LeaseKeeper(client, "second", 5.0)
        lease = await first.acquire(0)
        assert lease is not None and 4.9 < lease.remaining() <= 5.0
        assert await second.acquire(0) is None
        assert await first.acquire(0) is not None  # its own: taken again at once (after a worker of its stopped)
        assert await second.renew([Lease(0, time.monotonic() + 5, time.monotonic)]) != []  # not its lease
        assert await first.renew([lease]) == []
        await first.release(lease)
        assert await second.acquire(0) is not None
        await client.aclose()

    def test_each_dispatcher_takes_its_share(self) -> None:
        assert [fair_share(4, n) for n in (1, 2, 3, 4, 5)] == [4, 2, 2, 1, 1]


def log_has(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text()


class TestTwoDispatchers:
    """Two processes share four shards; killing one mid-attempt never makes two sends of one action overlap."""

    def test_no_action_is_in_flight_twice_even_when_its_sender_is_killed(
            self, redis_client: redis.Redis, redis_server: RedisServer, receiver: WebhookReceiver,
            dispatchers: DispatcherFactory, tmp_path: Path) -> None:
        receiver.answer = lambda _id, _nth: Reply(200, delay_s=0.3)
        with admin_client(redis_server.url, outbox_shards=4) as admin:
            create_endpoint(admin, receiver.url)
            self._run(redis_client, receiver, dispatchers, tmp_path, admin)

    def _run(self, redis_client: redis.Redis, receiver: WebhookReceiver, dispatchers: DispatcherFactory,
             tmp_path: Path, admin: TestClient) -> None:
        settings = {"outbox_shards": "4", "webhook_timeout_s": "2", "dispatcher_lease_s": "4"}
        first = dispatchers("first", **settings)
        wait_for(lambda: log_has(tmp_path / "first.log", "shard taken"), 15, "the first dispatcher to start")
        dispatchers("second", **settings)
        wait_for(lambda: log_has(tmp_path / "second.log", "shard taken"), 15, "the shards to be shared")

        expected = {f"act-{n}" for n in range(80)}
        queue(redis_client, *(action(n, contact=f"c{n % 40}") for n in range(80)), shards=4)
        wait_for(lambda: len(receiver.attempts()) >= 10, 15, "some deliveries")
        time.sleep(0.15)  # half-way through the next wave of 0.3 s answers: attempts are in flight
        killed_at = time.time()
        first.kill_hard()
        wait_for(lambda: expected <= set(receiver.delivered()), 45, "every action delivered")
        wait_quiet(redis_client, 30, shards=4)  # the killed one's unacked attempts are sent again first

        attempts = sorted(receiver.attempts(), key=lambda a: a.received_at)
        by_id: dict[str, list[float]] = {}
        for attempt in attempts:
            by_id.setdefault(attempt.webhook_id, []).append(attempt.received_at)
        for webhook_id in by_id:
            mine = [a for a in attempts if a.webhook_id == webhook_id]
            for earlier, later in pairwise(mine):
                assert later.received_at >= earlier.answered_at, f"{webhook_id} was sent twice at once"
                # sent again only because its sender died while the earlier attempt was in flight
                assert earlier.received_at <= killed_at, f"{webhook_id} sent twice without a reason"
        assert set(by_id) == expected
        # The kill did catch attempts in flight (their receiver answered a dead sender): those were sent again.
        assert any(len(times) > 1 for times in by_id.values())
