"""The websocket gateway: handshake checks, acks after append, bad input, push, pushback."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from api.decisions.identity import sign_user_id
from api.gateway import serve_gateway
from state import keys
from state.decisions import DecisionDoc, encode_doc
from state.frames import DecisionPush, encode_push
from state.settings import Settings
from state.streams import decode_entry
from tests.api.decisions.store import SECRET, anonymous_doc, save_doc
from tests.helpers import RedisServer, free_port

WRITE_KEY = "wk-test"
SHOP = "https://shop.example"
SHARDS = 4
pytestmark = pytest.mark.timeout(60)


def make_settings(redis_server: RedisServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        redis_url=redis_server.url, write_key=WRITE_KEY, admin_token="admin-test",
        gateway_port=free_port(), allowed_origins=SHOP, stream_shards=SHARDS,
        max_batch_bytes=8 * 1024, max_event_bytes=4 * 1024, max_events_per_batch=10,
        max_ingest_lag_s=1.0, max_ack_delay_s=5.0)
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[str]:
    """Run the gateway as a task; yields the stream URL with the default key."""
    ready = asyncio.Event()
    task = asyncio.create_task(serve_gateway(settings, ready))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield f"ws://{settings.host}:{settings.gateway_port}/v1/stream?key={WRITE_KEY}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return make_settings(redis_server)


@pytest.fixture
async def url(settings: Settings) -> AsyncIterator[str]:
    async with running_gateway(settings) as stream_url:
        yield stream_url


def event(anonymous_id: str = "anon-1", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "track", "event": "Product Viewed", "anonymousId": anonymous_id,
        "messageId": str(uuid.uuid4()), "timestamp": datetime.now(UTC).isoformat(),
        "properties": {"product_id": "p1", "price": 10.0}}
    base.update(fields)
    return base


def frame(seq: int, *events: dict[str, Any]) -> str:
    return orjson.dumps({"seq": seq, "batch": list(events),
                         "sentAt": datetime.now(UTC).isoformat()}).decode()


async def reply(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(message, str), "the server answers in text frames"
    parsed: dict[str, Any] = orjson.loads(message)
    return parsed


def stored_message_ids(client: redis.Redis) -> list[str]:
    """Every messageId in every shard stream."""
    ids = []
    for shard in range(SHARDS):
        for _entry_id, fields in client.xrange(keys.event_stream(shard)):
            ids.extend(e.message_id or "" for e in decode_entry(fields[b"e"]))
    return ids


async def close_frame(ws: ClientConnection) -> tuple[int, str]:
    """The code and reason of the close frame the server sends, with no frame before it."""
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None, "the server sent no close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def close_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    return closed.value.rcvd.code if closed.value.rcvd else None


class TestHandshake:
    """Only `/v1/stream` with a known key, from an allowed origin, stays open; refusals say why."""

    async def test_unknown_key_opens_then_closes_with_4401_and_the_reason(self, url: str) -> None:
        """A key that does not exist is told so with close 4401, a code a browser can read."""
        async with connect(url.replace(WRITE_KEY, "nope")) as ws:
            assert await close_frame(ws) == (4401, "unknown write key")

    async def test_missing_key_closes_with_4401(self, url: str) -> None:
        """No `?key=` at all is refused the same way."""
        async with connect(url.split("?")[0]) as ws:
            assert await close_frame(ws) == (4401, "missing write key")

    async def test_origin_not_allowed_for_the_key_closes_with_4403(self, url: str) -> None:
        """A browser on another site cannot use the shop's key."""
        async with connect(url, origin=Origin("https://evil.example")) as ws:
            assert await close_frame(ws) == (4403, "origin not allowed for this write key")

    async def test_frames_on_a_refused_socket_are_not_stored(self, url: str, redis_client: redis.Redis) -> None:
        """Frames a client sends before the close arrives are neither acked nor appended."""
        async with connect(url.replace(WRITE_KEY, "nope")) as ws:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame(1, event()))
            assert (await close_frame(ws))[0] == 4401
        assert stored_message_ids(redis_client) == []

    async def test_allowed_origin_connects(self, url: str) -> None:
        """The shop's own pages connect and get acks."""
        async with connect(url, origin=Origin(SHOP)) as ws:
            await ws.send(frame(1, event()))
            assert (await reply(ws))["ack"] == 1

    async def test_other_paths_are_404(self, url: str) -> None:
        """The gateway serves `/v1/stream` only."""
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url.replace("/v1/stream", "/v1/other")):
                pass
        assert refused.value.response.status_code == 404

    async def test_a_failed_key_lookup_is_refused_with_503_so_clients_retry(
            self, url: str, redis_server: RedisServer) -> None:
        """With Redis down the handshake gets HTTP 503: no socket opens, no final close code."""
        redis_server.process.terminate()
        redis_server.process.wait(10)
        with pytest.raises(InvalidStatus) as refused:  # a key never looked up, so not cached
            async with connect(url.replace(WRITE_KEY, "wk-not-cached")):
                pass
        assert refused.value.response.status_code == 503

    async def test_default_write_key_is_saved_on_start(self, url: str, redis_client: redis.Redis) -> None:
        """Start-up creates the configured write key with its origins (plus the API's own, for the demo shop)."""
        saved = orjson.loads(redis_client.get(keys.write_key(WRITE_KEY)) or b"null")
        assert saved["key"] == WRITE_KEY
        assert saved["origins"][0] == SHOP
        assert set(saved["origins"][1:]) <= {"http://127.0.0.1:8000", "http://localhost:8000"}


