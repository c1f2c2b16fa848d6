"""Popups drawn by the tracker, in headless Chromium, from decisions the test hands it.

The decisions come from the fixture server's stand-in for `GET /v1/decisions`
or are pushed by the fake gateway, built with the contract's Structs
(`tests/tracker_js/decisions_data.py`). What the server decides (targeting,
frequency caps, variants) is tested with the real stack in
`tests/e2e/test_popups_browser.py`; here: triggers, one popup per page view,
layouts and accessibility, inert text, the `on popup` hook and pushes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.tracker_js.decisions_data import (
    AfterSeconds,
    CartValueOver,
    ExitIntent,
    Inactivity,
    ScrollDepth,
    UrlMatch,
    decisions,
    popup,
)
from tests.tracker_js.harness import EMPTY_DECISIONS, WAIT_S, FakeGateway, PageServer, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(20)]

DIALOG = "[role=dialog]"
# Records every element added to the page, so a test can say what the tracker created.
RECORD_ADDED = """
window.__added = [];
new MutationObserver((records) => {
  for (const r of records) for (const n of r.addedNodes) {
    if (n.nodeType !== 1) continue;
    for (const e of [n, ...n.querySelectorAll('*')]) window.__added.push(
      {tag: e.tagName, src: e.getAttribute('src'), cls: e.className, t: performance.now()});
  }
}).observe(document, {childList: true, subtree: true});
"""


def popup_events(gateway: FakeGateway) -> list[tuple[str, dict[str, Any]]]:
    """Popup Shown / Clicked / Closed events the gateway received, in order."""
    return [(e["event"], e["properties"]) for e in gateway.events() if e.get("event", "").startswith("Popup ")]


def open_page(page: Any, site: PageServer, gateway: FakeGateway, doc: dict[str, Any] | None = None,
              fixture: str = "widgets.html", **params: str) -> None:
    """Load the fixture with `doc` as the visitor's decisions and wait for the tracker."""
    if doc is not None:
        site.decisions = doc
    page.add_init_script(RECORD_ADDED)
    page.goto(site.url(fixture, gateway=gateway.url, **params))
    page.wait_for_function("window.attimo && window.attimo.loaded")


def wait_widgets(page: Any) -> None:
    """The widgets file has loaded and installed (its stylesheet is in the page)."""
    page.wait_for_selector("#attimo-style", state="attached")


def dialogs_added(page: Any) -> int:
    return int(page.evaluate("window.__added.filter((e) => /attimo-pop/.test(e.cls)).length"))


