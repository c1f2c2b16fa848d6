"""The products stage's shards: documents, the catalog copy, stock, the guard and snapshots."""

from __future__ import annotations

import math

from dataflows.io.outputs import MetricAdd, Quarantined
from dataflows.recommendations.settings import RecsSettings
from dataflows.recommendations.shard import TRENDING_SHARD, ProductShard
from dataflows.recommendations.signals import BASKET, VIEW, Interaction, LearnedWrite, ProductActivity, RecsWrite
from state import keys
from state.catalog import LearnedFields, Product, decode_learned
from state.events import CatalogChanged
from state.recommendations import decode_neighbours, decode_trending
from tests.dataflows.recommendations.streams import Clock, Shards, buy, interactions

T0 = 1_800_000_000.0
SETTINGS = RecsSettings(product_shards=3, min_llr=0.0, half_life_s=0.0, neighbours=5, doc_size=5,
                        trending_size=5, refresh_s=0.25)
NAMES = {p: f"Product {p}" for p in ("a", "b", "c", "d", "e")}


def learned(product: str) -> LearnedFields:
    return LearnedFields(name=NAMES.get(product, product), category="kitchen", price=10.0 + ord(product[0]))


def catalog(product: str, **changes: object) -> CatalogChanged:
    fields: dict[str, object] = {"id": product, "name": NAMES.get(product, product), "category": "kitchen",
                                 "price": 10.0 + ord(product[0])}
    fields.update(changes)
    return CatalogChanged(product_id=product, product=Product(**fields))  # type: ignore[arg-type]


def feed_catalog(shards: Shards, *changes: CatalogChanged) -> None:
    for shard in shards.shards:
        for change in changes:
            shard.apply(change)


def docs(outputs: list[object]) -> dict[str, bytes | None]:
    return {o.key: o.value for o in outputs if isinstance(o, RecsWrite)}


def baskets(*groups: tuple[str, ...]) -> list[Interaction]:
    actions = [buy(f"c{n}", p, T0 + n) for n, group in enumerate(groups) for p in group]
    return interactions(actions, SETTINGS)


def shop() -> tuple[Shards, Clock]:
    clock = Clock(T0 + 100)
    shards = Shards(SETTINGS, clock)
    feed_catalog(shards, *(catalog(p) for p in NAMES))
    shards.feed(baskets(("a", "b"), ("a", "b"), ("a", "c"), ("d", "e"), ("d",), ("e",)))
    return shards, clock


class TestDocuments:
    """Each product's document lists what goes with it, with cards; written when it changes."""

    def test_a_document_lists_bought_together_products_with_their_cards(self) -> None:
        shards, _ = shop()
        written = docs(shards.tick())
        doc = decode_neighbours(written[keys.product_neighbours("a")] or b"")
        assert doc.bought == ["b", "c"] and doc.bought_scores[0] == 1.0
        assert doc.cards["b"].name == "Product b" and doc.cards["a"].name == "Product a"
        assert doc.updated_at == T0 + 100

    def test_only_the_owner_writes_a_products_document_and_only_when_it_changed(self) -> None:
        shards, clock = shop()
        first = shards.tick()
        assert len([o for o in first if isinstance(o, RecsWrite) and o.key == keys.product_neighbours("a")]) == 1
        clock.at += 1
        assert not [o for o in shards.tick() if isinstance(o, RecsWrite)]

    def test_up_sell_is_same_category_and_dearer(self) -> None:
        shards, _ = shop()
        feed_catalog(shards, catalog("b", price=5.0), catalog("c", price=500.0))
        doc = decode_neighbours(docs(shards.tick())[keys.product_neighbours("a")] or b"")
        assert doc.up_sell == ["c"]

    def test_trending_is_written_by_one_shard_and_holds_offered_products(self) -> None:
        shards, _ = shop()
        out = shards.tick()
        writers = [s.shard for s in shards.shards if any(isinstance(o, RecsWrite) and o.key == keys.trending()
                                                          for o in s.tick())]
        assert writers == []  # nothing changed since
        trending = decode_trending(docs(out)[keys.trending()] or b"")
        assert trending.products[:2] == ["a", "b"] or trending.products[:2] == ["d", "a"]
        assert set(trending.cards) == set(trending.products)
        assert TRENDING_SHARD == 0