class TestAcks:
    """A frame is acked after its good events are in the stream; bad events are listed."""

    async def test_ack_lists_bad_indexes_and_good_events_are_already_stored(
            self, url: str, redis_client: redis.Redis) -> None:
        """The ack names exactly the rejected indexes; the accepted events are in Redis when it arrives."""
        good = [event("anon-1"), event("anon-2"), event("anon-3", type="page", name="Home")]
        batch = [good[0], {"type": "track", "anonymousId": "anon-1"}, good[1],
                 {"type": "track", "event": "No Ids"}, event(properties={"price": "cheap"}), good[2]]
        async with connect(url) as ws:
            await ws.send(frame(7, *batch))
            ack = await reply(ws)
            stored = stored_message_ids(redis_client)  # read right after the ack, no waiting
        assert ack["ack"] == 7
        assert ack["accepted"] == 3
        assert [r["index"] for r in ack["rejected"]] == [1, 3, 4]
        assert "event" in ack["rejected"][0]["error"]
        assert "anonymousId" in ack["rejected"][1]["error"]
        assert "price" in ack["rejected"][2]["error"]
        assert sorted(stored) == sorted(e["messageId"] for e in good)

    async def test_frames_are_acked_in_order_with_their_seq(self, url: str) -> None:
        """Each frame gets its own ack carrying its seq."""
        async with connect(url) as ws:
            for seq in range(1, 6):
                await ws.send(frame(seq, event()))
            assert [(await reply(ws))["ack"] for _ in range(5)] == [1, 2, 3, 4, 5]

    async def test_frame_of_only_bad_events_is_acked_with_every_rejection(
            self, url: str, redis_client: redis.Redis) -> None:
        """Nothing is stored and every index is reported."""
        async with connect(url) as ws:
            await ws.send(frame(2, {"type": "nope"}, {"type": "track"}))
            ack = await reply(ws)
        assert ack == {"ack": 2, "accepted": 0, "rejected": [
            {"index": 0, "error": ack["rejected"][0]["error"]},
            {"index": 1, "error": ack["rejected"][1]["error"]}]}
        assert stored_message_ids(redis_client) == []


