"""Recommendation documents, and the strips a decisions answer composes from them.

The dataflow's products stage writes two kinds of document (JSON):

- `keys.product_neighbours(id)` → `NeighbourDoc`: the products most often
  *bought or added together* with this one (`bought`), *viewed together in
  a session* (`viewed`), and its up-sell candidates (`up_sell`: same
  category, higher price, most related first), each list strongest first
  with scores scaled so the strongest is 1; plus the card of every product
  named, the product's own included, so a read needs nothing else. Only
  products in stock and with a known card are listed.
- `keys.trending()` → `TrendingDoc`: the most popular products now
  (decayed popularity), with their cards.

`compose_strips` is what `GET /v1/decisions/{id}` (and the gateway's push)
calls: a pure function of the contact's `Seeds`, the product on screen,
and the documents read for them. Which documents to read: `read_ids` —
the product on screen, then the first `SEED_LIMITS` of the cart and the
viewed seeds (at most `MAX_ANCHORS`), each as `keys.product_neighbours(id)`,
plus `keys.trending()`; one `MGET`. A missing document is simply absent.

The read path runs on every page view, so it decodes lazily: the lists and
scores are decoded, the cards stay raw JSON until a strip picks them, and
picked cards are decoded without re-checking their links (the dataflow
wrote them from checked data; `decode_neighbours` checks everything, for
tools and tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import msgspec

from state import keys
from state.decisions import STRIPS, ProductCard, Seeds, Strip

STRIP_LENGTH: Final = 10
"""Cards per strip unless the caller asks for another number."""
SEED_LIMITS: Final[tuple[tuple[str, int], ...]] = (("cart", 5), ("viewed", 5))
"""Which seed lists anchor strips, most recent first, and how many of each (after the product on screen)."""
MAX_ANCHORS: Final = 16
"""At most this many neighbour documents per answer, whatever the seeds say."""
PERSONAL_ANCHORS: Final = 5
"""Recent views the personal strip grows from."""


class NeighbourDoc(msgspec.Struct, frozen=True, omit_defaults=True):
    """`keys.product_neighbours(product)`: what goes with one product, strongest first.

    `*_scores` run parallel to their list, in (0, 1], the strongest 1.
    `cards` holds the card of every product listed and of `product` itself
    when the catalog (or events) describe it.
    """

    product: str
    bought: list[str] = msgspec.field(default_factory=list)
    bought_scores: list[float] = msgspec.field(default_factory=list)
    viewed: list[str] = msgspec.field(default_factory=list)
    viewed_scores: list[float] = msgspec.field(default_factory=list)
    up_sell: list[str] = msgspec.field(default_factory=list)
    cards: dict[str, ProductCard] = msgspec.field(default_factory=dict)
    updated_at: float = 0.0


class TrendingDoc(msgspec.Struct, frozen=True, omit_defaults=True):
    """`keys.trending()`: the most popular products now (in stock), strongest first, with their cards."""

    products: list[str] = msgspec.field(default_factory=list)
    scores: list[float] = msgspec.field(default_factory=list)
    cards: dict[str, ProductCard] = msgspec.field(default_factory=dict)
    updated_at: float = 0.0


# ---- writing (the products stage) -------------------------------------------------

class _NeighbourOut(msgspec.Struct, frozen=True, omit_defaults=True):
    """`NeighbourDoc` with its cards already encoded (the stage keeps each card's JSON)."""

    product: str
    bought: list[str]
    bought_scores: list[float]
    viewed: list[str]
    viewed_scores: list[float]
    up_sell: list[str]
    cards: dict[str, msgspec.Raw]
    updated_at: float = 0.0


class _TrendingOut(msgspec.Struct, frozen=True, omit_defaults=True):
    products: list[str]
    scores: list[float]
    cards: dict[str, msgspec.Raw]
    updated_at: float = 0.0


_encoder: Final = msgspec.json.Encoder()


def encode_neighbours(product: str, bought: Sequence[tuple[str, float]], viewed: Sequence[tuple[str, float]],
                      up_sell: Sequence[str], cards: Mapping[str, bytes], updated_at: float) -> bytes:
    """A `NeighbourDoc` as stored; `cards` maps ids to `ProductCard` JSON (those not listed are left out)."""
    named = {product, *(p for p, _ in bought), *(p for p, _ in viewed), *up_sell}
    return _encoder.encode(_NeighbourOut(
        product=product, bought=[p for p, _ in bought], bought_scores=[s for _, s in bought],
        viewed=[p for p, _ in viewed], viewed_scores=[s for _, s in viewed], up_sell=list(up_sell),
        cards={p: msgspec.Raw(cards[p]) for p in sorted(named) if p in cards}, updated_at=updated_at))


def encode_trending(products: Sequence[tuple[str, float]], cards: Mapping[str, bytes], updated_at: float) -> bytes:
    """A `TrendingDoc` as stored."""
    return _encoder.encode(_TrendingOut(
        products=[p for p, _ in products], scores=[s for _, s in products],
        cards={p: msgspec.Raw(cards[p]) for p, _ in products if p in cards}, updated_at=updated_at))


def encode_card(card: ProductCard) -> bytes:
    """A card's JSON, as documents embed it."""
    return _encoder.encode(card)


_neighbours_decoder: Final = msgspec.json.Decoder(NeighbourDoc)
_trending_decoder: Final = msgspec.json.Decoder(TrendingDoc)


def decode_neighbours(raw: bytes) -> NeighbourDoc:
    """A stored neighbour document, every field checked (tools and tests; the read path is lazier)."""
    return _neighbours_decoder.decode(raw)


def decode_trending(raw: bytes) -> TrendingDoc:
    """A stored trending document, every field checked."""
    return _trending_decoder.decode(raw)


# ---- reading (decisions) -----------------------------------------------------------

def read_ids(seeds: Seeds, product: str | None = None) -> list[str]:
    """The products whose neighbour documents an answer reads: on screen, cart, views (each once)."""
    ids: dict[str, None] = {}
    if product:
        ids[product] = None
    for name, limit in SEED_LIMITS:
        for pid in getattr(seeds, name)[:limit]:
            if len(ids) >= MAX_ANCHORS:
                break
            ids.setdefault(pid, None)
    return list(ids)


def read_keys(seeds: Seeds, product: str | None = None) -> list[str]:
    """The keys to `MGET` for an answer: `keys.trending()`, then each `read_ids` product's document."""
    return [keys.trending(), *(keys.product_neighbours(pid) for pid in read_ids(seeds, product))]


class _LazyNeighbours(msgspec.Struct, frozen=True):
    product: str
    bought: list[str] = msgspec.field(default_factory=list)
    bought_scores: list[float] = msgspec.field(default_factory=list)
    viewed: list[str] = msgspec.field(default_factory=list)
    viewed_scores: list[float] = msgspec.field(default_factory=list)
    up_sell: list[str] = msgspec.field(default_factory=list)
    cards: dict[str, msgspec.Raw] = msgspec.field(default_factory=dict)


class _LazyTrending(msgspec.Struct, frozen=True):
    products: list[str] = msgspec.field(default_factory=list)
    scores: list[float] = msgspec.field(default_factory=list)
    cards: dict[str, msgspec.Raw] = msgspec.field(default_factory=dict)


class _StoredCard(msgspec.Struct, frozen=True):
    """`ProductCard` without the link checks: the dataflow wrote it from checked data."""

    id: str
    name: str
    price: float | None = None
    category: str | None = None
    image: str | None = None
    url: str | None = None


_lazy_neighbours: Final = msgspec.json.Decoder(_LazyNeighbours)
_lazy_trending: Final = msgspec.json.Decoder(_LazyTrending)
_stored_card: Final = msgspec.json.Decoder(_StoredCard)


def _decoded(raw: bytes | None, decoder: msgspec.json.Decoder[_LazyNeighbours] | msgspec.json.Decoder[_LazyTrending],
             ) -> _LazyNeighbours | _LazyTrending | None:
    if raw is None:
        return None
    try:
        return decoder.decode(raw)
    except msgspec.DecodeError:
        return None  # a document that does not decode is as good as missing: never fail a page view


class _Cards:
    """Cards by id from every document read, decoded once each, when a strip picks them."""

    def __init__(self, raws: Iterable[Mapping[str, msgspec.Raw]]) -> None:
        self._raws = list(raws)
        self._cards: dict[str, ProductCard | None] = {}

    def get(self, product_id: str) -> ProductCard | None:
        if product_id in self._cards:
            return self._cards[product_id]
        card: ProductCard | None = None
        for raws in self._raws:
            raw = raws.get(product_id)
            if raw is None:
                continue
            try:
                c = _stored_card.decode(raw)
            except msgspec.DecodeError:
                continue
            card = ProductCard(id=c.id, name=c.name, price=c.price, category=c.category, image=c.image, url=c.url)
            break
        self._cards[product_id] = card
        return card


def _rank(lists: Iterable[tuple[float, Sequence[str], Sequence[float]]], exclude: set[str]) -> list[str]:
    """Products of several weighted lists by summed weighted score, first seen first among equals."""
    total: dict[str, float] = {}
    for weight, ids, scores in lists:
        for pid, score in zip(ids, scores, strict=False):
            if pid not in exclude:
                total[pid] = total.get(pid, 0.0) + weight * score
    order = {pid: i for i, pid in enumerate(total)}
    return sorted(total, key=lambda pid: (-total[pid], order[pid]))


def _take(ids: Iterable[str], cards: _Cards, limit: int, exclude: set[str],
          out: list[ProductCard] | None = None) -> list[ProductCard]:
    """Cards of `ids` in order, each once, none of `exclude`, until `out` holds `limit`."""
    strip = out if out is not None else []
    seen = exclude | {c.id for c in strip}
    for pid in ids:
        if len(strip) >= limit:
            break
        if pid in seen:
            continue
        seen.add(pid)
        card = cards.get(pid)
        if card is not None:
            strip.append(card)
    return strip


def compose_strips(seeds: Seeds, product: str | None, neighbours: Mapping[str, bytes],
                   trending: bytes | None, limit: int = STRIP_LENGTH) -> dict[Strip, list[ProductCard]]:
    """The four strips for a contact, from its seeds and the documents `read_keys` names.

    - `cross_sell`: bought or added together with the product on screen,
      else with the cart (the product on screen counts most, then the
      cart, most recent first);
    - `up_sell`: the product on screen's (else the latest viewed's) up-sell
      list — same category, higher price — then trending products of that
      category priced higher;
    - `personal`: viewed together with the latest views (the latest counts
      most), then trending, so a new visitor's strip is full too;
    - `trending`: the trending list.

    Nothing in the cart or bought is offered; cross-sell and personal leave
    out what they grow from. `neighbours` maps a product id to its raw
    `NeighbourDoc` (missing ones left out), `trending` is the raw
    `TrendingDoc`. Listed products are in stock (the documents hold no other).
    """
    docs = {pid: d for pid, raw in neighbours.items()
            if isinstance(d := _decoded(raw, _lazy_neighbours), _LazyNeighbours)}
    trend = _decoded(trending, _lazy_trending)
    trend = trend if isinstance(trend, _LazyTrending) else _LazyTrending()
    cards = _Cards([*(d.cards for d in docs.values()), trend.cards])
    owned = set(seeds.cart) | set(seeds.bought)
    on_screen = {product} if product else set()

    cart_anchors = [product] if product else []
    cart_anchors += [p for p in seeds.cart[:dict(SEED_LIMITS)["cart"]] if p not in on_screen]
    cross_ids = _rank(((1.0 / (1 + i), d.bought, d.bought_scores)
                       for i, a in enumerate(cart_anchors) if (d := docs.get(a)) is not None),
                      owned | on_screen)
    cross = _take(cross_ids, cards, limit, owned | on_screen)

    anchor = product or (seeds.viewed[0] if seeds.viewed else None)
    up: list[ProductCard] = []
    if anchor is not None:
        doc = docs.get(anchor)
        up = _take(doc.up_sell if doc is not None else [], cards, limit, owned | {anchor})
        base = cards.get(anchor)
        if len(up) < limit and base is not None and base.price is not None and base.category is not None:
            pricier = [p for p in trend.products if (c := cards.get(p)) is not None
                       and c.category == base.category and c.price is not None and c.price > base.price]
            _take(pricier, cards, limit, owned | {anchor}, up)

    views = seeds.viewed[:PERSONAL_ANCHORS]
    seen_now = owned | on_screen | set(views)
    personal_ids = _rank(((1.0 / (1 + i), d.viewed, d.viewed_scores)
                          for i, v in enumerate(views) if (d := docs.get(v)) is not None), seen_now)
    personal = _take(personal_ids, cards, limit, seen_now)
    _take(trend.products, cards, limit, seen_now, personal)

    strips: dict[Strip, list[ProductCard]] = {
        "cross_sell": cross, "up_sell": up, "personal": personal,
        "trending": _take(trend.products, cards, limit, owned | on_screen)}
    return {name: strips[name] for name in STRIPS}
