"""Refreshing the RFM quintile edges from the contact base, periodically.

RFM scores are relative: "top fifth by revenue" moves as the shop grows. The
API process samples buyers' profiles, computes the edges, and publishes them
as a new configuration version only when they changed, so every contact is
re-scored by the dataflow under the new edges (the same path as any config
change). A Redis lock keeps several API processes from doing it at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Final, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from api.logging import log
from state import keys
from state.config import DAY, RfmEdges
from state.config_store import current_config, publish_config
from state.profile import decode_profile
from state.rfm import compute_edges

logger = logging.getLogger(__name__)
LOCK_KEY: Final = "attimo:lock:rfm-refresh"
SCAN_BATCH: Final = 1000


async def sample_buyers(client: aioredis.Redis, limit: int, now: float) -> tuple[list[float], list[float], list[float]]:
    """Recency (days), frequency and monetary value of up to `limit` buyers."""
    recency: list[float] = []
    frequency: list[float] = []
    monetary: list[float] = []
    seen = 0
    async for batch in _profile_key_batches(client):
        raws = cast("list[bytes | None]", await client.mget(batch))
        for raw in raws:
            if raw is None:
                continue
            orders = decode_profile(raw).orders
            if orders.orders > 0 and orders.last_order_at is not None:
                recency.append(max(0.0, now - orders.last_order_at) / DAY)
                frequency.append(float(orders.orders))
                monetary.append(orders.revenue)
        seen += len(batch)
        if seen >= limit:
            break
    return recency, frequency, monetary


async def _profile_key_batches(client: aioredis.Redis) -> AsyncIterator[list[bytes]]:
    batch: list[bytes] = []
    async for key in client.scan_iter(match=keys.contact_profile("*"), count=SCAN_BATCH):
        batch.append(key)
        if len(batch) >= SCAN_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def refresh_rfm_edges(client: aioredis.Redis, shards: int, sample_limit: int,
                            now: float | None = None) -> RfmEdges | None:
    """Recompute the edges; publish and return them when they changed, else None."""
    recency, frequency, monetary = await sample_buyers(client, sample_limit, now or time.time())
    if not recency:
        return None
    edges = compute_edges(recency, frequency, monetary)
    config = await current_config(client)
    if edges == config.rfm:
        return None
    await publish_config(client, msgspec.structs.replace(config, rfm=edges), shards)
    return edges


async def run_rfm_refresher(client: aioredis.Redis, shards: int, every_s: float, sample_limit: int) -> None:
    """Refresh every `every_s` seconds, in one API process at a time, until cancelled."""
    while True:
        await asyncio.sleep(every_s)
        try:
            if await client.set(LOCK_KEY, b"1", nx=True, ex=max(1, int(every_s * 0.9))):
                edges = await refresh_rfm_edges(client, shards, sample_limit)
                if edges is not None:
                    log(logger, logging.INFO, "rfm edges refreshed", edges=msgspec.to_builtins(edges))
        except (RedisError, OSError) as exc:
            log(logger, logging.WARNING, "rfm refresh failed", error=str(exc))
