"""The product catalog: what the admin API stores and what events teach about products.

A product has two sources, kept apart so that neither overwrites the other:

- the **admin** record (`Product`), sent by the shop through the admin API —
  the source of truth for every field it sets;
- the **learned** fields (`LearnedFields`), read by the dataflow from the
  properties of `Product Viewed` / `Product Added` / `Order Completed`
  events (name, category, price, `image_url`, `url`), so that a shop that
  never syncs its catalog still gets product cards in its strips.

`merged` combines them: an admin field wins whenever it is set, a learned
one only fills a gap; a product known only from events is in stock and has
no tags. Both are stored under `keys.product(id)` as the two fields of one
hash (`admin`, `learned`), each written by its own writer (the API, the
dataflow), so the two never race on one value.

Bounds follow the event bounds (`state.validation`): ids as long as event
ids and without control characters, names as long as the `name` key
property, amounts finite and below the same ceiling, image and page links
http(s) only, since a widget renders them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import msgspec

from state.decisions import HttpUrl, ProductCard

MAX_NAME: Final = 1024
MAX_CATEGORY: Final = 200
MAX_TAGS: Final = 50
MAX_PRICE: Final = 1e12
"""The same ceiling as any amount an event may carry (`state.validation.MAX_AMOUNT`)."""

ProductId = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
"""A product id: what events carry as `product_id` / `sku` (200 characters at most, no control characters)."""
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME)]
Category = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CATEGORY)]
Price = Annotated[float, msgspec.Meta(ge=0, le=MAX_PRICE)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Source = Literal["admin", "events"]

_HTTP_URL: Final = re.compile(r"^https?://[^\s<>\"']+$")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


class Product(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A catalog product as the admin API takes it (and shows it, merged with what events taught)."""

    id: ProductId
    name: Name
    category: Category | None = None
    price: Price | None = None
    image: HttpUrl | None = None
    url: HttpUrl | None = None
    in_stock: bool = True
    tags: Annotated[list[Tag], msgspec.Meta(max_length=MAX_TAGS)] = msgspec.field(default_factory=list)


class LearnedFields(msgspec.Struct, frozen=True, omit_defaults=True):
    """What e-commerce events said about a product (each field already checked, `None` when not said)."""

    name: str | None = None
    category: str | None = None
    price: float | None = None
    image: str | None = None
    url: str | None = None

    def is_empty(self) -> bool:
        """Whether the events said nothing usable."""
        return self == _NOTHING_LEARNED


_NOTHING_LEARNED: Final = LearnedFields()


class CatalogProduct(msgspec.Struct, frozen=True, omit_defaults=True):
    """A product as the admin API lists it: merged, and where its fields came from.

    `source` is `admin` when the shop sent the product (learned fields may
    still fill gaps it left), `events` when only events described it.
    """

    product: Product
    source: Source
    learned: LearnedFields | None = None


def _text(value: Any, limit: int) -> str | None:
    if isinstance(value, bool):
        return None
    text = str(value) if isinstance(value, int | float) else value
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not text or len(text) > limit or _CONTROL.search(text):
        return None
    return text


def _url(value: Any) -> str | None:
    if isinstance(value, str) and len(value) <= 2048 and _HTTP_URL.match(value):
        return value
    return None


def _price(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    price = float(value)
    return price if math.isfinite(price) and 0 <= price <= MAX_PRICE else None


def learned_from(properties: Mapping[str, Any]) -> LearnedFields | None:
    """The product fields an event's properties (or one element of an order's `products`) carry.

    Segment's e-commerce spec names: `name`, `category`, `price`,
    `image_url`, `url`. A value that does not fit (a link that is not
    http(s), a name with control characters, a negative price …) is left
    out, never stored: events are the shop's page data, not a curated catalog.
    """
    learned = LearnedFields(
        name=_text(properties.get("name"), MAX_NAME),
        category=_text(properties.get("category"), MAX_CATEGORY),
        price=_price(properties.get("price")),
        image=_url(properties.get("image_url")),
        url=_url(properties.get("url")),
    )
    return None if learned.is_empty() else learned


def merged(product_id: str, admin: Product | None, learned: LearnedFields | None) -> Product | None:
    """The product as strips and listings show it: admin fields, gaps filled from events.

    None when neither source names it (a product with no name cannot be shown).
    """
    if admin is None:
        if learned is None or learned.name is None:
            return None
        return Product(id=product_id, name=learned.name, category=learned.category, price=learned.price,
                       image=learned.image, url=learned.url)
    if learned is None:
        return admin
    return Product(
        id=admin.id,
        name=admin.name,
        category=admin.category if admin.category is not None else learned.category,
        price=admin.price if admin.price is not None else learned.price,
        image=admin.image if admin.image is not None else learned.image,
        url=admin.url if admin.url is not None else learned.url,
        in_stock=admin.in_stock,
        tags=admin.tags,
    )


def card_of(product: Product) -> ProductCard:
    """The card a strip shows for a product."""
    return ProductCard(id=product.id, name=product.name, price=product.price, category=product.category,
                       image=product.image, url=product.url)


_product_encoder: Final = msgspec.json.Encoder()
_product_decoder: Final = msgspec.json.Decoder(Product)
_learned_decoder: Final = msgspec.json.Decoder(LearnedFields)


def encode_product(product: Product | LearnedFields) -> bytes:
    """A product record or learned fields as stored (JSON)."""
    return _product_encoder.encode(product)


def decode_product(raw: bytes) -> Product:
    """A stored admin record."""
    return _product_decoder.decode(raw)


def decode_learned(raw: bytes) -> LearnedFields:
    """Stored learned fields."""
    return _learned_decoder.decode(raw)