class TestBadInput:
    """Bad frames get an error reply or a precise close code; the server never crashes."""

    async def test_non_json_frame_gets_an_error_and_the_connection_still_works(self, url: str) -> None:
        """Garbage is answered with `ack: null` and the next frame is acked normally."""
        async with connect(url) as ws:
            await ws.send("this is not json")
            error = await reply(ws)
            await ws.send(orjson.dumps({"batch": []}).decode())
            no_seq = await reply(ws)
            await ws.send(frame(3, event()))
            ack = await reply(ws)
        assert error["ack"] is None and error["error"]
        assert no_seq["ack"] is None and "seq" in no_seq["error"]
        assert ack["ack"] == 3 and ack["accepted"] == 1

    async def test_oversize_frame_gets_an_error_with_its_seq_and_the_connection_survives(
            self, url: str, settings: Settings) -> None:
        """A frame a little over the limit is refused politely; the socket stays usable."""
        padding = "x" * 900
        events = [event(properties={"note": padding}) for _ in range(10)]
        body = frame(4, *events)
        assert len(body) > settings.max_batch_bytes
        async with connect(url) as ws:
            await ws.send(body)
            refused = await reply(ws)
            await ws.send(frame(5, event()))
            ack = await reply(ws)
        assert refused["ack"] == 4 and "at most" in refused["error"]
        assert ack["ack"] == 5

    async def test_too_many_events_in_a_frame_gets_an_error_with_its_seq(self, url: str) -> None:
        """The per-batch event count limit is reported, not silently truncated."""
        async with connect(url) as ws:
            await ws.send(frame(6, *[event() for _ in range(11)]))
            refused = await reply(ws)
        assert refused["ack"] == 6 and "at most 10" in refused["error"]

    async def test_huge_frame_closes_with_1009(self, url: str, settings: Settings) -> None:
        """Frames far over the limit are cut off by the websocket layer."""
        async with connect(url, max_size=None) as ws:
            await ws.send("x" * (settings.max_batch_bytes * 20))
            assert await close_code(ws) == 1009

    async def test_binary_frame_closes_with_1003(self, url: str) -> None:
        """The protocol is JSON text; binary data is unsupported."""
        async with connect(url) as ws:
            await ws.send(b"\x00\x01")
            assert await close_code(ws) == 1003

    async def test_server_keeps_serving_after_a_client_misbehaves(self, url: str) -> None:
        """One bad client does not affect the next."""
        async with connect(url) as ws:
            await ws.send(b"\x00")
            await close_code(ws)
        async with connect(url) as ws:
            await ws.send(frame(1, event()))
            assert (await reply(ws))["accepted"] == 1


class TestPush:
    """A published push reaches the sockets of that visitor only, as the decisions route's answer."""

    async def test_decision_reaches_the_socket_that_sent_the_visitors_events(
            self, url: str, redis_client: redis.Redis) -> None:
        """The registry learns anonymousIds from events; other visitors get nothing."""
        save_doc(redis_client, anonymous_doc("anon-mine"))
        async with connect(url) as mine, connect(url) as other:
            await mine.send(frame(1, event("anon-mine")))
            await other.send(frame(1, event("anon-other")))
            await reply(mine)
            await reply(other)
            publish_push(redis_client, ["anon-mine"], "anon-mine")
            pushed = await reply(mine)
            assert pushed["id"] == "anon-mine"
            assert pushed["decision"]["popups"][0]["campaign"] == "welcome"
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(other.recv(), 0.3)

    async def test_decision_addressed_by_user_id_reaches_the_socket_verified_for_that_user(
            self, settings: Settings, redis_client: redis.Redis) -> None:
        """A socket that proved the user id at the handshake (`uid` + `sig`) gets the user's decisions."""
        save_doc(redis_client, anonymous_doc("user-9", user_id="user-9"))
        signed = make_settings_like(settings, identity_secrets=SECRET)
        async with running_gateway(signed) as stream_url:
            proved = f"{stream_url}&uid=user-9&sig={sign_user_id(SECRET, 'user-9')}"
            async with connect(proved) as ws:
                await ws.send(frame(1, {"type": "identify", "anonymousId": "anon-9", "userId": "user-9",
                                        "traits": {"email": "a@b.example"}}))
                await reply(ws)
                publish_push(redis_client, ["anon-9", "user-9"], "user-9")
                pushed = await reply(ws)
                assert pushed["id"] == "anon-9" and pushed["decision"]["popups"] != []

    async def test_a_users_decisions_never_reach_a_socket_that_only_claims_the_user_id(
            self, settings: Settings, redis_client: redis.Redis) -> None:
        """Anyone can put a user id in an event: without a valid signature at the handshake, no push."""
        save_doc(redis_client, anonymous_doc("user-9", user_id="user-9"))
        signed = make_settings_like(settings, identity_secrets=SECRET)
        async with running_gateway(signed) as stream_url:
            forged = f"{stream_url}&uid=user-9&sig={sign_user_id('guessed', 'user-9')}"
            for address in (stream_url, forged):
                async with connect(address) as ws:
                    await ws.send(frame(1, event("anon-x", userId="user-9")))
                    await reply(ws)
                    publish_push(redis_client, ["anon-x", "user-9"], "user-9")
                    with pytest.raises(TimeoutError):
                        await asyncio.wait_for(ws.recv(), 0.3)

    async def test_malformed_push_message_is_ignored(self, url: str, redis_client: redis.Redis) -> None:
        """Garbage on the channel neither crashes the listener nor reaches sockets."""
        async with connect(url) as ws:
            await ws.send(frame(1, event("anon-1")))
            await reply(ws)
            redis_client.publish(keys.decision_push_channel(), b"not json")
            redis_client.publish(keys.decision_push_channel(), orjson.dumps({"ids": "anon-1"}))
            redis_client.publish(keys.decision_push_channel(), orjson.dumps({"ids": [], "decision": {}}))
            publish_push(redis_client, ["anon-1"], "anon-1")
            pushed = await reply(ws)
            assert pushed["id"] == "anon-1" and pushed["decision"]["popups"] == []


