"""Events per second, counted where they are already written: one hash per epoch second.

The ingest writers (`api.appender`) add each round trip's events per source
(`gateway`, `http`, and `heartbeat` for the heartbeat's own frames) to the
current second's hash in the pipeline they send anyway; the dataflow's sink
adds the events its visitor stage processed the same way. Two commands per
round trip or sink batch (HINCRBY, EXPIRE), none per event, and exact: the
stream entries group several events each, so XINFO's entries-added could not
give events. A crash's replay may count replayed events as processed twice,
like the dataflow's other counters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import redis.asyncio as aioredis

from state import keys

GATEWAY: Final = "gateway"
HTTP: Final = "http"
HEARTBEAT: Final = "heartbeat"
PROCESSED: Final = "processed"
SOURCES: Final = (GATEWAY, HTTP, HEARTBEAT, PROCESSED)
TTL_S: Final = 180
"""A second's hash outlives the longest series the dashboard reads (60 s) with room to spare."""


def queue_counts(pipe: Any, counts: Mapping[str, int], now: float) -> None:
    """Add `counts` (source → events) to the hash of the second `now` falls in (sync or async pipeline)."""
    key = keys.event_rates(int(now))
    for source, count in counts.items():
        if count:
            pipe.hincrby(key, source, count)
    pipe.expire(key, TTL_S)


async def read_rates(client: aioredis.Redis, first: int, last: int) -> list[dict[str, int]]:
    """Counts per source of every second from `first` to `last` (epoch s, inclusive), oldest first."""
    seconds = range(first, last + 1)
    async with client.pipeline(transaction=False) as pipe:
        for second in seconds:
            pipe.hmget(keys.event_rates(second), *SOURCES)
        replies: list[list[bytes | None]] = await pipe.execute()
    return [{source: int(value or 0) for source, value in zip(SOURCES, reply, strict=True)} for reply in replies]
