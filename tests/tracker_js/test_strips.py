"""Product strips drawn by the tracker, in headless Chromium, from decisions the test hands it.

`attimo('recommendations', element, {strip, limit, product, currency})`:
cards from the current decision, redrawn when a new one changes them. The
real stack's strips (co-purchases streamed, then shown) are tested in
`tests/e2e/test_strips_browser.py`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.tracker_js.decisions_data import decisions, product
from tests.tracker_js.harness import FakeGateway, PageServer, wait_until
from tests.tracker_js.test_popups import RECORD_ADDED, open_page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(20)]


def cards(page: Any, where: str = "#strip") -> list[dict[str, Any]]:
    """What each card in the strip shows."""
    return list(page.evaluate(
        """(where) => [...document.querySelectorAll(where + ' .attimo-card')].map((c) => ({
            tag: c.tagName, href: c.getAttribute('href'),
            img: c.querySelector('img') && c.querySelector('img').getAttribute('src'),
            name: c.querySelector('.attimo-name').textContent,
            price: c.querySelector('.attimo-price') && c.querySelector('.attimo-price').textContent}))""",
        where))


def names(page: Any, where: str = "#strip") -> list[str]:
    return [c["name"] for c in cards(page, where)]


class TestRendering:
    def test_a_strip_shows_image_name_price_and_link_up_to_its_limit(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """Cards follow the decision's order, at most `limit`, each an http(s) link with image, name, price."""
        open_page(page, site, gateway, decisions(recommendations={
            "personal": [product(1), product(2), product(3)], "trending": [product(9)]}))
        page.evaluate("attimo('recommendations', '#strip', {strip: 'personal', limit: 2})")
        page.wait_for_function("document.querySelectorAll('#strip .attimo-card').length === 2")
        assert cards(page) == [
            {"tag": "A", "href": f"https://shop.example/p{n}", "img": f"https://img.example/p{n}.png",
             "name": f"Product {n}", "price": f"{10 + n}.00"} for n in (1, 2)
        ]
        assert page.get_attribute("#strip", "data-attimo-count") == "2"

    def test_a_currency_formats_the_price_for_the_locale(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """{currency: 'EUR', locale: 'it-IT'} shows 11,00 € ; an unknown currency falls back to the number."""
        open_page(page, site, gateway, decisions(recommendations={"trending": [product(1)]}))
        page.evaluate("""attimo('recommendations', '#strip', {strip: 'trending', currency: 'EUR', locale: 'it-IT'});
                         attimo('recommendations', '#other-strip', {strip: 'trending', currency: 'nope'})""")
        page.wait_for_selector("#other-strip .attimo-card")
        assert cards(page)[0]["price"].replace("\u00a0", " ") == "11,00 €"
        assert cards(page, "#other-strip")[0]["price"] == "11.00"

    def test_the_product_on_screen_is_read_for_and_never_recommended_to_itself_and_empty_falls_back_to_trending(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """{product} re-reads the decisions for that product; an empty strip shows trending minus the product."""
        open_page(page, site, gateway, decisions(recommendations={
            "cross_sell": [], "trending": [product(7), product(8), product(9)]}))
        wait_until(lambda: site.decision_reads, what="the on-load read")
        page.evaluate("attimo('recommendations', '#strip', {strip: 'cross_sell', product: 'p8'})")
        page.wait_for_function("document.querySelectorAll('#strip .attimo-card').length === 2")
        assert names(page) == ["Product 7", "Product 9"]
        wait_until(lambda: len(site.decision_reads) == 2, what="the read for the product")
        assert site.decision_reads[1][1]["product"] == "p8"

    def test_nothing_to_show_leaves_the_element_empty_with_count_0(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """No cards in the strip nor in trending: the element is emptied and says data-attimo-count=0."""
        open_page(page, site, gateway, decisions(recommendations={"trending": []}))
        page.evaluate("document.getElementById('strip').textContent = 'placeholder';"
                      "attimo('recommendations', document.getElementById('strip'), {strip: 'up_sell'})")
        page.wait_for_selector("#strip[data-attimo-count='0']", state="attached")
        assert page.text_content("#strip") == ""

    def test_a_strip_asked_for_before_the_tracker_loaded_is_drawn_once_it_has(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """The snippet queues the call; the tracker loads its widgets and draws the strip."""
        page.add_init_script("""
            window.attimo = function () { (attimo.q = attimo.q || []).push(arguments) };
            document.addEventListener('DOMContentLoaded', () =>
              attimo('recommendations', '#strip', {strip: 'personal'}))""")
        open_page(page, site, gateway, decisions(recommendations={"personal": [product(4)]}), delay="0.3")
        page.wait_for_selector("#strip .attimo-card")
        assert names(page) == ["Product 4"]

    def test_clicking_a_card_sends_product_clicked_with_its_strip_and_position(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """A click on a card sends Segment's Product Clicked (list_id = the strip) and follows the link."""
        target = site.url("basic.html", gateway=gateway.url)
        open_page(page, site, gateway, decisions(recommendations={
            "personal": [product(1), product(2, url=target)]}))
        page.evaluate("attimo('recommendations', '#strip', {strip: 'personal'})")
        page.click("#strip .attimo-card >> nth=1")
        page.wait_for_url(target)
        clicked = wait_until(lambda: [e for e in gateway.events() if e.get("event") == "Product Clicked"],
                             what="Product Clicked")
        assert clicked[0]["properties"] == {"product_id": "p2", "name": "Product 2", "price": 12.0,
                                            "position": 2, "list_id": "personal"}


class TestLiveUpdates:
    def test_a_pushed_decision_redraws_a_changed_strip_and_leaves_an_unchanged_one_alone(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """New cards replace the old when a push changes the strip; the same cards are not redrawn."""
        first = decisions(recommendations={"personal": [product(1)], "trending": [product(5)]})
        open_page(page, site, gateway, first)
        page.evaluate("attimo('recommendations', '#strip', {strip: 'personal'});"
                      "attimo('recommendations', '#other-strip', {strip: 'trending'})")
        page.wait_for_selector("#other-strip .attimo-card")
        page.evaluate("document.querySelector('#other-strip .attimo-card').__kept = true")
        gateway.wait_for_events(1)
        gateway.push({"decision": decisions(recommendations={
            "personal": [product(2), product(1)], "trending": [product(5)]})})
        page.wait_for_function("document.querySelectorAll('#strip .attimo-card').length === 2")
        assert names(page) == ["Product 2", "Product 1"]
        assert page.evaluate("document.querySelector('#other-strip .attimo-card').__kept") is True

    def test_with_a_product_on_screen_a_push_is_read_again_for_it(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """A push carries no product's cross-sell, so the page reads its decisions again with the product."""
        open_page(page, site, gateway, decisions(recommendations={"cross_sell": [product(1)]}))
        page.evaluate("attimo('recommendations', '#strip', {strip: 'cross_sell', product: 'p0'})")
        page.wait_for_selector("#strip .attimo-card")
        gateway.wait_for_events(1)
        reads = len(site.decision_reads)
        site.decisions = decisions(recommendations={"cross_sell": [product(3)]})
        gateway.push({"decision": decisions(recommendations={"cross_sell": [product(2)]})})
        page.wait_for_function("document.querySelector('#strip .attimo-name').textContent === 'Product 3'")
        assert site.decision_reads[reads][1]["product"] == "p0"
        site.decisions = None  # the next read fails: the pushed decision is used as it is
        gateway.push({"decision": decisions(recommendations={"cross_sell": [product(4)]})})
        page.wait_for_function("document.querySelector('#strip .attimo-name').textContent === 'Product 4'")


XSS = '<img src=x onerror="window.__xss=1">'


class TestInertText:
    def test_markup_in_product_names_is_text_and_bad_urls_give_no_link_and_no_image(
        self, page: Any, site: PageServer, gateway: FakeGateway
    ) -> None:
        """A name full of HTML renders literally; javascript: and data: URLs are dropped."""
        doc = decisions(recommendations={"personal": [
            product(1, name=XSS), product(2, name="</a><script>window.__xss=2</script>")]})
        # What the contract's validator refuses, as a broken or hostile server could still send it.
        doc["recommendations"]["personal"][0] |= {"url": "javascript:window.__xss=3",
                                                  "image": "javascript:window.__xss=4"}
        doc["recommendations"]["personal"][1] |= {"image": "data:image/svg+xml,<svg onload='window.__xss=5'/>"}
        page.add_init_script(RECORD_ADDED)
        open_page(page, site, gateway, doc)
        page.evaluate("attimo('recommendations', '#strip', {strip: 'personal'})")
        page.wait_for_function("document.querySelectorAll('#strip .attimo-card').length === 2")
        first, second = cards(page)
        assert first == {"tag": "DIV", "href": None, "img": None, "name": XSS, "price": "11.00"}
        assert second["name"] == "</a><script>window.__xss=2</script>" and second["img"] is None
        assert second["href"] == "https://shop.example/p2"
        page.click("#strip .attimo-card >> nth=0")
        created = {tag.upper() for tag in page.evaluate("window.__added.map((e) => e.tag)")}
        assert not created & {"IMG", "SVG", "IFRAME", "OBJECT", "EMBED"}
        assert page.evaluate("window.__xss") is None
