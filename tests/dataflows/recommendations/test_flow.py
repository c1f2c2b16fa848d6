"""Recommendations through the real dataflow: fresh within seconds, following the catalog, surviving crashes."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import redis
import redis.asyncio as aioredis

from state import keys
from state.catalog import Product
from state.catalog_store import upsert_products
from state.decisions import Seeds
from state.events import Event, Track
from state.quarantine import decode_record
from state.recommendations import compose_strips, decode_neighbours, read_ids
from state.shards import shard_of
from state.streams import ENTRY_FIELD
from tests.dataflows.live import SHARDS, send
from tests.helpers import RedisServer, running_dataflow, wait_for

FAST = {"stream_shards": str(SHARDS), "product_shards": "2", "recs_refresh_s": "0.1", "recs_min_llr": "0.5",
        "recs_view_window_s": "600", "recs_basket_window_s": "600"}
VIEWED, ADDED, ORDERED = "Product Viewed", "Product Added", "Order Completed"


def live_track(who: str, event: str, **props: object) -> Track:
    """An event received when it happened (`product`'s `name` would clash with the live helper's)."""
    at = datetime.now(UTC)
    return Track(message_id=str(uuid.uuid4()), anonymous_id=who, event=event, timestamp=at, received_at=at,
                 properties=dict(props))


def item(pid: str) -> dict[str, object]:
    return {"product_id": pid, "name": f"Product {pid}", "category": "kitchen", "price": 10.0}


def background(prefix: str, shoppers: int) -> list[Event]:
    """Shoppers viewing and buying unrelated products: the baskets that make a pattern significant."""
    events: list[Event] = []
    for n in range(shoppers):
        who = f"{prefix}-{n}"
        events += [live_track(who, VIEWED, **item(f"bg{n % 7}")), live_track(who, ADDED, **item(f"bg{n % 5}"))]
    return events


def strips(client: redis.Redis, seeds: Seeds, product: str | None = None) -> dict[str, list[str]]:
    """The strips as the decisions route composes them from what is in Redis now."""
    ids = read_ids(seeds, product)
    raws = client.mget([keys.trending(), *(keys.product_neighbours(p) for p in ids)])
    found = {p: raw for p, raw in zip(ids, raws[1:], strict=True) if raw is not None}
    composed = compose_strips(seeds, product, found, raws[0])
    return {name: [card.id for card in cards] for name, cards in composed.items()}


def neighbours(client: redis.Redis, product: str, relation: str = "bought") -> list[str]:
    raw = client.get(keys.product_neighbours(product))
    return list(getattr(decode_neighbours(raw), relation)) if raw else []


class TestThroughTheDataflow:
    """Events in, neighbour documents out, as the decisions route reads them."""

    def test_a_new_copurchase_pattern_reaches_cross_sell_within_five_seconds(self, redis_server: RedisServer,
                                                                            tmp_path: Path) -> None:
        client = redis_server.client()
        send(client, background("bg", 40))
        with running_dataflow(redis_server.url, tmp_path / "df", **FAST) as dataflow:
            wait_for(lambda: client.get(keys.trending()), 20, "the background to be counted")
            started = time.monotonic()
            pattern: list[Event] = []
            for n in range(3):
                who = f"pair-{n}"
                pattern += [live_track(who, ADDED, **item("tent")), live_track(who, ADDED, **item("stove")),
                            live_track(who, ORDERED, products=[item("tent"), item("stove")])]
            send(client, pattern)
            wait_for(lambda: "stove" in strips(client, Seeds(cart=["tent"]))["cross_sell"], 5,
                     "stove in the cross-sell strip of a cart holding the tent")
            # The product on screen is an anchor too (its document may come from another shard's tick).
            wait_for(lambda: strips(client, Seeds(), product="stove")["cross_sell"][:1] == ["tent"],
                     5 - (time.monotonic() - started), "tent in the cross-sell strip of the stove's page")
            assert time.monotonic() - started < 5
            assert "tent" not in strips(client, Seeds(cart=["tent"]), product="stove")["cross_sell"]
            assert "Traceback" not in dataflow.log()

    def test_a_new_product_has_neighbours_after_its_first_cooccurrence(self, redis_server: RedisServer,
                                                                       tmp_path: Path) -> None:
        client = redis_server.client()
        send(client, background("bg", 40))
        with running_dataflow(redis_server.url, tmp_path / "df", **FAST):
            wait_for(lambda: client.get(keys.trending()), 20, "the background to be counted")
            send(client, [live_track("first", VIEWED, **item("brand-new")), live_track("first", VIEWED, **item("bg3"))])
            wait_for(lambda: neighbours(client, "brand-new", "viewed") == ["bg3"], 5,
                     "the new product's first neighbour")
            assert "brand-new" in neighbours(client, "bg3", "viewed")
            assert "brand-new" in strips(client, Seeds(viewed=["bg3"]))["personal"]

    def test_catalog_changes_reach_every_document_and_survive_a_crash(self, redis_server: RedisServer,
                                                                      tmp_path: Path) -> None:
        """Out of stock leaves cross-sell within seconds; after kill -9 the stage resumes where it was."""
        client = redis_server.client()
        send(client, background("bg", 40))
        pairs = [e for n in range(3) for e in (live_track(f"p{n}", ADDED, **item("cup")),
                                               live_track(f"p{n}", ADDED, **item("saucer")),
                                               live_track(f"p{n}", ADDED, **item("spoon")))]
        send(client, pairs)
        data = tmp_path / "df"
        with running_dataflow(redis_server.url, data, **FAST) as dataflow:
            wait_for(lambda: set(neighbours(client, "cup")) == {"saucer", "spoon"}, 20, "cup's neighbours")
            upsert(redis_server.url, Product(id="saucer", name="Saucer", price=4.0, in_stock=False),
                   Product(id="spoon", name="Silver spoon", price=9.0))
            wait_for(lambda: strips(client, Seeds(cart=["cup"]))["cross_sell"] == ["spoon"], 5,
                     "the out-of-stock saucer to leave cross-sell")
            raw = client.get(keys.product_neighbours("cup"))
            assert raw is not None and decode_neighbours(raw).cards["spoon"].name == "Silver spoon"
            time.sleep(2.5)  # two snapshot intervals: the stage's state is committed
            dataflow.kill_hard()
        with running_dataflow(redis_server.url, data, **FAST) as resumed:
            send(client, [live_track("later", ADDED, **item("cup")), live_track("later", ADDED, **item("fork"))])
            wait_for(lambda: "fork" in neighbours(client, "cup"), 20, "the resumed stage to count on")
            assert "saucer" not in neighbours(client, "cup") and "spoon" in neighbours(client, "cup")
            assert "Traceback" not in resumed.log() and "panicked" not in resumed.log()

    def test_bad_catalog_entries_and_odd_orders_are_quarantined_or_ignored(self, redis_server: RedisServer,
                                                                          tmp_path: Path) -> None:
        client = redis_server.client()
        bad = msgspec.json.encode({"type": "attimo.catalog", "messageId": "bad-catalog", "productId": "x",
                                   "product": {"id": "x", "name": "X", "price": "free"}})
        client.xadd(keys.event_stream(shard_of("", SHARDS)), {ENTRY_FIELD: b"[" + bad + b"]"})
        odd = live_track("odd", ORDERED, products=[{"product_id": "y" * 300}, {"product_id": 5, "name": "Five"},
                                                   "not a line", {"product_id": "ok", "name": "OK"},
                                                   {"product_id": "unnamed", "name": "\x00bad"}])
        send(client, [*background("bg", 40), odd, live_track("odd", ADDED, **item("after"))])
        with running_dataflow(redis_server.url, tmp_path / "df", **FAST) as dataflow:
            wait_for(lambda: client.zcard(keys.quarantine_index()) >= 1, 20, "the bad catalog entry's record")
            # The usable lines pair with the later add; one without a usable name has no card to show.
            wait_for(lambda: set(neighbours(client, "after")) == {"5", "ok"}, 20,
                     "the odd order's usable lines to pair with the later add")
            ids = [i.decode() for i in client.zrange(keys.quarantine_index(), 0, -1)]
            records = [decode_record(r) for r in client.mget([keys.quarantine_record(i) for i in ids]) if r]
            assert [r.stage for r in records] == ["source"]
            assert "Traceback" not in dataflow.log()


def upsert(redis_url: str, *products: Product) -> None:
    async def run() -> None:
        store = aioredis.Redis.from_url(redis_url)
        await upsert_products(store, list(products), SHARDS)
        await store.aclose()

    asyncio.run(run())