def publish_push(client: redis.Redis, ids: list[str], contact_id: str) -> None:
    """What the dataflow publishes when a contact's decision document changed."""
    client.publish(keys.decision_push_channel(), encode_push(
        DecisionPush(ids, msgspec.Raw(encode_doc(DecisionDoc(contact_id=contact_id))))))


def write_stale_entry(client: redis.Redis, age_s: float) -> bytes:
    """An entry the dataflow has not processed, `age_s` old: the lag is `age_s`."""
    millis = int(time.time() * 1000 - age_s * 1000)
    entry_id: bytes = client.xadd(keys.event_stream(0), {b"e": b"[]"}, id=f"{millis}-0")
    return entry_id


class TestPushback:
    """When the dataflow lags, acks are withheld; nothing is dropped."""

    async def test_ack_is_withheld_while_the_dataflow_lags_and_sent_once_it_catches_up(
            self, url: str, redis_client: redis.Redis) -> None:
        """No ack while lag > max; the ack follows when progress catches up."""
        stale = write_stale_entry(redis_client, age_s=10)
        async with connect(url) as ws:
            await ws.send(frame(1, event()))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.6)
            redis_client.hset(keys.dataflow_progress(), "0", stale)
            ack = await reply(ws)
        assert ack["ack"] == 1 and ack["accepted"] == 1

    async def test_connection_closes_with_1013_when_lag_persists(
            self, redis_server: RedisServer, redis_client: redis.Redis) -> None:
        """After the bounded wait the frame is not acked and not stored: the client resends later."""
        write_stale_entry(redis_client, age_s=10)
        settings = make_settings(redis_server, max_ack_delay_s=0.3)
        async with running_gateway(settings) as url, connect(url) as ws:
            sent = event()
            await ws.send(frame(1, sent))
            assert await close_code(ws) == 1013
        assert sent["messageId"] not in stored_message_ids(redis_client)


class TestStoreFailure:
    """Redis down: no ack, close 1011, so the client keeps the frame and resends."""

    async def test_redis_down_closes_with_1011_without_ack(self, url: str, redis_server: RedisServer) -> None:
        """The frame is never acked when it could not be stored."""
        async with connect(url) as ws:
            await ws.send(frame(1, event()))
            await reply(ws)
            redis_server.process.terminate()
            redis_server.process.wait(10)
            await ws.send(frame(2, event()))
            assert await close_code(ws) == 1011


