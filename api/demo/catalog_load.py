"""The demo shop's catalog, put through the catalog admin API of a running Attimo.

The twelve products of the demo shop (`api.demo_shop.catalog`) with their
names, categories, prices and page links, as a shop's back end would sync
its catalog: one bulk upsert. Recommendation strips then show these cards
(the simulated shoppers' other products are learned from their events).
Idempotent: loading again replaces the same records.

    python -m api.demo.catalog_load      # against the running `attimo run`
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any, Final

from api.demo_shop.catalog import PRODUCTS

log = logging.getLogger("attimo.demo")

HTTP_TIMEOUT_S: Final = 5.0
API_WAIT_S: Final = 15.0


def demo_products(shop_url: str) -> list[dict[str, Any]]:
    """The demo shop's products as the catalog API takes them; links point into the shop at `shop_url`."""
    shop = shop_url.rstrip("/")
    return [{"id": p.product_id, "name": p.name, "category": p.category, "price": p.price,
             "url": f"{shop}/product/{p.product_id}", "in_stock": True, "tags": [p.category]} for p in PRODUCTS]


def load(api_url: str, admin_token: str, shop_url: str | None = None) -> int:
    """Upsert the demo catalog into the Attimo at `api_url`; how many products it stored.

    Raises `OSError` (`urllib.error.URLError` / `HTTPError`) when the API
    cannot be reached or refuses the catalog.
    """
    base = api_url.rstrip("/")
    body = json.dumps({"products": demo_products(shop_url or base)}).encode()
    request = urllib.request.Request(f"{base}/v1/admin/catalog/products", method="POST", data=body)
    request.add_header("Authorization", f"Bearer {admin_token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
        stored = int(json.loads(response.read())["upserted"])
    log.info("demo catalog loaded", extra={"products": stored, "api": base})
    return stored


def load_or_warn(api_url: str, admin_token: str, wait_s: float = API_WAIT_S) -> bool:
    """`load`, logging a warning instead of raising (`attimo demo` runs without it too: events teach the cards).

    An API that does not answer yet (`attimo run --demo-shoppers` starts the
    demo beside it) is waited for up to `wait_s`; a refusal is not retried.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            load(api_url, admin_token)
            return True
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
        except OSError as exc:  # not answering (yet)
            if time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            error = str(exc)
        log.warning("demo catalog not loaded; strips show what events taught (python -m api.demo.catalog_load)",
                    extra={"error": error, "api": api_url})
        return False


def main() -> None:
    """Load the demo catalog into the `attimo run` whose settings this process finds."""
    from api.cli import use_dev_credentials
    from state.logs import configure_logging
    from state.settings import Settings

    configure_logging("demo")
    use_dev_credentials(create=False)
    settings = Settings()
    try:
        load(settings.api_url, settings.admin_token)
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"the catalog API refused the demo catalog: HTTP {exc.code} {exc.read()!r}") from None
    except OSError as exc:
        raise SystemExit(f"cannot reach Attimo at {settings.api_url}: {exc}") from None


if __name__ == "__main__":
    main()
