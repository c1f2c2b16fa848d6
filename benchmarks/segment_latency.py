"""Segment-change latency: event in → membership visible, and window end → membership gone.

A stack of Redis and the dataflow runs under the everything-on configuration
plus two probe segments (`livestate_config.probe_segments`). Background shop
traffic is appended to the streams open loop at a fixed rate, exactly as the
gateway appends (validated, one entry per shard per frame). Probes, also open
loop, are fresh contacts whose one `Product Viewed` of the probe-only
category puts them in both probe segments:

- entry: from the probe's scheduled send time until `ZSCORE` finds it in
  `probe-entry`'s member set (every probe is polled about every millisecond);
- exit by time alone: `probe-exit` counts that view over 2 s, so the contact
  must leave 2 s after the event's timestamp with no further event; the lag
  is from that moment (wall clock) until the member is gone.

Correctness first: every probe must enter and leave, and the background
contacts' counters must equal what was sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aioredis

from benchmarks.correctness import wait_exact
from benchmarks.livestate_config import (
    PROBE_CATEGORY,
    PROBE_ENTRY,
    PROBE_EXIT,
    PROBE_EXIT_WINDOW_S,
    everything_on,
    publish,
)
from benchmarks.progress import note
from benchmarks.shoppers import ShopperModel, Tally, encode
from benchmarks.stack import SHARDS, CpuMeter, Stack
from benchmarks.stats import percentiles
from state import keys
from state.events import Event
from state.streams import append_events
from state.validation import EventValidator, Limits

T = TypeVar("T")
FRAME = 20
POLL_S = 0.001


@dataclass
class ProbeTimes:
    """What the probes saw."""

    sent: int = 0
    entry_ms: list[float] = field(default_factory=list)
    exit_lag_ms: list[float] = field(default_factory=list)
    background_events: int = 0
    behind_schedule_ms: float = 0.0


@dataclass
class Frame:
    """Background events as sent (validated ahead of time) and as generated (for the tally)."""

    events: list[Event]
    source: list[dict[str, Any]]


def background_frames(seed: int, events: int) -> list[Frame]:
    """Shop traffic, validated ahead of time (the generator spends its CPU on sending)."""
    model = ShopperModel(seed, prefix="lsbg")
    validator = EventValidator(Limits())
    now = datetime.now(UTC)
    source: list[dict[str, Any]] = []
    for session in model.sessions(int(events / 11) + 20):
        source += [*session.browser, *session.server]
        if len(source) >= events:
            break
    frames = []
    for i in range(0, len(source), FRAME):
        chunk = source[i : i + FRAME]
        frames.append(Frame(validator.validate_all([encode(e) for e in chunk], now).accepted, chunk))
    return frames


def probe_event(n: int) -> dict[str, Any]:
    who = f"seg-probe-{n:05d}"
    return {
        "type": "track",
        "event": "Product Viewed",
        "messageId": f"{who}-view",
        "anonymousId": who,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "properties": {"product_id": "probe-1", "category": PROBE_CATEGORY, "price": 1.0},
    }


class SegmentProbes:
    """Background load and probes at fixed rates, and a watcher polling membership."""

    def __init__(self, redis_url: str, frames: list[Frame], rate: float, probes: int,
                 probe_rate: float) -> None:
        self.redis_url = redis_url
        self.frames = frames
        self.rate = rate
        self.probes = probes
        self.probe_rate = probe_rate
        self.times = ProbeTimes()
        self.sent_tally = Tally()
        self.validator = EventValidator(Limits())
        # contact id → scheduled send (monotonic) / exit due (epoch seconds, wall clock)
        self._entering: dict[str, float] = {}
        self._leaving: dict[str, float] = {}
        self._sending = True

    async def _background(self, client: aioredis.Redis, start: float, seconds: float) -> None:
        sent = 0
        for frame in self.frames:
            due = start + sent / self.rate
            if due - start > seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.times.behind_schedule_ms = max(self.times.behind_schedule_ms, -delay * 1000)
            await append_events(client, frame.events, SHARDS)
            for event in frame.source:
                self.sent_tally.add(event)
            sent += len(frame.events)
        self.times.background_events = sent

    async def _probes(self, client: aioredis.Redis, start: float) -> None:
        for n in range(self.probes):
            due = start + 0.5 + n / self.probe_rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            raw = probe_event(n)
            decoded = self.validator.validate_all([encode(raw)], datetime.now(UTC)).accepted
            await append_events(client, decoded, SHARDS)
            self.sent_tally.add(raw)
            who = raw["anonymousId"]
            self._entering[who] = due
            event_at = datetime.fromisoformat(raw["timestamp"]).timestamp()
            self._leaving[who] = event_at + PROBE_EXIT_WINDOW_S
            self.times.sent += 1

    async def _watch(self, client: aioredis.Redis, settle_s: float) -> None:
        seen_in_exit: set[str] = set()
        give_up = float("inf")
        while self._entering or self._leaving or self._sending:
            if not self._sending and give_up == float("inf"):
                give_up = time.monotonic() + settle_s
            if time.monotonic() > give_up:
                break
            entering, leaving = list(self._entering), list(self._leaving)
            async with client.pipeline(transaction=False) as pipe:
                for who in entering:
                    pipe.zscore(keys.segment_members(PROBE_ENTRY), who)
                for who in leaving:
                    pipe.zscore(keys.segment_members(PROBE_EXIT), who)
                replies = await pipe.execute()
            now, wall = time.monotonic(), time.time()
            for who, score in zip(entering, replies[: len(entering)], strict=True):
                if score is not None:
                    self.times.entry_ms.append((now - self._entering.pop(who)) * 1000)
            for who, score in zip(leaving, replies[len(entering) :], strict=True):
                if score is not None:
                    seen_in_exit.add(who)
                elif who in seen_in_exit:
                    self.times.exit_lag_ms.append((wall - self._leaving.pop(who)) * 1000)
            await asyncio.sleep(POLL_S)

    async def run(self, seconds: float, settle_s: float = 10.0) -> ProbeTimes:
        client = aioredis.Redis.from_url(self.redis_url)
        watcher_client = aioredis.Redis.from_url(self.redis_url)
        try:
            start = time.monotonic() + 0.05
            watcher = asyncio.create_task(self._watch(watcher_client, settle_s))
            await asyncio.gather(self._background(client, start, seconds), self._probes(client, start))
            self._sending = False
            await watcher
        finally:
            await client.aclose()
            await watcher_client.aclose()
        return self.times


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    result: T = uvloop.run(coro)
    return result


def measure(directory: Path, seed: int, rate: float, probes: int, probe_rate: float) -> dict[str, Any]:
    """Probe latencies at a background load of `rate` events/s, after the correctness checks."""
    seconds = probes / probe_rate + 1.0
    frames = background_frames(seed, int(rate * seconds) + FRAME)
    with Stack(directory) as stack:
        stack.start_redis()
        publish(stack.redis_url, everything_on(with_probes=True), SHARDS)
        stack.start_dataflow(1, 1)
        note(f"segment latency: {probes} probes at {probe_rate:g}/s over {rate:,.0f} background events/s …")
        meter = CpuMeter(stack).start()
        probing = SegmentProbes(stack.redis_url, frames, rate, probes, probe_rate)
        times = _run(probing.run(seconds))
        cpu = meter.stop()
        check = wait_exact(stack.client(), probing.sent_tally, 30)
        stack.check_alive()
    entered, left = len(times.entry_ms), len(times.exit_lag_ms)
    return {
        "background_events_per_s": rate,
        "background_events": times.background_events,
        "probes": times.sent,
        "probe_rate_per_s": probe_rate,
        "not_entered": times.sent - entered,
        "not_exited": times.sent - left,
        "entry_ms": percentiles(times.entry_ms),
        "exit_lag_ms": percentiles(times.exit_lag_ms),
        "exit_window_s": PROBE_EXIT_WINDOW_S,
        "client_behind_schedule_max_ms": round(times.behind_schedule_ms, 1),
        "cpu_s": cpu,
        "check": {
            **check.as_dict(),
            "correct": check.correct and times.sent == probes and entered == probes and left == probes,
        },
    }

