"""analytics-next's two requests, as its source sends them: the project settings and a single event."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from state.settings import Settings
from tests.api.test_ingest import basic, stored
from tests.helpers import RedisServer, free_port

WRITE_KEY = "wk-segment"
SHOP = "https://shop.example"


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[TestClient]:
    settings = Settings(redis_url=redis_server.url, write_key=WRITE_KEY, admin_token="admin-test",
                        api_port=free_port(), allowed_origins=SHOP, stream_shards=4,
                        api_public_url="https://attimo.shop.example")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


class TestProjectSettings:
    """`GET /v1/projects/{writeKey}/settings` aims the Segment.io integration at this API, for the key's sites."""

    def test_the_integration_points_at_the_public_api_url(self, client: TestClient) -> None:
        answer = client.get(f"/v1/projects/{WRITE_KEY}/settings", headers={"Origin": SHOP})
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == SHOP
        body = answer.json()
        assert body["integrations"] == {"Segment.io": {
            "apiKey": WRITE_KEY, "apiHost": "attimo.shop.example/v1", "protocol": "https",
            "addBundledMetadata": False, "unbundledIntegrations": [], "maybeBundledConfigIds": {}}}
        assert body["metrics"] == {"sampleRate": 0.0} and body["remotePlugins"] == []

    def test_an_unknown_key_or_another_site_gets_nothing(self, client: TestClient) -> None:
        assert client.get("/v1/projects/nope/settings").status_code == 401
        refused = client.get(f"/v1/projects/{WRITE_KEY}/settings", headers={"Origin": "https://evil.example"})
        assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers


class TestShortRoutes:
    """`/v1/t`, `/v1/p` … take analytics-next's bodies: writeKey inside, Basic auth, `_metadata`, text/plain."""

    def test_a_track_as_analytics_next_sends_it_is_stored(self, client: TestClient,
                                                           redis_client: redis.Redis) -> None:
        message_id = f"ajs-next-{uuid.uuid4()}"
        body = {"type": "track", "event": "Product Viewed", "properties": {"product_id": "p1"},
                "messageId": message_id, "anonymousId": "anon-s", "userId": None,
                "timestamp": datetime.now(UTC).isoformat(), "sentAt": datetime.now(UTC).isoformat(),
                "context": {"library": {"name": "analytics.js", "version": "next-1.84.3"}},
                "integrations": {}, "writeKey": WRITE_KEY,
                "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []}}
        answer = client.post("/v1/t", content=orjson.dumps(body),
                             headers={**basic(WRITE_KEY), "Content-Type": "text/plain", "Origin": SHOP})
        assert answer.status_code == 200, answer.text
        assert stored(redis_client)[message_id].event == "Product Viewed"

    def test_a_page_sent_to_the_identify_route_is_refused_by_name(self, client: TestClient) -> None:
        answer = client.post("/v1/i", json={"type": "page", "anonymousId": "a", "writeKey": WRITE_KEY})
        assert answer.status_code == 400 and "/v1/page" in answer.json()["error"]
