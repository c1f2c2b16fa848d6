"""Everything the operators' dashboard shows, in one read: `live_snapshot`.

The dashboard's stream (`api.dashboard.routes`) sends the JSON of a
`DashboardSnapshot` every second. The readers (`api.dashboard.figures`) run
concurrently, each one or two pipelined Redis round trips, so a snapshot
takes a few milliseconds. Where the figures come from:

- rates: per-second counts written by the ingest appender (gateway, http)
  and the dataflow's source (processed) — `state.rates`;
- lag: the dataflow's progress and read index against each stream;
- heartbeat: the points the heartbeat sender records — `api.heartbeat`;
- contacts: the dataflow's active set and shard sizes — `state.activity`;
- processes: what each part reports — `state.process_stats`;
- deliveries, workflows, campaigns: the exact counters the admin API reads;
- segments: ZCARD of each configured segment's members; their sizes over
  time are sampled in this API process's memory (every 10 s, 10 minutes),
  so a freshly started process shows a short history;
- recommendations: when the products stage last wrote a document.

Field names are the JSON the dashboard's script reads: keep them stable.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

import msgspec
import redis.asyncio as aioredis

from api.dashboard import figures
from api.dashboard.figures import (
    CampaignFigures,
    Contacts,
    Deliveries,
    Heartbeat,
    Lag,
    Rates,
    Recommendations,
    SegmentFigures,
    WorkflowFigures,
)
from state.activity import count_active, read_population
from state.config_store import current_config
from state.process_stats import ProcessStats, read_process_stats
from state.settings import Settings

_HISTORY: Final = figures.SegmentHistory()


class DashboardSnapshot(msgspec.Struct, frozen=True):
    """The whole dashboard at epoch second `at` (see each field's Struct for its parts).

    `triggers_fired`: workflow entries summed over the workflows in force.
    `alerts`: banner messages, empty while lag and heartbeat latency are under
    their thresholds (`alert_lag_s`, `alert_latency_p99_s`) and no heartbeat
    was lost in the last minute.
    """

    at: float
    rates: Rates
    lag: Lag
    heartbeat: Heartbeat
    contacts: Contacts
    processes: list[ProcessStats]
    triggers_fired: int
    deliveries: Deliveries
    workflows: list[WorkflowFigures]
    campaigns: list[CampaignFigures]
    segments: list[SegmentFigures]
    recommendations: Recommendations
    alerts: list[str]


def alerts(settings: Settings, lag: Lag, heartbeat: Heartbeat, now: float) -> list[str]:
    """The banner messages: lag or heartbeat latency over the thresholds, heartbeats lost or missing."""
    out = []
    if lag.max_age_s > settings.alert_lag_s:
        worst = max(lag.shards, key=lambda s: s.oldest_age_s)
        out.append(f"The dataflow lags {lag.max_age_s:.1f} s behind ingest (shard {worst.shard}); "
                   f"threshold {settings.alert_lag_s:g} s.")
    if lag.backpressure:
        out.append(f"Ingest is pushing back: lag is over {settings.max_ingest_lag_s:g} s.")
    if heartbeat.p99_s is not None and heartbeat.p99_s > settings.alert_latency_p99_s:
        out.append(f"Event → state latency p99 is {heartbeat.p99_s:.2f} s over the last minute; "
                   f"threshold {settings.alert_latency_p99_s:g} s.")
    if heartbeat.lost_last_minute:
        out.append(f"{heartbeat.lost_last_minute} heartbeat(s) lost in the last minute "
                   f"(not processed within {settings.heartbeat_lost_after_s:g} s).")
    if settings.heartbeat_interval_s > 0 and not any(p.sent_at >= now - figures.SERIES_S for p in heartbeat.points):
        out.append("No heartbeat measured in the last minute.")
    return out


async def live_snapshot(client: aioredis.Redis, settings: Settings) -> DashboardSnapshot:
    """Read every figure of the dashboard now (a few ms: the readers run concurrently)."""
    now = time.time()
    # Started together, awaited in turn: each is typed, and they all run while the first is awaited.
    config = asyncio.ensure_future(current_config(client))
    rates = asyncio.ensure_future(figures.rates(client, now))
    lag = asyncio.ensure_future(figures.lag(client, settings.stream_shards, settings.max_ingest_lag_s))
    heartbeat = asyncio.ensure_future(figures.heartbeat(client, now))
    active = asyncio.ensure_future(count_active(client, settings.active_window_s, now))
    population = asyncio.ensure_future(read_population(client))
    processes = asyncio.ensure_future(read_process_stats(client))
    deliveries = asyncio.ensure_future(figures.deliveries(client))
    recs = asyncio.ensure_future(figures.recommendations(client, now))
    try:
        configured = await config
        workflows, campaigns, segments = await asyncio.gather(
            figures.workflows(client, configured), figures.campaigns(client, configured),
            figures.segments(client, configured, _HISTORY, now))
        known, anonymous = await population
        return DashboardSnapshot(
            at=round(now, 3), rates=await rates, lag=await lag, heartbeat=await heartbeat,
            contacts=Contacts(await active, known + anonymous, known, anonymous),
            processes=await processes, triggers_fired=sum(w.entered for w in workflows),
            deliveries=await deliveries, workflows=workflows, campaigns=campaigns, segments=segments,
            recommendations=await recs, alerts=alerts(settings, await lag, await heartbeat, now))
    finally:
        for task in (config, rates, lag, heartbeat, active, population, processes, deliveries, recs):
            task.cancel()  # only those still running: one reader failed and the snapshot with it
