"""Per-stage cost: the dataflow (1 worker, 2 workers, 2 processes) and the naive
baseline each drain the same pre-loaded backlog of events from the streams.

The backlog is appended exactly as the gateway appends (validated by the same
code, one entry per shard per frame), so the streams are what live ingest
leaves behind. The end of the drain is seen without polling every contact:
the backlog ends with one sentinel event per shard, and a shard is done when
its sentinel's profile exists (a shard is processed in order).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from benchmarks import baseline
from benchmarks.correctness import wait_exact
from benchmarks.progress import Progress, note
from benchmarks.shoppers import ShopperModel, Tally, encode
from benchmarks.stack import SHARDS, Stack, wait_until
from state import keys
from state.shards import shard_of
from state.streams import append_events_sync
from state.validation import EventValidator, Limits


@dataclass
class Backlog:
    frames: list[list[bytes]]
    tally: Tally
    sentinels: list[str]

    @property
    def events(self) -> int:
        return self.tally.events


def build_backlog(seed: int, visitors: int, frame_size: int = 20) -> Backlog:
    model = ShopperModel(seed, prefix="b")
    tally = Tally()
    events: list[bytes] = []
    for session in model.sessions(visitors):
        for event in (*session.browser, *session.server):
            tally.add(event)
            events.append(encode(event))
    extra, sentinels = sentinel_events("sentinel")
    for event in extra:
        tally.add(event)
        events.append(encode(event))
    frames = [events[i : i + frame_size] for i in range(0, len(events), frame_size)]
    return Backlog(frames, tally, sentinels)


def sentinel_events(prefix: str) -> tuple[list[dict[str, Any]], list[str]]:
    """One page view per stream shard, for a contact that lands on that shard."""
    events: list[dict[str, Any]] = []
    sentinels: list[str] = []
    n = 0
    for shard in range(SHARDS):
        while True:
            candidate = f"{prefix}-{n}"
            n += 1
            if shard_of(candidate, SHARDS) == shard:
                break
        sentinels.append(candidate)
        events.append(
            {
                "type": "page",
                "messageId": candidate,
                "anonymousId": candidate,
                "timestamp": datetime.now(UTC).isoformat(),
                "properties": {},
            }
        )
    return events, sentinels


def preload(client: redis.Redis, backlog: Backlog) -> None:
    """Append the backlog as the gateway would (same validation, same entries)."""
    validator = EventValidator(Limits())
    now = datetime.now(UTC)
    with Progress("preload backlog", backlog.events) as bar:
        for frame in backlog.frames:
            decoded = validator.validate_all(frame, now)
            append_events_sync(client, decoded.accepted, SHARDS)
            bar.advance(len(frame))


def _sentinels_done(client: redis.Redis, sentinels: list[str]) -> bool:
    return all(client.mget([keys.contact_profile(s) for s in sentinels]))


def timed_drain(stack: Stack, client: redis.Redis, label: str, events: int, sentinels: list[str],
                tally: Tally, time_limit_s: float, workers: int = 1, processes: int = 1) -> dict[str, Any]:
    """Start the dataflow on a pre-loaded Redis; time from its first read to the last sentinel.

    Returns the figures every drain reports (throughput, CPU, start-up, the
    correctness check); callers add their own.
    """
    cpu_before = stack.cpu()
    spawned = time.monotonic()
    stack.start_dataflow(workers, processes)  # returns once every shard has been read once
    first_read = time.monotonic()
    cpu_first = stack.cpu()
    with Progress(label, events) as bar:
        try:
            wait_until(lambda: _sentinels_done(client, sentinels), time_limit_s,
                       "the dataflow to drain the backlog", interval=0.005)
        except TimeoutError as exc:
            note(str(exc))
        bar.done = events
    finished = time.monotonic()
    cpu_after = stack.cpu()
    check = wait_exact(client, tally, 30)
    seconds = finished - first_read
    dataflow_cpu = cpu_after.get("dataflow", 0) - cpu_first.get("dataflow", 0)
    return {
        "events": events,
        "contacts": len(tally.counts),
        "startup_s": round(first_read - spawned, 2),
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds),
        "cpu_s": {
            "dataflow": round(dataflow_cpu, 2),
            "redis": round(cpu_after.get("redis", 0) - cpu_first.get("redis", 0), 2),
        },
        "cpu_s_startup": round(cpu_first.get("dataflow", 0) - cpu_before.get("dataflow", 0), 2),
        "cpu_s_per_m_events": round(dataflow_cpu / events * 1e6, 1),
        "check": check.as_dict(),
    }


def drain_dataflow(
    directory: Path, backlog: Backlog, workers: int, processes: int, time_limit_s: float
) -> dict[str, Any]:
    """Drain the shared backlog with `processes` × `workers` dataflow workers."""
    with Stack(directory) as stack:
        stack.start_redis()
        client = stack.client()
        preload(client, backlog)
        figures = timed_drain(stack, client, f"dataflow {processes}p×{workers}w", backlog.events,
                              backlog.sentinels, backlog.tally, time_limit_s, workers, processes)
        return {"workers": workers, "processes": processes, **figures}


def drain_baseline(directory: Path, backlog: Backlog, time_limit_s: float) -> dict[str, Any]:
    """The naive consumer loop on the same pre-loaded backlog."""
    with Stack(directory) as stack:
        stack.start_redis()
        client = stack.client()
        preload(client, backlog)
        redis_cpu = stack.cpu().get("redis", 0.0)
        note("naive baseline: consumer loop, one Redis round trip per event …")
        run = baseline.consume(client, backlog.events, time_limit_s)
        redis_used = stack.cpu().get("redis", 0.0) - redis_cpu
        contacts, wrong = baseline.check(client, backlog.tally)
        return {
            "events": run.events,
            "seconds": round(run.seconds, 3),
            "events_per_s": round(run.rate),
            "cpu_s": {"consumer": round(run.cpu_s, 2), "redis": round(redis_used, 2)},
            "cpu_s_per_m_events": round(run.cpu_s / max(1, run.events) * 1e6, 1),
            "check": {
                "correct": wrong == 0 and run.events == backlog.events,
                "contacts": contacts,
                "wrong": wrong,
            },
        }
