"""Admin webhooks API: endpoints and their secrets, rotation, re-enabling, dead letters, delivery counters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from fastapi.testclient import TestClient

from api.dispatcher.ledger import Ledger
from api.dispatcher.records import DeadLetter
from api.dispatcher.signing import secret_key
from state import keys
from state.actions import OUTBOX_FIELD, decode_action
from state.outbox import outbox_shard
from tests.dispatcher.conftest import ADMIN, SHARDS, action, admin_client
from tests.helpers import RedisServer

URL = "https://hooks.shop.invalid/attimo"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[TestClient]:
    with admin_client(redis_server.url, webhook_allowed_networks="", webhook_secret_grace_s=3600) as test_client:
        yield test_client


def put(client: TestClient, endpoint_id: str = "crm", **body: object) -> dict[str, object]:
    answer = client.put(f"/v1/admin/webhooks/endpoints/{endpoint_id}", json={"url": URL, **body}, headers=ADMIN)
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


def give_up(redis_url: str, *letters: DeadLetter) -> None:
    """Dead-letter actions the way a dispatcher does (holding the shard's lease)."""

    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url)
        for letter in letters:
            shard = outbox_shard(letter.action.contact.contact_id, SHARDS)
            await client.set(keys.dispatcher_lease(shard), "me")
            await client.xadd(keys.outbox(shard), {OUTBOX_FIELD: b"{}"}, id=f"{int(letter.dead_at * 1000)}-0")
            ledger = Ledger(client, "me", shard, state_ttl_s=60, dead_letter_retention_s=3600)
            await ledger.dead(f"{int(letter.dead_at * 1000)}-0".encode(), letter, was_failing=False, failed_now=True)
        await client.aclose()

    asyncio.run(run())


def letter(n: int, at: float) -> DeadLetter:
    return DeadLetter(id=f"act-{n}", target="webhook:crm", reason="gave up after 3 attempts; last: answered 500",
                      attempts=3, dead_at=at, action=action(n, endpoint="crm"), last_status=500)


class TestEndpoints:
    """Create, read, replace, delete; the secret is shown once, never listed."""

    def test_a_new_endpoint_gets_a_generated_secret_shown_once(self, client: TestClient) -> None:
        created = put(client, description="the CRM")
        assert created["created"] is True and len(secret_key(str(created["secret"]))) == 32
        shown = client.get("/v1/admin/webhooks/endpoints/crm", headers=ADMIN).json()
        assert shown["url"] == URL and shown["description"] == "the CRM" and shown["secrets"] == 1
        assert "secret" not in shown and str(created["secret"]) not in str(shown)
        assert client.get("/v1/admin/webhooks/endpoints", headers=ADMIN).json()["count"] == 1

    def test_replacing_without_a_secret_keeps_it_and_with_one_replaces_it(self, client: TestClient,
                                                                         redis_client: redis.Redis) -> None:
        put(client, secret=SECRET)
        again = client.put("/v1/admin/webhooks/endpoints/crm", json={"url": URL + "/v2"}, headers=ADMIN)
        assert again.status_code == 200 and again.json()["secret"] is None and again.json()["created"] is False
        stored = redis_client.hget(keys.webhook_endpoints(), "crm")
        assert stored is not None and SECRET.encode() in stored and b"/v2" in stored

    @pytest.mark.parametrize(("endpoint_id", "body"), [
        ("crm", {"url": URL, "secret": "not-a-secret"}),
        ("crm", {"url": URL, "secret": "whsec_c2hvcnQ="}),
        ("crm", {"url": "ftp://hooks.shop.invalid/"}),
        ("crm", {"url": "http://127.0.0.1:8000/v1/admin/stats"}),
        ("crm", {"url": "http://169.254.169.254/latest/meta-data/"}),
        ("crm", {"url": "http://[::ffff:10.0.0.1]/"}),
        ("crm", {"url": "http://localhost:6379/"}),
        ("crm", {"url": URL, "colour": "red"}),
        ("not an id", {"url": URL}),
    ])
    def test_what_cannot_be_used_is_refused_with_422(self, client: TestClient, endpoint_id: str,
                                                     body: dict[str, str]) -> None:
        answer = client.put(f"/v1/admin/webhooks/endpoints/{endpoint_id}", json=body, headers=ADMIN)
        assert answer.status_code == 422, answer.text
        assert answer.json()["success"] is False

    def test_delete_then_404(self, client: TestClient) -> None:
        put(client)
        assert client.delete("/v1/admin/webhooks/endpoints/crm", headers=ADMIN).status_code == 204
        assert client.delete("/v1/admin/webhooks/endpoints/crm", headers=ADMIN).status_code == 404
        assert client.get("/v1/admin/webhooks/endpoints/crm", headers=ADMIN).status_code == 404

    def test_admin_only(self, client: TestClient) -> None:
        assert client.get("/v1/admin/webhooks/endpoints").status_code == 401
        assert client.put("/v1/admin/webhooks/endpoints/crm", json={"url": URL}).status_code == 401


