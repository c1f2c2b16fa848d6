"""Decisions through the real stack: nothing internal reaches a page unless a campaign makes it public.

Events go in over HTTP, the real dataflow scores the contacts, puts them in
a segment and writes their decision documents, and `GET /v1/decisions`
answers from those. The answers must not carry segment names, scores or
cart values — until a campaign lists them in `public` — and a signed-in
user's must need the user id's signature.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from api.decisions.identity import sign_user_id
from state.campaigns import Campaign
from state.config import decode_config
from state.config_store import publish_config
from state.decisions import PublicDecisions
from state.profile import decode_profile
from tests.e2e.conftest import Stack, attimo_run
from tests.helpers import RedisServer, wait_for

SECRET = "e2e-identity-secret"
SEGMENT = "pricing-readers"
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture
def stack(redis_server: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    with attimo_run(tmp_path, redis_server, identity_secrets=SECRET) as running:
        yield running


def admin(stack: Stack, method: str, path: str, body: Any) -> int:
    request = urllib.request.Request(stack.api_url + path, method=method, data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {stack.admin_token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return int(answer.status)


def send(stack: Stack, *events: dict[str, Any]) -> None:
    """Events over `POST /v1/batch` (the write key as the Basic user)."""
    token = base64.b64encode(f"{stack.write_key}:".encode()).decode()
    request = urllib.request.Request(stack.api_url + "/v1/batch", method="POST",
                                     data=json.dumps({"batch": list(events)}).encode(),
                                     headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def page(n: int, **ids: str) -> dict[str, Any]:
    return {"type": "page", "name": "Pricing", "messageId": f"{next(iter(ids.values()))}-{n}-{time.time_ns()}",
            "properties": {"name": "Pricing", "url": "https://shop.example/pricing"}, **ids}


def viewed(product_id: str, **ids: str) -> dict[str, Any]:
    return {"type": "track", "event": "Product Viewed", "messageId": f"{product_id}-{time.time_ns()}",
            "properties": {"product_id": product_id, "name": "Mug", "price": 12.0, "category": "mugs"}, **ids}


def profile_ready(stack: Stack, any_id: str) -> bool:
    status, body = stack.get(f"/v1/contacts/{any_id}", admin=True)
    if status != 200:
        return False
    profile = decode_profile(body)
    return profile.score > 0 and SEGMENT in profile.segments


def decisions(stack: Stack, any_id: str, sig: str = "") -> tuple[int, bytes]:
    return stack.get(f"/v1/decisions/{any_id}?key={stack.write_key}" + (f"&sig={sig}" if sig else ""))


def test_segments_and_score_stay_private_until_a_campaign_makes_them_public(stack: Stack) -> None:
    """Scored, segmented contacts answer none of it; once a campaign lists them in `public`, they do."""
    assert admin(stack, "PUT", "/v1/admin/scoring/rules", [
        {"id": "pricing", "match": {"event": "page", "where": [{"name": "name", "value": "Pricing"}]},
         "points": 15}]) == 200
    assert admin(stack, "PUT", f"/v1/admin/segments/{SEGMENT}", {"when": {
        "kind": "score", "op": "gte", "value": 10}}) == 201
    # A product view gives each contact a seed, so the dataflow writes its decision document (a contact
    # with nothing to say has none, and answers like a new visitor: nothing of its own to protect).
    send(stack, page(1, anonymousId="anon-private"), viewed("mug-1", anonymousId="anon-private"),
         page(1, anonymousId="anon-user", userId="user-private"),
         viewed("mug-2", anonymousId="anon-user", userId="user-private"))
    wait_for(lambda: profile_ready(stack, "anon-private") and profile_ready(stack, "user-private"), 20,
             "the contacts to be scored and segmented")

    status, body = decisions(stack, "anon-private")
    assert status == 200
    msgspec.json.decode(body, type=PublicDecisions)
    for internal in (b"segments", b"score", SEGMENT.encode(), b"cart_value", b"contact_id", b"seeds"):
        assert internal not in body, internal
    assert decisions(stack, "user-private")[0] == 401
    assert decisions(stack, "anon-user")[0] == 401  # the user's anonymous id belongs to the user now
    sig = sign_user_id(SECRET, "user-private")
    status, body = decisions(stack, "user-private", sig)
    assert status == 200 and b"segments" not in body and b"score" not in body

    _publish_public_campaign(stack)
    send(stack, page(2, anonymousId="anon-private"))

    def public_now() -> dict[str, Any] | None:
        answer = msgspec.json.decode(decisions(stack, "anon-private")[1], type=PublicDecisions)
        # The publication alone re-evaluates the contact (score 15); the second page view makes it 30.
        return answer.public if answer.public.get("score", 0) >= 30 else None

    public = wait_for(public_now, 20, "the campaign's public fields in the answer, after the second page")
    assert public["segments"] == [SEGMENT] and public["score"] >= 30


def _publish_public_campaign(stack: Stack) -> None:
    """A campaign for everybody that makes segments and score public (through the live configuration)."""
    status, raw = stack.get("/v1/admin/config", admin=True)
    assert status == 200
    config = decode_config(raw)
    campaign = msgspec.convert({"id": "show-segments", "variants": [{"id": "a", "content": {"title": "Hi"}}],
                                "public": ["segments", "score"]}, Campaign)
    client = aioredis.Redis.from_url(stack.settings["ATTIMO_REDIS_URL"])

    async def publish() -> None:
        try:
            await publish_config(client, msgspec.structs.replace(config, campaigns=[campaign]),
                                 int(stack.settings.get("ATTIMO_STREAM_SHARDS", "4")))
        finally:
            await client.aclose()

    asyncio.run(publish())
