"""The contact's decision document: what the read path serves and the gateway pushes, precomputed here.

Registered last, so at each evaluation it reads every other part as this
evaluation left it and composes a `state.decisions.DecisionDoc`: the popups
the contact is offered now (`popups.PopupState.offers`, as the
configuration describes them), the seeds its recommendation strips grow
from (recently viewed, in cart, bought; product ids, most recent first,
at most `MAX_SEEDS` each) and the contact fields campaigns made public.

Where and when (the read path's contract, `docs/protocol.md`):

- it is written to `keys.decision_doc(id)` under the contact's id **and**
  each of its anonymous ids, so `GET /v1/decisions/{anonymousId or userId}`
  is one GET whatever id the page knows; an anonymous visitor's copies
  expire after `identity.anonymous_ttl_s` (about when the visitor is
  purged), a known contact's never;
- only when it changed (or the ids it lives under did): a digest of what
  was last written is kept here;
- a `DecisionPush` carrying the document goes to the gateways when its
  public part (popups, seeds, public fields) changed and the contact has a
  browser (an anonymous id) that may be listening.

A contact whose document was never written and has nothing to say (no
popup, no seed, no public field) is not written at all: the read path
answers a missing document as an empty one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final
from zlib import crc32

import msgspec

from dataflows.capabilities.base import Capability, Context
from dataflows.capabilities.cart import CartState
from dataflows.capabilities.popup_state import PopupState
from dataflows.capabilities.windows import NONE, ActivityLog
from dataflows.io.outputs import DecisionDocWrite, DecisionPush, Output
from state import events as ev
from state.decisions import DecisionDoc, Seeds, encode_doc
from state.events import Event, Track, product_of

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView

MAX_SEEDS: Final = 20
"""Product ids per seed list: enough for any strip, small enough for every read."""
VIEWS_SCANNED: Final = 500
"""The most recent window entries searched for viewed products (bounded work per evaluation)."""
_json: Final = msgspec.json.Encoder()


class DocState(msgspec.Struct, array_like=True, gc=False):
    """Products bought (most recent first) and digests of the document as last written and last pushed."""

    bought: list[str] = msgspec.field(default_factory=list)
    written: int = 0
    pushed: int = 0


def _front(ids: list[str], product_id: str) -> None:
    """Put `product_id` first, once, keeping at most `MAX_SEEDS`."""
    if product_id in ids:
        ids.remove(product_id)
    ids.insert(0, product_id)
    del ids[MAX_SEEDS:]


def order_products(properties: dict[str, Any]) -> list[str]:
    """The product ids an order names: each of `products[]` (Segment's spec), else the order's own `product_id`."""
    found: list[str] = []
    products = properties.get("products")
    if isinstance(products, list):
        for line in products[:MAX_SEEDS]:
            product_id = product_of(line) if isinstance(line, dict) else None
            if product_id is not None:
                found.append(product_id)
    if not found and (product_id := product_of(properties)) is not None:
        found.append(product_id)
    return found


def recently_viewed(log: ActivityLog, n: int = MAX_SEEDS) -> list[str]:
    """The last `n` distinct products viewed (`Product Viewed` in the windows), most recent first."""
    viewed = log.names.get(ev.PRODUCT_VIEWED)
    if viewed is None:
        return []
    picked: dict[int, None] = {}
    events, products = log.event, log.product
    for i in range(len(events) - 1, max(-1, len(events) - 1 - VIEWS_SCANNED), -1):
        if events[i] == viewed and (product := products[i]) != NONE and product not in picked:
            picked[product] = None
            if len(picked) == n:
                break
    if not picked:
        return []
    names = {index: name for name, index in log.names.items() if index in picked}
    return [names[index] for index in picked]


def public_fields(view: StateView) -> dict[str, Any]:
    """The contact fields some enabled campaign made public, by name."""
    fields: dict[str, Any] = {}
    for name in view.live.campaigns.public:
        if name == "temperature":
            fields[name] = view.temperature()
        elif name == "stage":
            fields[name] = view.stage()
        elif name == "score":
            fields[name] = round(view.score())  # whole points: decay alone would rewrite it at every read
        elif name == "segments":
            fields[name] = sorted(view.part("segments").segments)
        elif name == "cart_value":
            fields[name] = round(view.cart_value(), 2)
        elif name == "returning":
            fields[name] = view.total("sessions") > 1
    return fields


def compose(part: DocState, view: StateView) -> DecisionDoc:
    """The contact's decision document at `view.now`."""
    state = view.state
    popups: PopupState = view.part("popups")
    decisions = view.live.campaigns.decisions
    cart: CartState = view.part("cart")
    seeds = Seeds(viewed=recently_viewed(view.part("windows")), cart=list(reversed(cart.lines))[:MAX_SEEDS],
                  bought=list(part.bought))
    offered = [decisions[offer] for offer in popups.offers if offer in decisions]
    return DecisionDoc(contact_id=state.contact_id, user_id=state.user_id, popups=offered, seeds=seeds,
                       public=public_fields(view))


def doc_ids(state: Any) -> tuple[str, ...]:
    """Every id the document is stored under: the contact's own and its anonymous ids."""
    return tuple(dict.fromkeys((state.contact_id, *state.anonymous_ids)))


class DecisionDocCapability(Capability[DocState]):
    """Writes the contact's `DecisionDoc` when it changes, and pushes it when its public part does."""

    name = "decision"
    part = DocState

    def apply(self, part: DocState, event: Event, ctx: Context) -> None:
        if isinstance(event, Track) and event.event == ev.ORDER_COMPLETED:
            for product_id in reversed(order_products(event.properties)):
                _front(part.bought, product_id)

    def merge(self, into: DocState, other: DocState, ctx: Context) -> None:
        for product_id in reversed(other.bought):
            if product_id not in into.bought:
                into.bought.append(product_id)
        del into.bought[MAX_SEEDS:]
        into.written = into.pushed = 0  # the contact's document now speaks for more ids: write it again

    def evaluate(self, part: DocState, view: StateView) -> Sequence[Output]:
        doc = compose(part, view)
        body = _json.encode((doc.popups, doc.seeds, doc.public))
        public = crc32(body) or 1
        state = view.state
        ids = doc_ids(state)
        written = crc32(_json.encode((doc.contact_id, doc.user_id, ids)), public)
        out: list[Output] = []
        if written == part.written or (not part.written and body == _EMPTY):
            return out
        raw = encode_doc(doc)
        part.written = written
        ttl = None if state.user_id is not None else view.live.config.identity.anonymous_ttl_s
        out.append(DecisionDocWrite(ids, raw, ttl))
        if public != part.pushed and state.anonymous_ids:
            part.pushed = public
            out.append(DecisionPush((*state.anonymous_ids, *((state.user_id,) if state.user_id else ())), raw))
        return out


_EMPTY: Final = _json.encode(([], Seeds(), {}))
