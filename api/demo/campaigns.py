"""The demo shop's popup campaigns, put through the campaigns admin API of a running Attimo.

Four campaigns that show each way a popup can be targeted and triggered on
the demo shop's pages: a welcome slide-in for new visitors (after a few
seconds or half a page), a bar for visitors who just became coffee lovers
(pushed into the page they are on), an exit-intent modal for visitors with
a cart, and a slide-in when the cart passes 60 €. `install` is idempotent
(PUT by id), so running it again resets them to these versions.

    python -m api.demo.campaigns      # against the running `attimo run`
"""

from __future__ import annotations

import logging
from typing import Any

from api.demo.admin_client import API_WAIT_S, admin_request, run_by_hand, run_or_warn

log = logging.getLogger("attimo.demo")


def demo_campaigns(shop_url: str) -> dict[str, dict[str, Any]]:
    """The campaigns by id, as the admin API takes them; links point into the shop at `shop_url`."""
    shop = shop_url.rstrip("/")
    return {
        "demo-welcome": {
            "name": "Welcome, new visitor (A/B with a 10 % holdout)",
            "layout": "slide_in",
            "triggers": [{"kind": "after", "seconds": 8}, {"kind": "scroll", "percent": 50}],
            "when": {"kind": "returning", "value": False},
            "holdout_percent": 10,
            "priority": 1,
            "variants": [
                {"id": "discount", "content": {
                    "title": "Benvenuto!", "text": "10 % off your first order.", "coupon": "BENVENUTO10",
                    "cta_label": "Browse the coffee", "cta_url": f"{shop}/category/coffee"}},
                {"id": "shipping", "content": {
                    "title": "Benvenuto!", "text": "Free shipping on your first order.", "coupon": "SPEDIZIONE",
                    "cta_label": "Browse the coffee", "cta_url": f"{shop}/category/coffee"}},
            ],
        },
        "demo-coffee-lovers": {
            "name": "Viewed coffee twice in half an hour",
            "layout": "bar",
            "triggers": [{"kind": "arrival"}],
            "when": {"kind": "count", "dimension": "category", "value": "coffee", "event": "Product Viewed",
                     "window_s": 1800, "op": "gte", "n": 2},
            "priority": 5,
            "variants": [{"id": "a", "content": {
                "title": "Coffee lover?", "text": "The Moka Pot is 15 % off today.", "coupon": "MOKA15",
                "cta_label": "See the Moka Pot", "cta_url": f"{shop}/product/p-moka-pot"}}],
        },
        "demo-cart-rescue": {
            "name": "Leaving with a cart",
            "layout": "modal",
            "triggers": [{"kind": "exit_intent"}],
            "when": {"kind": "cart", "min_value": 1},
            "priority": 10,
            "variants": [{"id": "a", "content": {
                "title": "Leaving already?", "text": "Your cart is saved. Free shipping if you order today.",
                "coupon": "SPEDIZIONE", "cta_label": "Back to my cart", "cta_url": f"{shop}/cart"}}],
        },
        "demo-free-shipping": {
            "name": "Cart over 60 €",
            "layout": "slide_in",
            "triggers": [{"kind": "cart_value", "amount": 60}],
            "priority": 3,
            "variants": [{"id": "a", "content": {
                "title": "Free shipping unlocked", "text": "Your cart is over 60 €: shipping is on us.",
                "cta_label": "Check out", "cta_url": f"{shop}/checkout"}}],
        },
    }


def install(api_url: str, admin_token: str, shop_url: str | None = None) -> list[str]:
    """PUT every demo campaign into the Attimo at `api_url`; returns the ids it took.

    Raises `OSError` (`urllib.error.URLError` / `HTTPError`) when the API
    cannot be reached or refuses one.
    """
    base = api_url.rstrip("/")
    done: list[str] = []
    for campaign_id, body in demo_campaigns(shop_url or base).items():
        admin_request(base, admin_token, "PUT", f"/v1/admin/campaigns/{campaign_id}", body)
        done.append(campaign_id)
    log.info("demo campaigns installed", extra={"campaigns": done, "api": base})
    return done


def install_or_warn(api_url: str, admin_token: str, wait_s: float = API_WAIT_S) -> bool:
    """`install`, logging a warning instead of raising (for `attimo demo`, which runs without them too)."""
    return run_or_warn(install, api_url, admin_token, what="campaigns", wait_s=wait_s, absent_ok=True,
                       hint="popups need them (python -m api.demo.campaigns)")


def main() -> None:
    """Install the demo campaigns into the `attimo run` whose settings this process finds."""
    run_by_hand(install, "campaigns")


if __name__ == "__main__":
    main()
