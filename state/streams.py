"""Appending events to the sharded ingest streams, and reading them back.

Events are grouped by shard and each group is one stream entry (a JSON
array), so a 20-event frame costs one XADD instead of twenty: per-entry
client cost, not Redis, is what limits ingest. Entry ids are the dataflow's
resume positions, so an entry is the unit of exactly-once replay.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec
import redis
import redis.asyncio as aioredis

from state import keys
from state.events import Event, routing_id
from state.shards import shard_of

ENTRY_FIELD: Final = b"e"
# Entries with this field instead carry a control message (a config version).
CONTROL_FIELD: Final = b"c"
_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(list[Event])


def group_by_shard(events: Iterable[Event], shards: int) -> dict[int, list[Event]]:
    """Split events by the shard that owns each one's routing id, keeping order."""
    groups: dict[int, list[Event]] = defaultdict(list)
    for event in events:
        groups[shard_of(routing_id(event), shards)].append(event)
    return groups


def encode_entry(events: Sequence[Event]) -> bytes:
    """The stream entry payload for a group of events."""
    return _encoder.encode(events)


def decode_entry(payload: bytes) -> list[Event]:
    """Events of one stream entry."""
    return _decoder.decode(payload)


def queue_appends(pipe: Any, events: Sequence[Event], shards: int) -> None:
    """Add the XADDs for `events` (one entry per shard) to a pipeline, sync or async."""
    for shard, group in group_by_shard(events, shards).items():
        pipe.xadd(keys.event_stream(shard), {ENTRY_FIELD: encode_entry(group)})


async def append_events(client: aioredis.Redis, events: Sequence[Event], shards: int) -> int:
    """Durably append events, one entry per shard, in one round trip.

    Returns the number of events appended. Durability is Redis's (AOF when
    configured): the caller acks only after this returns.
    """
    if not events:
        return 0
    async with client.pipeline(transaction=False) as pipe:
        queue_appends(pipe, events, shards)
        await pipe.execute()
    return len(events)


def append_events_sync(client: redis.Redis, events: Sequence[Event], shards: int) -> int:
    """Blocking twin of `append_events`, for tools, tests and benchmarks."""
    if not events:
        return 0
    with client.pipeline(transaction=False) as pipe:
        queue_appends(pipe, events, shards)
        pipe.execute()
    return len(events)


def entry_millis(entry_id: bytes | str) -> int:
    """The millisecond timestamp part of a stream entry id."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def compare_ids(a: str, b: str) -> int:
    """Order two stream entry ids: -1, 0 or 1."""
    ma, sa = (int(x) for x in a.split("-", 1))
    mb, sb = (int(x) for x in b.split("-", 1))
    return (ma, sa) > (mb, sb) or -((ma, sa) < (mb, sb))


async def ingest_lag_seconds(client: aioredis.Redis, shards: int) -> float:
    """How far behind the newest appended event the dataflow is, in seconds.

    Compares each stream's last entry with the position the dataflow last
    reported; 0 when it is caught up. Ingest uses this to push back.
    """
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.dataflow_progress())
        for shard in range(shards):
            pipe.xrevrange(keys.event_stream(shard), count=1)
        replies: list[Any] = await pipe.execute()
    progress: dict[bytes, bytes] = replies[0]
    lag_ms = 0
    for shard, last in enumerate(replies[1:]):
        if not last:
            continue
        last_id: bytes = last[0][0]
        done = progress.get(str(shard).encode())
        if done is None:
            lag_ms = max(lag_ms, int(time.time() * 1000) - entry_millis(last_id))
        elif compare_ids(done.decode(), last_id.decode()) < 0:
            lag_ms = max(lag_ms, entry_millis(last_id) - entry_millis(done))
    return lag_ms / 1000
