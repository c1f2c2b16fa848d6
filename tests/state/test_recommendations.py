"""Strip composition: what each strip grows from, what it leaves out, and which documents it reads."""

from __future__ import annotations

from collections.abc import Sequence

from state import keys
from state.decisions import ProductCard, Seeds
from state.recommendations import (
    MAX_ANCHORS,
    compose_strips,
    decode_neighbours,
    decode_trending,
    encode_card,
    encode_neighbours,
    encode_trending,
    neighbour_view,
    read_ids,
    read_keys,
    trending_view,
)

CATALOG = {
    "mug": ProductCard(id="mug", name="Mug", price=10.0, category="kitchen"),
    "mug-xl": ProductCard(id="mug-xl", name="Big mug", price=15.0, category="kitchen"),
    "mug-gold": ProductCard(id="mug-gold", name="Gold mug", price=80.0, category="kitchen"),
    "mug-cheap": ProductCard(id="mug-cheap", name="Cheap mug", price=4.0, category="kitchen"),
    "coffee": ProductCard(id="coffee", name="Coffee", price=8.0, category="food"),
    "spoon": ProductCard(id="spoon", name="Spoon", price=2.0, category="kitchen"),
    "tea": ProductCard(id="tea", name="Tea", price=5.0, category="food"),
    "hat": ProductCard(id="hat", name="Hat", price=20.0, category="clothes"),
    "scarf": ProductCard(id="scarf", name="Scarf", price=30.0, category="clothes"),
}
RAW = {pid: encode_card(card) for pid, card in CATALOG.items()}


def doc(product: str, bought: Sequence[tuple[str, float]] = (), viewed: Sequence[tuple[str, float]] = (),
        up_sell: Sequence[str] = ()) -> bytes:
    return encode_neighbours(product, bought, viewed, up_sell, RAW, 1.0)


TRENDING = encode_trending([("hat", 1.0), ("mug-gold", 0.8), ("coffee", 0.5), ("scarf", 0.4), ("tea", 0.2)],
                           RAW, 1.0)


def ids(cards: list[ProductCard]) -> list[str]:
    return [c.id for c in cards]


class TestStrips:
    """Cross-sell, up-sell, personal and trending, each as the issue describes it."""

    def test_a_new_visitor_gets_trending_and_a_personal_strip_of_trending(self) -> None:
        strips = compose_strips(Seeds(), None, {}, TRENDING)
        assert list(strips) == ["cross_sell", "up_sell", "personal", "trending"]
        assert ids(strips["trending"]) == ["hat", "mug-gold", "coffee", "scarf", "tea"]
        assert ids(strips["personal"]) == ids(strips["trending"])
        assert strips["cross_sell"] == [] and strips["up_sell"] == []

    def test_cross_sell_is_bought_together_with_the_product_on_screen_first(self) -> None:
        """The product on screen counts most; cart items add their own; nothing in the cart is offered."""
        neighbours = {"mug": doc("mug", bought=[("coffee", 1.0), ("spoon", 0.5)]),
                      "tea": doc("tea", bought=[("spoon", 1.0), ("mug", 0.9)])}
        strips = compose_strips(Seeds(cart=["tea"]), "mug", neighbours, None)
        # spoon: 1.0 × 0.5 + 0.5 × 1.0 = 1.0 ties coffee (1.0): first seen first.
        assert ids(strips["cross_sell"]) == ["coffee", "spoon"]

    def test_cross_sell_without_a_product_on_screen_grows_from_the_cart(self) -> None:
        neighbours = {"tea": doc("tea", bought=[("mug", 1.0), ("spoon", 0.5)])}
        strips = compose_strips(Seeds(cart=["tea"], bought=["spoon"]), None, neighbours, None)
        assert ids(strips["cross_sell"]) == ["mug"]

    def test_up_sell_is_same_category_and_dearer_then_trending_of_that_category(self) -> None:
        neighbours = {"mug": doc("mug", up_sell=["mug-xl"])}
        strips = compose_strips(Seeds(), "mug", neighbours, TRENDING)
        assert ids(strips["up_sell"]) == ["mug-xl", "mug-gold"]
        assert all(c.category == "kitchen" and (c.price or 0) > 10.0 for c in strips["up_sell"])

    def test_up_sell_without_a_product_on_screen_uses_the_latest_view(self) -> None:
        neighbours = {"mug": doc("mug", up_sell=["mug-xl"]), "hat": doc("hat", up_sell=["scarf"])}
        strips = compose_strips(Seeds(viewed=["hat", "mug"]), None, neighbours, None)
        assert ids(strips["up_sell"]) == ["scarf"]

    def test_personal_is_viewed_together_with_recent_views_minus_what_was_bought(self) -> None:
        neighbours = {"mug": doc("mug", viewed=[("mug-xl", 1.0), ("coffee", 0.9), ("spoon", 0.1)]),
                      "tea": doc("tea", viewed=[("coffee", 1.0), ("mug", 0.5)])}
        strips = compose_strips(Seeds(viewed=["tea", "mug"], bought=["mug-xl"]), None, neighbours, TRENDING,
                                limit=4)
        # coffee: 1.0 (tea, latest) + 0.5 × 0.9; mug is a view itself; mug-xl was bought; then trending.
        assert ids(strips["personal"]) == ["coffee", "spoon", "hat", "mug-gold"]

    def test_nothing_bought_or_in_the_cart_is_offered_anywhere(self) -> None:
        neighbours = {"mug": doc("mug", bought=[("coffee", 1.0)], viewed=[("hat", 1.0)], up_sell=["mug-gold"])}
        seeds = Seeds(viewed=["mug"], cart=["coffee"], bought=["hat", "mug-gold"])
        strips = compose_strips(seeds, "mug", neighbours, TRENDING)
        offered = {c.id for strip in strips.values() for c in strip}
        assert offered.isdisjoint({"coffee", "hat", "mug-gold", "mug"})

    def test_limit_bounds_every_strip(self) -> None:
        strips = compose_strips(Seeds(), None, {}, TRENDING, limit=2)
        assert all(len(strip) <= 2 for strip in strips.values())

    def test_unreadable_documents_are_as_good_as_missing(self) -> None:
        """A corrupt document never fails a page view: the strip is composed without it."""
        strips = compose_strips(Seeds(viewed=["mug"]), "mug", {"mug": b"{not json"}, b"[1,2]")
        assert all(strip == [] for strip in strips.values())

    def test_cards_come_back_exactly_as_the_catalog_made_them(self) -> None:
        card = ProductCard(id="p", name="<img src=x onerror=alert(1)>", price=1.5, category="c",
                           image="https://cdn.example/p.png", url="https://shop.example/p")
        raw = encode_trending([("p", 1.0)], {"p": encode_card(card)}, 2.0)
        assert compose_strips(Seeds(), None, {}, raw)["trending"] == [card]
        assert decode_trending(raw).cards == {"p": card}


