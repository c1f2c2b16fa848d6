"""Segment count preview, the API's side: validation as a segment PUT, the control it sends, the bounded wait."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import cast

import pytest
import redis
from fastapi.testclient import TestClient

from state import keys
from state.segment_preview import PREVIEW_FIELD, decode_control
from tests.api.test_admin_config import ADMIN, SHARDS, admin_app
from tests.helpers import RedisServer

GOLD = {"when": {"kind": "trait", "name": "plan", "value": "gold"}}


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[TestClient]:
    with TestClient(admin_app(redis_server.url)) as test_client:
        yield test_client


def previews_sent(store: redis.Redis) -> list[bytes]:
    """The preview controls appended to the ingest streams."""
    entries = [e for shard in range(SHARDS)
               for e in cast("list[tuple[bytes, dict[bytes, bytes]]]", store.xrange(keys.event_stream(shard)))]
    return [fields[PREVIEW_FIELD] for _, fields in entries if PREVIEW_FIELD in fields]


class TestValidation:
    """A tree saving would refuse is refused with 422 naming the field, and nothing is sent."""

    @pytest.mark.parametrize(("body", "named"), [
        ({"when": {"kind": "trait", "nme": "plan"}}, "nme"),
        ({"when": {"kind": "count", "dimension": "colour", "value": "x", "window_s": 60, "op": "gte", "n": 1}},
         "dimension"),
        ({"when": {"kind": "segment", "segment": "nobody-defined-this"}}, "nobody-defined-this"),
        ({"when": {"kind": "all", "of": [{"kind": "score", "op": "gte", "value": "high"}]}}, "value"),
        ({"conditions": {}}, "conditions"),
    ])
    def test_bad_tree_is_422_naming_the_field(self, client: TestClient, redis_server: RedisServer,
                                              body: dict[str, object], named: str) -> None:
        response = client.post("/v1/admin/segments/preview", json=body, headers=ADMIN)
        assert response.status_code == 422, response.text
        assert named in response.json()["error"]
        assert previews_sent(redis_server.client()) == []

    def test_a_cycle_through_the_segment_being_edited_is_refused(self, client: TestClient) -> None:
        assert client.put("/v1/admin/segments/gold", json=GOLD, headers=ADMIN).status_code == 201
        fan = {"when": {"kind": "segment", "segment": "gold"}}
        assert client.put("/v1/admin/segments/fan", json=fan, headers=ADMIN).status_code == 201
        response = client.post("/v1/admin/segments/preview", headers=ADMIN,
                               json={"id": "gold", "when": {"kind": "segment", "segment": "fan"}})
        assert response.status_code == 422 and "cycle" in response.json()["error"]

    def test_admin_token_is_required(self, client: TestClient) -> None:
        assert client.post("/v1/admin/segments/preview", json=GOLD).status_code == 401


class TestWithoutDataflow:
    """With no dataflow to answer, the route answers 504 in bounded time, naming every shard."""

    def test_504_after_the_timeout_naming_the_missing_shards(self, client: TestClient,
                                                            redis_server: RedisServer) -> None:
        started = time.monotonic()
        response = client.post("/v1/admin/segments/preview?timeout_s=0.5", json=GOLD, headers=ADMIN)
        elapsed = time.monotonic() - started
        assert response.status_code == 504
        assert 0.5 <= elapsed < 3
        body = response.json()
        # contact_shards=8 in admin_app: both stages of every shard are missing.
        assert sorted(body["missing"]) == sorted([f"{s}:{n}" for s in ("visitors", "contacts") for n in range(8)])
        assert body["answered"] == 0 and "did not answer" in body["error"]
        sent = [decode_control(raw) for raw in previews_sent(redis_server.client())]
        assert len(sent) == SHARDS and len({c.id for c in sent}) == 1  # one copy per ingest stream
        assert sent[0].expires_at <= time.time() + 0.5
        assert client.get("/v1/admin/config", headers=ADMIN).json()["version"] == 0  # nothing published

    def test_timeout_is_bounded(self, client: TestClient) -> None:
        response = client.post("/v1/admin/segments/preview?timeout_s=600", json=GOLD, headers=ADMIN)
        assert response.status_code == 422
