"""The demo shop's pages and the /tracker.js route, rendered through FastAPI."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from api.demo_shop import catalog, router
from api.routes import tracker_script
from tests.helpers import free_port
from tests.tracker_js.harness import DIST, TRACKER_DIR, FakeGateway, wait_until

SETTINGS = SimpleNamespace(
    write_key="wk_demo<&>", gateway_url="ws://127.0.0.1:8001", api_url="http://127.0.0.1:8000"
)


def shop_app(settings: Any) -> FastAPI:
    app = FastAPI()
    app.state.settings = settings
    app.include_router(router)
    app.include_router(tracker_script.router)
    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(shop_app(SETTINGS)) as c:
        yield c


@pytest.fixture(scope="module")
def shared_client() -> Iterator[TestClient]:
    """One client for every example of a property test (hypothesis refuses per-test fixtures)."""
    with TestClient(shop_app(SETTINGS)) as c:
        yield c


def page_data(html: str) -> str:
    m = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
    assert m
    return m.group(1)


def search_box_value(html: str) -> str | None:
    """The value of the search box, as an HTML parser reads the attribute."""
    values: list[str | None] = []

    class Finder(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "input" and ("name", "q") in attrs:
                values.append(dict(attrs).get("value"))

    Finder().feed(html)
    assert len(values) == 1
    return values[0]


# Each once broke, or could break, an element: an HTML comment opener that makes the
# parser swallow the next script, a script break-out, JavaScript's line terminators,
# attribute and entity characters.
HOSTILE_QUERIES = [
    "<!--<script>",
    "</script><script>alert(1)</script>",
    "\u2028",
    "<!-- <script> --> \u2029 </script",
    "\"' onfocus=alert(1) x=\"&amp;",
]
# What the HTML parser acts on inside a <script> element, and what ends a JavaScript line.
SCRIPT_SPECIAL = set("<>&\u2028\u2029")


class TestCatalog:
    def test_catalog_has_about_a_dozen_products_over_known_categories(self) -> None:
        """Every product belongs to a declared category and ids and skus are unique."""
        slugs = {c.slug for c in catalog.CATEGORIES}
        assert 3 <= len(slugs) <= 4 and len(catalog.PRODUCTS) >= 12
        assert {p.category for p in catalog.PRODUCTS} == slugs
        assert len({p.product_id for p in catalog.PRODUCTS}) == len(catalog.PRODUCTS)
        assert len({p.sku for p in catalog.PRODUCTS}) == len(catalog.PRODUCTS)

    def test_event_properties_use_segment_names_without_display_fields(self) -> None:
        """A product's event properties are product_id, sku, name, category and price."""
        props = catalog.PRODUCTS[0].event_properties()
        assert set(props) == {"product_id", "sku", "name", "category", "price"}


class TestPages:
    @pytest.mark.parametrize(
        "path",
        [
            "/",
            "/category/coffee",
            f"/product/{catalog.PRODUCTS[0].product_id}",
            "/cart",
            "/checkout",
            "/signup",
            "/search?q=espresso",
        ],
    )
    def test_every_page_embeds_the_snippet_with_the_settings(self, client: TestClient, path: str) -> None:
        """Each page has the queueing snippet, /tracker.js with escaped settings and the decision panel."""
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        html = r.text
        assert "(attimo.q=attimo.q||[]).push(arguments)" in html
        assert 'src="/tracker.js" data-key="wk_demo&lt;&amp;&gt;"' in html
        assert 'data-gateway="ws://127.0.0.1:8001" data-api="http://127.0.0.1:8000"' in html
        assert 'id="attimo-decision"' in html
        assert "http://" not in html.replace(SETTINGS.api_url, "")  # no external resources
        assert "https://" not in html

    def test_home_lists_every_product_grouped_by_category(self, client: TestClient) -> None:
        """The home page links every product and every category."""
        html = client.get("/").text
        for p in catalog.PRODUCTS:
            assert f'href="/product/{p.product_id}"' in html
        for c in catalog.CATEGORIES:
            assert f'href="/category/{c.slug}"' in html

    def test_product_page_shows_the_product_and_an_add_to_cart_button(self, client: TestClient) -> None:
        """The product page shows name, category and price and carries the product for the events."""
        p = catalog.PRODUCTS[3]
        html = client.get(f"/product/{p.product_id}").text
        assert p.name in html and f"{p.price:.2f}" in html and 'id="add-to-cart"' in html
        assert f'"product_id": "{p.product_id}"' in page_data(html)

    def test_cart_checkout_and_signup_have_the_controls_the_bots_click(self, client: TestClient) -> None:
        """The cart, checkout and sign-up pages expose their stable element ids."""
        assert 'id="checkout"' in client.get("/cart").text
        assert 'id="place-order"' in client.get("/checkout").text
        signup = client.get("/signup").text
        for field in ("email", "name", "province", "age_band", "interest"):
            assert f'name="{field}"' in signup
        assert 'id="signup-submit"' in signup

    def test_unknown_product_or_category_is_404(self, client: TestClient) -> None:
        """Unknown ids are 404, not an empty page."""
        assert client.get("/product/nope").status_code == 404
        assert client.get("/category/nope").status_code == 404

    def test_search_query_is_escaped_in_html_and_in_page_data(self, client: TestClient) -> None:
        """A hostile search query cannot break out of the markup or the page-data script."""
        html = client.get("/search", params={"q": "</script><b>x"}).text
        assert "</script><b>x" not in html
        assert "&lt;/script&gt;&lt;b&gt;x" in html