def stays_absent(page: Any, selector: str = DIALOG, seconds: float = 0.7) -> bool:
    """Nothing matching `selector` appears for `seconds` (a few trigger checks)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if page.query_selector(selector):
            return False
        page.wait_for_timeout(50)
    return True


def scroll_to(page: Any, percent: float) -> None:
    page.evaluate(
        "(p) => window.scrollTo(0, (document.documentElement.scrollHeight - innerHeight) * p / 100)", percent
    )


class TestModal:
    """A modal is a labelled dialog that takes and gives back the focus."""

    def test_arrival_popup_is_a_labelled_modal_dialog_with_its_content_and_a_focused_close_button(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """An arrival popup shows title, text, image, coupon and CTA; role=dialog, aria-modal, focus on close."""
        open_page(page, site, gateway, decisions(popup(
            "welcome", variant="b", text="Ten percent off your first order", image="https://img.example/w.png",
            coupon="WELCOME10", cta_label="Shop now", cta_url="https://shop.example/sale")))
        dialog = page.wait_for_selector(DIALOG)
        assert dialog.get_attribute("aria-modal") == "true"
        title = page.query_selector("#" + dialog.get_attribute("aria-labelledby"))
        assert title.text_content() == "welcome title"
        assert dialog.query_selector("p").text_content() == "Ten percent off your first order"
        assert dialog.query_selector("img").get_attribute("src") == "https://img.example/w.png"
        assert dialog.query_selector(".attimo-coupon code").text_content() == "WELCOME10"
        cta = dialog.query_selector(".attimo-cta")
        assert cta.text_content() == "Shop now" and cta.get_attribute("href") == "https://shop.example/sale"
        assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Close"
        assert page.evaluate("getComputedStyle(document.querySelector('.attimo-back')).position") == "fixed"
        wait_until(lambda: popup_events(gateway) == [("Popup Shown", {"campaign": "welcome", "variant": "b"})],
                   what="Popup Shown")

    def test_escape_closes_sends_popup_closed_and_gives_the_focus_back(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """Escape removes the modal, sends Popup Closed, and focus returns to where it was."""
        open_page(page, site, gateway)
        page.focus("#page-button")
        gateway.push({"decision": decisions(popup("welcome", cta_label="Go", cta_url="https://shop.example/"))})
        page.wait_for_selector(DIALOG)
        for _ in range(5):  # Tab stays inside the modal
            page.keyboard.press("Tab")
            assert page.evaluate("!!document.activeElement.closest('[role=dialog]')")
        page.keyboard.press("Escape")
        page.wait_for_selector(DIALOG, state="detached")
        assert page.evaluate("document.activeElement.id") == "page-button"
        wait_until(lambda: [n for n, _ in popup_events(gateway)] == ["Popup Shown", "Popup Closed"],
                   what="Popup Closed")

    def test_a_click_on_the_backdrop_closes_and_a_click_inside_does_not(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """Clicking the modal's content keeps it; clicking the dimmed backdrop closes it."""
        open_page(page, site, gateway, decisions(popup("welcome", text="body text")))
        page.click(f"{DIALOG} p")
        assert page.query_selector(DIALOG)
        page.mouse.click(5, 5)
        page.wait_for_selector(DIALOG, state="detached")
        wait_until(lambda: ("Popup Closed", {"campaign": "welcome", "variant": "a"}) in popup_events(gateway),
                   what="Popup Closed")

    def test_the_call_to_action_sends_popup_clicked_and_follows_its_link(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """A CTA with a URL is a link: clicking it sends Popup Clicked (delivered even though the page leaves)."""
        target = site.url("basic.html", gateway=gateway.url)
        open_page(page, site, gateway, decisions(popup("sale", cta_label="See the sale", cta_url=target)))
        page.click(f"{DIALOG} a.attimo-cta")
        page.wait_for_url(target)
        wait_until(lambda: ("Popup Clicked", {"campaign": "sale", "variant": "a"}) in popup_events(gateway),
                   what="Popup Clicked")
        assert "Popup Closed" not in [n for n, _ in popup_events(gateway)]


class TestLayouts:
    @pytest.mark.parametrize(("layout", "edge"), [("bar", "top"), ("slide_in", "bottom")])
    def test_bar_and_slide_in_are_fixed_non_modal_dialogs_that_leave_the_focus_alone(
        self, page: Any, site: PageServer, gateway: FakeGateway, layout: str, edge: str
    ) -> None:
        """A bar sits at the top, a slide-in at the bottom right; neither is modal or takes the focus."""
        open_page(page, site, gateway)
        page.focus("#page-button")
        gateway.push({"decision": decisions(popup("promo", layout=layout, text="Free shipping"))})
        dialog = page.wait_for_selector(f".attimo-{layout}[role=dialog]")
        assert dialog.get_attribute("aria-modal") is None
        assert page.query_selector(".attimo-back") is None
        assert page.evaluate("document.activeElement.id") == "page-button"
        page.wait_for_function("document.getAnimations().every((a) => a.playState === 'finished')")
        box = page.evaluate(
            "(s) => { const r = document.querySelector(s).getBoundingClientRect();"
            " return {top: r.top, bottom: innerHeight - r.bottom, right: innerWidth - r.right,"
            " position: getComputedStyle(document.querySelector(s)).position} }", f".attimo-{layout}")
        assert box["position"] == "fixed"
        assert box[edge] == pytest.approx(0, abs=20) and (layout == "bar" or box["right"] < 20)
        page.keyboard.press("Escape")  # Escape closes a non-modal popup too
        page.wait_for_selector(DIALOG, state="detached")
        wait_until(lambda: [n for n, _ in popup_events(gateway)] == ["Popup Shown", "Popup Closed"],
                   what="Popup Closed")


class TestTriggers:
    """Each page trigger shows its popup when, and only when, it fires."""

    def test_scroll_depth_shows_the_popup_once_the_visitor_scrolled_past_it(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """A 50 % scroll popup stays hidden at 30 % and appears past 50 %."""
        open_page(page, site, gateway, decisions(popup("deep", triggers=[ScrollDepth(percent=50)])))
        wait_widgets(page)
        scroll_to(page, 30)
        assert stays_absent(page)
        page.mouse.move(100, 100)
        for _ in range(12):  # real wheel scrolling, about 60 % of the page
            page.mouse.wheel(0, 500)
        page.wait_for_selector(DIALOG)

    def test_scroll_depth_never_fires_on_a_page_too_short_to_scroll(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """A 10 % scroll popup stays hidden on a page that fits the window (it is not read on, just seen)."""
        open_page(page, site, gateway, decisions(popup("deep", triggers=[ScrollDepth(percent=10)])),
                  fixture="decisions.html")
        wait_widgets(page)
        page.mouse.wheel(0, 500)
        assert stays_absent(page)

    def test_exit_intent_on_desktop_is_the_pointer_leaving_through_the_top(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """Moving within the page or out through a side does nothing; out through the top shows the popup."""
        open_page(page, site, gateway, decisions(popup("stay", triggers=[ExitIntent()])))
        wait_widgets(page)
        page.mouse.move(300, 300)
        page.mouse.move(300, 3)
        page.mouse.move(-20, 300)  # out through the left edge
        assert stays_absent(page)
        page.mouse.move(300, 300)
        page.mouse.move(300, -20)
        page.wait_for_selector(DIALOG)

    def test_after_seconds_counts_from_the_start_of_the_page_view(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """An "after 1 s" popup appears about one second after navigation, not before."""
        open_page(page, site, gateway, decisions(popup("later", triggers=[AfterSeconds(seconds=1)])))
        page.wait_for_selector(DIALOG)
        shown_at = page.evaluate("window.__added.find((e) => /attimo-pop/.test(e.cls)).t")
        assert 1000 <= shown_at < 1000 + 1500

    def test_inactivity_waits_for_the_visitor_to_stop(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """With the pointer moving the 1 s inactivity popup waits; after 1 s without input it appears."""
        open_page(page, site, gateway, decisions(popup("idle", triggers=[Inactivity(seconds=1)])))
        wait_widgets(page)
        for i in range(10):  # 2 s of activity
            page.mouse.move(100 + i * 10, 200)
            page.wait_for_timeout(200)
            assert page.query_selector(DIALOG) is None
        stopped = time.monotonic()
        page.wait_for_selector(DIALOG)
        assert 0.9 <= time.monotonic() - stopped < 2.0

    def test_cart_value_counts_the_pages_own_cart_events_across_pages(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """Cart over 50: one 30.00 add is not enough; the second (on the next page) shows it; an order resets."""
        open_page(page, site, gateway, decisions(popup("cart", triggers=[CartValueOver(amount=50)])))
        wait_widgets(page)
        page.evaluate("attimo('track', 'Product Added', {product_id: 'p1', price: 30, quantity: 1})")
        assert stays_absent(page)
        page.reload()
        page.wait_for_function("window.attimo && window.attimo.loaded")
        wait_widgets(page)
        assert stays_absent(page, seconds=0.4)
        page.evaluate("attimo('track', 'Product Added', {product_id: 'p2', price: 15, quantity: 2})")
        page.wait_for_selector(DIALOG)
        page.evaluate("attimo('track', 'Order Completed', {order_id: 'o1', revenue: 60})")
        assert page.evaluate("localStorage.getItem('attimo_cart')") == "0"

    def test_url_match_is_plain_text_contained_in_the_url(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """Of two URL popups only the one whose text is in this page's URL is shown."""
        open_page(page, site, gateway, decisions(
            popup("elsewhere", triggers=[UrlMatch(contains="/checkout")], priority=9),
            popup("here", triggers=[UrlMatch(contains="from=mail")]),
        ), **{"from": "mail"})
        dialog = page.wait_for_selector(DIALOG)
        assert dialog.text_content().endswith("here title")


class TestMobileExitIntent:
    """On a touch screen exit intent is a fast scroll up or the back gesture."""

    @pytest.fixture
    def mobile(self, browser: Any, tracker_dist: Any) -> Any:
        ctx = browser.new_context(is_mobile=True, has_touch=True, viewport={"width": 390, "height": 844})
        ctx.set_default_timeout(WAIT_S * 1000)
        yield ctx.new_page()
        ctx.close()

    def test_a_fast_scroll_up_shows_it_and_a_slow_one_does_not(
        self, mobile: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """Scrolling up a screen in small slow steps does nothing; flicking up a screen within 0.2 s shows it."""
        open_page(mobile, site, gateway, decisions(popup("stay", triggers=[ExitIntent()])))
        wait_widgets(mobile)
        scroll_to(mobile, 50)
        mobile.wait_for_timeout(100)
        for _ in range(6):  # 600 px up over 1.8 s
            mobile.evaluate("window.scrollBy(0, -100)")
            mobile.wait_for_timeout(300)
        assert stays_absent(mobile, seconds=0.3)
        mobile.evaluate("""() => new Promise((done) => {
            let n = 0; const step = () => { window.scrollBy(0, -80); if (++n < 8) setTimeout(step, 20); else done() };
            step() })""")
        mobile.wait_for_selector(DIALOG)

    def test_the_back_gesture_shows_it_and_stays_on_the_page(
        self, mobile: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """After a tap, going back shows the exit popup instead of leaving; the URL does not change."""
        mobile.goto(site.url("basic.html", gateway=gateway.url))
        open_page(mobile, site, gateway, decisions(popup("stay", triggers=[ExitIntent()])))
        wait_widgets(mobile)
        url = mobile.url
        mobile.touchscreen.tap(200, 400)
        mobile.wait_for_function("history.state && history.state.attimo === 'exit'")
        mobile.go_back()
        mobile.wait_for_selector(DIALOG)
        assert mobile.url == url

    def test_going_back_with_no_popup_to_show_leaves_as_the_visitor_asked(
        self, mobile: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """If the decision changed and nothing is eligible any more, the back gesture goes back."""
        first = site.url("basic.html", gateway=gateway.url)
        mobile.goto(first)
        open_page(mobile, site, gateway, decisions(popup("stay", triggers=[ExitIntent()])))
        wait_widgets(mobile)
        mobile.touchscreen.tap(200, 400)
        mobile.wait_for_function("history.state && history.state.attimo === 'exit'")
        gateway.push({"decision": EMPTY_DECISIONS})
        mobile.wait_for_function("attimo('decision').popups.length === 0")
        mobile.go_back()
        mobile.wait_for_url(first)


class TestOnePerPageView:
    def test_only_the_highest_priority_fired_popup_shows_and_nothing_else_on_that_page_view(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """Of two arrival popups the higher priority shows; after it closes, neither a fired scroll
        trigger nor a pushed popup shows another; the next page view may show one again."""
        open_page(page, site, gateway, decisions(
            popup("low", priority=1),
            popup("high", priority=5),
            popup("deep", triggers=[ScrollDepth(percent=20)], priority=9),
        ))
        dialog = page.wait_for_selector(DIALOG)
        assert dialog.text_content().endswith("high title")
        page.keyboard.press("Escape")
        scroll_to(page, 60)
        gateway.push({"decision": decisions(popup("pushed", priority=100))})
        page.wait_for_function("attimo('decision').popups[0].campaign === 'pushed'")
        assert stays_absent(page)
        assert dialogs_added(page) == 1
        wait_until(lambda: len(popup_events(gateway)) == 2, what="shown and closed")
        assert popup_events(gateway) == [
            ("Popup Shown", {"campaign": "high", "variant": "a"}),
            ("Popup Closed", {"campaign": "high", "variant": "a"}),
        ]
        wait_until(lambda: page.evaluate("localStorage.getItem('attimo_q')") is None, what="events acked")
        page.reload()  # a new page view; the fake server still offers all three
        page.wait_for_selector(DIALOG)
        assert dialogs_added(page) == 1

    def test_a_campaign_whose_popup_events_are_still_unacked_is_held_back_on_the_next_page(
        self, page: Any, site: PageServer, make_gateway: Any
    ) -> None:
        """With the gateway down, a shown popup's event stays queued; the next page shows the runner-up."""
        down = make_gateway()  # never started: nothing is acked
        open_page(page, site, down, decisions(popup("first", priority=5), popup("second", priority=1)))
        assert page.wait_for_selector(DIALOG).text_content().endswith("first title")
        page.wait_for_function("(localStorage.getItem('attimo_q') || '').includes('Popup Shown')")
        page.reload()
        assert page.wait_for_selector(DIALOG).text_content().endswith("second title")


    def test_a_campaign_reported_on_the_page_before_is_held_for_two_seconds(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """Acked but perhaps not yet counted: right after, the next page shows the runner-up; 2 s later
        the server's answer is trusted again."""
        open_page(page, site, gateway, decisions(popup("first", priority=5), popup("second", priority=1)))
        assert page.wait_for_selector(DIALOG).text_content().endswith("first title")
        wait_until(lambda: page.evaluate("localStorage.getItem('attimo_q')") is None, what="events acked")
        page.reload()
        assert page.wait_for_selector(DIALOG).text_content().endswith("second title")
        page.wait_for_timeout(2100)
        page.reload()
        assert page.wait_for_selector(DIALOG).text_content().endswith("first title")


class TestOnPopupHook:
    def test_a_site_that_renders_popups_itself_gets_the_popup_and_reports_back(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """With attimo('on','popup') the tracker draws nothing and sends only what the site reports, once each."""
        page.add_init_script("""
            window.attimo = function () { (attimo.q = attimo.q || []).push(arguments) };
            window.__hooked = [];
            attimo('on', 'popup', (p) => window.__hooked.push(p));""")
        open_page(page, site, gateway, decisions(popup("own", variant="v2", priority=2), popup("other")))
        page.wait_for_function("window.__hooked.length === 1")
        assert page.evaluate("window.__hooked[0].campaign") == "own"
        assert stays_absent(page, "[role=dialog], .attimo-pop")
        assert popup_events(gateway) == []
        page.evaluate("""const p = window.__hooked[0];
            attimo('popup', 'shown', p); attimo('popup', 'shown', p);
            attimo('popup', 'clicked', p); attimo('popup', 'closed', p); attimo('popup', 'nonsense', p)""")
        wait_until(lambda: len(popup_events(gateway)) == 3, what="three popup events")
        assert popup_events(gateway) == [
            (name, {"campaign": "own", "variant": "v2"}) for name in ("Popup Shown", "Popup Clicked", "Popup Closed")
        ]
        assert page.evaluate("window.__hooked.length") == 1


class TestPushedDecisions:
    def test_a_popup_pushed_mid_page_appears_without_a_reload_and_widgets_load_only_then(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """A page with no popups loads no widgets; a pushed decision with one shows it in the same page."""
        open_page(page, site, gateway, EMPTY_DECISIONS)
        wait_until(lambda: site.decision_reads, what="the decisions read")
        page.evaluate("window.__samePage = true")
        gateway.wait_for_events(1)
        assert "/attimo-widgets.js" not in site.requested
        gateway.push({"decision": decisions(popup("segment-entered", text="Welcome back"))})
        page.wait_for_selector(DIALOG)
        assert page.evaluate("window.__samePage") is True
        assert site.requested.count("/attimo-widgets.js") == 1

    def test_a_push_replaces_the_eligible_set(self, page: Any, site: PageServer, gateway: FakeGateway) -> None:
        """A popup dropped by a newer decision does not fire; pushed back, it fires at once (trigger already met)."""
        doc = decisions(popup("deep", triggers=[ScrollDepth(percent=40)]))
        open_page(page, site, gateway, doc)
        wait_widgets(page)
        gateway.push({"decision": EMPTY_DECISIONS})
        page.wait_for_function("attimo('decision').popups.length === 0")
        scroll_to(page, 80)
        assert stays_absent(page)
        gateway.push({"decision": doc})
        page.wait_for_selector(DIALOG)

    def test_a_read_answered_after_a_push_does_not_overwrite_it(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """The on-load read is older than a push that arrives before its answer: the push wins."""
        site.decisions_delay = 1.0
        open_page(page, site, gateway, decisions(popup("stale")))
        gateway.wait_for_events(1)
        gateway.push({"decision": decisions(popup("pushed"))})
        assert page.wait_for_selector(DIALOG).text_content().endswith("pushed title")
        wait_until(lambda: site.decisions_answered, what="the slow read to answer")
        page.wait_for_timeout(100)
        assert page.evaluate("attimo('decision').popups[0].campaign") == "pushed"


XSS = '<img src=x onerror="window.__xss=1">'


class TestInertText:
    def test_markup_in_popup_content_is_shown_as_text_and_bad_urls_are_dropped(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """HTML in every text field renders literally; javascript:/data: URLs give no link and no image."""
        doc = decisions(popup(
            XSS, variant='"><script>window.__xss=2</script>', title=XSS, text="<script>window.__xss=3</script>",
            coupon='"><svg onload="window.__xss=4">', cta_label='<b onclick="window.__xss=5">go</b>',
            cta_url="https://shop.example/", image="https://img.example/x.png"))
        # What the contract's validator refuses, as a broken or hostile server could still send it.
        doc["popups"][0]["content"] |= {"cta_url": "javascript:window.__xss=6",
                                        "image": "data:image/svg+xml,<svg onload='window.__xss=7'/>"}
        open_page(page, site, gateway, doc)
        dialog = page.wait_for_selector(DIALOG)
        assert page.query_selector(f"{DIALOG} h2").text_content() == XSS
        assert page.query_selector(f"{DIALOG} p").text_content() == "<script>window.__xss=3</script>"
        assert page.query_selector(f"{DIALOG} code").text_content() == '"><svg onload="window.__xss=4">'
        cta = page.query_selector(f"{DIALOG} .attimo-cta")
        assert cta.evaluate("e => e.tagName") == "BUTTON" and cta.get_attribute("href") is None
        assert cta.text_content() == '<b onclick="window.__xss=5">go</b>'
        cta.click()  # a CTA without a usable link just closes
        page.wait_for_selector(DIALOG, state="detached")
        assert dialog is not None
        # Everything ever added to the page (the fixture's own elements included): no element
        # from the payloads, and no script but the page's own, the tracker and its widgets.
        created = page.evaluate("window.__added.map((e) => [e.tag.toUpperCase(), e.src])")
        assert not {tag for tag, _ in created} & {"IMG", "SVG", "B", "IFRAME", "OBJECT", "EMBED"}
        scripts = [src for tag, src in created if tag == "SCRIPT" and src]
        assert [s.split("?")[0].rsplit("/", 1)[-1] for s in scripts] == ["attimo.js", "attimo-widgets.js"]
        assert page.evaluate("window.__xss") is None
        wait_until(lambda: len(popup_events(gateway)) == 2, what="shown and clicked")
        assert popup_events(gateway)[1] == ("Popup Clicked", {"campaign": XSS,
                                                              "variant": '"><script>window.__xss=2</script>'})
