"""The dashboard's figures, one small reader each, built on the readers the admin API uses.

Each reader is one or two Redis round trips; `api.dashboard.snapshot` runs
them concurrently. Field names of the Structs are the JSON the dashboard's
script reads: keep them stable.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Final, cast

import msgspec
import redis.asyncio as aioredis

from api.campaign_stats import sum_fields
from api.dispatcher.ledger import read_stats
from api.workflow_counters import sum_counters
from state import keys
from state.campaigns import HOLDOUT
from state.config import ActiveConfig
from state.heartbeat import HeartbeatPoint, read_points
from state.rates import GATEWAY, HTTP, PROCESSED, read_rates
from state.streams import shard_lag_seconds

SERIES_S: Final = 60
"""Seconds of per-second rates and heartbeat points a snapshot carries (the charts start filled)."""
SEGMENT_SAMPLE_S: Final = 10.0
SEGMENT_SAMPLES: Final = 60
"""Segment sizes over time: one sample per 10 s per API process, the last 60 (10 minutes), in memory."""


class RatePoint(msgspec.Struct, frozen=True):
    """Events in one complete epoch second `at`: received by the `gateway` and over `http`, `processed`."""

    at: int
    gateway: int
    http: int
    processed: int


class Rates(msgspec.Struct, frozen=True):
    """Events per second: `last` complete second, `series` of the last 60 (oldest first), `totals` over them.

    Heartbeats are in none of these; `processed` counts what the dataflow read.
    """

    last: RatePoint
    series: list[RatePoint]
    totals: RatePoint


class ShardLag(msgspec.Struct, frozen=True):
    """One stream shard: `entries_behind` the dataflow (None until it knows its index), oldest unprocessed age."""

    shard: int
    entries_behind: int | None
    oldest_age_s: float


class Lag(msgspec.Struct, frozen=True):
    """Stream lag per shard, the worst age, and whether ingest pushes back now (429 / ack withheld)."""

    shards: list[ShardLag]
    max_age_s: float
    backpressure: bool


class Heartbeat(msgspec.Struct, frozen=True):
    """Heartbeat latency (s) over the last minute (None without measurements), its last 60 points, losses.

    `points`: `{"seq", "sent_at", "latency_s"}`, oldest first, `latency_s` None when lost;
    `lost_last_minute` / `lost_kept` count losses in the last minute / in the ~10 minutes kept.
    """

    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    last_latency_s: float | None
    points: list[HeartbeatPoint]
    lost_last_minute: int
    lost_kept: int


class Contacts(msgspec.Struct, frozen=True):
    """Visitors active in the last `active_window_s`; contacts the dataflow holds, known and anonymous."""

    active: int
    total: int
    known: int
    anonymous: int


class DeliveryTarget(msgspec.Struct, frozen=True):
    """One delivery target (`webhook:<endpoint>` or `email`) since the start: delivered, retrying now, dead."""

    target: str
    delivered: int
    retrying: int
    dead: int


class Deliveries(msgspec.Struct, frozen=True):
    """Webhook and e-mail deliveries summed over targets, per target, and dead letters kept."""

    delivered: int
    retrying: int
    dead: int
    dead_letters: int
    targets: list[DeliveryTarget]


class WorkflowFigures(msgspec.Struct, frozen=True):
    """A workflow's contacts `entered` (its trigger fired) and `converted` (reached its goal)."""

    id: str
    name: str
    enabled: bool
    entered: int
    converted: int


class CampaignFigures(msgspec.Struct, frozen=True):
    """A popup campaign's variants together: `shown` (impressions), `clicked`, `converted` (holdout left out)."""

    id: str
    name: str
    shown: int
    clicked: int
    converted: int


class SegmentFigures(msgspec.Struct, frozen=True):
    """A segment's members now, and `series` of `[epoch s, size]` samples (every 10 s, kept by this process)."""

    id: str
    name: str
    size: int
    series: list[tuple[float, int]]


