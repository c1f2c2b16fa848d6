"""What the tracker sends for a shop's pages: SPA page views, sessions and campaigns, e-commerce
helpers, opt-in form capture, the client rate limit, the frame byte cap and the HTTP fallback.

Headless Chromium against the fake gateway and the fixture server (which
also answers `POST /v1/batch` with 200, as the API does).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.tracker_js.harness import FakeGateway, PageServer, wait_until
from tests.tracker_js.test_tracker import queued

pytestmark = [pytest.mark.browser, pytest.mark.timeout(30)]

QUIET_S = 0.6


def loaded(page: Any) -> None:
    page.wait_for_function("window.attimo && window.attimo.loaded")


def pages(gateway: FakeGateway) -> list[dict[str, Any]]:
    return [e for e in gateway.events() if e["type"] == "page"]


class TestSinglePageApps:
    def test_each_route_change_is_one_page_view_with_the_previous_url_as_referrer(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """pushState, replaceState to a new URL and popstate each make one page view; same-URL changes none."""
        page.goto(site.url("basic.html", gateway=gateway.url), referer="https://search.example/?q=mugs")
        first = gateway.wait_for_events(1)[0]
        start = page.url
        page.evaluate("history.pushState({}, '', '/shop/a'); document.title = 'A'")
        page.evaluate("history.pushState({}, '', '/shop/b')")
        page.evaluate("history.replaceState({scroll: 10}, '', location.href)")  # same URL: no page view
        page.evaluate("history.pushState({attimo: 'exit'}, '', location.href)")  # the popups' back-gesture entry
        page.evaluate("history.replaceState({}, '', '/shop/b?sort=price')")
        page.evaluate("history.back()")  # popstate: back to the /shop/b entry
        wait_until(lambda: len(pages(gateway)) >= 5, what="five page views")
        time.sleep(QUIET_S)
        views = pages(gateway)
        base = start.split("/basic.html")[0]
        urls = [v["properties"]["url"] for v in views]
        assert urls == [start, f"{base}/shop/a", f"{base}/shop/b", f"{base}/shop/b?sort=price", f"{base}/shop/b"]
        assert [v["properties"]["referrer"] for v in views] == ["https://search.example/?q=mugs", *urls[:-1]]
        assert [v["context"]["page"]["referrer"] for v in views] == ["https://search.example/?q=mugs", *urls[:-1]]
        assert views[1]["properties"]["title"] == "A" and views[2]["properties"]["path"] == "/shop/b"
        assert first["properties"]["url"] == start

    def test_data_spa_false_turns_history_page_views_off(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """With data-spa="false" only the page's own page() calls count."""
        page.goto(site.url("basic.html", gateway=gateway.url, data_spa="false"))
        gateway.wait_for_events(1)
        page.evaluate("history.pushState({}, '', '/shop/a'); attimo('track', 'After Route')")
        gateway.wait_for_events(2)
        time.sleep(QUIET_S)
        assert gateway.names() == ["page", "After Route"]


