"""Segment-compatible HTTP ingest: auth, gzip, per-event errors, limits, pushback."""

from __future__ import annotations

import base64
import gzip
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from state import keys
from state.settings import Settings
from state.streams import decode_entry
from tests.helpers import RedisServer, free_port

WRITE_KEY = "wk-http"
SHOP = "https://shop.example"
SHARDS = 4
MAX_BATCH_BYTES = 16 * 1024


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return Settings(redis_url=redis_server.url, write_key=WRITE_KEY, admin_token="admin-test",
                    api_port=free_port(), allowed_origins=SHOP, stream_shards=SHARDS,
                    max_batch_bytes=MAX_BATCH_BYTES, max_ingest_lag_s=1.0)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def event(anonymous_id: str = "anon-1", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "track", "event": "Order Completed", "anonymousId": anonymous_id,
        "messageId": str(uuid.uuid4()), "timestamp": datetime.now(UTC).isoformat(),
        "properties": {"order_id": "o1", "revenue": 99.5}}
    base.update(fields)
    return base


def stored(client: redis.Redis) -> dict[str, Any]:
    """Every stored event by messageId."""
    found = {}
    for shard in range(SHARDS):
        for _entry_id, fields in client.xrange(keys.event_stream(shard)):
            for e in decode_entry(fields[b"e"]):
                found[e.message_id] = e
    return found


