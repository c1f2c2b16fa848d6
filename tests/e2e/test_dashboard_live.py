"""The dashboard's live figures on the real stack: the heartbeat through gateway, dataflow and Redis; the rates."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import cast

import pytest
import redis
import redis.asyncio as aioredis
from websockets.sync.client import connect

from api.dashboard.snapshot import DashboardSnapshot, live_snapshot
from state import keys
from state.activity import sum_population
from state.heartbeat import ID_PREFIX
from state.settings import Settings
from tests.e2e.conftest import Stack, attimo_run
from tests.helpers import running_redis, wait_for


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One `attimo run` (heartbeat every second, the default) for the module."""
    directory = tmp_path_factory.mktemp("dashboard")
    with running_redis(directory) as server, attimo_run(directory / "stack", server) as running:
        yield running


def snapshot(stack: Stack) -> DashboardSnapshot:
    async def read() -> DashboardSnapshot:
        client = aioredis.Redis.from_url(stack.redis.url)
        try:
            return await live_snapshot(client, Settings(redis_url=stack.redis.url))
        finally:
            await client.aclose()
    return asyncio.run(read())


def contacts_held(client: redis.Redis) -> tuple[int, int, int]:
    """Profiles in Redis, contacts the dataflow reports holding, ids marked active."""
    profiles = sum(1 for _ in client.scan_iter(match=keys.contact_profile("*"), count=1000))
    known, anonymous = sum_population(cast("dict[bytes, bytes]", client.hgetall(keys.population())))
    return profiles, known + anonymous, int(client.zcard(keys.active_contacts()))


def page(anonymous_id: str) -> dict[str, object]:
    return {"type": "page", "messageId": str(uuid.uuid4()), "anonymousId": anonymous_id,
            "timestamp": datetime.now(UTC).isoformat(), "properties": {"path": "/"}}


class TestHeartbeat:
    """Every second a heartbeat goes the real way and comes back timed, touching no contact."""

    def test_latencies_are_recorded_and_no_contact_is_made(self, stack: Stack) -> None:
        client = stack.redis.client()
        before = contacts_held(client)
        wait_for(lambda: sum(p.latency_s is not None for p in snapshot(stack).heartbeat.points) >= 4, 20,
                 "four heartbeats measured")
        hb = snapshot(stack).heartbeat
        measured = [p.latency_s for p in hb.points if p.latency_s is not None]
        assert all(0 < latency < 3 for latency in measured), measured
        assert hb.p50_s is not None and 0 < hb.p50_s < 3
        assert contacts_held(client) == before
        assert not [k for k in client.scan_iter(match=keys.contact_profile(ID_PREFIX + "*"))]
        assert client.zscore(keys.active_contacts(), ID_PREFIX + "0") is None
        status, body = stack.get("/metrics")
        assert status == 200 and b"attimo_heartbeat_latency_seconds_count" in body


class TestRates:
    """Events sent through the gateway and over HTTP are the totals the dashboard shows, exactly."""

    def test_received_and_processed_totals_match_what_was_sent(self, stack: Stack) -> None:
        gateway_events, http_events = 23, 9
        start = snapshot(stack).rates.totals
        assert (start.gateway, start.http) == (0, 0)
        with connect(f"{stack.gateway_url}/v1/stream?key={stack.write_key}", open_timeout=5) as ws:
            for seq, size in enumerate((10, 10, 3), start=1):
                batch = [page(f"gw-{seq}-{i}") for i in range(size)]
                ws.send(json.dumps({"seq": seq, "sentAt": datetime.now(UTC).isoformat(), "batch": batch}))
                reply = json.loads(ws.recv(timeout=5))
                assert reply["ack"] == seq and reply["accepted"] == size
        auth = base64.b64encode(f"{stack.write_key}:".encode()).decode()
        body = json.dumps({"batch": [page(f"http-{i}") for i in range(http_events)]}).encode()
        request = urllib.request.Request(stack.api_url + "/v1/batch", body,
                                         {"Content-Type": "application/json", "Authorization": f"Basic {auth}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

        def totals() -> tuple[int, int, int]:
            t = snapshot(stack).rates.totals
            return t.gateway, t.http, t.processed
        wait_for(lambda: totals() == (gateway_events, http_events, gateway_events + http_events), 10,
                 "the sent events in the dashboard's totals")
        snap = snapshot(stack)
        assert snap.contacts.active == gateway_events + http_events  # each page was a new visitor
        wait_for(lambda: snapshot(stack).contacts.anonymous == gateway_events + http_events, 5, "visitors counted")
