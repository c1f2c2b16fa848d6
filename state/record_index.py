"""Records kept for operators: one expiring key per record, a sorted set of their ids by time.

Quarantine records and dead letters are both written once by a pipeline
(dataflow, dispatcher), expire on their own, and are paged newest first,
read and deleted by the admin API. The index outlives an expired record, so
reading a page drops the ids whose record is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

import redis.asyncio as aioredis

T = TypeVar("T")


@dataclass(frozen=True)
class RecordIndex(Generic[T]):
    """Where one kind of record lives (`record_key(id)`, `index_key`) and how it decodes."""

    index_key: str
    record_key: Callable[[str], str]
    decode: Callable[[bytes], T]

    async def count(self, client: aioredis.Redis) -> int:
        """How many ids the index holds (expired records included until a page drops them)."""
        return int(await client.zcard(self.index_key))

    async def page(self, client: aioredis.Redis, limit: int, before: float | None = None) -> list[T]:
        """Up to `limit` records, newest first, indexed before `before` (epoch seconds) if given."""
        top = f"({before!r}" if before is not None else "+inf"
        ids = cast("list[bytes]", await client.zrevrangebyscore(self.index_key, top, "-inf", start=0, num=limit))
        if not ids:
            return []
        raws = cast("list[bytes | None]", await client.mget([self.record_key(i.decode()) for i in ids]))
        expired = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
        if expired:
            await client.zrem(self.index_key, *expired)
        return [self.decode(raw) for raw in raws if raw is not None]

    async def get(self, client: aioredis.Redis, record_id: str) -> T | None:
        """One record, or None when there is none (never written, expired or deleted)."""
        raw = cast("bytes | None", await client.get(self.record_key(record_id)))
        return self.decode(raw) if raw is not None else None

    async def delete(self, client: aioredis.Redis, record_id: str) -> bool:
        """Forget a record; whether it was there."""
        async with client.pipeline(transaction=True) as pipe:
            pipe.delete(self.record_key(record_id))
            pipe.zrem(self.index_key, record_id)
            removed, _ = await pipe.execute()
        return bool(removed)
