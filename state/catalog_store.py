"""The catalog in Redis: one hash per product, an index for paging, changes told to the dataflow.

`keys.product(id)` is a hash with up to two fields, each JSON: `admin`
(the `Product` the admin API stored) and `learned` (the `LearnedFields`
the dataflow read from events). Each has one writer, so neither can
overwrite the other. `keys.catalog_index()` is a sorted set of every id
(score 0, so it pages in id order with `ZRANGEBYLEX`).

An admin change is also appended to the ingest stream as a
`CatalogChanged` event, in the same transaction as the record: the
dataflow's products stage takes it in stream order, so recommendation
cards follow the catalog (and a crash replays it like any event). All
catalog changes go to one stream shard, so they keep their order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final, cast

import msgspec
import redis.asyncio as aioredis

from state import keys
from state.catalog import CatalogProduct, LearnedFields, Product, decode_learned, decode_product, encode_product, merged
from state.events import CatalogChanged
from state.streams import queue_appends

ADMIN: Final = b"admin"
LEARNED: Final = b"learned"

_FORGET_LEARNED: Final = """
redis.call('HDEL', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 1
"""


def catalog_changed(product_id: str, product: Product | None, now: datetime) -> CatalogChanged:
    """The internal event telling the dataflow that a product was upserted (or deleted: None)."""
    return CatalogChanged(message_id=str(uuid.uuid4()), timestamp=now, received_at=now, product_id=product_id,
                          product=product)


async def upsert_products(client: aioredis.Redis, products: Sequence[Product], shards: int) -> int:
    """Store the admin records, index them and tell the dataflow, in one transaction."""
    if not products:
        return 0
    now = datetime.now(UTC)
    async with client.pipeline(transaction=True) as pipe:
        for product in products:
            pipe.hset(keys.product(product.id), ADMIN, encode_product(product))
        pipe.zadd(keys.catalog_index(), dict.fromkeys((p.id for p in products), 0))
        queue_appends(pipe, [catalog_changed(p.id, p, now) for p in products], shards)
        await pipe.execute()
    return len(products)


async def delete_products(client: aioredis.Redis, ids: Sequence[str], shards: int) -> list[str]:
    """Forget products (admin record and learned fields); the ids that were in the catalog.

    The dataflow is told about every id, known here or not: a product only
    events have named so far stops being shown and learned from too.
    """
    if not ids:
        return []
    now = datetime.now(UTC)
    async with client.pipeline(transaction=True) as pipe:
        for product_id in ids:
            pipe.delete(keys.product(product_id))
        pipe.zrem(keys.catalog_index(), *ids)
        queue_appends(pipe, [catalog_changed(pid, None, now) for pid in ids], shards)
        replies: list[Any] = await pipe.execute()
    return [pid for pid, gone in zip(ids, replies, strict=False) if gone]


def _catalog_product(product_id: str, fields: dict[bytes, bytes]) -> CatalogProduct | None:
    """A stored hash as the API shows it; None when neither source describes a product any more."""
    admin = decode_product(fields[ADMIN]) if ADMIN in fields else None
    try:
        learned = decode_learned(fields[LEARNED]) if LEARNED in fields else None
    except msgspec.DecodeError:
        learned = None  # learned fields are a hint: unreadable ones are ignored, never an error
    product = merged(product_id, admin, learned)
    if product is None:
        return None
    return CatalogProduct(product=product, source="admin" if admin is not None else "events", learned=learned)


async def get_product(client: aioredis.Redis, product_id: str) -> CatalogProduct | None:
    """One product, merged from what the admin and events said."""
    fields = cast("dict[bytes, bytes]", await client.hgetall(keys.product(product_id)))
    return _catalog_product(product_id, fields) if fields else None


async def page_products(client: aioredis.Redis, after: str | None, limit: int,
                        ) -> tuple[list[CatalogProduct], str | None]:
    """Up to `limit` products with ids after `after`, in id order, and the cursor of the next page."""
    start = b"(" + after.encode() if after else b"-"
    raw_ids = cast("list[bytes]", await client.zrangebylex(keys.catalog_index(), start, b"+", start=0, num=limit))
    ids = [raw.decode() for raw in raw_ids]
    async with client.pipeline(transaction=False) as pipe:
        for product_id in ids:
            pipe.hgetall(keys.product(product_id))
        found: list[dict[bytes, bytes]] = await pipe.execute()
    products = [p for pid, fields in zip(ids, found, strict=True) if fields
                and (p := _catalog_product(pid, fields)) is not None]
    return products, (ids[-1] if len(ids) == limit else None)


async def count_products(client: aioredis.Redis) -> int:
    """How many ids the catalog index holds."""
    return int(await client.zcard(keys.catalog_index()))


def queue_learned(pipe: Any, product_id: str, fields_json: bytes | None) -> None:
    """Add the writes of what events taught about a product (None: forget it) to a pipeline (the sink's).

    Forgetting keeps the admin record, and the index entry while the hash
    still exists, so a product upserted again meanwhile is not lost.
    """
    key = keys.product(product_id)
    if fields_json is None:
        pipe.eval(_FORGET_LEARNED, 2, key, keys.catalog_index(), product_id, LEARNED)
        return
    pipe.hset(key, LEARNED, fields_json)
    pipe.zadd(keys.catalog_index(), {product_id: 0}, nx=True)


def learned_json(fields: LearnedFields) -> bytes:
    """Learned fields as stored."""
    return encode_product(fields)
