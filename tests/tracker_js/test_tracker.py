"""The browser tracker, tested in headless Chromium against a fake gateway."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import pytest

from tests.tracker_js.harness import DIST, WAIT_S, WIDGETS, WRITE_KEY, wait_until

pytestmark = pytest.mark.browser


def queued(page: Any) -> list[dict[str, Any]]:
    """The tracker's persistent queue as the browser holds it."""
    raw = page.evaluate("localStorage.getItem('attimo_q')")
    return json.loads(raw) if raw else []


class TestSnippet:
    def test_calls_made_before_load_are_sent_in_order_after_the_automatic_page(
        self, page: Any, site: Any, gateway: Any
    ) -> None:
        """Calls queued by the snippet before the script loads are replayed in order after page()."""
        page.goto(site.url("snippet.html", gateway=gateway.url, delay="0.3"))
        events = gateway.wait_for_events(5)
        assert page.evaluate("window.__loadedBeforeCalls") is False
        assert [e.get("event") or e["type"] for e in events] == [
            "page",
            "First",
            "identify",
            "Second",
            "Third",
        ]
        page_ev, first, ident, second, third = events
        assert page_ev["properties"]["path"] == "/snippet.html"
        assert ident["userId"] == "user-7" and ident["traits"] == {"email": "u7@example.com"}
        assert "userId" not in first and second["userId"] == "user-7"
        assert third["properties"] == {"n": 3}
        assert gateway.paths[0] == f"/v1/stream?key={WRITE_KEY}"

    def test_events_follow_the_segment_spec(self, page: Any, site: Any, gateway: Any) -> None:
        """Every event carries type, messageId, anonymousId, ISO timestamp and a full context."""
        page.goto(site.url("basic.html", gateway=gateway.url))
        page.wait_for_function("window.attimo && window.attimo.loaded")
        page.evaluate("attimo('track', 'Product Viewed', {product_id: 'p1', price: 9.5})")
        _page_ev, track = gateway.wait_for_events(2)
        assert track["type"] == "track" and track["event"] == "Product Viewed"
        assert track["properties"] == {"product_id": "p1", "price": 9.5}
        assert track["timestamp"].endswith("Z") and len(track["messageId"]) == 36
        ctx = track["context"]
        assert ctx["library"]["name"] == "attimo.js"
        assert set(ctx["page"]) == {"url", "path", "title", "referrer", "search"}
        assert ctx["page"]["title"] == "Basic fixture" and ctx["userAgent"] and ctx["locale"]
        frame = gateway.frames[-1]
        assert frame["seq"] >= 1 and frame["sentAt"].endswith("Z")

    def test_auto_page_can_be_turned_off(self, page: Any, site: Any, gateway: Any) -> None:
        """data-auto-page="false" suppresses the automatic page() call."""
        page.goto(site.url("basic.html", gateway=gateway.url, data_auto_page="false"))
        page.wait_for_function("window.attimo && window.attimo.loaded")
        page.evaluate("attimo('track', 'Only')")
        gateway.wait_for_events(1)
        assert gateway.names() == ["Only"]


class TestIdentity:
    def test_anonymous_id_persists_across_reloads_and_identify_adds_user_id(
        self, page: Any, context: Any, site: Any, gateway: Any
    ) -> None:
        """The anonymous id survives reloads via cookie or localStorage; identify adds userId."""
        url = site.url("basic.html", gateway=gateway.url)
        page.goto(url)
        aid = gateway.wait_for_events(1)[0]["anonymousId"]
        cookie = {c["name"]: c for c in context.cookies()}["attimo_aid"]
        assert cookie["value"] == aid and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
        assert cookie["expires"] - time.time() > 390 * 86400  # 13 months
        assert page.evaluate("localStorage.getItem('attimo_aid')") == aid

        context.clear_cookies()  # localStorage alone restores the id (and the cookie)
        page.reload()
        gateway.wait_for_events(2)
        assert {c["name"]: c["value"] for c in context.cookies()}["attimo_aid"] == aid

        page.evaluate("localStorage.removeItem('attimo_aid')")  # the cookie alone restores it
        page.reload()
        gateway.wait_for_events(3)
        assert page.evaluate("localStorage.getItem('attimo_aid')") == aid

        page.evaluate("attimo('identify', 'u-42', {plan: 'pro'}); attimo('track', 'After')")
        gateway.wait_for_events(5)
        wait_until(lambda: queued(page) == [], what="identify and track to be acked")
        page.reload()
        events = gateway.wait_for_events(6)
        assert {e["anonymousId"] for e in events} == {aid}
        assert [e.get("userId") for e in events[3:]] == ["u-42", "u-42", "u-42"]
        assert events[-1]["type"] == "page" and "userId" not in events[0]


