"""Neighbour and trending documents, built from a shard's model and catalog copy.

A product's document lists, per relation, its best neighbours that strips
may show (a card, in stock), at most `doc_size`, scores scaled so the best
is 1 (strips add scores of several documents, so each weighs alike); and
its up-sell candidates: neighbours of either relation in the same category
and dearer. The document also names every product its lists were chosen
from (`refs`): when one of those changes card or stock, it is rebuilt.

Trending is decayed popularity — views plus `BASKET_WEIGHT` × adds and
buys — of the products strips may show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dataflows.recommendations.cards import CatalogCopy
from dataflows.recommendations.cooccurrence import Cooccurrence
from dataflows.recommendations.signals import BASKET, RELATIONS, VIEW
from state.recommendations import encode_neighbours, encode_trending

BASKET_WEIGHT = 3.0
"""An add or a purchase says more about popularity than a view."""


@dataclass
class Built:
    """A product's lists (none: nothing to say, delete its document) and the products they were chosen from."""

    product: str
    bought: list[tuple[str, float]] = field(default_factory=list)
    viewed: list[tuple[str, float]] = field(default_factory=list)
    up_sell: list[str] = field(default_factory=list)
    cards: dict[str, bytes] = field(default_factory=dict)
    refs: set[int] = field(default_factory=set)
    empty: bool = True

    def encode(self, updated_at: float) -> bytes | None:
        """The document as stored, or None when there is nothing to say."""
        if self.empty:
            return None
        return encode_neighbours(self.product, self.bought, self.viewed, self.up_sell, self.cards, updated_at)


def _scaled(pairs: list[tuple[str, float]]) -> list[tuple[str, float]]:
    if not pairs:
        return []
    best = pairs[0][1]
    return [(pid, max(0.001, round(score / best, 3))) for pid, score in pairs]


def neighbour_doc(model: Cooccurrence, catalog: CatalogCopy, i: int, now: float) -> Built:
    """Product i's neighbour lists (this shard owns i)."""
    settings = model.settings
    pid = model.ids[i]
    tops = [model.neighbours(relation, i, now) for relation in RELATIONS]
    refs = {j for top in tops for j, _ in top}
    lists: list[list[tuple[str, float]]] = []
    for top in tops:
        offered = [(model.ids[j], s) for j, s in top if catalog.offered(model.ids[j])]
        lists.append(_scaled(offered[:settings.doc_size]))
    up_sell = _up_sell(model, catalog, pid, tops)
    if not any(lists) and not up_sell and catalog.product(pid) is None:
        return Built(pid, refs=refs)
    cards: dict[str, bytes] = {}
    for name in {pid, *(p for lst in lists for p, _ in lst), *up_sell}:
        raw = catalog.card_json(name)
        if raw is not None:
            cards[name] = raw
    return Built(pid, bought=lists[BASKET], viewed=lists[VIEW], up_sell=up_sell, cards=cards, refs=refs,
                 empty=False)


def _up_sell(model: Cooccurrence, catalog: CatalogCopy, pid: str, tops: list[list[tuple[int, float]]]) -> list[str]:
    """Neighbours in the same category and dearer, by their summed scaled scores."""
    base = catalog.product(pid)
    if base is None or base.category is None or base.price is None:
        return []
    combined: dict[str, float] = {}
    for top in tops:
        if not top:
            continue
        best = top[0][1]
        for j, score in top:
            other = model.ids[j]
            candidate = catalog.product(other)
            if (candidate is None or not candidate.in_stock or candidate.category != base.category
                    or candidate.price is None or candidate.price <= base.price):
                continue
            combined[other] = combined.get(other, 0.0) + score / best
    ranked = sorted(combined, key=lambda other: (-round(combined[other], 6), other))
    return ranked[:model.settings.doc_size]


@dataclass
class Trending:
    """The trending products, best first, and their cards."""

    products: list[tuple[str, float]]
    cards: dict[str, bytes]

    def encode(self, updated_at: float) -> bytes:
        """The trending document as stored."""
        return encode_trending(self.products, self.cards, updated_at)


def trending_doc(model: Cooccurrence, catalog: CatalogCopy) -> Trending:
    """The most popular products strips may show, best first."""
    size = model.settings.trending_size
    n = len(model.ids)
    popularity = model.marginal[VIEW, :n] + BASKET_WEIGHT * model.marginal[BASKET, :n]
    chosen: list[tuple[str, float]] = []
    if n:
        # Most products are usually offered: look at a few times the size first, everything if short.
        for pool in (min(n, 4 * size), n):
            chosen = []
            candidates = np.argpartition(-popularity, pool - 1)[:pool] if pool < n else np.arange(n)
            ranked = sorted(candidates.tolist(), key=lambda j: (-round(float(popularity[j]), 9), model.ids[j]))
            for j in ranked:
                if popularity[j] <= 0 or len(chosen) >= size:
                    break
                if catalog.offered(model.ids[j]):
                    chosen.append((model.ids[j], float(popularity[j])))
            if len(chosen) >= size or pool == n:
                break
    scaled = _scaled(chosen)
    return Trending(scaled, {pid: raw for pid, _ in scaled if (raw := catalog.card_json(pid)) is not None})
