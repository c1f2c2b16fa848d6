"""Who the tracker leaves alone: consent, the opt-out cookie, Do Not Track / GPC, and bots.

Headless Chromium against the fake gateway and the fixture server; every
check is what the page sent (its request log, the gateway's handshakes) and
what it stored (cookies, localStorage).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.tracker_js.harness import WAIT_S, FakeGateway, PageServer, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(30)]

QUIET_S = 0.6  # how long a page is watched for something it must not do
REAL_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
NOT_AUTOMATED = "Object.defineProperty(Navigator.prototype, 'webdriver', {get: () => false})"


def watch(page: Any) -> tuple[list[str], list[str]]:
    """Every request URL and every websocket URL the page opens from now on."""
    requests: list[str] = []
    sockets: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("websocket", lambda ws: sockets.append(ws.url))
    return requests, sockets


def loaded(page: Any) -> None:
    page.wait_for_function("window.attimo && window.attimo.loaded")


def stored(page: Any) -> dict[str, str]:
    """The page's localStorage, whole."""
    result: dict[str, str] = page.evaluate("Object.assign({}, localStorage)")
    return result


def names(gateway: FakeGateway) -> list[str]:
    return gateway.names()


class TestConsent:
    def test_nothing_is_sent_or_stored_before_consent_and_everything_flows_after_it(
        self, page: Any, context: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """data-consent="required": no request, socket, cookie or storage; consent(true) sends what was held."""
        requests, sockets = watch(page)
        page.goto(site.url("basic.html", gateway=gateway.url, data_consent="required"))
        loaded(page)
        page.evaluate("attimo('track', 'Before Consent', {n: 1}); attimo('identify', 'u-1', {plan: 'pro'})")
        page.evaluate("window.dispatchEvent(new Event('pagehide'))")  # no beacon either
        time.sleep(QUIET_S)
        assert [u for u in requests if "/v1/" in u] == [] and sockets == []
        assert gateway.paths == [] and site.decision_reads == [] and site.beacons == []
        assert context.cookies() == [] and stored(page) == {}
        assert page.evaluate("attimo('stats')") == {
            "blocked": "", "consent": False, "websocket": False, "queued": 3, "dropped": 0}

        page.evaluate("attimo('consent', true); attimo('track', 'After Consent')")
        events = gateway.wait_for_events(4)
        assert names(gateway) == ["page", "Before Consent", "identify", "After Consent"]
        aid = {c["name"]: c["value"] for c in context.cookies()}["attimo_aid"]
        assert {e["anonymousId"] for e in events} == {aid}
        assert events[2]["userId"] == "u-1" and events[3]["userId"] == "u-1"
        assert stored(page)["attimo_uid"] == "u-1" and stored(page)["attimo_aid"] == aid
        wait_until(lambda: site.decision_reads, what="the decisions read after consent")

    def test_held_events_can_be_dropped_and_withdrawn_consent_stops_and_forgets(
        self, page: Any, context: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """data-consent-queue="drop" sends only what follows consent; consent(false) closes, clears, drops."""
        page.goto(site.url("basic.html", gateway=gateway.url, data_consent="required",
                           data_consent_queue="drop"))
        loaded(page)
        page.evaluate("attimo('track', 'Dropped'); attimo('consent', true); attimo('track', 'Kept')")
        first = gateway.wait_for_events(1)[0]
        wait_until(lambda: any(c["name"] == "attimo_aid" for c in context.cookies()), what="the id cookie")

        page.evaluate("attimo('consent', false)")
        wait_until(lambda: not gateway._clients, what="the socket to close")
        assert context.cookies() == []
        assert [k for k in stored(page) if k.startswith("attimo_")] == []
        page.evaluate("attimo('track', 'After Withdrawal'); attimo('flush')")
        time.sleep(QUIET_S)
        assert names(gateway) == ["Kept"] and len(gateway.paths) == 1  # no reconnect
        assert page.evaluate("attimo('anonymousId')") is None
        assert context.cookies() == [] and stored(page) == {}

        page.evaluate("attimo('consent', true); attimo('track', 'Again')")
        again = gateway.wait_for_events(2)[1]
        assert again["event"] == "Again" and again["anonymousId"] != first["anonymousId"]
        assert again["context"]["sessionId"] != first["context"]["sessionId"]


class TestOptOut:
    def test_the_opt_out_cookie_turns_the_tracker_off(
        self, page: Any, context: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """A visitor with the attimo_optout cookie is not tracked: no socket, no read, no id stored."""
        context.add_cookies([{"name": "attimo_optout", "value": "1", "url": site.base}])
        requests, sockets = watch(page)
        page.goto(site.url("basic.html", gateway=gateway.url))
        loaded(page)
        page.evaluate("attimo('track', 'Opted Out'); attimo('consent', true)")
        time.sleep(QUIET_S)
        assert sockets == [] and [u for u in requests if "/v1/" in u] == [] and gateway.paths == []
        assert [c["name"] for c in context.cookies()] == ["attimo_optout"] and stored(page) == {}
        assert page.evaluate("attimo('stats').blocked") == "opt-out"


class TestDoNotTrack:
    def test_gpc_is_respected_only_when_the_site_says_so(
        self, context: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """With Global Privacy Control on, data-respect-dnt turns tracking off; without it, tracking goes on."""
        context.add_init_script(
            "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})")
        respectful = context.new_page()
        respectful.goto(site.url("basic.html", gateway=gateway.url, data_respect_dnt="true"))
        loaded(respectful)
        time.sleep(QUIET_S)
        assert gateway.paths == [] and respectful.evaluate("attimo('stats').blocked") == "dnt"
        other = context.new_page()
        other.goto(site.url("basic.html", gateway=gateway.url))
        gateway.wait_for_events(1)

    def test_do_not_track_header_setting_is_respected(
        self, context: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """navigator.doNotTrack === "1" counts as well."""
        context.add_init_script("Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})")
        page = context.new_page()
        page.goto(site.url("basic.html", gateway=gateway.url, data_respect_dnt="true"))
        loaded(page)
        time.sleep(QUIET_S)
        assert gateway.paths == [] and page.evaluate("attimo('stats').blocked") == "dnt"


class TestBots:
    def test_an_automated_browser_is_not_tracked_unless_bots_are_allowed(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """Headless Chromium (navigator.webdriver) sends nothing by default; data-allow-bots lets it in."""
        assert page.evaluate("navigator.webdriver") is True
        page.goto(site.url("plain.html", gateway=gateway.url))
        loaded(page)
        page.evaluate("attimo('track', 'By A Bot')")
        time.sleep(QUIET_S)
        assert gateway.paths == [] and page.evaluate("attimo('stats').blocked") == "bot"
        assert page.evaluate("localStorage.length") == 0
        page.goto(site.url("plain.html", gateway=gateway.url, data_allow_bots="true"))
        gateway.wait_for_events(1)

    @pytest.mark.parametrize(("agent", "tracked"), [
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", False),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", False),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0 Safari/537.36",
         False),
        ("Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Mobile "
         "Safari/537.36", True),
        (REAL_UA, True),
    ], ids=["googlebot", "bingbot", "headless", "cubot-phone", "chrome"])
    def test_known_bot_user_agents_are_not_tracked(
        self, browser: Any, site: PageServer, gateway: FakeGateway, agent: str, tracked: bool
    ) -> None:
        """A bot's user agent is enough (with navigator.webdriver false); a phone named Cubot is no bot."""
        ctx = browser.new_context(user_agent=agent)
        ctx.set_default_timeout(WAIT_S * 1000)
        try:
            ctx.add_init_script(NOT_AUTOMATED)
            page = ctx.new_page()
            page.goto(site.url("plain.html", gateway=gateway.url))
            loaded(page)
            if tracked:
                assert gateway.wait_for_events(1)[0]["context"]["userAgent"] == agent
            else:
                time.sleep(QUIET_S)
                assert gateway.paths == [] and page.evaluate("attimo('stats').blocked") == "bot"
        finally:
            ctx.close()
