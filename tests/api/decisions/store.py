"""What the dataflow would have written for decisions: documents, aliases, neighbour and trending lists.

The read path is built against the contract (`state/decisions.py`,
`state/keys.py`); these helpers write exactly those shapes, so the tests do
not depend on the dataflow stages that produce them.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from state import keys
from state.decisions import (
    DecisionDoc,
    ExitIntent,
    PopupContent,
    PopupDecision,
    ProductCard,
    Seeds,
    encode_doc,
)
from state.recommendations import encode_card, encode_neighbours, encode_trending

SECRET = "identity-secret-1"


def card(product_id: str, price: float = 10.0, category: str = "mugs") -> ProductCard:
    """A catalog card for `product_id`."""
    return ProductCard(id=product_id, name=f"Product {product_id}", price=price, category=category,
                       image=f"https://shop.example/img/{product_id}.jpg", url=f"https://shop.example/p/{product_id}")


def popup(campaign: str = "welcome") -> PopupDecision:
    """A popup decision as the dataflow would put it in a document."""
    return PopupDecision(campaign=campaign, variant="a", layout="modal", triggers=[ExitIntent()],
                         content=PopupContent(title="10% off", text="Before you go", coupon="STAY10",
                                              cta_label="Shop", cta_url="https://shop.example/"))


def save_doc(client: redis.Redis, doc: DecisionDoc, *aliases: str) -> None:
    """Write `doc` under its contact id, and each alias pointing at it."""
    client.set(keys.decision_doc(doc.contact_id), encode_doc(doc))
    for alias in aliases:
        client.set(keys.contact_alias(alias), doc.contact_id)


def save_neighbours(client: redis.Redis, product_id: str, *, bought: Iterable[str] = (),
                    viewed: Iterable[str] = (), up_sell: Iterable[str] = (),
                    cards: Iterable[ProductCard] = ()) -> None:
    """A product's neighbour document as the products stage writes it (lists strongest first)."""
    by_id = {c.id: encode_card(c) for c in cards}
    by_id.setdefault(product_id, encode_card(card(product_id)))
    for pid in (*bought, *viewed, *up_sell):
        by_id.setdefault(pid, encode_card(card(pid)))
    client.set(keys.product_neighbours(product_id), encode_neighbours(
        product_id, _scored(bought), _scored(viewed), list(up_sell), by_id, 1.0))


def save_trending(client: redis.Redis, products: Iterable[str]) -> None:
    """The trending document."""
    listed = list(products)
    client.set(keys.trending(), encode_trending(_scored(listed), {p: encode_card(card(p)) for p in listed}, 1.0))


def _scored(ids: Iterable[str]) -> list[tuple[str, float]]:
    return [(pid, 1.0 / (rank + 1)) for rank, pid in enumerate(ids)]


def shop(client: redis.Redis) -> None:
    """A small shop: trending t1..t3; p1 viewed with n1, n2, p9; p2 with n3; cart item c1 bought with x1, p1."""
    save_trending(client, ["t1", "t2", "t3"])
    save_neighbours(client, "p1", viewed=["n1", "n2", "p9"])
    save_neighbours(client, "p2", viewed=["n3"])
    save_neighbours(client, "c1", bought=["x1", "p1"])


def anonymous_doc(contact_id: str = "anon-1", **fields: object) -> DecisionDoc:
    """An anonymous visitor's document: a popup, seeds, nothing public."""
    values: dict[str, object] = {"popups": [popup()], "seeds": Seeds(viewed=["p1", "p2"], cart=["c1"])}
    values.update(fields)
    return DecisionDoc(contact_id=contact_id, **values)  # type: ignore[arg-type]
