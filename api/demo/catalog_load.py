"""The demo shop's catalog, put through the catalog admin API of a running Attimo.

The twelve products of the demo shop (`api.demo_shop.catalog`) with their
names, categories, prices and page links, as a shop's back end would sync
its catalog: one bulk upsert. Recommendation strips then show these cards
(the simulated shoppers' other products are learned from their events).
Idempotent: loading again replaces the same records.

    python -m api.demo.catalog_load      # against the running `attimo run`
"""

from __future__ import annotations

import logging
from typing import Any

from api.demo.admin_client import API_WAIT_S, admin_request, run_by_hand, run_or_warn
from api.demo_shop.catalog import PRODUCTS

log = logging.getLogger("attimo.demo")


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
    answer = admin_request(base, admin_token, "POST", "/v1/admin/catalog/products",
                           {"products": demo_products(shop_url or base)})
    stored = int(answer["upserted"])
    log.info("demo catalog loaded", extra={"products": stored, "api": base})
    return stored


def load_or_warn(api_url: str, admin_token: str, wait_s: float = API_WAIT_S) -> bool:
    """`load`, logging a warning instead of raising (`attimo demo` runs without it too: events teach the cards)."""
    return run_or_warn(load, api_url, admin_token, what="catalog", wait_s=wait_s,
                       hint="strips show what events taught (python -m api.demo.catalog_load)")


def main() -> None:
    """Load the demo catalog into the `attimo run` whose settings this process finds."""
    run_by_hand(load, "catalog")


if __name__ == "__main__":
    main()