class TestBatch:
    """`POST /v1/batch` stores good events and reports bad ones by index."""

    def test_batch_with_basic_auth_is_stored(self, client: TestClient, redis_client: redis.Redis) -> None:
        """The write key as the Basic username (empty password) is what Segment libraries send."""
        events = [event("a"), event("b"), event("c")]
        response = client.post("/v1/batch", content=orjson.dumps({"batch": events}), headers=basic(WRITE_KEY))
        assert response.status_code == 200
        assert response.json() == {"success": True}
        assert set(stored(redis_client)) == {e["messageId"] for e in events}

    def test_write_key_in_body_works_for_text_plain_beacons(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        """`navigator.sendBeacon` cannot set headers: the key rides in the body, as text/plain."""
        sent_at = datetime.now(UTC).isoformat()
        body = orjson.dumps({"batch": [event()], "writeKey": WRITE_KEY, "sentAt": sent_at})
        response = client.post("/v1/batch", content=body, headers={"Content-Type": "text/plain"})
        assert response.status_code == 200
        assert len(stored(redis_client)) == 1

    def test_gzip_body_is_decompressed(self, client: TestClient, redis_client: redis.Redis) -> None:
        """`Content-Encoding: gzip` is accepted."""
        events = [event(f"anon-{i}") for i in range(20)]
        body = gzip.compress(orjson.dumps({"batch": events}))
        response = client.post("/v1/batch", content=body,
                               headers={**basic(WRITE_KEY), "Content-Encoding": "gzip"})
        assert response.status_code == 200
        assert len(stored(redis_client)) == 20

    def test_bad_events_give_400_with_indexes_while_good_ones_are_stored(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        """A batch is never all-or-nothing."""
        good = [event("a"), event("b")]
        batch = [good[0], {"type": "track", "anonymousId": "x"}, good[1],
                 event(properties={"revenue": "lots"})]
        response = client.post("/v1/batch", content=orjson.dumps({"batch": batch}), headers=basic(WRITE_KEY))
        assert response.status_code == 400
        body = response.json()
        assert body["success"] is False and body["accepted"] == 2
        assert [r["index"] for r in body["rejected"]] == [1, 3]
        assert "revenue" in body["rejected"][1]["error"]
        assert set(stored(redis_client)) == {e["messageId"] for e in good}

    def test_body_that_is_not_a_batch_gives_400(self, client: TestClient) -> None:
        """The envelope itself must be `{"batch": [...]}`."""
        response = client.post("/v1/batch", content=b"{nope", headers=basic(WRITE_KEY))
        assert response.status_code == 400
        assert response.json()["success"] is False


class TestAuth:
    """A missing or unknown key is 401; a foreign Origin is 403."""

    def test_missing_key_is_401(self, client: TestClient, redis_client: redis.Redis) -> None:
        """No Basic auth and no writeKey in the body."""
        response = client.post("/v1/batch", content=orjson.dumps({"batch": [event()]}))
        assert response.status_code == 401
        assert response.json()["success"] is False and response.json()["error"]
        assert stored(redis_client) == {}

    def test_unknown_basic_key_is_401(self, client: TestClient) -> None:
        """A key that does not exist."""
        response = client.post("/v1/batch", content=orjson.dumps({"batch": [event()]}), headers=basic("nope"))
        assert response.status_code == 401

    def test_unknown_body_key_is_401(self, client: TestClient) -> None:
        """Same for `writeKey` in the body."""
        body = orjson.dumps({"batch": [event()], "writeKey": "nope"})
        assert client.post("/v1/batch", content=body).status_code == 401

    def test_foreign_origin_is_403(self, client: TestClient) -> None:
        """Another site's page cannot use the shop's key."""
        response = client.post("/v1/batch", content=orjson.dumps({"batch": [event()]}),
                               headers={**basic(WRITE_KEY), "Origin": "https://evil.example"})
        assert response.status_code == 403

    def test_cors_preflight_allows_the_shop_origin(self, client: TestClient) -> None:
        """Browsers on the shop may send JSON with the key header."""
        response = client.options("/v1/batch", headers={
            "Origin": SHOP, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization"})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == SHOP


class TestLimits:
    """Bodies over the limit are 413, before or after decompression."""

    def test_oversize_body_is_413(self, client: TestClient, redis_client: redis.Redis) -> None:
        """Plain bodies over max_batch_bytes."""
        events = [event(properties={"note": "x" * 1000}) for _ in range(20)]
        body = orjson.dumps({"batch": events})
        assert len(body) > MAX_BATCH_BYTES
        response = client.post("/v1/batch", content=body, headers=basic(WRITE_KEY))
        assert response.status_code == 413
        assert stored(redis_client) == {}

    def test_gzip_bomb_is_413(self, client: TestClient) -> None:
        """A tiny gzip body that inflates far past the limit is refused without inflating it all."""
        bomb = gzip.compress(b'{"batch": [' + b" " * (10 * 1024 * 1024) + b"]}")
        assert len(bomb) < MAX_BATCH_BYTES
        response = client.post("/v1/batch", content=bomb,
                               headers={**basic(WRITE_KEY), "Content-Encoding": "gzip"})
        assert response.status_code == 413

    def test_corrupt_gzip_is_400(self, client: TestClient) -> None:
        """Bytes that claim to be gzip but are not."""
        response = client.post("/v1/batch", content=b"not gzip at all",
                               headers={**basic(WRITE_KEY), "Content-Encoding": "gzip"})
        assert response.status_code == 400

    def test_unknown_content_encoding_is_415(self, client: TestClient) -> None:
        """Only gzip / deflate are decoded."""
        headers = {**basic(WRITE_KEY), "Content-Encoding": "br"}
        response = client.post("/v1/batch", content=b"{}", headers=headers)
        assert response.status_code == 415


class TestSingleEventRoutes:
    """`/v1/track`, `/v1/page`, `/v1/identify`, `/v1/alias` … take one event; the route implies its type."""

    def test_track_without_type_is_stored_as_track(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        """Segment's /v1/track body has no `type`."""
        body = event()
        del body["type"]
        response = client.post("/v1/track", content=orjson.dumps(body), headers=basic(WRITE_KEY))
        assert response.status_code == 200, response.text
        [saved] = stored(redis_client).values()
        assert type(saved).__name__ == "Track" and saved.event == "Order Completed"

    @pytest.mark.parametrize(("route", "body", "kind"), [
        ("page", {"anonymousId": "a", "name": "Home"}, "Page"),
        ("identify", {"anonymousId": "a", "userId": "u-1", "traits": {"email": "x@y.example"}}, "Identify"),
        ("alias", {"userId": "u-1", "previousId": "a"}, "Alias"),
        ("screen", {"anonymousId": "a", "name": "Cart"}, "Screen"),
        ("group", {"userId": "u-1", "groupId": "g-1"}, "Group"),
    ])
    def test_each_route_stores_its_type(self, client: TestClient, redis_client: redis.Redis,
                                        route: str, body: dict[str, Any], kind: str) -> None:
        """The write key may ride in the body here too."""
        response = client.post(f"/v1/{route}", content=orjson.dumps({**body, "writeKey": WRITE_KEY}))
        assert response.status_code == 200, response.text
        [saved] = stored(redis_client).values()
        assert type(saved).__name__ == kind

    def test_invalid_single_event_is_400_with_its_error(self, client: TestClient) -> None:
        """A track without `event` is reported as index 0."""
        body = orjson.dumps({"anonymousId": "a"})
        response = client.post("/v1/track", content=body, headers=basic(WRITE_KEY))
        assert response.status_code == 400
        assert response.json()["rejected"][0]["index"] == 0

    def test_non_object_body_is_400(self, client: TestClient) -> None:
        """One event must be a JSON object."""
        response = client.post("/v1/track", content=b"[1, 2]", headers=basic(WRITE_KEY))
        assert response.status_code == 400


class TestPushback:
    """When the dataflow lags more than allowed, ingest answers 429 + Retry-After and stores nothing."""

    def test_lagging_dataflow_gives_429_with_retry_after(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        """An entry waiting unprocessed for 5 s (the limit is 1 s) means overloaded."""
        now_ms = int(time.time() * 1000)
        redis_client.xadd(keys.event_stream(2), {b"e": b"[]"}, id=f"{now_ms - 6000}-0")
        redis_client.xadd(keys.event_stream(2), {b"e": b"[]"}, id=f"{now_ms - 5000}-0")
        redis_client.hset(keys.dataflow_progress(), "2", f"{now_ms - 6000}-0")
        sent = event()
        response = client.post("/v1/batch", content=orjson.dumps({"batch": [sent]}), headers=basic(WRITE_KEY))
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert sent["messageId"] not in stored(redis_client)

    def test_an_idle_gap_is_not_lag(self, client: TestClient, redis_client: redis.Redis) -> None:
        """Caught up after a minute of silence, the first new event is accepted at once.

        Lag is the age of the oldest event not processed yet: the newest
        entry just appended is a few ms old, whatever the idle gap before it.
        """
        now_ms = int(time.time() * 1000)
        redis_client.xadd(keys.event_stream(2), {b"e": b"[]"}, id=f"{now_ms - 60_000}-0")
        redis_client.hset(keys.dataflow_progress(), "2", f"{now_ms - 60_000}-0")
        redis_client.xadd(keys.event_stream(2), {b"e": b"[]"})  # appended now, not processed yet
        sent = event()
        response = client.post("/v1/batch", content=orjson.dumps({"batch": [sent]}), headers=basic(WRITE_KEY))
        assert response.status_code == 200
        assert sent["messageId"] in stored(redis_client)


class TestHostileBodies:
    """Nothing a client sends gets a 5xx; good events next to a bad one are kept."""

    def test_a_single_event_nested_thousands_deep_is_a_400(self, client: TestClient) -> None:
        """Once a 500 (the decoder's recursion limit); now a rejected event with its reason."""
        body = b'{"anonymousId": "a", "properties": {"x": ' + b"[" * 3000 + b"]" * 3000 + b"}}"
        response = client.post("/v1/page", content=body, headers=basic(WRITE_KEY))
        assert response.status_code == 400
        assert "nested" in response.text and "at most 32" in response.text

    def test_a_batch_with_a_deep_event_stores_the_others(self, client: TestClient,
                                                         redis_client: redis.Redis) -> None:
        good = event()
        body = (b'{"batch": [' + orjson.dumps(good) + b', {"type": "page", "anonymousId": "a", "x": '
                + b"[" * 3000 + b"]" * 3000 + b"}]}")
        response = client.post("/v1/batch", content=body, headers=basic(WRITE_KEY))
        assert response.status_code == 400 and response.json()["accepted"] == 1
        assert good["messageId"] in stored(redis_client)

    @pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
    def test_timestamps_at_the_calendars_ends_are_a_400(self, client: TestClient, timestamp: str) -> None:
        response = client.post("/v1/page", content=orjson.dumps({"anonymousId": "a", "timestamp": timestamp}),
                               headers=basic(WRITE_KEY))
        assert response.status_code == 400 and "representable" in response.text


class TestSingleEventsAndPushback:
    """A single-event route takes its own type; a request with nothing to store is never pushed back."""

    def test_another_type_than_the_routes_is_a_400(self, client: TestClient, redis_client: redis.Redis) -> None:
        body = orjson.dumps({"type": "identify", "userId": "u", "traits": {"plan": "pro"}})
        response = client.post("/v1/track", content=body, headers=basic(WRITE_KEY))
        assert response.status_code == 400 and "use /v1/identify" in response.text
        assert stored(redis_client) == {}

    def test_only_rejected_events_get_400_even_while_lagging(self, client: TestClient,
                                                             redis_client: redis.Redis) -> None:
        now_ms = int(time.time() * 1000)
        redis_client.xadd(keys.event_stream(2), {b"e": b"[]"}, id=f"{now_ms - 5000}-0")
        response = client.post("/v1/batch", content=orjson.dumps({"batch": [{"type": "track"}]}),
                               headers=basic(WRITE_KEY))
        assert response.status_code == 400 and response.json()["accepted"] == 0
