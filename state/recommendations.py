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

The read path runs on every page view, so it decodes as little as it can,
as rarely as it can: a process holding a document keeps it decoded
(`neighbour_view`, `trending_view`) for every answer that reads it; cards
are decoded without re-checking their links (the dataflow wrote them from
checked data; `decode_neighbours` checks everything, for tools and tests),
once per distinct card text, and keep their JSON, which `strips_json`
splices into the answer (`compose_cards`, the same rule as
`compose_strips`).
"""

from __future__ import annotations

import math
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


class Card:
    """A card a strip may show, as a `ProductCard` and as the exact JSON the answer embeds.

    The JSON is the card re-encoded (not the stored text), so an answer
    spliced from it is byte for byte what encoding the `ProductCard` gives.
    """

    __slots__ = ("card", "json")

    def __init__(self, card: ProductCard) -> None:
        self.card = card
        self.json = _encoder.encode(card)


def _card_of(raw: msgspec.Raw) -> Card | None:
    """A stored card, or None when it does not decode (the next document's card is tried)."""
    try:
        c = _stored_card.decode(raw)
    except msgspec.DecodeError:
        return None
    return Card(ProductCard(id=c.id, name=c.name, price=c.price, category=c.category, image=c.image, url=c.url))


_INTERN_LIMIT: Final = 100_000
_interned: dict[bytes, Card | None] = {}


def _interned_card(raw: msgspec.Raw) -> Card | None:
    """`_card_of`, once per distinct card text in the process.

    A product's card is embedded in the documents of every product it is
    listed with, and documents are decoded again whenever they are
    rewritten: sharing one `Card` per text saves decoding it again and
    holding a copy per document. The table is emptied when it grows past
    `_INTERN_LIMIT` texts (cards no document names any more go with it).
    """
    text = bytes(raw)
    try:
        return _interned[text]
    except KeyError:
        pass
    if len(_interned) >= _INTERN_LIMIT:
        _interned.clear()
    card = _interned[text] = _card_of(raw)
    return card


def _decoded_cards(cards: Mapping[str, msgspec.Raw]) -> dict[str, Card]:
    """A document's cards that decode, by product id (one that does not is as good as absent)."""
    decoded: dict[str, Card] = {}
    for pid, raw in cards.items():
        card = _interned_card(raw)
        if card is not None:
            decoded[pid] = card
    return decoded


class NeighbourView:
    """A `NeighbourDoc` decoded once, cards included, for every answer that reads it while it is held.

    A process holds a product's document for many answers
    (`api.decisions.reader`); decoding it and its cards for each answer
    was most of an answer's CPU. `raw` is the document's bytes.
    """

    __slots__ = ("bought", "bought_scores", "cards", "raw", "up_sell", "viewed", "viewed_scores")

    def __init__(self, raw: bytes, doc: _LazyNeighbours) -> None:
        self.raw = raw
        self.bought = doc.bought
        self.bought_scores = doc.bought_scores
        self.viewed = doc.viewed
        self.viewed_scores = doc.viewed_scores
        self.up_sell = doc.up_sell
        self.cards = _decoded_cards(doc.cards)


class TrendingView:
    """A `TrendingDoc` decoded once, cards included, for every answer that reads it while it is held."""

    __slots__ = ("cards", "products", "raw", "scores")

    def __init__(self, raw: bytes, doc: _LazyTrending) -> None:
        self.raw = raw
        self.products = doc.products
        self.scores = doc.scores
        self.cards = _decoded_cards(doc.cards)


_NO_TRENDING: Final = TrendingView(b"", _LazyTrending())


def neighbour_view(raw: bytes) -> NeighbourView | None:
    """A stored neighbour document ready to compose from; None when it does not decode (as good as missing)."""
    try:
        return NeighbourView(raw, _lazy_neighbours.decode(raw))
    except msgspec.DecodeError:
        return None  # never fail a page view


def trending_view(raw: bytes) -> TrendingView | None:
    """The stored trending document ready to compose from; None when it does not decode."""
    try:
        return TrendingView(raw, _lazy_trending.decode(raw))
    except msgspec.DecodeError:
        return None


NeighbourDocument = bytes | NeighbourView
"""A product's neighbour document as read (bytes), or already decoded by whoever holds it."""
TrendingDocument = bytes | TrendingView
"""The trending document as read, or already decoded."""


def _neighbour_views(neighbours: Mapping[str, NeighbourDocument]) -> dict[str, NeighbourView]:
    """The documents that decode, in the order read (their cards are looked up in that order)."""
    views: dict[str, NeighbourView] = {}
    for pid, doc in neighbours.items():
        view = doc if isinstance(doc, NeighbourView) else neighbour_view(doc)
        if view is not None:
            views[pid] = view
    return views


def _trending_view(trending: TrendingDocument | None) -> TrendingView:
    if trending is None:
        return _NO_TRENDING
    view = trending if isinstance(trending, TrendingView) else trending_view(trending)
    return view if view is not None else _NO_TRENDING


def _cards_by_id(views: Sequence[NeighbourView | TrendingView]) -> dict[str, Card]:
    """Every card the documents read hold, the first document's where several hold one.

    Built once per answer (a few hundred entries, copied in C) so that each
    card a strip picks is one dictionary look-up; a document's `cards` hold
    only cards that decode, so the first one holding a card is the first one
    with a decodable card.
    """
    cards = views[-1].cards.copy()  # a copy is one block copy; updates insert card by card
    for view in reversed(views[:-1]):
        cards.update(view.cards)
    return cards


def _rank(lists: Iterable[tuple[float, Sequence[str], Sequence[float]]], exclude: set[str]) -> list[str]:
    """Products of several weighted lists by summed weighted score, first seen first among equals."""
    total: dict[str, float] = {}
    for weight, ids, scores in lists:
        for pid, score in zip(ids, scores, strict=False):
            if pid not in exclude:
                total[pid] = total.get(pid, 0.0) + weight * score
    if math.isfinite(sum(total.values())):
        # No inf or NaN: a stable sort, highest first, keeps first-seen order among equals.
        return sorted(total, key=total.__getitem__, reverse=True)
    order = {pid: i for i, pid in enumerate(total)}
    return sorted(total, key=lambda pid: (-total[pid], order[pid]))


def _take(ids: Iterable[str], cards: Mapping[str, Card], limit: int, exclude: set[str],
          out: list[Card] | None = None) -> list[Card]:
    """Cards of `ids` in order, each once, none of `exclude`, until `out` holds `limit`."""
    strip = out if out is not None else []
    seen = exclude | {c.card.id for c in strip}
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


def compose_strips(seeds: Seeds, product: str | None, neighbours: Mapping[str, NeighbourDocument],
                   trending: TrendingDocument | None, limit: int = STRIP_LENGTH) -> dict[Strip, list[ProductCard]]:
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
    out what they grow from. `neighbours` maps a product id to its
    `NeighbourDoc` (raw, or a `NeighbourView`; missing ones left out),
    `trending` is the `TrendingDoc`. Listed products are in stock (the
    documents hold no other).
    """
    strips = compose_cards(seeds, product, neighbours, trending, limit)
    return {name: [c.card for c in strip] for name, strip in strips.items()}


_STRIP_OPENINGS: Final = tuple((b"{" if i == 0 else b"],") + _encoder.encode(name) + b":["
                               for i, name in enumerate(STRIPS))


def strips_json(strips: Mapping[Strip, Sequence[Card]]) -> bytes:
    """The strips as JSON, exactly as encoding `compose_strips`' dict gives, from the cards' own JSON.

    Splicing each card's JSON (encoded once per held document) saves
    building and encoding a `ProductCard` per card per answer.
    """
    parts: list[bytes] = []
    for opening, name in zip(_STRIP_OPENINGS, STRIPS, strict=True):
        parts.append(opening)
        parts.append(b",".join([c.json for c in strips[name]]))
    parts.append(b"]}")
    return b"".join(parts)


def compose_cards(seeds: Seeds, product: str | None, neighbours: Mapping[str, NeighbourDocument],
                  trending: TrendingDocument | None, limit: int = STRIP_LENGTH) -> dict[Strip, list[Card]]:
    """`compose_strips`, with each card as a `Card` (its `ProductCard` and its JSON, for `strips_json`)."""
    docs = _neighbour_views(neighbours)
    trend = _trending_view(trending)
    cards = _cards_by_id([*docs.values(), trend])
    owned = set(seeds.cart) | set(seeds.bought)
    on_screen = {product} if product else set()

    cart_anchors = [product] if product else []
    cart_anchors += [p for p in seeds.cart[:_CART_ANCHORS] if p not in on_screen]
    cross_ids = _rank(((1.0 / (1 + i), d.bought, d.bought_scores)
                       for i, a in enumerate(cart_anchors) if (d := docs.get(a)) is not None),
                      owned | on_screen)
    cross = _take(cross_ids, cards, limit, owned | on_screen)

    anchor = product or (seeds.viewed[0] if seeds.viewed else None)
    up: list[Card] = []
    if anchor is not None:
        doc = docs.get(anchor)
        up = _take(doc.up_sell if doc is not None else [], cards, limit, owned | {anchor})
        base = cards.get(anchor)
        if len(up) < limit and base is not None and base.card.price is not None and base.card.category is not None:
            _take(_pricier(trend.products, cards, base.card), cards, limit, owned | {anchor}, up)

    views = seeds.viewed[:PERSONAL_ANCHORS]
    seen_now = owned | on_screen | set(views)
    personal_ids = _rank(((1.0 / (1 + i), d.viewed, d.viewed_scores)
                          for i, v in enumerate(views) if (d := docs.get(v)) is not None), seen_now)
    personal = _take(personal_ids, cards, limit, seen_now)
    _take(trend.products, cards, limit, seen_now, personal)

    strips: dict[Strip, list[Card]] = {
        "cross_sell": cross, "up_sell": up, "personal": personal,
        "trending": _take(trend.products, cards, limit, owned | on_screen)}
    return {name: strips[name] for name in STRIPS}


_CART_ANCHORS: Final = dict(SEED_LIMITS)["cart"]


def _pricier(products: Sequence[str], cards: Mapping[str, Card], base: ProductCard) -> list[str]:
    """Trending products of `base`'s category priced higher than it (`base` has both)."""
    assert base.price is not None
    pricier = []
    for p in products:
        c = cards.get(p)
        if c is not None and c.card.category == base.category and c.card.price is not None \
                and c.card.price > base.price:
            pricier.append(p)
    return pricier
