"""The demo shop's pages: a small Italian kitchen-goods shop that embeds the
tracker snippet, so a person (or a simulated shopper) can drive real events
through Attimo and watch decisions arrive live in `#attimo-decision`.

Settings are read per request from `request.app.state.settings`, so the shop
works inside whatever app includes the router, with that app's write key and
public URLs.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Annotated, Final, cast

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from api.demo_shop import catalog, render
from api.demo_shop.render import ShopSettings

# HTML pages are not part of the public API, so they stay out of OpenAPI.
router = APIRouter(tags=["demo shop"], include_in_schema=False, default_response_class=HTMLResponse)


WIDGETS: Final = Path(__file__).resolve().parents[2] / "tracker_js" / "dist" / "attimo-widgets.js"


def _settings(request: Request) -> ShopSettings:
    return cast(ShopSettings, request.app.state.settings)


@router.get("/")
def home(request: Request) -> HTMLResponse:
    """Product grid, one section per category."""
    sections = "".join(
        f'<section><h2><a href="/category/{escape(c.slug)}">{escape(c.name)}</a></h2>'
        f'<div class="grid">{"".join(render.card(p) for p in catalog.in_category(c.slug))}</div></section>'
        for c in catalog.CATEGORIES
    )
    html = render.page(
        _settings(request), name="home", title="Home", template="home.html", values={"sections": sections}
    )
    return HTMLResponse(html)


@router.get("/category/{slug}")
def category_page(request: Request, slug: str) -> HTMLResponse:
    """One shelf; sends `Product List Viewed`."""
    cat = catalog.category(slug)
    if cat is None:
        raise HTTPException(404, f"no category {slug!r}")
    products = catalog.in_category(slug)
    html = render.page(
        _settings(request),
        name="category",
        title=cat.name,
        template="category.html",
        values={"name": escape(cat.name), "cards": "".join(render.card(p) for p in products)},
        data={
            "category": {"slug": cat.slug, "name": cat.name},
            "products": [p.event_properties() for p in products],
        },
    )
    return HTMLResponse(html)


@router.get("/search")
def search_page(request: Request, q: Annotated[str, Query(max_length=200)] = "") -> HTMLResponse:
    """Search results; sends `Products Searched`."""
    found = catalog.search(q)
    summary = f"{len(found)} product(s) found." if q.strip() else "Type something to search."
    html = render.page(
        _settings(request),
        name="search",
        title="Search",
        template="search.html",
        query=q,
        values={
            "query": escape(q),
            "summary": escape(summary),
            "cards": "".join(render.card(p) for p in found),
        },
        data={"query": q},
    )
    return HTMLResponse(html)


@router.get("/product/{product_id}")
def product_page(request: Request, product_id: str) -> HTMLResponse:
    """One product with an "Add to cart" button; sends `Product Viewed`."""
    p = catalog.product(product_id)
    if p is None:
        raise HTTPException(404, f"no product {product_id!r}")
    cat = catalog.category(p.category)
    html = render.page(
        _settings(request),
        name="product",
        title=p.name,
        template="product.html",
        values={
            "name": escape(p.name),
            "sku": escape(p.sku),
            "price": f"{p.price:.2f}",
            "colour": escape(p.colour),
            "category": escape(p.category),
            "category_name": escape(cat.name if cat else p.category),
        },
        data={"product": p.event_properties()},
    )
    return HTMLResponse(html)


@router.get("/cart")
def cart_page(request: Request) -> HTMLResponse:
    """The cart (kept in the browser's localStorage); sends `Cart Viewed`."""
    return HTMLResponse(render.page(_settings(request), name="cart", title="Cart", template="cart.html"))


@router.get("/checkout")
def checkout_page(request: Request) -> HTMLResponse:
    """Checkout form; sends `Checkout Started`, then `Order Completed` on "Place order"."""
    return HTMLResponse(
        render.page(_settings(request), name="checkout", title="Checkout", template="checkout.html")
    )


@router.get("/signup")
def signup_page(request: Request) -> HTMLResponse:
    """Sign-up form; sends identify + `Signed Up` + `Form Submitted`."""
    return HTMLResponse(
        render.page(
            _settings(request),
            name="signup",
            title="Sign up",
            template="signup.html",
            values=render.signup_options(),
        )
    )


@router.get("/product-image/{product_id}.svg", response_class=Response)
def product_image(product_id: str) -> Response:
    """A product's picture for recommendation cards: its colour swatch and initials, as SVG.

    Cards only show http(s) images, so the demo's products need a URL for
    theirs (the pages draw the same swatch with CSS). Made from the fixed
    catalog only, never from the request.
    """
    p = catalog.product(product_id)
    if p is None:
        raise HTTPException(404, f"no product {product_id!r}")
    initials = "".join(word[0] for word in p.name.split()[:2] if word[0].isalnum()).upper()
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="240" height="240" viewBox="0 0 240 240">'
        f'<rect width="240" height="240" fill="{escape(p.colour)}"/>'
        '<text x="120" y="138" font-family="sans-serif" font-size="56" text-anchor="middle" '
        f'fill="#fff" fill-opacity=".85">{escape(initials)}</text></svg>'
    )
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/tracker-widgets.js", response_class=Response)
def tracker_widgets() -> Response:
    """The tracker's popups and strips, which `/tracker.js` loads on pages that need them.

    The tracker looks for it next to itself (`/tracker.js` -> `/tracker-widgets.js`).
    It belongs beside `/tracker.js` in `api/routes/tracker_script.py`; it is
    served from here until that route serves it (the same file, the same caching).
    """
    try:
        body = WIDGETS.read_bytes()
    except FileNotFoundError:
        return PlainTextResponse("// attimo widgets are not built: run tracker_js/build.sh\n", status_code=503,
                                 media_type="application/javascript", headers={"Cache-Control": "no-store"})
    return Response(body, media_type="application/javascript", headers={"Cache-Control": "public, max-age=300"})