class TestHostileSearchQueries:
    @pytest.mark.parametrize("q", HOSTILE_QUERIES)
    def test_page_data_holds_the_exact_query_and_nothing_the_html_parser_acts_on(
        self, client: TestClient, q: str
    ) -> None:
        """The page's JSON decodes back to the query, with `<`, `>`, `&`, U+2028/9 only as \\u escapes."""
        html = client.get("/search", params={"q": q}).text
        data = page_data(html)
        assert json.loads(data) == {"page": "search", "query": q}
        assert not SCRIPT_SPECIAL & set(data)
        assert search_box_value(html) == q

    @settings(max_examples=150, deadline=None)
    @given(q=st.text(st.characters(exclude_categories=["Cs"]), max_size=200))
    def test_any_query_survives_the_page_exactly(self, shared_client: TestClient, q: str) -> None:
        """Whatever is searched, the page renders, its JSON holds the query and the search box shows it."""
        response = shared_client.get("/search", params={"q": q})
        assert response.status_code == 200
        data = page_data(response.text)
        assert json.loads(data)["query"] == q
        assert not SCRIPT_SPECIAL & set(data)
        assert search_box_value(response.text) == q


@pytest.fixture(scope="module")
def tracker_dist() -> Path:
    """The built tracker; built here only if the setup script has not done it."""
    if not DIST.exists():
        subprocess.run([str(TRACKER_DIR / "build.sh")], check=True, timeout=300)
    return DIST


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    gw = FakeGateway().start()
    yield gw
    gw.stop()


@pytest.fixture
def shop(gateway: FakeGateway, tracker_dist: Path) -> Iterator[str]:
    """The demo shop and /tracker.js served by uvicorn, pointed at the fake gateway."""
    port = free_port()
    settings = SimpleNamespace(write_key="wk_shop", gateway_url=gateway.url, api_url=f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(shop_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


# A cart of 3 in localStorage: only the shop's own script turns "Cart (0)" into "Cart (3)".
CART_OF_THREE = (
    "localStorage.setItem('demo_cart', JSON.stringify({cart_id: 'c-1', lines: "
    "[{product_id: 'p-moka-pot', name: 'Moka Pot', price: 34, quantity: 3}]}))"
)


@pytest.fixture
def shopper(browser: Any, shop: str) -> Iterator[Any]:
    """A fresh browser profile holding a cart of 3, recording uncaught errors and dialogs."""
    context = browser.new_context()
    context.set_default_timeout(5000)
    context.add_init_script(CART_OF_THREE)
    page = context.new_page()
    page.errors_seen = []
    page.dialogs_seen = []
    page.on("pageerror", lambda error: page.errors_seen.append(str(error)))
    page.on("dialog", lambda dialog: (page.dialogs_seen.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()


def searched_queries(gateway: FakeGateway) -> list[str]:
    return [e["properties"]["query"] for e in gateway.events() if e.get("event") == "Products Searched"]


@pytest.mark.browser
class TestHostileSearchInChromium:
    @pytest.mark.parametrize("q", ["<!--<script>", "</script><script>alert(1)</script>", "\u2028"])
    def test_the_page_scripts_run_and_send_the_exact_query(
        self, shopper: Any, shop: str, gateway: FakeGateway, q: str
    ) -> None:
        """A hostile query neither stops the shop's scripts nor runs as script: the event carries it as text."""
        shopper.goto(f"{shop}/search?q={quote(q)}")
        shopper.wait_for_function("document.getElementById('cart-count').textContent === '3'")
        assert shopper.evaluate("typeof window.attimo") == "function"
        wait_until(lambda: searched_queries(gateway), what="Products Searched")
        assert searched_queries(gateway) == [q]
        assert shopper.input_value("input[name=q]") == q
        assert shopper.errors_seen == [] and shopper.dialogs_seen == []

    def test_a_malformed_visitor_cookie_does_not_stop_the_shop_script(self, shopper: Any, shop: str) -> None:
        """A stray '%' in the attimo_aid cookie is skipped, not thrown: the rest of the page still works."""
        shopper.context.add_cookies([{"name": "attimo_aid", "value": "%E0%A4%A", "url": shop}])
        shopper.goto(f"{shop}/search?q=moka")
        shopper.wait_for_function("document.getElementById('cart-count').textContent === '3'")


class TestTrackerScript:
    def test_serves_the_built_bundle_as_javascript_with_a_short_cache(
        self, client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """GET /tracker.js returns the bundle with a 5-minute Cache-Control."""
        dist = tmp_path / "attimo.js"
        dist.write_text("(()=>{})();")
        monkeypatch.setattr(tracker_script, "DIST", dist)
        r = client.get("/tracker.js")
        assert r.status_code == 200 and r.text == "(()=>{})();"
        assert r.headers["content-type"].startswith("application/javascript")
        assert r.headers["cache-control"] == "public, max-age=300"

    def test_is_503_with_a_clear_message_when_not_built(
        self, client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without a build the route says how to build instead of a bare 404."""
        monkeypatch.setattr(tracker_script, "DIST", tmp_path / "missing.js")
        r = client.get("/tracker.js")
        assert r.status_code == 503 and "tracker_js/build.sh" in r.text