class TestRotationAndEnabling:
    """Rotation shows the new secret once and keeps the old signing; enabling clears a disabled endpoint."""

    def test_rotation_returns_the_new_secret_and_both_sign_until_the_grace_ends(self, client: TestClient) -> None:
        put(client, secret=SECRET)
        rotated = client.post("/v1/admin/webhooks/endpoints/crm/rotate-secret", headers=ADMIN).json()
        assert rotated["secret"] != SECRET and rotated["endpoint"]["secrets"] == 2
        assert rotated["endpoint"]["rotation_ends_at"] > rotated["endpoint"]["updated_at"] + 3500
        chosen = "whsec_" + "B" * 40
        again = client.post("/v1/admin/webhooks/endpoints/crm/rotate-secret", json={"secret": chosen},
                            headers=ADMIN).json()
        assert again["secret"] == chosen and again["endpoint"]["secrets"] == 3
        assert client.post("/v1/admin/webhooks/endpoints/nope/rotate-secret", headers=ADMIN).status_code == 404

    def test_enabling_clears_a_disabled_endpoint(self, client: TestClient, redis_client: redis.Redis) -> None:
        put(client)
        redis_client.hset(keys.webhook_health("crm"),
                          mapping={"disabled_at": "1.5", "disabled_reason": "answered 410 Gone", "failing_since": "1"})
        shown = client.get("/v1/admin/webhooks/endpoints/crm", headers=ADMIN).json()
        assert shown["disabled"] is True and shown["disabled_reason"] == "answered 410 Gone"
        enabled = client.post("/v1/admin/webhooks/endpoints/crm/enable", headers=ADMIN).json()
        assert enabled["disabled"] is False and enabled["failing_since"] is None
        assert client.post("/v1/admin/webhooks/endpoints/nope/enable", headers=ADMIN).status_code == 404


class TestDeadLetters:
    """Listed newest first in pages, read, deleted, or replayed into the outbox with a fresh schedule."""

    def test_listed_newest_first_in_pages(self, client: TestClient, redis_server: RedisServer) -> None:
        now = time.time()
        give_up(redis_server.url, *(letter(n, now - 100 + n) for n in range(5)))
        first = client.get("/v1/admin/webhooks/dead-letters", params={"limit": 3}, headers=ADMIN).json()
        assert [x["id"] for x in first["data"]] == ["act-4", "act-3", "act-2"] and first["count"] == 5
        rest = client.get("/v1/admin/webhooks/dead-letters", params={"limit": 3, "before": first["next_before"]},
                          headers=ADMIN).json()
        assert [x["id"] for x in rest["data"]] == ["act-1", "act-0"] and rest["next_before"] is None
        one = client.get("/v1/admin/webhooks/dead-letters/act-2", headers=ADMIN).json()
        assert one["action"]["id"] == "act-2" and one["attempts"] == 3 and one["last_status"] == 500

    def test_replay_appends_the_action_again_and_drops_the_letter(self, client: TestClient,
                                                                  redis_server: RedisServer,
                                                                  redis_client: redis.Redis) -> None:
        give_up(redis_server.url, letter(1, time.time()))
        redis_client.set(keys.delivery_state("act-1"), b'{"attempts":3}')
        answer = client.post("/v1/admin/webhooks/dead-letters/act-1/replay", headers=ADMIN)
        assert answer.status_code == 202 and answer.json() == {"replayed": 1}
        stream = keys.outbox(outbox_shard("ada", SHARDS))
        entries: Any = redis_client.xrevrange(stream, count=1)
        assert decode_action(entries[0][1][OUTBOX_FIELD]) == action(1, endpoint="crm")
        assert not redis_client.exists(keys.delivery_state("act-1"))  # a fresh schedule
        assert client.get("/v1/admin/webhooks/dead-letters/act-1", headers=ADMIN).status_code == 404
        assert client.post("/v1/admin/webhooks/dead-letters/act-1/replay", headers=ADMIN).status_code == 404

    def test_delete_forgets_it(self, client: TestClient, redis_server: RedisServer) -> None:
        give_up(redis_server.url, letter(1, time.time()))
        assert client.delete("/v1/admin/webhooks/dead-letters/act-1", headers=ADMIN).status_code == 204
        assert client.delete("/v1/admin/webhooks/dead-letters/act-1", headers=ADMIN).status_code == 404
        assert client.get("/v1/admin/webhooks/dead-letters", headers=ADMIN).json()["count"] == 0


class TestStats:
    """Counters per endpoint, endpoints without traffic included."""

    def test_counters_per_target(self, client: TestClient, redis_server: RedisServer) -> None:
        put(client, "crm")
        put(client, "sms")
        give_up(redis_server.url, letter(1, time.time()))
        body = client.get("/v1/admin/webhooks/stats", headers=ADMIN).json()
        rows = {r["target"]: r for r in body["data"]}
        assert {k: rows["webhook:crm"][k] for k in ("dead", "failed_attempts", "retrying")} == {
            "dead": 1, "failed_attempts": 1, "retrying": 0}
        assert rows["webhook:sms"] == {"target": "webhook:sms", "endpoint": "sms", "delivered": 0, "retrying": 0,
                                       "dead": 0, "attempts": 0, "failed_attempts": 0}
        assert body["dead_letters"] == 1
