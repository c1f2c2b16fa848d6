"""The demo shop's pages and the /tracker.js route, rendered through FastAPI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.demo_shop import catalog, router
from api.routes import tracker_script

SETTINGS = SimpleNamespace(
    write_key="wk_demo<&>", gateway_url="ws://127.0.0.1:8001", api_url="http://127.0.0.1:8000"
)


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()
    app.state.settings = SETTINGS
    app.include_router(router)
    app.include_router(tracker_script.router)
    with TestClient(app) as c:
        yield c


def page_data(html: str) -> str:
    m = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
    assert m
    return m.group(1)


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
