"""The heartbeat: a reserved event that times the real ingest path end to end.

Every second one API process (`api.heartbeat`) sends a `track` event named
`HEARTBEAT_EVENT` from an anonymous id starting with `ID_PREFIX` through the
websocket gateway, exactly as the tracker does. It goes gateway → stream →
dataflow like any event; the dataflow's visitor stage recognises it before
the contact book (so it never creates or changes a contact, a segment, a
counter, a workflow or a webhook) and the sink appends a `HeartbeatArrival`
to `keys.heartbeat_arrivals()`. The sender sees that arrival, and records a
`HeartbeatPoint` — when it was sent and how long it took, or that it was
lost — in `keys.heartbeat_points()`, which any API process reads.

The sender cycles through one anonymous id per stream shard (`shard_ids`),
so a shard that lags shows in the latency too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, cast

import msgspec
import redis.asyncio as aioredis

from state import keys
from state.events import Event, StreamEvent, Track
from state.shards import shard_of

HEARTBEAT_EVENT: Final = "attimo.heartbeat"
ID_PREFIX: Final = "attimo-heartbeat:"
"""Anonymous ids starting with this are the heartbeat's own; no visitor is kept under them."""
ARRIVAL_FIELD: Final = b"h"
ARRIVALS_KEPT: Final = 1000
"""The arrivals stream is capped near this many entries (the sender reads it within seconds)."""
POINTS_KEPT_S: Final = 600.0
"""Measurements older than this (by sent time) are dropped from `keys.heartbeat_points()`."""


class HeartbeatArrival(msgspec.Struct, frozen=True):
    """The dataflow processed heartbeat `seq` of `sender`, sent at `sent_at`, at `processed_at` (epoch s)."""

    sender: str
    seq: int
    sent_at: float
    processed_at: float


class HeartbeatPoint(msgspec.Struct, frozen=True):
    """One heartbeat measured: sent at `sent_at` (epoch s); `latency_s` to processed, or None when lost."""

    seq: int
    sent_at: float
    latency_s: float | None


class _Payload(msgspec.Struct, frozen=True):
    """What a heartbeat event carries in its properties."""

    sender: str
    seq: int
    sent_at: float


_arrival_decoder: Final = msgspec.json.Decoder(HeartbeatArrival)
_point_decoder: Final = msgspec.json.Decoder(HeartbeatPoint)
_encoder: Final = msgspec.json.Encoder()


def shard_ids(shards: int) -> list[str]:
    """One heartbeat anonymous id per stream shard (index = shard), found by trying suffixes in order."""
    found: dict[int, str] = {}
    for n in range(1000 * shards):
        candidate = f"{ID_PREFIX}{n}"
        found.setdefault(shard_of(candidate, shards), candidate)
        if len(found) == shards:
            break
    return [found.get(shard, f"{ID_PREFIX}{shard}") for shard in range(shards)]


def heartbeat_event(sender: str, seq: int, sent_at: float, anonymous_id: str, timestamp: str) -> dict[str, Any]:
    """The heartbeat as the tracker would send it (Segment wire JSON; `timestamp` in ISO 8601)."""
    return {"type": "track", "event": HEARTBEAT_EVENT, "anonymousId": anonymous_id,
            "messageId": f"{ID_PREFIX}{sender}:{seq}", "timestamp": timestamp,
            "properties": {"sender": sender, "seq": seq, "sent_at": sent_at}}


def is_heartbeat_batch(events: Sequence[Event]) -> bool:
    """Whether a frame's accepted events are one heartbeat (what the sender sends), for the rate counts."""
    if len(events) != 1:
        return False
    event = events[0]
    return isinstance(event, Track) and event.event == HEARTBEAT_EVENT


def arrival_of(event: StreamEvent, processed_at: float) -> HeartbeatArrival | None:
    """The arrival to record for a heartbeat event; None for anything else (a visitor, or a malformed one).

    Called only for events whose anonymous id starts with `ID_PREFIX`.
    """
    if not isinstance(event, Track) or event.event != HEARTBEAT_EVENT:
        return None
    try:
        payload = msgspec.convert(event.properties, _Payload)
    except msgspec.ValidationError:
        return None
    return HeartbeatArrival(payload.sender, payload.seq, payload.sent_at, processed_at)


def queue_arrival(pipe: Any, arrival: HeartbeatArrival) -> None:
    """Append an arrival to the capped arrivals stream (in the sink's pipeline)."""
    pipe.xadd(keys.heartbeat_arrivals(), {ARRIVAL_FIELD: _encoder.encode(arrival)},
              maxlen=ARRIVALS_KEPT, approximate=True)


def decode_arrival(fields: dict[bytes, bytes]) -> HeartbeatArrival | None:
    """The arrival of one stream entry; None if the entry is not one."""
    raw = fields.get(ARRIVAL_FIELD)
    if raw is None:
        return None
    try:
        return _arrival_decoder.decode(raw)
    except msgspec.DecodeError:
        return None


async def record_point(client: aioredis.Redis, point: HeartbeatPoint) -> None:
    """Keep one measurement, and drop those older than `POINTS_KEPT_S`."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.zadd(keys.heartbeat_points(), {_encoder.encode(point): point.sent_at})
        pipe.zremrangebyscore(keys.heartbeat_points(), "-inf", f"({point.sent_at - POINTS_KEPT_S}")
        await pipe.execute()


async def read_points(client: aioredis.Redis, since: float) -> list[HeartbeatPoint]:
    """Measurements sent at or after `since` (epoch s), oldest first."""
    raw = cast("list[bytes]", await client.zrangebyscore(keys.heartbeat_points(), since, "+inf"))
    return [_point_decoder.decode(item) for item in raw]
