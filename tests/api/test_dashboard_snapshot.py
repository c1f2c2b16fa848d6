"""The dashboard's snapshot read from a real Redis holding known figures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import msgspec
import pytest
import redis
import redis.asyncio as aioredis

from api.dashboard.snapshot import DashboardSnapshot, live_snapshot
from state import keys
from state.campaigns import Campaign, Variant
from state.conditions import WindowCount
from state.config import DAY, ActiveConfig, EventMatch, SegmentDef
from state.decisions import PopupContent
from state.heartbeat import HeartbeatPoint
from state.rates import queue_counts
from state.settings import Settings
from state.workflows import OnEvent, SendWebhook, Workflow
from tests.helpers import RedisServer

SHARDS = 2
CONFIG = ActiveConfig(
    version=1,
    segments=[SegmentDef("shoes", WindowCount("category", "shoes", DAY, "gte", 1), name="Shoe lovers"),
              SegmentDef("empty", WindowCount("category", "hats", DAY, "gte", 1))],
    workflows=[Workflow(id="welcome", name="Welcome", trigger=OnEvent(EventMatch("Signed Up")),
                        steps=[SendWebhook(id="hello", endpoint="crm")])],
    campaigns=[Campaign(id="promo", name="Promo", holdout_percent=10,
                        variants=[Variant(id="a", content=PopupContent(title="A")),
                                  Variant(id="b", content=PopupContent(title="B"))])])


def settings(server: RedisServer, **extra: float) -> Settings:
    return Settings(redis_url=server.url, stream_shards=SHARDS, heartbeat_interval_s=1.0, **extra)  # type: ignore[arg-type]


def snapshot(server: RedisServer, **extra: float) -> DashboardSnapshot:
    async def read() -> DashboardSnapshot:
        client = aioredis.Redis.from_url(server.url)
        try:
            return await live_snapshot(client, settings(server, **extra))
        finally:
            await client.aclose()
    return asyncio.run(read())


@pytest.fixture
def shop(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """A Redis holding what the dataflow, dispatcher and heartbeat would have written."""
    c = redis_client
    c.set(keys.config_version(1), msgspec.json.encode(CONFIG))
    c.set(keys.config_current(), 1)
    c.zadd(keys.segment_members("shoes"), {"u1": 1.0, "u2": 2.0, "a3": 3.0})
    c.hset(keys.workflow_stats("welcome"), mapping={"contacts:1:entered": 4, "contacts:7:entered": 3,
                                                     "contacts:1:converted": 2})
    c.hset(keys.campaign_stats("promo"), mapping={
        "contacts:0:impressions:a": 10, "visitors:3:impressions:b": 5, "contacts:0:clicks:a": 2,
        "contacts:0:conversions:a": 1, "contacts:0:conversions:holdout": 7, "contacts:0:contacts:holdout": 9})
    c.hset(keys.delivery_stats(), mapping={"delivered:webhook:crm": 6, "retrying:webhook:crm": 1,
                                           "dead:webhook:crm": 2, "delivered:email": 3, "attempts:email": 3})
    c.zadd(keys.dead_letters(), {"x1": 1.0, "x2": 2.0})
    now = time.time()
    c.zadd(keys.active_contacts(), {"u1": now - 10, "a3": now - 100, "old": now - 1000})
    c.hset(keys.population(), mapping={"contacts:1:contacts": 2, "contacts:7:contacts": 1, "visitors:4:contacts": 5})
    with c.pipeline() as pipe:
        queue_counts(pipe, {"gateway": 7, "http": 3, "processed": 10, "heartbeat": 1}, now - 2)
        queue_counts(pipe, {"gateway": 1}, now - 30)
        pipe.execute()
    points = [HeartbeatPoint(i, now - 50 + i, 0.01 * i) for i in range(1, 41)]
    points.append(HeartbeatPoint(41, now - 5, None))
    for point in points:
        c.zadd(keys.heartbeat_points(), {msgspec.json.encode(point): point.sent_at})
    c.set(keys.recs_updated_at(), repr(now - 3))
    yield c


class TestSnapshot:
    """Each figure is what Redis holds, summed the way the admin API sums it."""

    def test_counters_segments_and_contacts(self, redis_server: RedisServer, shop: redis.Redis) -> None:
        snap = snapshot(redis_server)
        assert [(s.id, s.name, s.size) for s in snap.segments] == [("shoes", "Shoe lovers", 3), ("empty", "", 0)]
        assert snap.segments[0].series[-1][1] == 3
        assert [(w.id, w.entered, w.converted) for w in snap.workflows] == [("welcome", 7, 2)]
        assert snap.triggers_fired == 7
        assert [(c.id, c.shown, c.clicked, c.converted) for c in snap.campaigns] == [("promo", 15, 2, 1)]
        d = snap.deliveries
        assert (d.delivered, d.retrying, d.dead, d.dead_letters) == (9, 1, 2, 2)
        assert [t.target for t in d.targets] == ["email", "webhook:crm"]
        assert (snap.contacts.active, snap.contacts.known, snap.contacts.anonymous, snap.contacts.total) == (
            2, 3, 5, 8)
        assert 2.5 < (snap.recommendations.age_s or 0) < 10

    def test_rates_over_the_window(self, redis_server: RedisServer, shop: redis.Redis) -> None:
        """The series covers 60 complete seconds; heartbeats are not counted as the shop's events."""
        rates = snapshot(redis_server).rates
        assert len(rates.series) == 60 and rates.series[-1].at == rates.last.at
        assert (rates.totals.gateway, rates.totals.http, rates.totals.processed) == (8, 3, 10)

    def test_heartbeat_percentiles_and_losses(self, redis_server: RedisServer, shop: redis.Redis) -> None:
        hb = snapshot(redis_server).heartbeat
        assert hb.p50_s == pytest.approx(0.2) and hb.p99_s == pytest.approx(0.4)
        assert hb.lost_last_minute == 1 and hb.points[-1].latency_s is None and len(hb.points) == 41
        assert hb.last_latency_s == pytest.approx(0.4)


class TestAlerts:
    """Banners appear when lag or latency passes its threshold, and not before."""

    def test_quiet_when_under_the_thresholds(self, redis_server: RedisServer, shop: redis.Redis) -> None:
        assert [a for a in snapshot(redis_server, alert_latency_p99_s=1.0).alerts if "lost" not in a] == []

    def test_lag_past_the_threshold_raises_a_banner(self, redis_server: RedisServer, shop: redis.Redis) -> None:
        millis = int(time.time() * 1000) - 8000  # an entry waiting 8 s, the dataflow nowhere
        shop.xadd(keys.event_stream(1), {b"e": b"[]"}, id=f"{millis}-0")
        snap = snapshot(redis_server, alert_lag_s=5.0)
        assert snap.lag.shards[1].oldest_age_s >= 8 and snap.lag.shards[0].oldest_age_s == 0
        assert snap.lag.shards[1].entries_behind is None  # the dataflow never reported its index
        assert any("lags" in a and "shard 1" in a for a in snap.alerts)
        assert not snap.lag.backpressure
        shop.hset(keys.dataflow_read_index(), "1", 0)
        assert snapshot(redis_server).lag.shards[1].entries_behind == 1

    def test_latency_past_the_threshold_raises_a_banner(self, redis_server: RedisServer, shop: redis.Redis) -> None:
        alerts = snapshot(redis_server, alert_latency_p99_s=0.3).alerts
        assert any("p99" in a for a in alerts) and any("lost" in a for a in alerts)
