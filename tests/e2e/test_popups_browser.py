"""Popups on the real stack, in headless Chromium: campaigns through the admin API, decided by the
dataflow, served and pushed by the API and gateway, shown by the tracker on the demo shop's pages.

One `attimo run` per module (started once: ~5 s); each test uses its own
campaigns (deleted afterwards) and a new browser profile, i.e. a new visitor.
What the tracker does with decisions it is handed is tested without the
stack in `tests/tracker_js/test_popups.py`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from api.demo.campaigns import install
from api.demo_shop import catalog
from tests.e2e.conftest import Stack, attimo_run
from tests.helpers import running_redis, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(20)]

IDENTITY_SECRET = "e2e-identity-secret"
DIALOG = "[role=dialog]"
WAIT_MS = 5000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`attimo run` with an identity secret, shared by the module's tests (each uses its own visitors)."""
    directory = tmp_path_factory.mktemp("widgets-stack")
    with running_redis(directory) as redis, attimo_run(directory / "run", redis,
                                                       identity_secrets=IDENTITY_SECRET) as running:
        yield running


def call(stack: Stack, method: str, path: str, body: Any = None, admin: bool = True) -> tuple[int, Any]:
    """One API call; (status, decoded JSON body or None)."""
    request = urllib.request.Request(stack.api_url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    if admin:
        request.add_header("Authorization", f"Bearer {stack.admin_token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None


class Campaigns:
    """Puts campaigns through the admin API and deletes them when the test ends."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.ids: list[str] = []

    def put(self, campaign_id: str, body: dict[str, Any]) -> dict[str, Any]:
        status, answer = call(self.stack, "PUT", f"/v1/admin/campaigns/{campaign_id}", body)
        if status == 404 and answer == {"error": "Not Found", "success": False}:
            pytest.skip("the campaigns admin API (issue 10, popups in the dataflow) is not served yet")
        assert status in (200, 201), answer
        self.ids.append(campaign_id)
        return dict(answer)

    def stats(self, campaign_id: str) -> dict[str, Any]:
        status, answer = call(self.stack, "GET", f"/v1/admin/campaigns/{campaign_id}/stats")
        assert status == 200, answer
        return dict(answer)

    def delete_all(self) -> None:
        for campaign_id in self.ids:
            call(self.stack, "DELETE", f"/v1/admin/campaigns/{campaign_id}")


@pytest.fixture
def campaigns(stack: Stack) -> Iterator[Campaigns]:
    made = Campaigns(stack)
    yield made
    made.delete_all()


@pytest.fixture
def visitor(browser: Any, stack: Stack) -> Iterator[Callable[..., Any]]:
    """Factory: a new visitor (browser profile) with a page that records console messages."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        ctx = browser.new_context(**options)
        ctx.set_default_timeout(WAIT_MS)
        contexts.append(ctx)
        page = ctx.new_page()
        page.console_seen = []
        page.on("console", lambda m: page.console_seen.append((m.type, m.text)))
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def variant(title: str, **content: Any) -> list[dict[str, Any]]:
    return [{"id": "a", "content": {"title": title, **content}}]


EVERY_PAGE_VIEW = {"once_per_session": False, "cooldown_after_close_s": 0, "min_interval_s": 0}


def anonymous_id(page: Any) -> str:
    return str(page.evaluate("attimo('anonymousId')"))


def loaded(page: Any) -> None:
    """The tracker has loaded and its decisions read has answered."""
    page.wait_for_function("window.attimo && window.attimo.loaded && attimo('decision') !== null")


def acked(page: Any) -> None:
    """Every event of the page is acknowledged (stored) by the gateway."""
    page.wait_for_function("localStorage.getItem('attimo_q') === null")


def server_popups(stack: Stack, visitor_id: str) -> list[str]:
    """The campaigns `GET /v1/decisions` offers this anonymous visitor now."""
    status, body = call(stack, "GET", f"/v1/decisions/{visitor_id}?key={stack.write_key}", admin=False)
    assert status == 200, body
    return [p["campaign"] for p in body["popups"]]


def stays_absent(page: Any, seconds: float = 1.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if page.query_selector(DIALOG):
            return False
        page.wait_for_timeout(50)
    return True


class TestSegmentPush:
    def test_a_popup_appears_in_the_same_page_when_the_visitor_enters_its_segment(
        self, stack: Stack, campaigns: Campaigns, visitor: Callable[..., Any]
    ) -> None:
        """Targeted at "viewed coffee twice in an hour": nothing after one view; the second view's
        decision is pushed and the popup shows without a reload; the impression is counted."""
        campaigns.put("coffee-lovers", {
            "variants": variant("For coffee lovers", text="Moka pot 15% off", coupon="MOKA15"),
            "layout": "slide_in",
            "when": {"kind": "count", "dimension": "category", "value": "coffee", "event": "Product Viewed",
                     "window_s": 3600, "op": "gte", "n": 2},
        })
        first, second = catalog.in_category("coffee")[:2]
        page = visitor()
        page.goto(f"{stack.api_url}/product/{first.product_id}")
        loaded(page)
        acked(page)
        assert stays_absent(page)
        page.evaluate("window.__samePage = true")
        started = time.monotonic()
        page.evaluate("(p) => attimo('track', 'Product Viewed', p)", second.event_properties())
        dialog = page.wait_for_selector(DIALOG)
        shown_after = time.monotonic() - started
        assert "For coffee lovers" in dialog.text_content() and "MOKA15" in dialog.text_content()
        assert page.evaluate("window.__samePage") is True
        assert shown_after < 2.0, f"shown {shown_after:.2f} s after the event"
        wait_for(lambda: campaigns.stats("coffee-lovers")["arms"][0]["impressions"] == 1, 5,
                 "the impression to be counted")


class TestFrequency:
    def test_no_popup_after_conversion(
        self, stack: Stack, campaigns: Campaigns, visitor: Callable[..., Any]
    ) -> None:
        """A campaign allowed on every page view shows on two pages; after an order it shows no more."""
        campaigns.put("every-page", {"variants": variant("Shown until you buy"), "layout": "bar",
                                     "frequency": EVERY_PAGE_VIEW | {"stop_after_conversion": True}})
        page = visitor()
        page.goto(f"{stack.api_url}/")
        page.wait_for_selector(DIALOG)
        acked(page)
        page.wait_for_timeout(2100)  # the tracker holds a campaign back for 2 s after reporting it
        page.goto(f"{stack.api_url}/category/pantry")
        page.wait_for_selector(DIALOG)  # not capped per page view or session: shown again
        p = catalog.PRODUCTS[3].event_properties()
        page.evaluate("(p) => { attimo('track', 'Order Completed', {order_id: 'o-e2e-1', revenue: p.price,"
                      " currency: 'EUR', products: [Object.assign({quantity: 1}, p)]}); attimo('flush') }", p)
        acked(page)
        aid = anonymous_id(page)
        wait_for(lambda: server_popups(stack, aid) == [], 5, "the conversion to end the campaign")
        page.goto(f"{stack.api_url}/category/linens")
        loaded(page)
        assert page.evaluate("attimo('decision').popups") == []
        assert stays_absent(page)
        stats = campaigns.stats("every-page")["arms"][0]
        assert stats["impressions"] == 2 and stats["conversions"] == 1

    def test_once_per_session_caps_across_page_views(
        self, stack: Stack, campaigns: Campaigns, visitor: Callable[..., Any]
    ) -> None:
        """A once-per-session popup shown and closed on one page is not offered on the next pages."""
        campaigns.put("once", {"variants": variant("Once a visit"), "layout": "modal"})
        page = visitor()
        page.goto(f"{stack.api_url}/")
        page.wait_for_selector(DIALOG)
        page.keyboard.press("Escape")
        # Right away: the tracker holds it back for 2 s (the dataflow may not have counted the close yet).
        page.goto(f"{stack.api_url}/category/coffee")
        loaded(page)
        assert stays_absent(page)
        aid = anonymous_id(page)
        wait_for(lambda: server_popups(stack, aid) == [], 5, "the server to stop offering it")
        page.goto(f"{stack.api_url}/category/pantry")
        loaded(page)
        assert page.evaluate("attimo('decision').popups") == []
        assert stays_absent(page)
        stats = campaigns.stats("once")["arms"][0]
        assert stats["impressions"] == 1 and stats["closes"] == 1


class TestPageTriggers:
    def test_exit_intent_and_scroll_depth_on_the_shop(
        self, stack: Stack, campaigns: Campaigns, visitor: Callable[..., Any]
    ) -> None:
        """Of an exit-intent and a 60 % scroll campaign, one visitor leaving through the top sees the first,
        another scrolling down sees the second; neither sees both."""
        campaigns.put("exit", {"variants": variant("Before you go"), "triggers": [{"kind": "exit_intent"}],
                               "priority": 2})
        campaigns.put("deep", {"variants": variant("You read it all"),
                               "triggers": [{"kind": "scroll", "percent": 60}], "priority": 1})
        leaving = visitor(viewport={"width": 900, "height": 500})
        leaving.goto(f"{stack.api_url}/")
        wait_for(lambda: leaving.evaluate("(attimo('decision') || {popups: []}).popups.length") == 2, 5,
                 "both campaigns offered")
        leaving.wait_for_selector("#attimo-style", state="attached")
        assert stays_absent(leaving, 0.5)
        leaving.mouse.move(400, 250)
        leaving.mouse.move(400, -10)
        assert "Before you go" in leaving.wait_for_selector(DIALOG).text_content()

        scrolling = visitor(viewport={"width": 900, "height": 500})
        scrolling.goto(f"{stack.api_url}/")
        wait_for(lambda: scrolling.evaluate("(attimo('decision') || {popups: []}).popups.length") == 2, 5,
                 "both campaigns offered")
        scrolling.wait_for_selector("#attimo-style", state="attached")
        scrolling.mouse.move(400, 250)
        for _ in range(30):
            scrolling.mouse.wheel(0, 200)
            if scrolling.query_selector(DIALOG):
                break
            scrolling.wait_for_timeout(30)
        assert "You read it all" in scrolling.wait_for_selector(DIALOG).text_content()
        assert scrolling.evaluate(
            "scrollY / (document.documentElement.scrollHeight - innerHeight)") >= 0.6 - 0.01


class TestInertContent:
    def test_markup_in_a_campaign_is_shown_as_text_and_a_javascript_link_is_refused(
        self, stack: Stack, campaigns: Campaigns, visitor: Callable[..., Any]
    ) -> None:
        """The API refuses a javascript: call to action; markup in title and text is rendered literally."""
        title = '<img src=x onerror="window.__xss=1">'
        text = "<script>window.__xss=2</script>"
        campaigns.put("markup", {"variants": variant(title, text=text, cta_label="<b>go</b>",
                                                     cta_url=f"{stack.api_url}/cart")})
        status, _ = call(stack, "PUT", "/v1/admin/campaigns/bad-link", {
            "variants": variant("x", cta_label="go", cta_url="javascript:alert(1)")})
        assert status == 422
        page = visitor()
        page.goto(f"{stack.api_url}/")
        dialog = page.wait_for_selector(DIALOG)
        assert dialog.query_selector("h2").text_content() == title
        assert dialog.query_selector("p").text_content() == text
        assert dialog.query_selector("img, script, b") is None
        assert page.evaluate("window.__xss") is None


def sign(user_id: str) -> str:
    return hmac.new(IDENTITY_SECRET.encode(), user_id.encode(), hashlib.sha256).hexdigest()


class TestIdentity:
    def test_user_id_decisions_need_a_valid_signature(
        self, stack: Stack, campaigns: Campaigns, visitor: Callable[..., Any]
    ) -> None:
        """A signed-in user's page gets its popup pushed and reads by user id; a page that only claims
        the id, or signs it wrongly, is refused on read and gets no push."""
        user = f"ada-{time.monotonic_ns()}@example.com"
        campaigns.put("pro-only", {"variants": variant("For pro members"), "layout": "slide_in",
                                   "when": {"kind": "trait", "name": "plan", "op": "eq", "value": "pro"}})
        signed = visitor()
        signed.goto(f"{stack.api_url}/category/ceramics")
        loaded(signed)
        signed.evaluate("([u, s]) => attimo('identify', u, {plan: 'pro'}, {signature: s})", [user, sign(user)])
        # The identify (plan pro) changes the user's decisions: pushed to the socket that proved the id.
        assert "For pro members" in signed.wait_for_selector(DIALOG).text_content()

        claiming = visitor()
        claiming.goto(f"{stack.api_url}/category/linens")
        loaded(claiming)
        claiming.evaluate("(u) => attimo('identify', u, {plan: 'pro'})", user)
        acked(claiming)
        assert stays_absent(claiming, 1.5)  # no push: its socket proved nothing
        with claiming.expect_response(lambda r: "/v1/decisions/" in r.url) as refused:
            claiming.reload()
        assert refused.value.status == 401
        # Console events reach Python only while Playwright runs: wait in the page, not in time.sleep.
        for _ in range(40):
            if any("decisions refused" in text for _, text in claiming.console_seen):
                break
            claiming.wait_for_timeout(50)
        assert ("warning", "attimo: decisions refused 401") in claiming.console_seen

        wrong = visitor()
        wrong.goto(f"{stack.api_url}/")
        loaded(wrong)
        wrong.evaluate("([u, s]) => attimo('identify', u, {}, {signature: s})", [user, sign("someone else")])
        acked(wrong)
        with wrong.expect_response(lambda r: "/v1/decisions/" in r.url) as forbidden:
            wrong.reload()
        assert forbidden.value.status == 403

        with signed.expect_response(lambda r: "/v1/decisions/" in r.url) as served:
            signed.reload()
        assert served.value.status == 200 and f"/v1/decisions/{user.replace('@', '%40')}" in served.value.url
        base = f"/v1/decisions/{user}?key={stack.write_key}"
        assert call(stack, "GET", base, admin=False)[0] == 401
        assert call(stack, "GET", base + f"&sig={sign('x')}", admin=False)[0] == 403
        status, body = call(stack, "GET", base + f"&sig={sign(user)}", admin=False)
        assert status == 200 and [p["campaign"] for p in body["popups"]] in ([], ["pro-only"])


class TestDemoShop:
    def test_the_demo_campaigns_show_live_on_the_demo_shop(
        self, stack: Stack, campaigns: Campaigns, visitor: Callable[..., Any]
    ) -> None:
        """`api.demo.campaigns` installs through the admin API; a second coffee product page brings the
        coffee lovers' bar; with a cart, leaving through the top of a later page brings the cart rescue."""
        status, _ = call(stack, "GET", "/v1/admin/campaigns")
        if status == 404:
            pytest.skip("the campaigns admin API (issue 10, popups in the dataflow) is not served yet")
        campaigns.ids += install(stack.api_url, stack.admin_token)
        first, second = catalog.in_category("coffee")[:2]
        page = visitor()
        page.goto(f"{stack.api_url}/product/{first.product_id}")
        loaded(page)
        acked(page)
        page.goto(f"{stack.api_url}/product/{second.product_id}")
        bar = page.wait_for_selector(".attimo-bar[role=dialog]")
        assert "Coffee lover?" in bar.text_content() and "MOKA15" in bar.text_content()
        page.click("#add-to-cart")
        acked(page)
        aid = anonymous_id(page)
        wait_for(lambda: "demo-cart-rescue" in server_popups(stack, aid), 5, "the cart rescue to be offered")
        page.goto(f"{stack.api_url}/category/linens")
        loaded(page)
        page.wait_for_selector("#attimo-style", state="attached")
        page.mouse.move(400, 300)
        page.mouse.move(400, -10)
        modal = page.wait_for_selector(".attimo-modal[role=dialog]")
        assert "Leaving already?" in modal.text_content()
        assert modal.query_selector("a.attimo-cta").get_attribute("href") == f"{stack.api_url}/cart"
