"""IP anonymisation and user-agent dropping at ingest, through `attimo run` (HTTP ingest, streams, dataflow)."""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path
from typing import Any, cast

import redis

from state import keys
from state.streams import ENTRY_FIELD
from tests.e2e.conftest import attimo_run
from tests.helpers import RedisServer, wait_for


def _post_batch(api_url: str, write_key: str, batch: list[dict[str, Any]]) -> int:
    request = urllib.request.Request(api_url + "/v1/batch", data=json.dumps({"batch": batch}).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": "Basic "
                                              + base64.b64encode(f"{write_key}:".encode()).decode()})
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


def _stream_contexts(client: redis.Redis, shards: int) -> dict[str, dict[str, Any]]:
    """Each event's context as appended to the ingest streams, by anonymous id."""
    found: dict[str, dict[str, Any]] = {}
    for shard in range(shards):
        for _, fields in cast("list[tuple[bytes, dict[bytes, bytes]]]", client.xrange(keys.event_stream(shard))):
            if ENTRY_FIELD in fields:
                for event in json.loads(fields[ENTRY_FIELD]):
                    if "anonymousId" in event:
                        found[event["anonymousId"]] = event.get("context", {})
    return found


BATCH = [
    {"type": "page", "anonymousId": "ip-v4", "context": {
        "ip": "203.0.113.77", "userAgent": "Mozilla/5.0 (X11; Linux) Firefox/120", "locale": "it-IT"}},
    {"type": "track", "event": "Product Viewed", "anonymousId": "ip-v6", "properties": {"product_id": "p1"},
     "context": {"ip": "2001:db8:abcd:12:3456:789a:bcde:f012", "userAgent": "Safari",
                 "userAgentData": {"mobile": True}}},
    {"type": "page", "anonymousId": "ip-mapped", "context": {"ip": "::ffff:198.51.100.9"}},
    {"type": "page", "anonymousId": "ip-bad", "context": {"ip": "not-an-ip", "page": {"path": "/"}}},
]


class TestIngestPrivacy:
    """What reaches the stream (and so the dataflow, replays and exports) is already anonymised."""

    def test_ip_anonymised_and_user_agent_dropped_before_the_stream(self, redis_server: RedisServer,
                                                                     tmp_path: Path) -> None:
        with attimo_run(tmp_path, redis_server, anonymize_ip="true", keep_user_agent="false",
                        event_retention_s="600", stream_shards="2") as stack:
            assert _post_batch(stack.api_url, stack.write_key, BATCH) == 200
            client = redis_server.client()
            mine = {str(e["anonymousId"]) for e in BATCH}
            wait_for(lambda: mine <= _stream_contexts(client, 2).keys(), 10, "the batch in the streams")
            contexts = _stream_contexts(client, 2)
            assert contexts["ip-v4"] == {"ip": "203.0.113.0", "locale": "it-IT"}
            assert contexts["ip-v6"] == {"ip": "2001:db8:abcd::"}
            assert contexts["ip-mapped"] == {"ip": "198.51.100.0"}
            assert contexts["ip-bad"] == {"page": {"path": "/"}}  # not an address: cannot be masked, so dropped
            wait_for(lambda: stack.get("/v1/contacts/ip-v4", admin=True)[0] == 200, 20, "the visitor's profile")
            status, body = stack.get("/v1/admin/contacts/ip-v4/export", admin=True)
            assert status == 200, body
            events = json.loads(body)["events"]
            assert [e["event"]["context"]["ip"] for e in events] == ["203.0.113.0"]

    def test_without_the_settings_ip_and_user_agent_are_kept(self, redis_server: RedisServer,
                                                             tmp_path: Path) -> None:
        with attimo_run(tmp_path, redis_server, event_retention_s="600", stream_shards="2") as stack:
            assert _post_batch(stack.api_url, stack.write_key, BATCH[:1]) == 200
            client = redis_server.client()
            wait_for(lambda: "ip-v4" in _stream_contexts(client, 2), 10, "the event in the stream")
            contexts = _stream_contexts(client, 2)
            assert contexts["ip-v4"]["ip"] == "203.0.113.77"
            assert contexts["ip-v4"]["userAgent"].startswith("Mozilla/5.0")
