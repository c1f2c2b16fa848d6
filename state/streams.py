"""Appending events to the sharded ingest streams, and reading them back.

Events are grouped by shard and each group is one stream entry (a JSON
array), so a 20-event frame costs one XADD instead of twenty: per-entry
client cost, not Redis, is what limits ingest. Entry ids are the dataflow's
resume positions, so an entry is the unit of exactly-once replay.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import msgspec
import redis
import redis.asyncio as aioredis

from state import keys
from state.events import StreamEvent, routing_id
from state.shards import shard_of

ENTRY_FIELD: Final = b"e"
# Entries with this field instead carry a control message (a config version).
CONTROL_FIELD: Final = b"c"
_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(list[StreamEvent])
_raw_list_decoder: Final = msgspec.json.Decoder(list[msgspec.Raw])
_one_decoder: Final = msgspec.json.Decoder(StreamEvent)


@dataclass(frozen=True, slots=True)
class UnreadableEvent:
    """One element of a stream entry that does not decode as an event, and why."""

    index: int
    payload: bytes
    error: str


def group_by_shard(events: Iterable[StreamEvent], shards: int) -> dict[int, list[StreamEvent]]:
    """Split events by the shard that owns each one's routing id, keeping order."""
    groups: dict[int, list[StreamEvent]] = defaultdict(list)
    for event in events:
        groups[shard_of(routing_id(event), shards)].append(event)
    return groups


def encode_entry(events: Sequence[StreamEvent]) -> bytes:
    """The stream entry payload for a group of events."""
    return _encoder.encode(events)


def decode_entry(payload: bytes) -> list[StreamEvent]:
    """Events of one stream entry (raises on any element that does not decode)."""
    return _decoder.decode(payload)


def decode_entry_salvaging(payload: bytes) -> tuple[list[StreamEvent], list[UnreadableEvent]]:
    """Events of one stream entry, keeping every element that decodes.

    The fast path decodes the whole entry at once. Should that fail (an entry
    written by an older version, or by hand), each element is decoded on its
    own so one bad element costs only itself; an entry that is not even a
    JSON array is one unreadable element.
    """
    try:
        return _decoder.decode(payload), []
    except (msgspec.DecodeError, RecursionError):
        pass
    try:
        raws = _raw_list_decoder.decode(payload)
    except (msgspec.DecodeError, RecursionError) as exc:
        return [], [UnreadableEvent(0, payload, f"entry is not a JSON array of events: {exc}")]
    events: list[StreamEvent] = []
    bad: list[UnreadableEvent] = []
    for index, raw in enumerate(raws):
        try:
            events.append(_one_decoder.decode(raw))
        except (msgspec.DecodeError, RecursionError) as exc:
            bad.append(UnreadableEvent(index, bytes(raw), str(exc)))
    return events, bad


def queue_appends(pipe: Any, events: Sequence[StreamEvent], shards: int) -> None:
    """Add the XADDs for `events` (one entry per shard) to a pipeline, sync or async."""
    for shard, group in group_by_shard(events, shards).items():
        pipe.xadd(keys.event_stream(shard), {ENTRY_FIELD: encode_entry(group)})


async def append_events(client: aioredis.Redis, events: Sequence[StreamEvent], shards: int) -> int:
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


def append_events_sync(client: redis.Redis, events: Sequence[StreamEvent], shards: int) -> int:
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
    """How long the oldest event the dataflow has not processed yet has been waiting, in seconds.

    Per shard, the first entry after the position the dataflow last reported
    is the oldest unprocessed one; its id is the moment Redis appended it, so
    its age (by Redis's own clock) is the lag. A caught-up shard has no such
    entry and lags 0, however long the stream was idle before. Ingest uses
    this to push back.
    """
    return max(await shard_lag_seconds(client, shards), default=0.0)


async def shard_lag_seconds(client: aioredis.Redis, shards: int) -> list[float]:
    """Each shard's lag (`ingest_lag_seconds`, per shard), in one round trip after reading the progress."""
    progress = cast("dict[bytes, bytes]", await client.hgetall(keys.dataflow_progress()))
    streams: dict[Any, Any] = {keys.event_stream(shard): progress.get(str(shard).encode(), b"0-0")
                               for shard in range(shards)}
    async with client.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.xread(streams, count=1)
        replies: list[Any] = await pipe.execute()
    seconds, micros = replies[0]
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    shard_of_stream = {keys.event_stream(shard).encode(): shard for shard in range(shards)}
    lags = [0.0] * shards
    for stream, entries in replies[1] or ():
        if entries:
            shard = shard_of_stream[stream if isinstance(stream, bytes) else stream.encode()]
            lags[shard] = max(0, now_ms - entry_millis(entries[0][0])) / 1000
    return lags
