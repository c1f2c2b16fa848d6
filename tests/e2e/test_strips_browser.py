"""Recommendation strips on the real stack, in headless Chromium: the catalog through the admin API,
co-occurrence streamed by the dataflow's products stage, strips composed by the decisions API and
drawn by the tracker on the demo shop's pages.

What the tracker does with strips it is handed is tested without the stack
in `tests/tracker_js/test_strips.py`.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from api.demo_shop import catalog
from tests.e2e.conftest import Stack
from tests.e2e.test_popups_browser import call, stack, visitor
from tests.helpers import wait_for

__all__ = ["stack", "visitor"]  # the module's fixtures, shared with the popup tests

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(20)]


def catalog_products(stack: Stack) -> list[dict[str, Any]]:
    """The demo shop's products as the admin catalog takes them, with the shop's links and pictures."""
    return [{"id": p.product_id, "name": p.name, "category": p.category, "price": p.price,
             "image": f"{stack.api_url}/product-image/{p.product_id}.svg",
             "url": f"{stack.api_url}/product/{p.product_id}"} for p in catalog.PRODUCTS]


def send(stack: Stack, events: list[dict[str, Any]]) -> None:
    """Events through the Segment HTTP API, as a shop's back end (or other shoppers) would send them."""
    now = datetime.now(UTC).isoformat()
    batch = [{"messageId": str(uuid.uuid4()), "timestamp": now, "type": "track"} | e for e in events]
    status, body = call(stack, "POST", "/v1/batch", {"batch": batch, "writeKey": stack.write_key}, admin=False)
    assert status == 200, body


def order(anonymous_id: str, *product_ids: str) -> dict[str, Any]:
    products = [catalog.product(pid).event_properties() | {"quantity": 1}  # type: ignore[union-attr]
                for pid in product_ids]
    return {"anonymousId": anonymous_id, "event": "Order Completed",
            "properties": {"order_id": f"o-{uuid.uuid4().hex[:8]}", "products": products,
                           "revenue": sum(p["price"] for p in products), "currency": "EUR"}}


def cross_sell_ids(stack: Stack, product_id: str) -> list[str]:
    """What the decisions API offers as "bought together" for a product (to a visitor with no state)."""
    status, body = call(stack, "GET", f"/v1/decisions/nobody?key={stack.write_key}&product={product_id}",
                        admin=False)
    assert status == 200, body
    return [card["id"] for card in body["recommendations"]["cross_sell"]]


def strip_names(page: Any, selector: str) -> list[str]:
    return list(page.evaluate(
        "(s) => [...document.querySelectorAll(s + ' .attimo-name')].map((e) => e.textContent)", selector))


class TestCoPurchase:
    def test_a_cross_sell_strip_changes_on_the_page_after_a_new_co_purchase_pattern_is_streamed(
        self, stack: Stack, visitor: Callable[..., Any]
    ) -> None:
        """On the olive dish's page the apron is not "bought together"; five shoppers buy both; the
        visitor adds the dish to the cart and the strip, read again for the product, shows the apron
        within 5 s of the last order."""
        status, answer = call(stack, "POST", "/v1/admin/catalog/products", {"products": catalog_products(stack)})
        assert status == 200, answer
        # The shop's history: other products bought in pairs (a pattern only stands out against others).
        others = ["p-espresso-blend", "p-moka-pot", "p-pasta-box", "p-olive-oil", "p-napkins", "p-balsamic"]
        send(stack, [order(f"earlier-{uuid.uuid4()}", a, b) for a, b in itertools.combinations(others, 2)])
        dish, apron = catalog.product("p-olive-dish"), catalog.product("p-apron")
        assert dish is not None and apron is not None
        page = visitor()
        page.goto(f"{stack.api_url}/product/{dish.product_id}")
        page.wait_for_selector("#recs-cross[data-attimo-count]", state="attached")
        assert apron.name not in strip_names(page, "#recs-cross")

        send(stack, [order(f"shopper-{uuid.uuid4()}", dish.product_id, apron.product_id) for _ in range(5)])
        streamed = time.monotonic()
        wait_for(lambda: cross_sell_ids(stack, dish.product_id)[:1] == [apron.product_id], 5,
                 "the pattern in the dish's cross-sell")
        page.click("#add-to-cart")  # the visitor's decisions change: pushed, and read again for the product
        page.wait_for_function("(n) => [...document.querySelectorAll('#recs-cross .attimo-name')]"
                               ".some((e) => e.textContent === n)", arg=apron.name)
        elapsed = time.monotonic() - streamed
        assert strip_names(page, "#recs-cross")[0] == apron.name
        assert page.get_attribute("#recs-cross .attimo-card", "href") == f"{stack.api_url}/product/p-apron"
        assert elapsed <= 5.0, f"the strip changed {elapsed:.2f} s after the orders"


class TestInertNames:
    def test_markup_in_a_catalog_name_is_shown_as_text_in_a_trending_strip(
        self, stack: Stack, visitor: Callable[..., Any]
    ) -> None:
        """A product named with HTML, made trending by other shoppers' views, shows its name literally."""
        name = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
        product = {"id": "p-xss", "name": name, "category": "ceramics", "price": 9.0,
                   "url": f"{stack.api_url}/product/p-xss"}
        status, answer = call(stack, "POST", "/v1/admin/catalog/products", {"products": [product]})
        assert status == 200, answer
        send(stack, [{"anonymousId": f"viewer-{i}", "event": "Product Viewed",
                      "properties": {"product_id": "p-xss", "category": "ceramics", "price": 9.0}}
                     for i in range(30)])
        wait_for(lambda: "p-xss" in [c["id"] for c in call(stack, "GET", f"/v1/decisions/new?key={stack.write_key}",
                                                             admin=False)[1]["recommendations"]["trending"]],
                 5, "the product to trend")
        page = visitor()
        page.goto(f"{stack.api_url}/")
        page.evaluate("attimo('recommendations', '#recs-personal', {strip: 'trending', limit: 20})")
        page.wait_for_function("(n) => [...document.querySelectorAll('#recs-personal .attimo-name')]"
                               ".some((e) => e.textContent === n)", arg=name)
        assert page.query_selector("#recs-personal img[src='x'], #recs-personal script") is None
        assert page.evaluate("window.__xss") is None
