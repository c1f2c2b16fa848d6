"""Catalog products: bounded like events, learned fields never overwrite what the admin set."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from state.catalog import (
    LearnedFields,
    Product,
    card_of,
    decode_learned,
    decode_product,
    encode_product,
    learned_from,
    merged,
)
from state.recommendations import decode_neighbours, encode_card, encode_neighbours


class TestProductBounds:
    """The admin API refuses what a widget could not show safely or a later step could not store."""

    @pytest.mark.parametrize("body", [
        {"id": "", "name": "x"},
        {"id": "a\nb", "name": "x"},
        {"id": "p", "name": ""},
        {"id": "p", "name": "x", "price": -1},
        {"id": "p", "name": "x", "price": 1e13},
        {"id": "p", "name": "x", "image": "javascript:alert(1)"},
        {"id": "p", "name": "x", "url": "data:text/html,<b>"},
        {"id": "p", "name": "x", "tags": ["t"] * 51},
        {"id": "p", "name": "x", "colour": "red"},
    ])
    def test_out_of_bounds_products_are_refused(self, body: dict[str, object]) -> None:
        """Ids without control characters, http(s) links only, prices in range, no unknown fields."""
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(body, Product)

    def test_a_stored_product_reads_back_equal(self) -> None:
        """What is stored is what was sent (defaults omitted on the wire)."""
        p = Product(id="p-1", name="<script>alert(1)</script>", category="mugs", price=12.5,
                    image="https://cdn.example/p.png", url="https://shop.example/p-1", in_stock=False, tags=["new"])
        assert decode_product(encode_product(p)) == p


class TestLearnedFields:
    """Events teach names, categories, prices and links; whatever does not fit is left out."""

    def test_spec_names_are_read(self) -> None:
        """`name`, `category`, `price`, `image_url`, `url` (Segment's e-commerce spec)."""
        got = learned_from({"product_id": "p", "name": "Mug", "category": "mugs", "price": 9,
                            "image_url": "https://cdn.example/m.png", "url": "https://shop.example/m"})
        assert got == LearnedFields(name="Mug", category="mugs", price=9.0, image="https://cdn.example/m.png",
                                    url="https://shop.example/m")

    def test_unsafe_or_odd_values_are_dropped_not_stored(self) -> None:
        """A non-http link, a negative price, a name with control characters: each field on its own."""
        got = learned_from({"name": "Mug\x00", "price": -3, "image_url": "javascript:x", "url": 5,
                            "category": "mugs"})
        assert got == LearnedFields(category="mugs")

    def test_nothing_usable_is_none(self) -> None:
        """A product view without any description teaches nothing."""
        assert learned_from({"product_id": "p"}) is None

    @given(st.dictionaries(st.sampled_from(["name", "category", "price", "image_url", "url"]),
                           st.one_of(st.text(max_size=50), st.floats(allow_nan=True), st.integers(),
                                     st.booleans(), st.none())))
    def test_whatever_is_learned_makes_a_card_a_document_can_carry(self, props: dict[str, object]) -> None:
        """Learned fields always form a valid card: the full decoder of a neighbour document accepts it."""
        learned = learned_from(props)
        product = merged("p", None, learned)
        if product is None:
            return
        card = card_of(product)
        doc = encode_neighbours("p", [], [], [], {"p": encode_card(card)}, 0.0)
        assert decode_neighbours(doc).cards["p"] == card
        assert decode_learned(encode_product(learned)) == learned  # type: ignore[arg-type]


class TestMerge:
    """Admin fields win; learned fields only fill the gaps the admin left."""

    def test_admin_fields_are_never_overwritten_by_event_data(self) -> None:
        admin = Product(id="p", name="Admin name", price=10.0, in_stock=False, tags=["a"])
        learned = LearnedFields(name="Event name", price=99.0, category="mugs", image="https://cdn.example/i.png")
        got = merged("p", admin, learned)
        assert got == Product(id="p", name="Admin name", price=10.0, category="mugs",
                              image="https://cdn.example/i.png", in_stock=False, tags=["a"])

    def test_a_product_known_only_from_events_is_in_stock(self) -> None:
        got = merged("p", None, LearnedFields(name="Mug", price=3.0))
        assert got == Product(id="p", name="Mug", price=3.0)

    def test_without_a_name_there_is_no_product(self) -> None:
        assert merged("p", None, LearnedFields(price=3.0)) is None
