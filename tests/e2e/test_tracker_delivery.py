"""The tracker in headless Chromium against the real stack (`attimo run`: gateway, API, dataflow, Redis).

What a shop's visitor would cause, read back through the admin API: consent
withheld sends and stores nothing, then events flow; one page view per SPA
route; a network that refuses websocket upgrades gets its events over HTTP
and the socket back once upgrades pass; a gateway killed mid-stream loses
and doubles nothing; an event right before the page closes arrives; events
made offline arrive once the network is back.

One stack for the module (each test has its own browser context, so its own
visitor); the gateway-killing test runs last.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from state.profile import Profile
from tests.e2e.conftest import Stack, attimo_run, wait_for_pid
from tests.helpers import running_redis, wait_for
from tests.tracker_js.harness import DIST, TRACKER_DIR, WRITE_KEY, PageServer

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(120)]

QUIET_S = 1.0  # how long a page is watched for something it must not do
ARRIVE_S = 10.0  # event → profile, with margin for a loaded machine


class StackPages(PageServer):
    """The tracker's fixture pages, with `data-api` and `data-key` those of the real stack."""

    api_url = ""
    write_key = ""

    def render(self, fixture: Path, query: dict[str, str]) -> str:
        html = super().render(fixture, query)
        html = html.replace(f'data-api="{self.base}"', f'data-api="{self.api_url}"')
        return html.replace(f'data-key="{WRITE_KEY}"', f'data-key="{self.write_key}"')


class UpgradeGate:
    """A port in front of the gateway that refuses websocket upgrades (HTTP 403, as a blocking
    proxy does) while `blocked`, and otherwise relays bytes both ways to the gateway."""

    def __init__(self, gateway_port: int) -> None:
        self.gateway_port = gateway_port
        self.blocked = True
        self.refused = 0
        self.relayed = 0
        self._sockets: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            self._sockets.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        if self.blocked:
            self.refused += 1
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            conn.close()
            return
        self.relayed += 1
        upstream = socket.create_connection(("127.0.0.1", self.gateway_port), timeout=5)
        self._sockets.append(upstream)
        pair = {conn: upstream, upstream: conn}
        while True:  # ends when either side closes (or the gate does)
            try:
                ready, _, _ = select.select(list(pair), [], [], 1.0)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        raise OSError("closed")
                    pair[sock].sendall(data)
            except (OSError, ValueError):
                for sock in pair:
                    sock.close()
                return

    def close(self) -> None:
        self._server.close()
        for sock in self._sockets:
            sock.close()


@pytest.fixture(scope="module")
def pages() -> Iterator[StackPages]:
    if not DIST.exists():
        import subprocess

        subprocess.run([str(TRACKER_DIR / "build.sh")], check=True, timeout=300)
    server = StackPages()
    yield server
    server.close()


