"""Rate limits per write key and per client IP, through the real API and gateway processes and Redis.

The API (`attimo api`) and the gateway (`attimo gateway`) run as processes
on free ports against a private Redis, with small limits refilled slowly
(1 token/s), so each request's outcome is known. What a client sees: HTTP
`429` with `Retry-After` and an error naming the limit, while another key /
another IP goes on unaffected; on the websocket, a frame over the limit gets
a `limited` reply and no ack, is not stored, and a client that keeps sending
is closed with 4429; the decisions route answers `429` past its reads limit;
with every limit at 0 the same traffic passes.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import msgspec
import pytest
import redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from state import keys
from state.streams import decode_entry
from state.writekeys import WriteKey
from tests.helpers import RedisServer, free_port, running_redis, start_process, wait_for

pytestmark = pytest.mark.e2e

KEY_A: Final = "wk_limits_a"
KEY_B: Final = "wk_limits_b"
KEY_C: Final = "wk_limits_c"
SHARDS: Final = 2
# Slow refill, small bursts: nothing refills noticeably while a test runs.
LIMITED: Final = {
    "RATE_LIMIT_KEY_PER_S": "0.2", "RATE_LIMIT_KEY_BURST": "20",
    "RATE_LIMIT_IP_PER_S": "0.2", "RATE_LIMIT_IP_BURST": "30",
    "RATE_LIMIT_READS_PER_S": "0.2", "RATE_LIMIT_READS_BURST": "3",
    "RATE_LIMIT_WS_STRIKES": "3",
    "TRUSTED_PROXIES": "127.0.0.1",
}
UNLIMITED: Final = {"RATE_LIMIT_KEY_PER_S": "0", "RATE_LIMIT_IP_PER_S": "0", "RATE_LIMIT_READS_PER_S": "0"}


@dataclass
class Ingest:
    """The running API and gateway."""

    api_url: str
    gateway_url: str
    redis: redis.Redis

    def post(self, path: str, body: dict[str, Any], key: str, forwarded_for: str | None = None,
             ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """POST JSON with the key as HTTP Basic; (status, headers, JSON body)."""
        request = urllib.request.Request(self.api_url + path, data=json.dumps(body).encode(), method="POST")
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{key}:".encode()).decode())
        request.add_header("Content-Type", "application/json")
        if forwarded_for:
            request.add_header("X-Forwarded-For", forwarded_for)
        return _answer(request)

    def get(self, path: str, forwarded_for: str | None = None) -> tuple[int, dict[str, str], dict[str, Any]]:
        request = urllib.request.Request(self.api_url + path)
        if forwarded_for:
            request.add_header("X-Forwarded-For", forwarded_for)
        return _answer(request)

    def new_key(self) -> str:
        """A fresh write key (any origin), so each test starts with full buckets."""
        key = f"wk_{uuid.uuid4().hex[:12]}"
        self.redis.set(keys.write_key(key), msgspec.json.encode(WriteKey(key, ["*"])))
        return key

    def stored_message_ids(self) -> list[str]:
        """Every messageId in the ingest streams (what was appended, heartbeats excluded)."""
        found: list[str] = []
        for shard in range(SHARDS):
            for _, fields in cast("list[tuple[bytes, dict[bytes, bytes]]]",
                                  self.redis.xrange(keys.event_stream(shard))):
                if b"e" in fields:
                    found += [e.message_id or "" for e in decode_entry(fields[b"e"])]
        return found


def _answer(request: urllib.request.Request) -> tuple[int, dict[str, str], dict[str, Any]]:
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, _lower(response.headers.items()), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers.items()), json.loads(error.read())


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def events(count: int, tag: str) -> list[dict[str, Any]]:
    """`count` page views of one visitor, with message ids `tag-0` …"""
    visitor = f"v-{tag}"
    return [{"type": "page", "messageId": f"{tag}-{i}", "anonymousId": visitor} for i in range(count)]


@contextmanager
def running_ingest(redis_server: RedisServer, directory: Path, **settings: str) -> Iterator[Ingest]:
    """`attimo api` and `attimo gateway` on free ports, the three write keys in Redis."""
    api_port, gateway_port = free_port(), free_port()
    env = {
        "ATTIMO_REDIS_URL": redis_server.url, "ATTIMO_API_PORT": str(api_port),
        "ATTIMO_GATEWAY_PORT": str(gateway_port), "ATTIMO_GATEWAY_METRICS_PORT": "0",
        "ATTIMO_WRITE_KEY": KEY_A, "ATTIMO_ADMIN_TOKEN": "adm_limits", "ATTIMO_STREAM_SHARDS": str(SHARDS),
        "ATTIMO_HEARTBEAT_INTERVAL_S": "0", "ATTIMO_RFM_REFRESH_S": "0",
        **{f"ATTIMO_{name}": value for name, value in settings.items()},
    }
    client = redis_server.client()
    for key in (KEY_B, KEY_C):
        client.set(keys.write_key(key), msgspec.json.encode(WriteKey(key, ["*"])))
    api_url = f"http://127.0.0.1:{api_port}"
    with ExitStack() as stack:
        for name, args in (("api", ["-m", "api.cli", "api"]), ("gateway", ["-m", "api.cli", "gateway"])):
            process = start_process(args, env, directory / f"{name}.log")
            stack.callback(process.stop)
        ingest = Ingest(api_url, f"ws://127.0.0.1:{gateway_port}/v1/stream", client)
        wait_for(lambda: _up(api_url + "/healthz"), timeout=40, what="the API to answer")
        wait_for(lambda: _gateway_up(ingest.gateway_url), timeout=40, what="the gateway to accept sockets")
        yield ingest


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _gateway_up(url: str) -> bool:
    try:
        with connect(f"{url}?key={KEY_C}&probe=1", open_timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingest]:
    """One API and gateway with small limits for the module; each test uses its own keys and IPs."""
    directory = tmp_path_factory.mktemp("limits")
    with running_redis(directory) as redis_server, running_ingest(redis_server, directory, **LIMITED) as ingest:
        yield ingest


class TestHttpIngest:
    """`POST /v1/batch` answers 429 + Retry-After past a key's or an IP's limit; others go on."""

    def test_a_key_over_its_limit_gets_429_and_another_key_is_unaffected(self, limited: Ingest) -> None:
        key_a, key_b = limited.new_key(), limited.new_key()
        status, _, _ = limited.post("/v1/batch", {"batch": events(20, "a1")}, key_a, "203.0.113.1")
        assert status == 200
        status, headers, body = limited.post("/v1/batch", {"batch": events(1, "a2")}, key_a, "203.0.113.2")
        assert status == 429
        assert 1 <= int(headers["retry-after"]) <= 10
        assert body["success"] is False and "write key" in body["error"] and "retry after" in body["error"]
        # Past its limit, a client's body is not even read: a malformed one is a 429 too, not a 400.
        status, _, body = limited.post("/v1/batch", {"batch": "not a list"}, key_a, "203.0.113.3")
        assert status == 429 and "write key" in body["error"]
        status, _, _ = limited.post("/v1/batch", {"batch": events(10, "b1")}, key_b, "203.0.113.2")
        assert status == 200
        stored = limited.stored_message_ids()
        assert "a2-0" not in stored and {"a1-0", "a1-19", "b1-9"} <= set(stored)

    def test_an_ip_over_its_limit_gets_429_and_another_ip_is_unaffected(self, limited: Ingest) -> None:
        key_c = limited.new_key()
        # 30 events from one IP: its whole burst.
        for key, tag in ((limited.new_key(), "x1"), (limited.new_key(), "x2"), (key_c, "x3")):
            status, _, _ = limited.post("/v1/batch", {"batch": events(10, tag)}, key, "198.51.100.7")
            assert status == 200
        status, headers, body = limited.post("/v1/track", {"event": "Clicked", "anonymousId": "v", "messageId": "x4"},
                                             key_c, "198.51.100.7")
        assert status == 429 and int(headers["retry-after"]) >= 1
        assert "client IP" in body["error"]
        status, _, _ = limited.post("/v1/batch", {"batch": events(5, "x5")}, key_c, "198.51.100.8")
        assert status == 200
        assert "x4" not in limited.stored_message_ids()

    def test_x_forwarded_for_names_the_client_only_behind_a_trusted_proxy(
            self, redis_server: RedisServer, tmp_path: Path) -> None:
        untrusted = {**LIMITED, "TRUSTED_PROXIES": ""}
        with running_ingest(redis_server, tmp_path, **untrusted) as ingest:
            status, _, _ = ingest.post("/v1/batch", {"batch": events(20, "f1")}, KEY_B, "192.0.2.1")
            assert status == 200
            # Another claimed client, the same peer: the IP's bucket is the peer's.
            status, _, _ = ingest.post("/v1/batch", {"batch": events(20, "f2")}, KEY_C, "192.0.2.2")
            assert status == 429


class TestWebsocket:
    """A frame over the limit is not acked nor stored; a socket that keeps sending is closed with 4429."""

    def test_limited_frames_get_no_ack_and_the_socket_is_closed_after_three(self, limited: Ingest) -> None:
        replies: list[dict[str, Any]] = []
        with connect(f"{limited.gateway_url}?key={limited.new_key()}",
                     additional_headers={"X-Forwarded-For": "192.0.2.50"}, open_timeout=5) as ws:
            ws.send(json.dumps({"seq": 1, "batch": events(20, "w1")}))
            replies.append(json.loads(ws.recv(timeout=5)))
            for seq in (2, 3):
                ws.send(json.dumps({"seq": seq, "batch": events(2, f"w{seq}")}))
                replies.append(json.loads(ws.recv(timeout=5)))
            ws.send(json.dumps({"seq": 4, "batch": events(2, "w4")}))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
        assert replies[0] == {"ack": 1, "accepted": 20, "rejected": []}
        for seq, reply in zip((2, 3), replies[1:], strict=True):
            assert "ack" not in reply
            assert reply["limited"] == seq and reply["limit"] == "write key" and reply["retryAfter"] >= 1
            assert "write key over 0.2 events/s (burst 20)" in reply["error"]
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
        assert "rate limit exceeded: write key" in closed.value.rcvd.reason
        stored = set(limited.stored_message_ids())
        assert "w1-19" in stored and not {"w2-0", "w3-0", "w4-0"} & stored

    def test_another_key_still_gets_acks(self, limited: Ingest) -> None:
        with connect(f"{limited.gateway_url}?key={limited.new_key()}",
                     additional_headers={"X-Forwarded-For": "192.0.2.60"}, open_timeout=5) as ws:
            ws.send(json.dumps({"seq": 1, "batch": events(20, "k1")}))
            assert json.loads(ws.recv(timeout=5))["ack"] == 1
            ws.send(json.dumps({"seq": 2, "batch": events(1, "k2")}))
            assert json.loads(ws.recv(timeout=5))["limited"] == 2
        with connect(f"{limited.gateway_url}?key={limited.new_key()}",
                     additional_headers={"X-Forwarded-For": "192.0.2.61"}, open_timeout=5) as ws:
            ws.send(json.dumps({"seq": 1, "batch": events(5, "k3")}))
            assert json.loads(ws.recv(timeout=5)) == {"ack": 1, "accepted": 5, "rejected": []}


class TestDecisionsReads:
    """`GET /v1/decisions/{id}` answers 429 + Retry-After past the reads limit per IP."""

    def test_reads_past_the_burst_get_429_and_another_ip_does_not(self, limited: Ingest) -> None:
        path = f"/v1/decisions/{uuid.uuid4()}?key={KEY_A}"
        assert [limited.get(path, "203.0.113.9")[0] for _ in range(3)] == [200, 200, 200]
        status, headers, body = limited.get(path, "203.0.113.9")
        assert status == 429 and int(headers["retry-after"]) >= 1
        assert "decisions reads per client IP" in body["error"]
        assert limited.get(path, "203.0.113.10")[0] == 200


class TestLimitsOff:
    """With every rate at 0 the traffic refused above passes."""

    def test_zero_turns_every_limit_off(self, redis_server: RedisServer, tmp_path: Path) -> None:
        with running_ingest(redis_server, tmp_path, **UNLIMITED) as ingest:
            for round_ in range(12):
                status, _, _ = ingest.post("/v1/batch", {"batch": events(100, f"o{round_}")}, KEY_A)
                assert status == 200
            path = f"/v1/decisions/{uuid.uuid4()}?key={KEY_A}"
            assert {ingest.get(path)[0] for _ in range(250)} == {200}
            with connect(f"{ingest.gateway_url}?key={KEY_C}", open_timeout=5) as ws:
                for seq in range(1, 12):
                    ws.send(json.dumps({"seq": seq, "batch": events(100, f"ws{seq}")}))
                    assert json.loads(ws.recv(timeout=5))["ack"] == seq
