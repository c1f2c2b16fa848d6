"""A shopper's journey through the demo shop, in Chromium, sends the e-commerce events."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from api.demo_shop import catalog, router
from api.routes import tracker_script
from tests.helpers import free_port
from tests.tracker_js.decisions_data import ExitIntent, decisions, popup, product
from tests.tracker_js.harness import FakeGateway, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def shop_decisions() -> dict[str, Any]:
    """What the shop's stand-in decisions route answers (a test may change it)."""
    return {"popups": [], "recommendations": {}, "public": {}}


@pytest.fixture
def shop(gateway: FakeGateway, tracker_dist: Any, shop_decisions: dict[str, Any]) -> Iterator[str]:
    """The demo shop and /tracker.js served by uvicorn, pointed at the fake gateway, with a decisions route."""
    port = free_port()
    app = FastAPI()

    @app.get("/v1/decisions/{visitor_id:path}")
    def decisions_read(visitor_id: str) -> dict[str, Any]:
        return shop_decisions

    app.state.settings = SimpleNamespace(
        write_key="wk_shop", gateway_url=gateway.url, api_url=f"http://127.0.0.1:{port}"
    )
    app.include_router(router)
    app.include_router(tracker_script.router)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def tracks(gateway: FakeGateway) -> dict[str, dict[str, Any]]:
    return {e["event"]: e for e in gateway.events() if e["type"] == "track"}


class TestShopperJourney:
    def test_view_add_checkout_and_order_send_the_ecommerce_events(
        self, page: Any, shop: str, gateway: FakeGateway
    ) -> None:
        """Viewing, adding, checking out and ordering send the Segment e-commerce events."""
        p = catalog.PRODUCTS[3]
        page.goto(f"{shop}/product/{p.product_id}")
        page.click("#add-to-cart")
        wait_until(lambda: "Product Added" in tracks(gateway), what="Product Added")
        added = tracks(gateway)["Product Added"]["properties"]
        assert added["product_id"] == p.product_id and added["quantity"] == 1 and added["cart_id"]
        viewed = tracks(gateway)["Product Viewed"]["properties"]
        assert viewed == p.event_properties() | {
            "url": f"{shop}/product/{p.product_id}", "image_url": f"{shop}/product-image/{p.product_id}.svg"}

        page.goto(f"{shop}/cart")
        page.click("#checkout")
        page.wait_for_url(f"{shop}/checkout")
        page.fill("input[name=email]", "ada@example.com")
        page.fill("input[name=name]", "Ada")
        page.click("#place-order")
        wait_until(lambda: "Order Completed" in tracks(gateway), what="Order Completed")
        order = tracks(gateway)["Order Completed"]
        assert order["properties"]["revenue"] == p.price and order["properties"]["order_id"]
        assert order["userId"] == "ada@example.com"
        assert {"Cart Viewed", "Checkout Started"} <= set(tracks(gateway))
        assert page.evaluate("localStorage.getItem('demo_cart')") is None

    def test_signup_identifies_and_sends_signed_up_and_form_submitted(
        self, page: Any, shop: str, gateway: FakeGateway
    ) -> None:
        """Submitting the sign-up form identifies the visitor with traits and tracks two events."""
        page.goto(f"{shop}/signup")
        page.fill("input[name=email]", "bo@example.com")
        page.fill("input[name=name]", "Bo")
        page.select_option("select[name=province]", "Roma")
        page.click("#signup-submit")
        wait_until(lambda: {"Signed Up", "Form Submitted"} <= set(tracks(gateway)), what="sign-up events")
        identify = next(e for e in gateway.events() if e["type"] == "identify")
        assert identify["userId"] == "bo@example.com" and identify["traits"]["province"] == "Roma"

    def test_a_pushed_decision_is_shown_in_the_page(self, page: Any, shop: str, gateway: FakeGateway) -> None:
        """The #attimo-decision panel shows the last decision the gateway pushed."""
        page.goto(f"{shop}/")
        gateway.wait_for_events(1)
        gateway.push({"decision": {"public": {"temperature": "warm"}}})
        page.wait_for_function("document.getElementById('attimo-decision').textContent.includes('warm')")


class TestWidgetsInTheShop:
    def test_a_product_page_shows_its_strips_and_a_pushed_exit_popup_live(
        self, page: Any, shop: str, gateway: FakeGateway, shop_decisions: dict[str, Any]
    ) -> None:
        """Cross-sell and up-sell strips for the product on screen (headings hidden while empty), then an
        exit-intent popup pushed mid-page: the widgets come from /tracker-widgets.js, images from the shop."""
        p, other = catalog.PRODUCTS[0], catalog.PRODUCTS[1]
        page.goto(f"{shop}/product/{p.product_id}")
        gateway.wait_for_events(2)
        page.wait_for_selector("#recs-cross[data-attimo-count='0']", state="attached")
        assert not page.is_visible("#recs-cross")  # no cards yet: the section is hidden
        card = product(1, id=other.product_id, name=other.name, price=other.price,
                       image=f"{shop}/product-image/{other.product_id}.svg", url=f"{shop}/product/{other.product_id}")
        doc = decisions(
            popup("exit-offer", triggers=[ExitIntent()], text="Free shipping today", coupon="SPEDIZIONE"),
            recommendations={"cross_sell": [card], "up_sell": []})
        shop_decisions.update(doc)  # the page reads again for its product when told of a change
        gateway.push({"decision": doc})
        page.wait_for_selector("#recs-cross .attimo-card")
        assert page.is_visible("text=Often bought together") and not page.is_visible("text=A step up")
        price = page.text_content("#recs-cross .attimo-price").replace("\u00a0", " ")
        assert price == f"{other.price:.2f} €".replace(".", ",")
        assert page.evaluate("document.querySelector('#recs-cross img').naturalWidth") == 240
        page.mouse.move(400, 300)
        page.mouse.move(400, -10)
        page.wait_for_selector("[role=dialog] >> text=Free shipping today")
        wait_until(lambda: "Popup Shown" in tracks(gateway), what="Popup Shown")
