"""Each product shard's copy of the catalog: admin records, what events taught, deletions.

Documents embed the cards of the products they list, and a shard's rows
list products of every shard, so every shard keeps every product's card.
Catalog changes and interactions both reach every shard, so the copies
agree. A card is what `state.catalog.merged` makes of the admin record and
the learned fields; a product is *offered* only when it has a card, is in
stock and was not deleted.

A product the admin deleted stays deleted here — events no longer teach
about it — until the admin upserts it again.
"""

from __future__ import annotations

import msgspec

from state.catalog import LearnedFields, Product, card_of, merged
from state.recommendations import encode_card


class CatalogEntry(msgspec.Struct, array_like=True, omit_defaults=True):
    """One product's sources (snapshotted)."""

    admin: Product | None = None
    learned: LearnedFields | None = None
    deleted: bool = False


def _combine(old: LearnedFields | None, new: LearnedFields) -> LearnedFields:
    """What events said lately, field by field (an event that omits a field keeps the last value)."""
    if old is None:
        return new
    return LearnedFields(
        name=new.name if new.name is not None else old.name,
        category=new.category if new.category is not None else old.category,
        price=new.price if new.price is not None else old.price,
        image=new.image if new.image is not None else old.image,
        url=new.url if new.url is not None else old.url,
    )


class CatalogCopy:
    """Cards by product id, with each card's JSON kept ready for documents."""

    def __init__(self, entries: dict[str, CatalogEntry] | None = None) -> None:
        self.entries: dict[str, CatalogEntry] = entries or {}
        self._products: dict[str, Product | None] = {}
        self._json: dict[str, bytes | None] = {}

    def _changed(self, product_id: str, entry: CatalogEntry) -> bool:
        """Store `entry`; whether the product as shown (card, stock, presence) changed."""
        before = self.product(product_id), self.offered(product_id)
        self.entries[product_id] = entry
        self._products.pop(product_id, None)
        self._json.pop(product_id, None)
        return (self.product(product_id), self.offered(product_id)) != before

    def learn(self, product_id: str, fields: LearnedFields) -> tuple[bool, bool]:
        """Fold what an event said; (learned fields changed, card changed)."""
        entry = self.entries.get(product_id) or CatalogEntry()
        if entry.deleted or fields == entry.learned:  # the usual case: every view says the same
            return False, False
        learned = _combine(entry.learned, fields)
        if learned == entry.learned:
            return False, False
        return True, self._changed(product_id, CatalogEntry(entry.admin, learned, False))

    def upsert(self, product: Product) -> bool:
        """The admin's record; whether the card changed."""
        entry = self.entries.get(product.id) or CatalogEntry()
        return self._changed(product.id, CatalogEntry(product, entry.learned, False))

    def delete(self, product_id: str) -> bool:
        """The admin deleted the product; whether it was shown before."""
        return self._changed(product_id, CatalogEntry(None, None, True))

    def product(self, product_id: str) -> Product | None:
        """The product as shown (admin fields, gaps filled from events), None when deleted or unnamed."""
        if product_id in self._products:
            return self._products[product_id]
        entry = self.entries.get(product_id)
        found = None if entry is None or entry.deleted else merged(product_id, entry.admin, entry.learned)
        self._products[product_id] = found
        return found

    def offered(self, product_id: str) -> bool:
        """Whether strips may list the product: it has a card and is in stock."""
        product = self.product(product_id)
        return product is not None and product.in_stock

    def card_json(self, product_id: str) -> bytes | None:
        """The product's `ProductCard` JSON (None without a card)."""
        if product_id in self._json:
            return self._json[product_id]
        product = self.product(product_id)
        raw = None if product is None else encode_card(card_of(product))
        self._json[product_id] = raw
        return raw

    def learned(self, product_id: str) -> LearnedFields | None:
        """What events taught about the product."""
        entry = self.entries.get(product_id)
        return None if entry is None else entry.learned
