"""Admin quarantine API: what the dataflow could not take, listed, inspected, replayed, deleted."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from state import keys
from state.events import Page
from state.quarantine import QuarantineRecord, queue_quarantine
from state.settings import Settings
from state.shards import shard_of
from state.streams import ENTRY_FIELD, decode_entry
from tests.helpers import RedisServer, free_port

ADMIN = {"Authorization": "Bearer q-admin"}
SHARDS = 2


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[TestClient]:
    settings = Settings(redis_url=redis_server.url, admin_token="q-admin", write_key="wk-q", api_port=free_port(),
                        stream_shards=SHARDS, rfm_refresh_s=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def quarantine(client: redis.Redis, *records: QuarantineRecord) -> None:
    """Write records the way the dataflow's sink does."""
    with client.pipeline() as pipe:
        for record in records:
            queue_quarantine(pipe, record, max_records=1000, retention_s=3600)
        pipe.execute()


EVENT = Page(message_id="m-1", anonymous_id="anon-1", properties={"path": "/"})


def record(n: int, replayable: bool = True) -> QuarantineRecord:
    return QuarantineRecord(id=f"visitors:m-{n}", at=1000.0 + n, stage="visitors", error="RuntimeError: boom",
                            contact_id="anon-1", payload=msgspec.json.encode(EVENT).decode(),
                            replayable=replayable)


class TestListing:
    """Newest first, paged, with the total."""

    def test_records_are_listed_newest_first_in_pages(self, client: TestClient,
                                                      redis_client: redis.Redis) -> None:
        quarantine(redis_client, *(record(n) for n in range(5)))
        first = client.get("/v1/admin/quarantine", params={"limit": 3}, headers=ADMIN).json()
        assert [r["id"] for r in first["data"]] == ["visitors:m-4", "visitors:m-3", "visitors:m-2"]
        assert first["count"] == 5 and first["next_before"] == 1002.0
        rest = client.get("/v1/admin/quarantine", params={"limit": 3, "before": first["next_before"]},
                          headers=ADMIN).json()
        assert [r["id"] for r in rest["data"]] == ["visitors:m-1", "visitors:m-0"]
        assert rest["next_before"] is None

    def test_one_record_shows_the_event_and_the_error(self, client: TestClient,
                                                      redis_client: redis.Redis) -> None:
        quarantine(redis_client, record(1))
        body = client.get("/v1/admin/quarantine/visitors:m-1", headers=ADMIN).json()
        assert body["error"] == "RuntimeError: boom" and body["stage"] == "visitors"
        assert msgspec.json.decode(body["payload"])["messageId"] == "m-1"

    def test_a_replayed_dataflow_writes_a_record_once(self, redis_client: redis.Redis,
                                                      client: TestClient) -> None:
        """Records have deterministic ids: the replay after a crash overwrites."""
        quarantine(redis_client, record(1), record(1))
        assert client.get("/v1/admin/quarantine", headers=ADMIN).json()["count"] == 1

    def test_admin_only(self, client: TestClient) -> None:
        assert client.get("/v1/admin/quarantine").status_code == 401


class TestReplayAndDelete:
    """A replay appends the event to its stream again and drops the record; delete just drops it."""

    def test_replay_appends_the_event_on_its_shard(self, client: TestClient, redis_client: redis.Redis) -> None:
        quarantine(redis_client, record(1))
        response = client.post("/v1/admin/quarantine/visitors:m-1/replay", headers=ADMIN)
        assert response.status_code == 202 and response.json() == {"replayed": 1}
        entries = redis_client.xrange(keys.event_stream(shard_of("anon-1", SHARDS)))
        (event,) = [e for _, fields in entries if ENTRY_FIELD in fields for e in decode_entry(fields[ENTRY_FIELD])]
        assert event == EVENT
        assert client.get("/v1/admin/quarantine/visitors:m-1", headers=ADMIN).status_code == 404

    def test_a_record_without_an_event_cannot_be_replayed(self, client: TestClient,
                                                           redis_client: redis.Redis) -> None:
        quarantine(redis_client, record(2, replayable=False))
        assert client.post("/v1/admin/quarantine/visitors:m-2/replay", headers=ADMIN).status_code == 422

    def test_delete_forgets_a_record(self, client: TestClient, redis_client: redis.Redis) -> None:
        quarantine(redis_client, record(3))
        assert client.delete("/v1/admin/quarantine/visitors:m-3", headers=ADMIN).status_code == 204
        assert client.delete("/v1/admin/quarantine/visitors:m-3", headers=ADMIN).status_code == 404
        assert client.get("/v1/admin/quarantine", headers=ADMIN).json()["count"] == 0


class TestStats:
    """The dataflow's counters and the quarantine's size are one admin read away."""

    def test_stats_show_counters_and_the_quarantine(self, client: TestClient, redis_client: redis.Redis) -> None:
        quarantine(redis_client, record(1), record(2))
        redis_client.hincrby(keys.metrics(), "late_events", 3)
        body = client.get("/v1/admin/stats", headers=ADMIN).json()
        assert body["quarantined"] == 2
        assert body["counters"] == {"quarantined": 2, "late_events": 3}
        assert body["ingest_lag_s"] == 0
