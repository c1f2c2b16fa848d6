"""Known bots' events are acked and dropped at ingest: no visitor, no profile, nothing in the streams.

Through `attimo run` (gateway, dataflow, API) with a real Redis: a crawler's
page views over the websocket (its handshake's user agent is a bot's) and
over HTTP (its events' `context.userAgent` is) are answered as stored, yet
no profile appears for it, while a shopper's events sent alongside land; the
streams hold none of the bot's events, so nothing downstream — visitors, the
active set, workflows — ever sees them. With `ATTIMO_ACCEPT_BOTS=true` the
same bot is a contact like any other.
"""

from __future__ import annotations

import base64
import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Final, cast

import pytest
from websockets.sync.client import connect
from websockets.typing import Origin

from state import keys
from state.streams import decode_entry
from tests.e2e.conftest import Stack, attimo_run
from tests.helpers import RedisServer, wait_for

pytestmark = pytest.mark.e2e

GOOGLEBOT: Final = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS: Final = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "HeadlessChrome/120.0.0.0 Safari/537.36")
SHOPPER: Final = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/120.0.0.0 Safari/537.36")


def page(visitor: str, agent: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "page", "messageId": str(uuid.uuid4()), "anonymousId": visitor}
    if agent is not None:
        event["context"] = {"userAgent": agent}
    return event


def send_http(stack: Stack, batch: list[dict[str, Any]]) -> int:
    request = urllib.request.Request(stack.api_url + "/v1/batch", data=json.dumps({"batch": batch}).encode(),
                                     method="POST")
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{stack.write_key}:".encode()).decode())
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


def send_ws(stack: Stack, agent: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
    """One frame from a browser (an Origin) whose handshake carries `agent`; the reply."""
    with connect(f"{stack.gateway_url}/v1/stream?key={stack.write_key}", origin=Origin(stack.api_url),
                 user_agent_header=agent, open_timeout=5) as ws:
        ws.send(json.dumps({"seq": 1, "batch": batch}))
        reply: dict[str, Any] = json.loads(ws.recv(timeout=10))
        return reply


def stream_visitors(stack: Stack) -> set[str]:
    client = stack.redis.client()
    found: set[str] = set()
    for shard in range(4):
        for _, fields in cast("list[tuple[bytes, dict[bytes, bytes]]]", client.xrange(keys.event_stream(shard))):
            if b"e" in fields:
                found |= {e.anonymous_id or "" for e in decode_entry(fields[b"e"])}
    return found


def profile_status(stack: Stack, contact: str) -> int:
    return stack.get(f"/v1/contacts/{contact}", admin=True)[0]


def test_bots_are_acked_but_never_become_visitors(redis_server: RedisServer, tmp_path: Path) -> None:
    with attimo_run(tmp_path, redis_server, accept_bots="false") as stack:
        headless, googlebot, shopper_ws, shopper_http = (f"{name}-{uuid.uuid4().hex[:8]}" for name in
                                                         ("headless", "googlebot", "shopper-ws", "shopper-http"))
        # A headless browser's socket: all of its frame's events are a bot's, whatever their context says.
        assert send_ws(stack, HEADLESS, [page(headless, SHOPPER), page(headless)]) == {
            "ack": 1, "accepted": 2, "rejected": []}
        assert send_ws(stack, SHOPPER, [page(shopper_ws), page(googlebot, GOOGLEBOT)])["accepted"] == 2
        assert send_http(stack, [page(googlebot, GOOGLEBOT), page(shopper_http, SHOPPER)]) == 200
        for shopper in (shopper_ws, shopper_http):
            wait_for(lambda shopper=shopper: profile_status(stack, shopper) == 200, timeout=30,  # type: ignore[misc]
                     what=f"the shopper {shopper}'s profile")
        assert profile_status(stack, headless) == 404
        assert profile_status(stack, googlebot) == 404
        visitors = stream_visitors(stack)
        assert {shopper_ws, shopper_http} <= visitors and not {headless, googlebot} & visitors


def test_accept_bots_keeps_them(redis_server: RedisServer, tmp_path: Path) -> None:
    with attimo_run(tmp_path, redis_server, accept_bots="true") as stack:
        googlebot, headless = f"googlebot-{uuid.uuid4().hex[:8]}", f"headless-{uuid.uuid4().hex[:8]}"
        assert send_http(stack, [page(googlebot, GOOGLEBOT)]) == 200
        assert send_ws(stack, HEADLESS, [page(headless)])["accepted"] == 1
        for bot in (googlebot, headless):
            wait_for(lambda bot=bot: profile_status(stack, bot) == 200, timeout=30,  # type: ignore[misc]
                     what=f"the bot {bot}'s profile")