class TestHostileFrames:
    """What a hostile client sends with the page's key gets a reply; good events in the same frame are kept."""

    async def test_a_frame_with_an_event_nested_thousands_deep_keeps_its_good_events(
            self, settings: Settings, redis_client: redis.Redis) -> None:
        """Nesting past the decoder's recursion limit once closed the socket 1011 and lost the frame."""
        good = [event("anon-1"), event("anon-2")]
        nested = b'{"type":"page","anonymousId":"a","x":' + b"[" * 1500 + b"]" * 1500 + b"}"
        body = (b'{"seq": 5, "batch": [' + orjson.dumps(good[0]) + b"," + nested + b"," + orjson.dumps(good[1])
                + b"]}")
        async with running_gateway(make_settings_like(settings, max_batch_bytes=64 * 1024,
                                                      max_event_bytes=8 * 1024)) as url, connect(url) as ws:
            await ws.send(body.decode())
            ack = await reply(ws)
            await ws.send(frame(6, event()))
            assert (await reply(ws))["ack"] == 6  # the socket stays open
        assert ack["ack"] == 5 and ack["accepted"] == 2
        assert ack["rejected"] == [{"index": 1, "error": "nested 1501 levels deep; at most 32 allowed"}]
        assert set(stored_message_ids(redis_client)) >= {e["messageId"] for e in good}

    @pytest.mark.parametrize("seq", ["18446744073709551616", "9007199254740992", "-1"])
    async def test_a_seq_outside_what_a_client_can_count_gets_an_error_and_nothing_is_stored(
            self, url: str, redis_client: redis.Redis, seq: str) -> None:
        """Once stored but never acked (the tracker would resend it forever); now refused as a whole."""
        async with connect(url) as ws:
            await ws.send('{"seq": ' + seq + ', "batch": [' + orjson.dumps(event()).decode() + "]}")
            error = await reply(ws)
            await ws.send(frame(1, event()))
            assert (await reply(ws))["ack"] == 1
        assert error["ack"] is None and "seq" in error["error"]
        assert len(stored_message_ids(redis_client)) == 1

    async def test_internal_events_and_unstorable_values_are_rejected_by_index(
            self, url: str, redis_client: redis.Redis) -> None:
        """A write key cannot tag contacts; an integer beyond 64 bits never reaches the dataflow."""
        async with connect(url) as ws:
            await ws.send('{"seq": 1, "batch": [' + ",".join([
                '{"type": "attimo.tags", "userId": "victim", "add": ["vip"]}',
                '{"type": "track", "event": "Attimo Tag Changed", "userId": "victim"}',
                '{"type": "identify", "userId": "u", "traits": {"points": 1180591620717411303424}}',
                orjson.dumps(event()).decode()]) + "]}")
            ack = await reply(ws)
        assert ack["accepted"] == 1 and [r["index"] for r in ack["rejected"]] == [0, 1, 2]
        assert len(stored_message_ids(redis_client)) == 1


def make_settings_like(settings: Settings, **overrides: Any) -> Settings:
    return settings.model_copy(update={"gateway_port": free_port(), **overrides})


class TestFrameErrorsNameTheirFrame:
    """An unusable frame's error names its seq when it can be read; a server failure closes 1011."""

    async def test_a_frame_without_a_batch_is_answered_with_its_seq(self, url: str) -> None:
        async with connect(url) as ws:
            await ws.send('{"seq": 5}')
            error = await reply(ws)
        assert error["ack"] == 5 and "batch" in error["error"]

    async def test_an_unexpected_failure_closes_1011_so_the_client_resends(
            self, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
        """An error reply would make the tracker drop the frame; a close makes it resend."""
        from state.validation import EventValidator

        def broken(*_: Any) -> Any:
            raise RuntimeError("a bug")

        monkeypatch.setattr(EventValidator, "decode_frame", broken)
        async with running_gateway(settings) as stream_url, connect(stream_url) as ws:
            await ws.send(frame(1, event()))
            assert await close_code(ws) == 1011
