"""Decisions: what on-site widgets show a visitor now — popups and product strips.

Two shapes, both crossing process boundaries:

- `DecisionDoc`, precomputed by the dataflow for each contact whenever it
  changes (`keys.decision_doc(id)`): the popups the contact may be shown
  now (targeting, frequency and variant already decided on its live state)
  and the seeds its recommendation strips grow from (viewed, in cart,
  bought). It is small and read whole by the decisions route — never the
  profile.
- `PublicDecisions`, what `GET /v1/decisions/{id}` answers and what the
  gateway pushes in a `decision` frame: the popups, the strips composed at
  read time from the seeds and the products stage's neighbour lists
  (`keys.product_neighbours(id)`), and only the contact fields a campaign
  marked public. Nothing internal (segment names, score) unless marked.

Everything a widget renders comes from here, so the tracker can treat it
as text: titles, texts and labels are plain strings rendered as DOM text
nodes; URLs are http(s) only (`HttpUrl`).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

HttpUrl = Annotated[str, msgspec.Meta(max_length=2048, pattern=r"^https?://[^\s<>\"']+$")]
"""An absolute http(s) URL: the only kind a widget links to or loads an image from."""

PlainText = Annotated[str, msgspec.Meta(max_length=2000)]
Strip = Literal["cross_sell", "up_sell", "personal", "trending"]
STRIPS: Final[tuple[Strip, ...]] = ("cross_sell", "up_sell", "personal", "trending")

Layout = Literal["modal", "bar", "slide_in"]


# ---- popups: when the tracker shows them (evaluated in the page) -------------------

class OnArrival(msgspec.Struct, frozen=True, tag="arrival", tag_field="kind", forbid_unknown_fields=True):
    """As soon as the page is ready."""


class AfterSeconds(msgspec.Struct, frozen=True, tag="after", tag_field="kind", forbid_unknown_fields=True):
    """After the visitor spent `seconds` on the page."""

    seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)]


class ScrollDepth(msgspec.Struct, frozen=True, tag="scroll", tag_field="kind", forbid_unknown_fields=True):
    """When the visitor scrolled `percent` of the page."""

    percent: Annotated[float, msgspec.Meta(ge=0, le=100)]


class ExitIntent(msgspec.Struct, frozen=True, tag="exit_intent", tag_field="kind", forbid_unknown_fields=True):
    """Pointer leaving the viewport at the top (desktop); a fast scroll up or the back gesture (mobile)."""


class Inactivity(msgspec.Struct, frozen=True, tag="inactive", tag_field="kind", forbid_unknown_fields=True):
    """No pointer, key, scroll or touch for `seconds`."""

    seconds: Annotated[float, msgspec.Meta(ge=1, le=3600)]


class CartValueOver(msgspec.Struct, frozen=True, tag="cart_value", tag_field="kind", forbid_unknown_fields=True):
    """The cart is worth more than `amount` (as the tracker last saw it)."""

    amount: Annotated[float, msgspec.Meta(ge=0, le=1e9)]


class UrlMatch(msgspec.Struct, frozen=True, tag="url", tag_field="kind", forbid_unknown_fields=True):
    """The page's URL contains `contains` (plain text, no pattern language)."""

    contains: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


PageTrigger = OnArrival | AfterSeconds | ScrollDepth | ExitIntent | Inactivity | CartValueOver | UrlMatch


class PopupContent(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a popup says: plain text only, links and images http(s) only."""

    title: Annotated[str, msgspec.Meta(max_length=200)]
    text: PlainText = ""
    image: HttpUrl | None = None
    cta_label: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    cta_url: HttpUrl | None = None
    coupon: Annotated[str, msgspec.Meta(max_length=100)] | None = None


class PopupDecision(msgspec.Struct, frozen=True, omit_defaults=True):
    """One popup the visitor may be shown now; the tracker shows at most one per page view.

    `campaign` and `variant` come back in the `Popup Shown` / `Popup Clicked`
    / `Popup Closed` events the tracker sends, which the dataflow counts.
    When any of `triggers` fires (all must be evaluated in the page), the
    highest-`priority` eligible popup is shown.
    """

    campaign: str
    variant: str
    layout: Layout
    triggers: list[PageTrigger]
    content: PopupContent
    priority: int = 0


# ---- products --------------------------------------------------------------------

class ProductCard(msgspec.Struct, frozen=True, omit_defaults=True):
    """A product as a strip shows it (from the catalog)."""

    id: str
    name: str
    price: float | None = None
    category: str | None = None
    image: HttpUrl | None = None
    url: HttpUrl | None = None


class Seeds(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a contact's strips grow from, most recent first (product ids)."""

    viewed: list[str] = msgspec.field(default_factory=list)
    cart: list[str] = msgspec.field(default_factory=list)
    bought: list[str] = msgspec.field(default_factory=list)


# ---- the two documents -----------------------------------------------------------

class DecisionDoc(msgspec.Struct, frozen=True, omit_defaults=True):
    """Precomputed per contact by the dataflow (`keys.decision_doc`); the read path's only per-contact read.

    `public` holds the contact fields some campaign marked public (e.g.
    `{"temperature": "hot"}`); `user_id` is there so the read path can tell
    whether a signed identity is needed.
    """

    contact_id: str
    user_id: str | None = None
    popups: list[PopupDecision] = msgspec.field(default_factory=list)
    seeds: Seeds = msgspec.field(default_factory=Seeds)
    public: dict[str, Any] = msgspec.field(default_factory=dict)


class PublicDecisions(msgspec.Struct, frozen=True):
    """`GET /v1/decisions/{id}` and the pushed `decision` frame: popups, strips, public fields.

    A visitor with no state yet gets empty popups and the `trending` strip.
    """

    popups: list[PopupDecision] = msgspec.field(default_factory=list)
    recommendations: dict[str, list[ProductCard]] = msgspec.field(default_factory=dict)
    public: dict[str, Any] = msgspec.field(default_factory=dict)


POPUP_SHOWN: Final = "Popup Shown"
POPUP_CLICKED: Final = "Popup Clicked"
POPUP_CLOSED: Final = "Popup Closed"
"""Events the tracker sends about popups (properties `campaign`, `variant`); the dataflow counts them."""

_doc_encoder: Final = msgspec.json.Encoder()
_doc_decoder: Final = msgspec.json.Decoder(DecisionDoc)


def encode_doc(doc: DecisionDoc) -> bytes:
    """A decision document as stored."""
    return _doc_encoder.encode(doc)


def decode_doc(raw: bytes) -> DecisionDoc:
    """A stored decision document."""
    return _doc_decoder.decode(raw)