class TestStockAndCatalog:
    """Out-of-stock and deleted products leave every document on the next tick; cards follow the catalog."""

    def test_an_out_of_stock_product_leaves_the_documents_that_listed_it_and_comes_back(self) -> None:
        shards, clock = shop()
        shards.tick()
        feed_catalog(shards, catalog("b", in_stock=False))
        clock.at += 1
        written = docs(shards.tick())
        assert decode_neighbours(written[keys.product_neighbours("a")] or b"").bought == ["c"]
        assert "b" not in decode_trending(written[keys.trending()] or b"").products
        feed_catalog(shards, catalog("b"))
        clock.at += 1
        assert decode_neighbours(docs(shards.tick())[keys.product_neighbours("a")] or b"").bought == ["b", "c"]

    def test_a_renamed_product_is_renamed_in_every_document_that_lists_it(self) -> None:
        shards, clock = shop()
        shards.tick()
        feed_catalog(shards, catalog("c", name="Renamed"))
        clock.at += 1
        doc = decode_neighbours(docs(shards.tick())[keys.product_neighbours("a")] or b"")
        assert doc.cards["c"].name == "Renamed"

    def test_event_data_never_overrides_the_admin_record(self) -> None:
        shards, clock = shop()
        shards.tick()
        shards.feed([Interaction(VIEW, "c", T0 + 200, (), LearnedFields(name="From events", price=1.0))])
        clock.at += 1
        written = shards.tick()
        assert keys.product_neighbours("a") not in docs(written)  # the card shown did not change
        [write] = [o for o in written if isinstance(o, LearnedWrite)]
        assert write.product_id == "c" and write.fields_json is not None
        assert decode_learned(write.fields_json).name == "From events"
        assert shards.owner("c").model.owns("c")

    def test_a_deleted_product_loses_its_document_and_is_not_learned_again(self) -> None:
        shards, clock = shop()
        shards.tick()
        feed_catalog(shards, CatalogChanged(product_id="b", product=None))
        clock.at += 1
        written = shards.tick()
        assert docs(written)[keys.product_neighbours("b")] is None
        assert LearnedWrite("b", None) in written
        assert decode_neighbours(docs(written)[keys.product_neighbours("a")] or b"").bought == ["c"]
        shards.feed([Interaction(VIEW, "b", T0 + 300, (), learned("b"))])
        clock.at += 1
        assert not [o for o in shards.tick() if isinstance(o, LearnedWrite)]

    def test_products_known_only_from_events_get_cards(self) -> None:
        clock = Clock(T0 + 10)
        shards = Shards(SETTINGS, clock)
        shards.feed(baskets(("p",), ("q",), ("r",)))  # other shoppers' baskets: the pair is no coincidence
        shards.feed([Interaction(BASKET, "x", T0, (), learned("x")),
                     Interaction(BASKET, "y", T0 + 1, ("x",), learned("y"))])
        doc = decode_neighbours(docs(shards.tick())[keys.product_neighbours("y")] or b"")
        assert doc.bought == ["x"] and doc.cards["x"].name == "x"


class TestGuard:
    """Bad input is quarantined, changes nothing, and the shard goes on."""

    def test_bad_items_are_quarantined_and_good_ones_still_count(self) -> None:
        clock = Clock(T0)
        shard = ProductShard(0, SETTINGS, clock)
        good = Interaction(VIEW, "a", T0, ())
        for bad in (ProductActivity((good, Interaction(VIEW, "b", math.nan, ("a",)))),
                    ProductActivity((Interaction(7, "a", T0, ()),)),
                    ProductActivity((Interaction(VIEW, "", T0, ()),)),
                    ProductActivity((Interaction(VIEW, "a", T0, (None,)),)),  # type: ignore[arg-type]
                    CatalogChanged(product_id="a", product=Product(id="other", name="x")),
                    CatalogChanged(product_id="", product=None),
                    "not an item"):
            shard.apply(bad)  # type: ignore[arg-type]
        records = [o.record for o in shard.drain() if isinstance(o, Quarantined)]
        assert len(records) == 7 and {r.stage for r in records} == {"products"}
        assert shard.model.ids == []  # the first, good interaction of a bad item was not counted either
        shard.apply(ProductActivity((good,)))
        assert shard.model.ids == ["a"]
        assert any(isinstance(o, MetricAdd) and o.name == "recs_interactions" for o in shard.drain())


class TestSnapshot:
    """A restored shard writes the same documents as the one it was taken from."""

    def test_restore_gives_the_same_documents(self) -> None:
        shards, clock = shop()
        before = docs(shards.tick())
        restored = Shards(SETTINGS, clock)
        restored.shards = [ProductShard(0, SETTINGS, clock, s.encode()) for s in shards.shards]
        for shard in restored.shards:
            shard.written.clear()
            shard.trending_digest = 0
            shard.dirty.update(dict.fromkeys(shard.model.own_rows()))
            shard.trending_dirty = True
        after = docs(restored.tick())
        assert after == before
        assert [s.shard for s in restored.shards] == [0, 1, 2]
