"""A shopper in real headless Chromium, against the real running stack."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from state.decisions import PublicDecisions
from state.profile import Profile
from tests.e2e.conftest import Stack
from tests.helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def anonymous_id_of(page: Any) -> str:
    """The visitor's id as the tracker stored it (first-party cookie)."""
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return str(cookies["attimo_aid"])


def profile_of(stack: Stack, contact_id: str) -> Profile | None:
    status, body = stack.get(f"/v1/contacts/{contact_id}", admin=True)
    return msgspec.json.decode(body, type=Profile) if status == 200 else None


class TestLiveProfile:
    """What a visitor does shows up in their profile within a second."""

    def test_add_to_cart_on_a_product_page_is_in_the_profile_within_one_second(
            self, running_stack: Stack, browser: Any) -> None:
        """Load a product page, add to cart: cart and counters visible through the API in ≤ 1 s."""
        context = browser.new_context()
        page = context.new_page()
        try:
            page.goto(running_stack.api_url + "/")
            page.locator("a[href^='/product/']").first.click()
            page.wait_for_selector("#add-to-cart")
            anonymous_id = wait_for(lambda: page.context.cookies() and anonymous_id_of(page), 5,
                                    "the tracker to set its cookie")
            wait_for(lambda: (p := profile_of(running_stack, anonymous_id)) is not None
                     and p.counters.product_views == 1, 10, "the product view to be counted")
            # Count the decisions pushed from here on (the page view before may have pushed one already).
            page.evaluate("window.__pushes = 0; attimo('on', 'decision', () => { window.__pushes += 1 })")
            clicked_at = time.monotonic()
            page.click("#add-to-cart")
            profile = wait_for(
                lambda: (p := profile_of(running_stack, anonymous_id)) is not None and p.cart and p,
                timeout=5, what="the cart to appear in the profile", interval=0.02)
            elapsed = time.monotonic() - clicked_at
            # The changed decision is pushed over the page's own websocket and shown.
            page.wait_for_function("() => window.__pushes > 0", timeout=2000)
        finally:
            context.close()
        assert elapsed <= 1.0, f"cart visible after {elapsed:.3f} s"
        assert profile.counters.cart_adds == 1
        assert profile.counters.page_views == 2  # home, product
        assert profile.counters.product_views == 1
        assert len(profile.cart) == 1 and profile.cart[0].quantity == 1
        assert profile.cart_value == profile.cart[0].price > 0
        assert profile.score > 0
        status, body = running_stack.get(f"/v1/decisions/{anonymous_id}?key={running_stack.write_key}")
        assert status == 200
        msgspec.json.decode(body, type=PublicDecisions)
        # What widgets get is public: the cart's value, score and segments stay in the profile.
        assert b"cart_value" not in body and b"score" not in body and b"segments" not in body