@pytest.fixture(scope="module")
def stack(pages: StackPages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`attimo run` that allows the fixture server's origin and keeps headless Chromium's events."""
    directory = tmp_path_factory.mktemp("tracker-stack")
    with running_redis(directory) as redis_server, attimo_run(
        directory, redis_server, allowed_origins=pages.base, accept_bots="true", event_log_size="100"
    ) as running:
        pages.api_url, pages.write_key = running.api_url, running.write_key
        yield running


@pytest.fixture
def context(browser: Any, stack: Stack) -> Iterator[Any]:
    ctx = browser.new_context()
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


def profile_of(stack: Stack, contact_id: str) -> Profile | None:
    status, body = stack.get(f"/v1/contacts/{contact_id}", admin=True)
    return msgspec.json.decode(body, type=Profile) if status == 200 else None


def events_of(stack: Stack, contact_id: str) -> list[str]:
    """The names of the contact's events, as the dataflow counted them (track name, or the type)."""
    profile = profile_of(stack, contact_id)
    return [e.name or e.type for e in reversed(profile.recent_events)] if profile else []


def anonymous_id(page: Any) -> str:
    aid = wait_for(lambda: page.evaluate("attimo('anonymousId')"), 5, "the tracker's anonymous id")
    return str(aid)


def open_page(context: Any, pages: StackPages, stack: Stack, **attrs: str) -> Any:
    page = context.new_page()
    page.goto(pages.url("basic.html", gateway=attrs.pop("gateway", stack.gateway_url), **attrs))
    page.wait_for_function("window.attimo && window.attimo.loaded")
    return page


def wait_events(stack: Stack, aid: str, expected: list[str], timeout: float = ARRIVE_S) -> list[str]:
    """Wait until the contact's events are `expected` (as a multiset), then a quiet second for extras."""
    wait_for(lambda: Counter(events_of(stack, aid)) == Counter(expected), timeout,
             f"events {expected} (have {events_of(stack, aid)})", interval=0.1)
    time.sleep(QUIET_S)
    got = events_of(stack, aid)
    assert Counter(got) == Counter(expected), got
    return got


class TestConsent:
    def test_no_request_and_no_storage_before_consent_then_events_flow(
        self, context: Any, pages: StackPages, stack: Stack
    ) -> None:
        """Before attimo('consent', true): the page asks nothing of the API or gateway and stores nothing."""
        page = context.new_page()
        requests: list[str] = []
        sockets: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.goto(pages.url("basic.html", gateway=stack.gateway_url, data_consent="required"))
        page.wait_for_function("window.attimo && window.attimo.loaded")
        page.evaluate("attimo('track', 'Product Viewed', {product_id: 'p1'})")
        time.sleep(QUIET_S)
        assert [u for u in requests if not u.startswith(pages.base)] == [] and sockets == []
        assert context.cookies() == [] and page.evaluate("localStorage.length") == 0

        page.evaluate("attimo('consent', true); attimo('track', 'Signed Up')")
        aid = anonymous_id(page)
        wait_events(stack, aid, ["page", "Product Viewed", "Signed Up"])
        assert {c["name"] for c in context.cookies()} == {"attimo_aid"}
        assert sockets == [f"{stack.gateway_url}/v1/stream?key={stack.write_key}"]


class TestSinglePageApp:
    def test_one_page_view_per_route_change(self, context: Any, pages: StackPages, stack: Stack) -> None:
        """Three pushState routes, a same-URL replaceState and a back: 1 + 3 + 1 page views, no more."""
        page = open_page(context, pages, stack)
        aid = anonymous_id(page)
        for route in ("/shop", "/shop/mugs", "/shop/mugs/p1"):
            page.evaluate(f"history.pushState({{}}, '', '{route}')")
        page.evaluate("history.replaceState({scrolled: true}, '', location.href)")
        page.evaluate("history.back()")
        wait_events(stack, aid, ["page"] * 5)
        profile = profile_of(stack, aid)
        assert profile is not None and profile.counters.page_views == 5
        assert [e.page for e in reversed(profile.recent_events)][1:] == [
            "/shop", "/shop/mugs", "/shop/mugs/p1", "/shop/mugs"]


class TestBlockedWebsocket:
    def test_events_go_over_http_while_upgrades_are_refused_and_back_over_the_socket_after(
        self, context: Any, pages: StackPages, stack: Stack
    ) -> None:
        """Upgrades refused → batches posted to /v1/batch (a rejected event dropped, the rest stored);
        upgrades allowed → the tracker is back on the websocket."""
        gate = UpgradeGate(int(stack.gateway_url.rsplit(":", 1)[1]))
        try:
            page = open_page(context, pages, stack, gateway=gate.url, data_retry_base_ms="100")
            aid = anonymous_id(page)
            page.evaluate("attimo('track', 'Over HTTP'); attimo('track', '')")  # '' is refused: no name
            wait_events(stack, aid, ["page", "Over HTTP"])
            assert gate.refused >= 3 and gate.relayed == 0
            assert page.evaluate("attimo('stats')")["websocket"] is False
            wait_for(lambda: page.evaluate("localStorage.getItem('attimo_q')") is None, 5, "an empty queue")

            gate.blocked = False
            wait_for(lambda: page.evaluate("attimo('stats').websocket"), 15, "the websocket again", interval=0.1)
            page.evaluate("attimo('track', 'Over WS')")
            wait_events(stack, aid, ["page", "Over HTTP", "Over WS"])
            assert gate.relayed >= 1
        finally:
            gate.close()


class TestLeavingAndOffline:
    def test_an_event_right_before_the_page_closes_arrives(
        self, context: Any, pages: StackPages, stack: Stack
    ) -> None:
        """attimo('track') then page.close() at once: the event is delivered."""
        page = open_page(context, pages, stack)
        aid = anonymous_id(page)
        wait_for(lambda: page.evaluate("attimo('stats').websocket"), 5, "the socket")
        page.evaluate("attimo('track', 'Last Click')")
        page.close()
        wait_events(stack, aid, ["page", "Last Click"])

    def test_events_made_offline_are_delivered_when_the_network_is_back(
        self, context: Any, pages: StackPages, stack: Stack
    ) -> None:
        """context.set_offline(True) for a while: the events wait, then arrive once each."""
        page = open_page(context, pages, stack, data_retry_base_ms="100")
        aid = anonymous_id(page)
        wait_events(stack, aid, ["page"])
        context.set_offline(True)
        page.evaluate("attimo('track', 'Offline 1'); attimo('track', 'Offline 2')")
        time.sleep(2.0)
        assert events_of(stack, aid) == ["page"]  # nothing got through meanwhile
        assert page.evaluate("attimo('stats')")["queued"] == 2
        context.set_offline(False)
        page.evaluate("attimo('track', 'Online Again')")
        wait_events(stack, aid, ["page", "Offline 1", "Offline 2", "Online Again"])


class TestGatewayRestart:
    def test_every_event_arrives_exactly_once_across_a_gateway_kill(
        self, context: Any, pages: StackPages, stack: Stack
    ) -> None:
        """A page tracks an event every 100 ms for 4 s; the gateway is SIGKILLed after 1 s and restarted
        by the supervisor: the profile has each event once."""
        page = open_page(context, pages, stack, data_retry_base_ms="100")
        aid = anonymous_id(page)
        wait_events(stack, aid, ["page"])
        page.evaluate("""window.__n = 0; window.__timer = setInterval(() => {
            attimo('track', 'Tick ' + window.__n++); if (window.__n === 40) clearInterval(window.__timer) }, 100)""")
        time.sleep(1.0)
        pid = wait_for_pid(lambda: stack.child_pid(r"python.* -m api.cli gateway$"), 5, "the gateway's pid")
        os.kill(pid, signal.SIGKILL)
        wait_for_pid(lambda: stack.child_pid(r"python.* -m api.cli gateway$"), 30, "a new gateway", other_than=pid)
        wait_for(lambda: page.evaluate("window.__n") == 40, 10, "40 ticks")
        ticks = [f"Tick {i}" for i in range(40)]
        wait_events(stack, aid, ["page", *ticks], timeout=30)
        profile = profile_of(stack, aid)
        assert profile is not None and profile.counters.events == 41
