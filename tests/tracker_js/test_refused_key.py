"""A page whose write key the real gateway refuses: one console error, no reconnect loop, events kept.

Headless Chromium runs the built tracker against the real gateway
(`api.gateway.serve_gateway`, on its own event loop in a thread) and a
private redis-server, as a shop's page would.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import redis
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from api.gateway import serve_gateway
from api.gateway.server import Gateway
from state import keys
from state.events import Page, StreamEvent, Track
from state.settings import Settings
from state.streams import decode_entry
from state.writekeys import WriteKey
from tests.helpers import RedisServer, free_port
from tests.tracker_js.harness import WRITE_KEY, PageServer, wait_until
from tests.tracker_js.test_tracker import queued

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

SHARDS = 2
# Long enough for a tracker that retried on every close (base 100 ms) to have tried 5 times.
WATCH_S = 3.5


class RealGateway:
    """The real gateway in a background thread, counting every handshake it sees."""

    def __init__(self, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
        self.settings = settings
        self.url = settings.gateway_url
        self.handshakes: list[str] = []
        original = Gateway.process_request

        async def counted(gateway: Gateway, connection: ServerConnection, request: Request) -> Response | None:
            self.handshakes.append(request.path)
            return await original(gateway, connection, request)

        monkeypatch.setattr(Gateway, "process_request", counted)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        started = asyncio.Event()
        self._task = asyncio.create_task(serve_gateway(self.settings, started))
        await started.wait()
        self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def __enter__(self) -> RealGateway:
        self._thread.start()
        assert self._ready.wait(10), "the gateway did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(10)


@pytest.fixture
def start_gateway(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Factory: a real gateway whose default write key and allowed origins the test chooses."""
    running: list[RealGateway] = []

    def start(write_key: str, allowed_origins: str) -> RealGateway:
        settings = Settings(
            redis_url=redis_server.url, write_key=write_key, admin_token="admin-test",
            gateway_port=free_port(), allowed_origins=allowed_origins, stream_shards=SHARDS)
        gateway = RealGateway(settings, monkeypatch).__enter__()
        running.append(gateway)
        return gateway

    yield start
    for gateway in running:
        gateway.__exit__()


def stored_events(client: redis.Redis) -> list[StreamEvent]:
    """Every event the gateway appended to the event streams."""
    events: list[StreamEvent] = []
    for shard in range(SHARDS):
        for _entry_id, fields in client.xrange(keys.event_stream(shard)) or []:
            payload = (fields or {}).get(b"e")
            assert isinstance(payload, bytes)
            events.extend(decode_entry(payload))
    return events


def stored_message_ids(client: redis.Redis) -> set[str]:
    return {e.message_id or "" for e in stored_events(client)}


@pytest.fixture
def page(context: Any) -> Any:
    """A page that records its console errors, except the browser's own for the fixture's missing favicon."""
    p = context.new_page()
    p.console_errors = []

    def seen(message: Any) -> None:
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            p.console_errors.append(message.text)

    p.on("console", seen)
    return p


def errors(page: Any) -> list[str]:
    return list(page.console_errors)


class TestRefusedWriteKey:
    """A refused page says why once, stops reconnecting and keeps its events for later."""

    @pytest.mark.parametrize(
        ("gateway_key", "origins", "said"),
        [
            ("wk_other", "SITE", "(4401 unknown write key)"),
            (WRITE_KEY, "https://shop.example", "(4403 origin not allowed for this write key)"),
        ],
        ids=["unknown-key", "origin-not-allowed"],
    )
    def test_one_console_error_names_the_key_and_code_and_the_gateway_sees_one_handshake(
        self, page: Any, site: PageServer, start_gateway: Any, gateway_key: str, origins: str, said: str
    ) -> None:
        """Over several seconds: exactly one console error, exactly one handshake, events still queued."""
        gateway = start_gateway(gateway_key, origins.replace("SITE", site.base))
        page.goto(site.url("basic.html", gateway=gateway.url, data_retry_base_ms="100"))
        page.wait_for_function("window.attimo && window.attimo.loaded")
        page.evaluate("attimo('track', 'While Refused')")
        wait_until(lambda: errors(page), what="the tracker's console error")
        time.sleep(WATCH_S)
        assert errors(page) == [f'attimo: write key "{WRITE_KEY}" refused by the gateway {said}; not retrying']
        assert len(gateway.handshakes) == 1
        assert [e.get("event") or e["type"] for e in queued(page)] == ["page", "While Refused"]

    def test_events_kept_while_refused_are_delivered_once_the_key_works_and_no_beacon_is_sent(
        self, page: Any, site: PageServer, start_gateway: Any, redis_client: redis.Redis
    ) -> None:
        """The queue outlives the refusal; after the shop fixes its key the next page sends it."""
        gateway = start_gateway("wk_other", site.base)
        url = site.url("basic.html", gateway=gateway.url)
        page.goto(url)
        page.wait_for_function("window.attimo && window.attimo.loaded")
        page.evaluate("attimo('track', 'While Refused')")
        wait_until(lambda: errors(page), what="the tracker's console error")
        kept = wait_until(lambda: [e["messageId"] for e in queued(page)] if len(queued(page)) == 2 else [],
                          what="two queued events")

        # The shop registers the key its page uses, then the visitor moves on.
        redis_client.set(keys.write_key(WRITE_KEY), msgspec.json.encode(WriteKey(WRITE_KEY, [site.base])))
        time.sleep(1.2)  # the gateway remembers an unknown key for 1 s
        page.goto(url)  # pagehide with no open socket: a refused page sends no beacon

        wait_until(lambda: set(kept) <= stored_message_ids(redis_client), what="the kept events stored")
        wait_until(lambda: queued(page) == [], what="the queue to empty after the acks")
        assert site.beacons == []
        assert len(gateway.handshakes) == 2


class TestRightKey:
    """The same page with a key the gateway knows streams its events and logs nothing."""

    def test_events_are_stored_acked_and_leave_the_queue(
        self, page: Any, site: PageServer, start_gateway: Any, redis_client: redis.Redis
    ) -> None:
        """One handshake, every event in the stream, an empty queue and no console error."""
        gateway = start_gateway(WRITE_KEY, site.base)
        page.goto(site.url("basic.html", gateway=gateway.url, data_retry_base_ms="100"))
        page.wait_for_function("window.attimo && window.attimo.loaded")
        page.evaluate("attimo('track', 'Product Viewed', {product_id: 'p1', price: 9.5})")
        wait_until(lambda: len(stored_events(redis_client)) == 2, what="both events stored")
        page_ev, track = sorted(stored_events(redis_client), key=lambda e: type(e).__name__)
        assert isinstance(page_ev, Page) and isinstance(track, Track) and track.event == "Product Viewed"
        wait_until(lambda: queued(page) == [], what="the queue to empty after the ack")
        assert errors(page) == []
        assert gateway.handshakes == [f"/v1/stream?key={WRITE_KEY}"]
