"""What flows into and out of the products stage.

In: a contact's new interactions (`ProductActivity`, emitted by the
per-contact `recent_products` capability) and the admin API's catalog
changes (`state.events.CatalogChanged`), each handed to every product shard
(`ToProducts`): every shard keeps the popularity of every product and the
whole catalog's cards, and the co-occurrence rows of its own products.

Out, for the sink: neighbour and trending documents (`RecsWrite`) and the
product fields events taught (`LearnedWrite`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgspec

from state.catalog import LearnedFields
from state.events import CatalogChanged

VIEW: Final = 0
"""Relation: viewed together in a session."""
BASKET: Final = 1
"""Relation: added to the cart or bought together."""
RELATIONS: Final = (VIEW, BASKET)


class Interaction(msgspec.Struct, frozen=True, array_like=True):
    """A contact's first interaction with `product` in its window of `relation`.

    `partners` are the other products of the same relation in the
    contact's window (most recent first): each pair counts once.
    `learned` is what the event said about the product, if anything.
    """

    relation: int
    product: str
    at: float
    partners: tuple[str, ...] = ()
    learned: LearnedFields | None = None


@dataclass(frozen=True, slots=True)
class ProductActivity:
    """The new interactions of one contact in one activation, for the products stage."""

    interactions: tuple[Interaction, ...]


@dataclass(frozen=True, slots=True)
class ToProducts:
    """One item for product shard `shard` (the same item goes to every shard)."""

    shard: int
    item: ProductActivity | CatalogChanged


@dataclass(frozen=True, slots=True)
class RecsWrite:
    """Overwrite a recommendation document at `key`, or delete it (`value` None): idempotent."""

    key: str
    value: bytes | None


@dataclass(frozen=True, slots=True)
class LearnedWrite:
    """What events taught about a product (`fields_json`, `LearnedFields`), or forget it (None)."""

    product_id: str
    fields_json: bytes | None
