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

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any, Final

log = logging.getLogger("attimo.demo")

HTTP_TIMEOUT_S: Final = 5.0
API_WAIT_S: Final = 15.0


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
        request = urllib.request.Request(f"{base}/v1/admin/campaigns/{campaign_id}", method="PUT",
                                         data=json.dumps(body).encode())
        request.add_header("Authorization", f"Bearer {admin_token}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S):
            done.append(campaign_id)
    log.info("demo campaigns installed", extra={"campaigns": done, "api": base})
    return done


def install_or_warn(api_url: str, admin_token: str, wait_s: float = API_WAIT_S) -> bool:
    """`install`, logging a warning instead of raising (for `attimo demo`, which runs without them too).

    An API that does not answer yet (`attimo run --demo-shoppers` starts the
    demo beside it) is waited for up to `wait_s`; a refusal is not retried.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            install(api_url, admin_token)
            return True
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # an Attimo without the campaigns API: nothing to install into
                log.info("no campaigns API; demo popups not installed", extra={"api": api_url})
                return False
            error = f"HTTP {exc.code}"
        except OSError as exc:  # not answering (yet)
            if time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            error = str(exc)
        log.warning("demo campaigns not installed; popups need them (python -m api.demo.campaigns)",
                    extra={"error": error, "api": api_url})
        return False


def main() -> None:
    """Install the demo campaigns into the `attimo run` whose settings this process finds."""
    from api.cli import use_dev_credentials
    from state.logs import configure_logging
    from state.settings import Settings

    configure_logging("demo")
    use_dev_credentials(create=False)
    settings = Settings()
    try:
        install(settings.api_url, settings.admin_token)
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"the campaigns API refused a demo campaign: HTTP {exc.code} {exc.read()!r}") from None
    except OSError as exc:
        raise SystemExit(f"cannot reach Attimo at {settings.api_url}: {exc}") from None


if __name__ == "__main__":
    main()