class TestWhatToRead:
    """One `MGET`: trending, the product on screen, then cart and views, each once."""

    def test_read_ids_are_the_product_on_screen_then_cart_then_views(self) -> None:
        seeds = Seeds(viewed=["a", "b", "c", "d", "e", "f"], cart=["b", "x"], bought=["z"])
        assert read_ids(seeds, "p") == ["p", "b", "x", "a", "c", "d", "e"]
        assert read_keys(seeds, "p")[:2] == [keys.trending(), keys.product_neighbours("p")]

    def test_reads_are_bounded(self) -> None:
        seeds = Seeds(viewed=[f"v{i}" for i in range(40)], cart=[f"c{i}" for i in range(40)])
        assert len(read_ids(seeds, "p")) <= MAX_ANCHORS

    def test_documents_name_only_cards_they_list(self) -> None:
        got = decode_neighbours(doc("mug", bought=[("coffee", 1.0)]))
        assert set(got.cards) == {"mug", "coffee"}


class TestViews:
    """Documents decoded once for the answers that read them while a process holds them."""

    def test_a_view_composes_what_its_bytes_compose(self) -> None:
        raw = {"mug": doc("mug", bought=[("coffee", 1.0)], viewed=[("hat", 1.0)], up_sell=["mug-gold"])}
        view = neighbour_view(raw["mug"])
        assert view is not None
        seeds = Seeds(viewed=["mug"])
        from_views = compose_strips(seeds, "mug", {"mug": view}, trending_view(TRENDING))
        assert from_views == compose_strips(seeds, "mug", raw, TRENDING)

    def test_documents_share_one_decoded_card_per_card_text(self) -> None:
        """A card listed in many documents is decoded (and kept) once, not once per document."""
        mug = neighbour_view(doc("mug", bought=[("coffee", 1.0)]))
        tea = neighbour_view(doc("tea", viewed=[("coffee", 1.0)]))
        assert mug is not None and tea is not None
        assert mug.cards["coffee"] is tea.cards["coffee"]

    def test_documents_that_do_not_decode_have_no_view(self) -> None:
        assert neighbour_view(b"{not json") is None and trending_view(b"[1,2]") is None
