"""RFM edges follow the contact base: recomputed from profiles, published as config."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis

from api.rfm_refresh import refresh_rfm_edges
from state import keys
from state.config import DAY
from state.config_store import current_config
from state.profile import Profile, encode_profile
from state.rfm import compute_edges
from tests.helpers import RedisServer

NOW = 1_800_000_000.0


def buyer(client: redis.Redis, contact_id: str, orders: int, revenue: float, days_ago: float) -> None:
    profile = Profile(contact_id=contact_id, orders={"orders": orders, "revenue": revenue,
                                                     "last_order_at": NOW - days_ago * DAY})
    client.set(keys.contact_profile(contact_id), encode_profile(profile))


class TestRefresh:
    """Edges are recomputed from buyers and published only when they change."""

    def test_edges_are_the_quintiles_of_the_buyers_and_published_once(self, redis_server: RedisServer) -> None:
        """50 buyers → edges equal compute_edges over them; a second run changes nothing."""
        client = redis_server.client()
        for i in range(50):
            buyer(client, f"b{i}", orders=1 + i % 7, revenue=10.0 * (i + 1), days_ago=i * 3)
        client.set(keys.contact_profile("browser"), encode_profile(Profile(contact_id="browser")))
        expected = compute_edges([i * 3.0 for i in range(50)], [1.0 + i % 7 for i in range(50)],
                                 [10.0 * (i + 1) for i in range(50)])

        async def run() -> tuple[object, object, int]:
            aclient = aioredis.Redis.from_url(redis_server.url)
            try:
                first = await refresh_rfm_edges(aclient, shards=2, sample_limit=1000, now=NOW)
                second = await refresh_rfm_edges(aclient, shards=2, sample_limit=1000, now=NOW)
                return first, second, (await current_config(aclient)).version
            finally:
                await aclient.aclose()

        first, second, version = asyncio.run(run())
        assert first == expected
        assert second is None
        assert version == 1
        assert all(client.xlen(keys.event_stream(s)) == 1 for s in range(2))  # one control per stream
