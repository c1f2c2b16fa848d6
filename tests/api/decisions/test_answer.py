"""The answer is spliced from JSON at hand, and is byte for byte what encoding `PublicDecisions` gives.

`public_decisions` joins the document's popups and public fields as stored
with each card's JSON, which a held document keeps once decoded; generated
documents (cards written by other encoders, fields in another order, ints
for floats, escapes, cards that do not decode, documents that disagree on a
card) keep it equal to encoding the composed strips, whether the documents
come as bytes or as views reused by several answers.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from api.decisions.answer import public_decisions
from api.decisions.read import DecisionRead, DocView
from state.decisions import ProductCard, Seeds, Strip
from state.recommendations import (
    NeighbourDocument,
    TrendingDocument,
    compose_strips,
    neighbour_view,
    trending_view,
)

IDS = ["a", "b", "c", "d", "e", "f", "g", "h"]


class _Reference(msgspec.Struct, frozen=True):
    """`PublicDecisions` as the answer used to be encoded: popups and public as read, strips as cards."""

    popups: msgspec.Raw
    recommendations: dict[Strip, list[ProductCard]]
    public: msgspec.Raw


def card_json(pid: str, variant: int, price: float) -> bytes:
    """A stored card, written in one of several ways a writer might (two of them do not decode)."""
    forms: list[Any] = [
        {"id": pid, "name": f"Product {pid}", "price": price, "category": "k", "url": f"https://s.example/{pid}"},
        {"name": f"P {pid}", "id": pid, "price": int(price), "category": "k"},  # int price, other order
        {"id": pid, "name": "caf\u00e9 <b>", "price": None, "image": None, "extra": [1, 2]},  # nulls, unknown field
        {"id": pid, "name": "x", "category": "j", "price": price * 3},  # another category
        {"id": 7, "name": "not a card"},  # does not decode: the next document's card counts
        {"id": pid},  # no name: does not decode
    ]
    encoded = msgspec.json.encode(forms[variant % len(forms)])
    return encoded.replace(b"caf\xc3\xa9", b"caf\\u00e9") if variant // len(forms) else encoded


cards = st.dictionaries(st.sampled_from(IDS), st.tuples(st.integers(0, 11), st.floats(1, 100)), max_size=8)
scored = st.lists(st.tuples(st.sampled_from(IDS), st.floats(0.01, 1)), max_size=6)


@st.composite
def neighbour_doc(draw: st.DrawFn, product: str) -> bytes:
    """A neighbour document whose cards are written by `card_json`."""
    bought, viewed = draw(scored), draw(scored)
    return msgspec.json.encode({
        "product": product, "bought": [p for p, _ in bought], "bought_scores": [s for _, s in bought],
        "viewed": [p for p, _ in viewed], "viewed_scores": [s for _, s in viewed],
        "up_sell": draw(st.lists(st.sampled_from(IDS), max_size=5)),
        "cards": {p: msgspec.Raw(card_json(p, v, price)) for p, (v, price) in draw(cards).items()}})


@st.composite
def trending_doc(draw: st.DrawFn) -> bytes:
    listed = draw(scored)
    return msgspec.json.encode({
        "products": [p for p, _ in listed], "scores": [s for _, s in listed],
        "cards": {p: msgspec.Raw(card_json(p, v, price)) for p, (v, price) in draw(cards).items()}})


@st.composite
def reads(draw: st.DrawFn) -> tuple[DecisionRead, str | None]:
    """A read: maybe a document (popups, public fields), some neighbour documents, maybe trending."""
    doc: DocView | None = None
    if draw(st.booleans()):
        seeds = Seeds(viewed=draw(st.lists(st.sampled_from(IDS), max_size=6)),
                      cart=draw(st.lists(st.sampled_from(IDS), max_size=3)),
                      bought=draw(st.lists(st.sampled_from(IDS), max_size=2)))
        doc = DocView(contact_id="c", seeds=seeds,
                      popups=msgspec.Raw(draw(st.sampled_from([b"[]", b'[{"campaign":"w","variant":"a"}]']))),
                      public=msgspec.Raw(draw(st.sampled_from([b"{}", b'{"t":"hot","n":1.50}']))))
    neighbours: dict[str, NeighbourDocument] = {}
    for pid in draw(st.lists(st.sampled_from(IDS), max_size=6, unique=True)):
        neighbours[pid] = draw(st.one_of(neighbour_doc(pid), st.just(b"{not json")))
    trending: TrendingDocument | None = draw(st.one_of(st.none(), trending_doc(), st.just(b"[1,2]")))
    return DecisionRead(doc, neighbours, trending), draw(st.one_of(st.none(), st.sampled_from(IDS)))


def reference(read: DecisionRead, product: str | None) -> bytes:
    """The answer as encoding the composed `ProductCard`s gives it."""
    doc = read.doc
    strips = compose_strips(doc.seeds if doc is not None else Seeds(), product, read.neighbours, read.trending)
    if doc is None:
        return msgspec.json.encode(_Reference(msgspec.Raw(b"[]"), strips, msgspec.Raw(b"{}")))
    return msgspec.json.encode(_Reference(doc.popups, strips, doc.public))


def as_views(read: DecisionRead) -> DecisionRead:
    """The same read with its documents decoded, as a reader holding them passes them."""
    neighbours: dict[str, NeighbourDocument] = {}
    for pid, raw in read.neighbours.items():
        assert isinstance(raw, bytes)
        neighbours[pid] = neighbour_view(raw) or raw
    trending = read.trending
    view = trending_view(trending) if isinstance(trending, bytes) else None
    return DecisionRead(read.doc, neighbours, view or trending)


@settings(max_examples=300, deadline=None)
@given(case=reads(), again=st.one_of(st.none(), st.sampled_from(IDS)))
def test_the_answer_is_the_encoded_composition_from_bytes_or_held_views(
        case: tuple[DecisionRead, str | None], again: str | None) -> None:
    """Same bytes from raw documents and from views, also when a view's cards were picked by an earlier answer."""
    read, product = case
    expected = reference(read, product)
    assert public_decisions(read, product) == expected
    views = as_views(read)
    public_decisions(views, again)  # picks (and keeps) some cards first, as an earlier answer would
    assert public_decisions(views, product) == expected
    assert public_decisions(views, product) == expected


def test_a_new_visitor_with_nothing_read_answers_empty_strips() -> None:
    assert public_decisions(DecisionRead(None)) == (
        b'{"popups":[],"recommendations":{"cross_sell":[],"up_sell":[],"personal":[],"trending":[]},"public":{}}')