class TestSessions:
    def test_a_session_id_and_its_first_pages_campaign_and_referrer_ride_on_every_event(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """UTM parameters and an outside referrer of the session's first page go with all its events;
        30 min idle or 24 h start a new session."""
        url = site.url("basic.html", gateway=gateway.url) + "&utm_source=news&utm_medium=email&utm_campaign=spring"
        page.goto(url, referer="https://mail.example/inbox")
        gateway.wait_for_events(1)
        page.evaluate("history.pushState({}, '', '/shop/a'); attimo('track', 'Product Viewed', {product_id: 'p1'})")
        events = gateway.wait_for_events(3)
        sid = events[0]["context"]["sessionId"]
        assert len(sid) == 36
        for e in events:
            assert e["context"]["sessionId"] == sid
            assert e["context"]["campaign"] == {"name": "spring", "source": "news", "medium": "email"}
            assert e["context"]["referrer"] == {"url": "https://mail.example/inbox"}
        stored = json.loads(page.evaluate("localStorage.getItem('attimo_session')"))
        assert stored["id"] == sid

        # 31 minutes without an event: the next one starts a session of its own (no UTM on this URL).
        page.evaluate("""const s = JSON.parse(localStorage.attimo_session); s.last -= 31 * 60e3;
                         localStorage.attimo_session = JSON.stringify(s); attimo('track', 'Back')""")
        back = gateway.wait_for_events(4)[3]
        assert back["context"]["sessionId"] != sid
        assert "campaign" not in back["context"] and "referrer" not in back["context"]
        # Busy for over 24 h: a new session all the same.
        page.evaluate("""const s = JSON.parse(localStorage.attimo_session); s.start -= 24 * 3600e3 + 1;
                         localStorage.attimo_session = JSON.stringify(s); attimo('track', 'Next Day')""")
        next_day = gateway.wait_for_events(5)[4]
        assert next_day["context"]["sessionId"] not in (sid, back["context"]["sessionId"])

    def test_an_internal_referrer_is_not_the_sessions_referrer(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """Coming from the shop's own page is not how a visit began."""
        page.goto(site.url("basic.html", gateway=gateway.url), referer=site.base + "/home")
        first = gateway.wait_for_events(1)[0]
        assert "referrer" not in first["context"] and "campaign" not in first["context"]
        assert first["properties"]["referrer"] == site.base + "/home"


class TestEcommerce:
    def test_helpers_send_the_segment_ecommerce_events_with_the_specs_property_names(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """productViewed … orderCompleted name their events as the spec does; `id` becomes product_id."""
        page.goto(site.url("basic.html", gateway=gateway.url, data_auto_page="false"))
        loaded(page)
        page.evaluate("""
            attimo('productViewed', {id: 'p1', name: 'Mug', price: 12});
            attimo('productAdded', {product_id: 'p1', price: 12, quantity: 2});
            attimo('productRemoved', {id: 'p1', price: 12, quantity: 1});
            attimo('cartViewed', [{id: 'p1', price: 12, quantity: 1}]);
            attimo('checkoutStarted', {order_id: 'o1', value: 12, currency: 'EUR',
                                       products: [{id: 'p1', price: 12, quantity: 1}]});
            attimo('orderCompleted', {order_id: 'o1', revenue: 12, currency: 'EUR',
                                      products: [{product_id: 'p1', price: 12, quantity: 1}]});
        """)
        events = gateway.wait_for_events(6)
        assert [e["event"] for e in events] == ["Product Viewed", "Product Added", "Product Removed",
                                                "Cart Viewed", "Checkout Started", "Order Completed"]
        viewed, added, removed, cart, checkout, order = (e["properties"] for e in events)
        assert viewed["product_id"] == "p1" and viewed["name"] == "Mug"
        assert added == {"product_id": "p1", "price": 12, "quantity": 2}
        assert removed["product_id"] == "p1"
        assert cart["products"][0]["product_id"] == "p1"
        assert checkout["order_id"] == "o1" and checkout["products"][0]["product_id"] == "p1"
        assert "product_id" not in checkout  # an order's fields are its own
        assert order["revenue"] == 12 and order["products"] == [{"product_id": "p1", "price": 12, "quantity": 1}]
        # The cart value the popups' cart_value trigger reads followed them (2 x 12 - 12, the cart, then 0).
        assert page.evaluate("localStorage.getItem('attimo_cart')") == "0"


class TestForms:
    def test_only_marked_forms_are_captured_and_never_secret_fields(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """data-attimo-form forms send Form Submitted with safe fields only; other forms send nothing."""
        page.goto(site.url("forms.html", gateway=gateway.url, data_auto_page="false"))
        loaded(page)
        page.click("#search button")
        page.click("#signup button")
        submitted = gateway.wait_for_events(1)[0]
        time.sleep(QUIET_S)
        assert gateway.names() == ["Form Submitted"]
        props = submitted["properties"]
        assert props["form_id"] == "signup" and props["form_name"] == "newsletter"
        assert props["fields"] == {"email": "ada@example.com", "first_name": "Ada", "agree": "yes",
                                   "country": "IT", "message": "Hello"}
        raw = json.dumps(submitted)
        for secret in ("hunter2", "tok-123", "4111", "12/30", "SECRET10"):
            assert secret not in raw


class TestRateLimit:
    def test_a_burst_over_100_is_cut_counted_and_reported_with_a_later_event(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """Token bucket: 100 at once, then 10 per second; drops in attimo('stats') and in the context of
        the next event that goes out."""
        page.goto(site.url("basic.html", gateway=gateway.url, data_auto_page="false"))
        loaded(page)
        elapsed_ms = page.evaluate("""async () => {
            for (let i = 0; i < 150; i++) attimo('track', 'E' + i)
            window.__afterBurst = attimo('stats').dropped
            const t0 = Date.now()
            await new Promise((r) => setTimeout(r, 1000))
            for (let i = 0; i < 50; i++) attimo('track', 'R' + i)
            return Date.now() - t0
        }""")
        # 100 at once (plus the refill while the loop ran: a token per 100 ms, on a slow machine).
        burst_dropped = page.evaluate("window.__afterBurst")
        assert 47 <= burst_dropped <= 50
        refilled = int(elapsed_ms / 100)  # 10 per second
        wait_until(lambda: len(gateway.events()) >= 150 - burst_dropped + refilled - 1, what="events")
        time.sleep(QUIET_S)
        names = gateway.names()
        assert names[:100] == [f"E{i}" for i in range(100)]
        assert len([n for n in names if n.startswith("E")]) == 150 - burst_dropped
        assert refilled - 1 <= len([n for n in names if n.startswith("R")]) <= refilled + 1
        dropped = page.evaluate("attimo('stats').dropped")
        assert dropped == 200 - len(names)
        page.evaluate("attimo('track', 'Later')")
        gateway.wait_for_events(len(names) + 1)
        # Every drop is told to the server once, in the context of the next event that went out.
        assert sum(e["context"].get("dropped", 0) for e in gateway.events()) == dropped
        # The first event out after the first drop carries it: E100 when the loop was quick, a few events
        # later when the bucket refilled a token or two while it ran (a loaded machine), else R0.
        sent = [int(n[1:]) for n in names if n.startswith("E")]
        first = next((i for i, n in enumerate(sent) if n != i), len(sent))
        assert first >= 100
        assert gateway.events()[first]["context"]["dropped"] == [*sent, 150][first] - first


class TestFrames:
    def test_frames_stay_under_the_byte_cap_and_an_oversized_event_is_dropped(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """Big events are split over frames of at most 48 KB; one over 32 KB is never queued."""
        page.goto(site.url("basic.html", gateway=gateway.url, data_auto_page="false", data_flush_ms="300"))
        loaded(page)
        page.evaluate("""const blob = 'x'.repeat(20000);
                         for (let i = 0; i < 5; i++) attimo('track', 'Big', {i, blob});
                         attimo('track', 'Huge', {blob: 'y'.repeat(40000)})""")
        gateway.wait_for_events(5)
        time.sleep(QUIET_S)
        assert gateway.names() == ["Big"] * 5
        assert len(gateway.frames) >= 3
        assert all(len(json.dumps(f, separators=(",", ":"))) < 49_000 for f in gateway.frames)
        assert [e["properties"]["i"] for e in gateway.events()] == [0, 1, 2, 3, 4]
        assert any("too large" in m for _, m in page.console_messages_seen)
        assert queued(page) == []


class TestHttpFallback:
    def test_without_a_websocket_batches_go_over_http_then_back_to_the_socket(
        self, page: Any, site: PageServer, make_gateway: Any
    ) -> None:
        """After 3 failed connects events are posted to /v1/batch and leave the queue on 200; once the
        gateway answers, the tracker is back on the websocket (and resends nothing)."""
        gw = make_gateway()  # nothing listens yet: every connect fails
        page.goto(site.url("basic.html", gateway=gw.url, data_retry_base_ms="50"))
        loaded(page)
        page.evaluate("attimo('track', 'Over HTTP')")
        wait_until(lambda: sum(len(b["body"]["batch"]) for b in site.beacons) >= 2, what="posts", timeout=5)
        posted = [e for b in site.beacons for e in b["body"]["batch"]]
        assert [e.get("event") or e["type"] for e in posted] == ["page", "Over HTTP"]
        assert all(b["content_type"].startswith("text/plain") and b["body"]["writeKey"] == "wk_test"
                   for b in site.beacons)
        wait_until(lambda: queued(page) == [], what="the queue to empty on the 200")

        gw.start()
        wait_until(lambda: page.evaluate("attimo('stats').websocket"), what="the socket again", timeout=8)
        page.evaluate("attimo('track', 'Over WS')")
        assert [e["event"] for e in gw.wait_for_events(1)] == ["Over WS"]
        time.sleep(QUIET_S)
        assert gw.names() == ["Over WS"]
        assert [e.get("event") or e["type"] for b in site.beacons for e in b["body"]["batch"]] == [
            "page", "Over HTTP"]

    def test_without_a_gateway_attribute_events_go_over_http_at_once(
        self, page: Any, site: PageServer
    ) -> None:
        """A tag with data-api and no data-gateway posts its batches (no websocket at all)."""
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.goto(site.url("basic.html", gateway=""))
        wait_until(lambda: site.beacons, what="a post")
        assert site.beacons[0]["body"]["batch"][0]["type"] == "page" and sockets == []


class TestIdentityProof:
    def test_events_with_a_signed_user_id_carry_its_signature_as_user_hash(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """After identify(id, traits, {signature}) every event has context.userHash (docs/protocol.md 13.3);
        an unsigned user id gets none."""
        sig = "b" * 64
        page.goto(site.url("basic.html", gateway=gateway.url, data_auto_page="false"))
        loaded(page)
        page.evaluate("attimo('identify', 'bob'); attimo('track', 'Unsigned')")
        page.evaluate(f"attimo('identify', 'ada', {{}}, {{signature: '{sig}'}}); attimo('track', 'Signed')")
        events = gateway.wait_for_events(4)
        assert [e.get("event") or e["type"] for e in events] == ["identify", "Unsigned", "identify", "Signed"]
        assert ["userHash" in e["context"] for e in events[:2]] == [False, False]
        assert [e["context"]["userHash"] for e in events[2:]] == [sig, sig]
        assert [e["userId"] for e in events] == ["bob", "bob", "ada", "ada"]

    def test_the_option_may_be_named_user_hash_as_the_hash_it_sends(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """identify(id, traits, {userHash}) is the same as {signature}: the events carry context.userHash."""
        sig = "c" * 64
        page.goto(site.url("basic.html", gateway=gateway.url, data_auto_page="false"))
        loaded(page)
        page.evaluate(f"attimo('identify', 'ada', {{}}, {{userHash: '{sig}'}}); attimo('track', 'Signed')")
        events = gateway.wait_for_events(2)
        assert [e["context"]["userHash"] for e in events] == [sig, sig]
