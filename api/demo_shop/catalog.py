"""The demo shop's catalog: a small, fixed set of products in four categories.

It is plain data in a module (not a database) because the demo pages, the
tests and the simulated shoppers all need the same products, and importing
one module is the simplest way for them to agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Category:
    """A shelf of the shop; `slug` appears in URLs and in events."""

    slug: str
    name: str


@dataclass(frozen=True, slots=True)
class Product:
    """One product as the Segment e-commerce events describe it."""

    product_id: str
    sku: str
    name: str
    category: str  # a Category.slug
    price: float
    colour: str  # CSS colour of the placeholder "image"

    def event_properties(self) -> dict[str, Any]:
        """The product fields every e-commerce event carries (spec names)."""
        props = asdict(self)
        del props["colour"]
        return props


CATEGORIES: tuple[Category, ...] = (
    Category("coffee", "Coffee"),
    Category("pantry", "Pantry"),
    Category("ceramics", "Ceramics"),
    Category("linens", "Linens"),
)

PRODUCTS: tuple[Product, ...] = (
    Product("p-espresso-blend", "COF-001", "Espresso Blend 500 g", "coffee", 14.5, "#6f4e37"),
    Product("p-moka-pot", "COF-002", "Moka Pot, 6 cups", "coffee", 34.0, "#9aa1a6"),
    Product("p-decaf-beans", "COF-003", "Decaf Beans 250 g", "coffee", 9.9, "#8b5a2b"),
    Product("p-olive-oil", "PAN-001", "Extra Virgin Olive Oil 1 l", "pantry", 18.0, "#808000"),
    Product("p-pasta-box", "PAN-002", "Bronze-cut Pasta Box", "pantry", 12.5, "#e8c872"),
    Product("p-balsamic", "PAN-003", "Balsamic Vinegar 250 ml", "pantry", 22.0, "#4b2e2a"),
    Product("p-serving-bowl", "CER-001", "Hand-painted Serving Bowl", "ceramics", 48.0, "#1f6fb2"),
    Product("p-espresso-cups", "CER-002", "Espresso Cups, set of 4", "ceramics", 26.0, "#d94f30"),
    Product("p-olive-dish", "CER-003", "Olive Dish", "ceramics", 15.0, "#f2e8cf"),
    Product("p-tablecloth", "LIN-001", "Linen Tablecloth", "linens", 65.0, "#c9b79c"),
    Product("p-napkins", "LIN-002", "Linen Napkins, set of 6", "linens", 29.0, "#a3b18a"),
    Product("p-apron", "LIN-003", "Kitchen Apron", "linens", 24.0, "#588157"),
)

_BY_ID = {p.product_id: p for p in PRODUCTS}
_CATEGORY_BY_SLUG = {c.slug: c for c in CATEGORIES}


def product(product_id: str) -> Product | None:
    """The product with this id, or None."""
    return _BY_ID.get(product_id)


def category(slug: str) -> Category | None:
    """The category with this slug, or None."""
    return _CATEGORY_BY_SLUG.get(slug)


def in_category(slug: str) -> list[Product]:
    """The products on one shelf, in catalog order."""
    return [p for p in PRODUCTS if p.category == slug]


def search(query: str) -> list[Product]:
    """Products whose name, sku or category contains the query (case-insensitive)."""
    q = query.strip().lower()
    if not q:
        return []
    return [p for p in PRODUCTS if q in p.name.lower() or q in p.sku.lower() or q in p.category]