class TestDelivery:
    def test_rejected_events_are_not_resent_and_acked_ones_leave_the_queue(
        self, page: Any, site: Any, gateway: Any
    ) -> None:
        """Events the server rejects are dropped with a warning; acked events leave the queue."""
        gateway.reject_events = {"Bad"}
        page.goto(site.url("basic.html", gateway=gateway.url, data_auto_page="false"))
        page.wait_for_function("window.attimo && window.attimo.loaded")
        page.evaluate("attimo('track', 'A'); attimo('track', 'Bad'); attimo('track', 'C')")
        gateway.wait_for_events(3)
        assert len(gateway.frames) == 1
        wait_until(lambda: queued(page) == [], what="queue to empty after ack")
        wait_until(
            lambda: any(t == "warning" and "rejected" in m for t, m in page.console_messages_seen),
            what="a console warning for the rejected event",
        )
        gateway.drop_all()  # a reconnect must not resend anything already acked
        page.evaluate("attimo('track', 'D')")
        gateway.wait_for_events(4)
        assert gateway.names() == ["A", "Bad", "C", "D"]

    def test_unacked_batches_are_resent_with_the_same_message_ids_after_a_dropped_connection(
        self, page: Any, site: Any, gateway: Any
    ) -> None:
        """When the server drops the socket before acking, the batch is resent on reconnect."""
        gateway.drop_before_ack = 1
        page.goto(site.url("basic.html", gateway=gateway.url, data_retry_base_ms="100"))
        wait_until(lambda: len(gateway.frames) >= 2, what="the resent frame")
        first, second = gateway.frames[:2]
        assert [e["messageId"] for e in first["batch"]] == [e["messageId"] for e in second["batch"]]
        assert len(gateway.paths) == 2
        wait_until(lambda: queued(page) == [], what="queue to empty after ack")

    def test_events_queued_while_the_gateway_is_down_are_delivered_after_a_reload(
        self, context: Any, site: Any, make_gateway: Any
    ) -> None:
        """Events queued during an outage persist in localStorage and go out on the next page."""
        gw = make_gateway()  # not started: connections are refused
        url = site.url("basic.html", gateway=gw.url)
        first = context.new_page()
        first.goto(url)
        first.wait_for_function("window.attimo && window.attimo.loaded")
        first.evaluate("attimo('track', 'While Down')")
        wait_until(lambda: len(queued(first)) == 2, what="two queued events")
        offline_ids = [e["messageId"] for e in queued(first)]
        first.close()

        gw.start()
        second = context.new_page()
        second.goto(url)
        events = gw.wait_for_events(3)
        assert [e["messageId"] for e in events[:2]] == offline_ids
        assert [e.get("event") or e["type"] for e in events] == ["page", "While Down", "page"]
        wait_until(lambda: queued(second) == [], what="queue to empty after ack")

    def test_leaving_the_page_without_a_socket_sends_queued_events_by_beacon(
        self, page: Any, site: Any, make_gateway: Any
    ) -> None:
        """On pagehide with no open socket, queued events go to /v1/batch via sendBeacon."""
        gw = make_gateway()
        page.goto(site.url("basic.html", gateway=gw.url))
        page.wait_for_function("window.attimo && window.attimo.loaded")
        page.evaluate("attimo('track', 'Leaving')")
        wait_until(lambda: len(queued(page)) == 2, what="two queued events")
        page.goto(site.url("basic.html", gateway=gw.url, data_auto_page="false"))
        beacon = wait_until(lambda: site.beacons and site.beacons[0], what="a beacon")
        assert beacon["content_type"].startswith("text/plain")
        body = beacon["body"]
        assert body["writeKey"] == WRITE_KEY and body["sentAt"].endswith("Z")
        assert [e.get("event") or e["type"] for e in body["batch"]] == ["page", "Leaving"]

    def test_the_queue_is_capped_at_1000_events_dropping_the_oldest(
        self, page: Any, site: Any, make_gateway: Any
    ) -> None:
        """With no connection the persistent queue keeps only the newest 1000 events."""
        gw = make_gateway()
        # A burst over the client's rate limit (100), allowed here to fill the queue.
        page.goto(site.url("basic.html", gateway=gw.url, data_auto_page="false", data_burst="2000"))
        page.wait_for_function("window.attimo && window.attimo.loaded")
        page.evaluate("for (let i = 0; i < 1005; i++) attimo('track', 'E' + i)")
        q = wait_until(lambda: queued(page), what="the queue to be persisted")
        assert len(q) == 1000
        assert q[0]["event"] == "E5" and q[-1]["event"] == "E1004"


