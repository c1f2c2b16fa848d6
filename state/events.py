"""The event schema: Segment Spec messages as frozen msgspec Structs.

One tagged union on `type` is decoded by the gateway, the HTTP API and the
dataflow alike, so a Segment or RudderStack client works unchanged and all
three parts agree on what an event is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from state.catalog import Product

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
OptionalText = Annotated[str, msgspec.Meta(max_length=1024)] | None
Fields = dict[str, Any]
Trust = Literal["server", "verified", "browser"]
"""How far an event's ids are believed, marked by the ingest (`api.identity_mark`), never by the client:

- `server`: sent with the site's secret key (its back end);
- `verified`: from a browser, its `userId` proved by the user's signature (or the key trusts browsers);
- `browser`: from a browser, its `userId` (if any) unproved — the dataflow keeps it on the anonymous
  visitor and its traits never overwrite a known contact's.
An event without a mark was not sent through the public ingest (the admin API, tools): trusted.
"""
SERVER: Final = "server"
VERIFIED: Final = "verified"
BROWSER: Final = "browser"


class _Message(
    msgspec.Struct,
    frozen=True,
    tag_field="type",
    rename="camel",
    omit_defaults=True,
    kw_only=True,
):
    """Fields every Segment message has."""

    message_id: Id | None = None
    anonymous_id: Id | None = None
    user_id: Id | None = None
    timestamp: datetime | None = None
    original_timestamp: datetime | None = None
    sent_at: datetime | None = None
    received_at: datetime | None = None
    context: Fields = msgspec.field(default_factory=dict)
    integrations: Fields = msgspec.field(default_factory=dict)
    # Set by the ingest only: a client's `trust` is discarded at validation (`state.validation`).
    trust: Trust | None = None



class Page(_Message, frozen=True, tag="page"):
    """A page was viewed."""

    name: OptionalText = None
    category: OptionalText = None
    properties: Fields = msgspec.field(default_factory=dict)


class Screen(_Message, frozen=True, tag="screen"):
    """A mobile screen was viewed; treated like a page."""

    name: OptionalText = None
    category: OptionalText = None
    properties: Fields = msgspec.field(default_factory=dict)


class Track(_Message, frozen=True, tag="track"):
    """Something the visitor did, named by `event` (e-commerce spec names)."""

    event: Name
    properties: Fields = msgspec.field(default_factory=dict)


class Identify(_Message, frozen=True, tag="identify"):
    """Who the visitor is: links ids and sets traits."""

    traits: Fields = msgspec.field(default_factory=dict)


class Alias(_Message, frozen=True, tag="alias"):
    """Declares that `previous_id` and `user_id` are the same person."""

    previous_id: Id


class Group(_Message, frozen=True, tag="group"):
    """The visitor belongs to a company or account."""

    group_id: Id
    traits: Fields = msgspec.field(default_factory=dict)


Event = Page | Screen | Track | Identify | Alias | Group
EVENT_TYPES: Final = {"page": Page, "screen": Screen, "track": Track,
                      "identify": Identify, "alias": Alias, "group": Group}


# ---- internal events: written by the admin API only ---------------------------
#
# The admin API cannot write dataflow state directly (it would race the
# dataflow and vanish at the next profile write), so it appends these to the
# contact's stream and the dataflow applies them in order with everything
# else. They are their own message types, not track names: the public
# decoder (`Event`) does not know their `type`, so no client holding a write
# key can send one.

class TagsChanged(_Message, frozen=True, tag="attimo.tags"):
    """Add and remove tags on one contact (a tag never appears in both)."""

    add: list[str] = msgspec.field(default_factory=list)
    remove: list[str] = msgspec.field(default_factory=list)


class ListChanged(_Message, frozen=True, tag="attimo.list"):
    """Make the contact a member of list `list_id`, or not."""

    list_id: str
    member: bool = True


class WorkflowEntry(_Message, frozen=True, tag="attimo.enter"):
    """Enter the contact into `workflow` (manual entry through the admin API)."""

    workflow: str


class CatalogChanged(_Message, frozen=True, tag="attimo.catalog"):
    """The admin API upserted catalog product `product_id` (`product` is the new record) or deleted it (None).

    Not a contact's event: the dataflow takes it off the stream before the
    visitor stage and hands it to every shard of the products stage, so that
    recommendation cards follow the catalog (`dataflows.recommendations`).
    """

    product_id: str
    product: Product | None = None


InternalEvent = TagsChanged | ListChanged | WorkflowEntry | CatalogChanged
StreamEvent = Event | InternalEvent
"""What an ingest stream entry holds: client events and the admin API's internal ones."""


def routing_id(event: StreamEvent) -> str:
    """The id that decides an event's shard: the device first, then the user.

    Events of one browser always carry the same anonymous id, so they stay in
    order on one shard; server-side events that only know the user id route
    by it.
    """
    if isinstance(event, Alias):
        return event.previous_id
    return event.anonymous_id or event.user_id or ""


def event_time(event: StreamEvent) -> datetime:
    """When the event happened (skew-corrected at ingest)."""
    assert event.timestamp is not None, "events are normalised at ingest"
    return event.timestamp


_KEYS: Final[dict[type, str]] = {Page: "page", Screen: "page", Identify: "identify", Alias: "alias", Group: "group"}


def event_key(event: Event) -> str:
    """The name rules and windows use for an event: the track name, `page` for page and screen views,
    else the message type (`identify`, `alias`, `group`)."""
    return event.event if isinstance(event, Track) else _KEYS[type(event)]


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def product_of(properties: Fields) -> str | None:
    """The product an e-commerce event is about: `product_id`, else `sku` (Segment's spec)."""
    return _text(properties.get("product_id")) or _text(properties.get("sku"))


def category_of(properties: Fields) -> str | None:
    """The product category an event names, if any."""
    return _text(properties.get("category"))


# Segment e-commerce and e-mail event names Attimo understands by name.
PRODUCTS_SEARCHED: Final = "Products Searched"
PRODUCT_LIST_VIEWED: Final = "Product List Viewed"
PRODUCT_VIEWED: Final = "Product Viewed"
PRODUCT_ADDED: Final = "Product Added"
PRODUCT_REMOVED: Final = "Product Removed"
CART_VIEWED: Final = "Cart Viewed"
CHECKOUT_STARTED: Final = "Checkout Started"
ORDER_COMPLETED: Final = "Order Completed"
COUPON_APPLIED: Final = "Coupon Applied"
EMAIL_OPENED: Final = "Email Opened"
EMAIL_LINK_CLICKED: Final = "Email Link Clicked"
UNSUBSCRIBED: Final = "Unsubscribed"
FORM_SUBMITTED: Final = "Form Submitted"
SIGNED_UP: Final = "Signed Up"
# Track names starting with this are reserved: refused at ingest.
RESERVED_EVENT_PREFIX: Final = "attimo "