class Recommendations(msgspec.Struct, frozen=True):
    """When the products stage last wrote a recommendation document (epoch s) and its age; None if never."""

    updated_at: float | None
    age_s: float | None


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q` percentile (0–100) of sorted values; None when there are none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def rates(client: aioredis.Redis, now: float) -> Rates:
    """The last complete second and the 60 before it, from the per-second counts."""
    last = int(now) - 1
    counts = await read_rates(client, last - SERIES_S + 1, last)
    series = [RatePoint(last - SERIES_S + 1 + i, c[GATEWAY], c[HTTP], c[PROCESSED]) for i, c in enumerate(counts)]
    totals = RatePoint(last, sum(p.gateway for p in series), sum(p.http for p in series),
                       sum(p.processed for p in series))
    return Rates(series[-1], series, totals)


async def lag(client: aioredis.Redis, shards: int, max_ingest_lag_s: float) -> Lag:
    """Per shard: age of the oldest unprocessed entry and entries behind (XINFO's entries-added − read index)."""
    ages = await shard_lag_seconds(client, shards)
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.dataflow_read_index())
        for shard in range(shards):
            pipe.xinfo_stream(keys.event_stream(shard))
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    index = cast("dict[bytes, bytes]", replies[0])
    out = []
    for shard, info in enumerate(replies[1:]):
        added = int(info["entries-added"]) if isinstance(info, dict) else 0  # an error: no such stream yet
        read = index.get(str(shard).encode())
        behind = None if read is None else max(0, added - int(read))
        out.append(ShardLag(shard, behind, ages[shard]))
    worst = max(ages, default=0.0)
    # The rule of api.backpressure.Backpressure.overloaded: lag over the ingest maximum.
    return Lag(out, worst, worst > max_ingest_lag_s)


async def heartbeat(client: aioredis.Redis, now: float) -> Heartbeat:
    """Latency percentiles over the last minute, the last 60 points, losses."""
    kept = await read_points(client, now - 3600)  # the series itself keeps ~10 minutes
    minute = [p for p in kept if p.sent_at >= now - SERIES_S]
    latencies = sorted(p.latency_s for p in minute if p.latency_s is not None)
    measured = [p.latency_s for p in kept if p.latency_s is not None]
    return Heartbeat(percentile(latencies, 50), percentile(latencies, 95), percentile(latencies, 99),
                     measured[-1] if measured else None, kept[-SERIES_S:],
                     sum(p.latency_s is None for p in minute), sum(p.latency_s is None for p in kept))


async def deliveries(client: aioredis.Redis) -> Deliveries:
    """The dispatcher's counters (`api.dispatcher.ledger.read_stats`) and the dead letters kept."""
    counts = await read_stats(client)
    kept = int(await client.zcard(keys.dead_letters()))
    targets = [DeliveryTarget(target, c.get("delivered", 0), c.get("retrying", 0), c.get("dead", 0))
               for target, c in sorted(counts.items()) if target.split(":", 1)[0] in ("webhook", "email")]
    return Deliveries(sum(t.delivered for t in targets), sum(t.retrying for t in targets),
                      sum(t.dead for t in targets), kept, targets)


async def workflows(client: aioredis.Redis, config: ActiveConfig) -> list[WorkflowFigures]:
    """Entered / converted of each workflow of the configuration in force (`api.workflow_counters`)."""
    if not config.workflows:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for workflow in config.workflows:
            pipe.hgetall(keys.workflow_stats(workflow.id))
        raws: list[dict[bytes, bytes]] = await pipe.execute()
    out = []
    for workflow, raw in zip(config.workflows, raws, strict=True):
        counters = sum_counters(raw)
        out.append(WorkflowFigures(workflow.id, workflow.name, workflow.enabled, counters.get("entered", 0),
                                   counters.get("converted", 0)))
    return out


async def campaigns(client: aioredis.Redis, config: ActiveConfig) -> list[CampaignFigures]:
    """Shown / clicked / converted of each campaign (its variants summed; the holdout sees no popup)."""
    if not config.campaigns:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for campaign in config.campaigns:
            pipe.hgetall(keys.campaign_stats(campaign.id))
        raws: list[dict[bytes, bytes]] = await pipe.execute()
    out = []
    for campaign, raw in zip(config.campaigns, raws, strict=True):
        arms = [c for arm, c in sum_fields(raw).items() if arm != HOLDOUT]
        out.append(CampaignFigures(campaign.id, campaign.name, sum(a["impressions"] for a in arms),
                                   sum(a["clicks"] for a in arms), sum(a["conversions"] for a in arms)))
    return out


class SegmentHistory:
    """Segment sizes over time, sampled by the snapshots of this process (in memory, bounded)."""

    def __init__(self) -> None:
        self._series: dict[str, deque[tuple[float, int]]] = {}

    def add(self, sizes: dict[str, int], now: float) -> dict[str, list[tuple[float, int]]]:
        """Sample `sizes` if the last sample is 10 s old; forget segments no longer configured."""
        for gone in set(self._series) - set(sizes):
            del self._series[gone]
        for segment_id, size in sizes.items():
            series = self._series.setdefault(segment_id, deque(maxlen=SEGMENT_SAMPLES))
            if not series or now - series[-1][0] >= SEGMENT_SAMPLE_S:
                series.append((round(now, 3), size))
        return {segment_id: list(series) for segment_id, series in self._series.items()}


async def segments(client: aioredis.Redis, config: ActiveConfig, history: SegmentHistory,
                   now: float) -> list[SegmentFigures]:
    """Members of each configured segment now (ZCARD), with the sizes this process has seen over time."""
    if not config.segments:
        history.add({}, now)
        return []
    async with client.pipeline(transaction=False) as pipe:
        for segment in config.segments:
            pipe.zcard(keys.segment_members(segment.id))
        sizes: list[int] = await pipe.execute()
    series = history.add({s.id: int(n) for s, n in zip(config.segments, sizes, strict=True)}, now)
    return [SegmentFigures(s.id, s.name, int(n), series[s.id]) for s, n in zip(config.segments, sizes, strict=True)]


async def recommendations(client: aioredis.Redis, now: float | None = None) -> Recommendations:
    """How fresh the recommendations are: the products stage's last document write."""
    raw = cast("bytes | None", await client.get(keys.recs_updated_at()))
    if raw is None:
        return Recommendations(None, None)
    at = float(raw)
    return Recommendations(at, max(0.0, (time.time() if now is None else now) - at))