class TestDecisions:
    def test_the_read_and_then_each_pushed_decision_reach_on_decision_handlers_and_a_window_event(
        self, page: Any, site: Any, gateway: Any
    ) -> None:
        """The decisions read on load, then a {"decision": ...} frame, go to attimo('on','decision') and
        as attimo:decision events; attimo('decision') is the latest."""
        read = {"popups": [], "recommendations": {}, "public": {"temperature": "cold"}}
        site.decisions = read
        page.goto(site.url("decisions.html", gateway=gateway.url))
        page.wait_for_function("window.__decisions.length === 1")
        gateway.wait_for_events(1)
        # Unknown fields and popups this tracker cannot use are passed on untouched.
        pushed = {"popups": [{"id": "welcome"}], "temperature": "hot"}
        gateway.push({"decision": pushed})
        page.wait_for_function("window.__decisions.length === 2", timeout=WAIT_S * 1000)
        assert page.evaluate("window.__decisions") == [read, pushed]
        assert page.evaluate("window.__domDecisions") == [read, pushed]
        assert page.evaluate("attimo('decision')") == pushed
        visitor, query = site.decision_reads[0]
        assert visitor == gateway.events()[0]["anonymousId"] and query == {"key": WRITE_KEY}

    def test_data_decisions_false_reads_nothing(self, page: Any, site: Any, gateway: Any) -> None:
        """A site that uses no widgets can turn the on-load read off."""
        page.goto(site.url("decisions.html", gateway=gateway.url, data_decisions="false"))
        gateway.wait_for_events(1)
        page.evaluate("attimo('flush')")
        assert site.decision_reads == []


class TestBuild:
    def test_minified_bundle_fits_the_12_kb_budget(self, tracker_dist: Any) -> None:
        """dist/attimo.js stays within 12 KB minified (consent, SPA, sessions, HTTP fallback … included)."""
        size = DIST.stat().st_size
        assert 0 < size <= 12 * 1024, f"attimo.js is {size} bytes"

    def test_gzipped_files_fit_their_budgets(self, tracker_dist: Any) -> None:
        """What a page downloads: the tracker ≤ 5,000 bytes gzipped (every page; 5 KB read the strict way),
        the widgets ≤ 4 KB (pages with a popup or a strip only)."""
        tracker = len(gzip.compress(DIST.read_bytes(), 9))
        widgets = len(gzip.compress(WIDGETS.read_bytes(), 9))
        assert 0 < tracker <= 5000, f"attimo.js is {tracker} bytes gzipped"
        assert 0 < widgets <= 4 * 1024, f"attimo-widgets.js is {widgets} bytes gzipped"
        # Everything since (consent, SPA, sessions, HTTP fallback …) is in the tracker's budget; the
        # widgets stay in their own file, loaded on demand.
        tracker_src = DIST.read_text()
        assert "attimo-modal" not in tracker_src and "sessionId" in tracker_src and "/v1/batch" in tracker_src

    @pytest.mark.parametrize("bundle", [DIST, WIDGETS], ids=lambda p: p.name)
    def test_bundle_is_one_es2017_iife_without_module_syntax(self, tracker_dist: Any, bundle: Any) -> None:
        """Each bundle is a self-contained IIFE a plain <script> tag can load."""
        src = bundle.read_text()
        assert src.lstrip().startswith(("(()=>{", "(function(", '"use strict";(()=>{'))
        assert "import " not in src and "export " not in src
