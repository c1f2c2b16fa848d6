"""Server-side rendering for the demo shop: string.Template files, escaped values.

Templates are read once per process (they ship with the package and never
change while it runs); every value that comes from the catalog, the query
string or the settings is HTML-escaped here, so the templates stay dumb.
"""

from __future__ import annotations

import json
from functools import cache
from html import escape
from pathlib import Path
from string import Template
from typing import Any, Protocol

from api.demo_shop import catalog
from api.demo_shop.catalog import Product

HERE = Path(__file__).resolve().parent
PROVINCES = ("Milano", "Roma", "Torino", "Napoli", "Bologna", "Firenze", "Venezia", "Palermo")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")


class ShopSettings(Protocol):
    """What the pages need to embed the tracker snippet."""

    write_key: str
    gateway_url: str
    api_url: str


@cache
def _template(name: str) -> Template:
    return Template((HERE / "templates" / name).read_text(encoding="utf-8"))


@cache
def _static(name: str) -> str:
    return (HERE / "static" / name).read_text(encoding="utf-8")


# JSON writes these only inside strings, where a \u escape means the same character.
_SCRIPT_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _json_for_script(value: Any) -> str:
    """JSON that stays inert text inside a <script> element, whatever strings it holds.

    Escaping `</` alone is not enough: after `<!--`, the HTML parser reads
    `<script` as opening a nested section that swallows the element's real
    end tag, and with it every script after it on the page (`/search?q=<!--<script>`
    stopped the shop's own). With no `<`, `>` or `&` left the parser sees only
    text; U+2028 / U+2029 are escaped too, so the same text is also a valid
    JavaScript literal should a page ever inline it.
    """
    return json.dumps(value).translate(_SCRIPT_SAFE)


def _options(values: tuple[str, ...] | list[str]) -> str:
    return "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)


def card(p: Product) -> str:
    """One product tile linking to its page."""
    return (
        f'<a class="card" href="/product/{escape(p.product_id)}" data-product-id="{escape(p.product_id)}">'
        f'<div class="swatch" style="background:{escape(p.colour)}"></div>'
        f"<strong>{escape(p.name)}</strong><br>€ {p.price:.2f}</a>"
    )


def page(
    settings: ShopSettings,
    *,
    name: str,
    title: str,
    template: str,
    values: dict[str, str] | None = None,
    data: dict[str, Any] | None = None,
    query: str = "",
) -> str:
    """A full HTML page: the layout with the snippet around one content template.

    `values` are already-safe HTML fragments for the content template; `data`
    is handed to the page's script as JSON (it is what the events carry).
    """
    nav = "".join(f'<a href="/category/{escape(c.slug)}">{escape(c.name)}</a>' for c in catalog.CATEGORIES)
    content = _template(template).substitute(values or {})
    return _template("base.html").substitute(
        title=escape(title),
        css=_static("shop.css"),
        js=_static("shop.js"),
        write_key=escape(settings.write_key),
        gateway_url=escape(settings.gateway_url),
        api_url=escape(settings.api_url),
        page=escape(name),
        nav=nav,
        query=escape(query),
        content=content,
        page_data=_json_for_script({"page": name, **(data or {})}),
    )


def signup_options() -> dict[str, str]:
    """The <option> lists of the sign-up form."""
    return {
        "provinces": _options(PROVINCES),
        "age_bands": _options(AGE_BANDS),
        "interests": _options([c.slug for c in catalog.CATEGORIES]),
    }
