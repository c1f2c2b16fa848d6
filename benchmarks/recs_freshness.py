"""Recommendation freshness: from a new co-purchase to its neighbour document, through the real dataflow.

A private stack (Redis + the dataflow, default recommendation settings,
recovery on) takes background shop traffic — sessions of the synthetic
shop (`recs_world`) replayed live, every event a product view, add or
order, appended to the ingest streams as the gateway appends them, at a
fixed rate. Meanwhile probes arrive at a fixed rate: each a new shopper
adding two products never seen before and ordering them. A probe is
visible when the first product's neighbour document (what the decisions
route reads) lists the second as bought together, with its card. Latency
is from just before the probe's append to the poll that saw it (every
5 ms), so it includes a new product's first co-occurrence, the products
stage's refresh clock (`recs_refresh_s`) and the sink.

Correct: every probe became visible, with the right card, and nothing
was quarantined.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import redis

from benchmarks.recs_world import WorldSize, build_world
from benchmarks.stack import SHARDS, CpuMeter, Stack
from benchmarks.stats import percentiles
from state import keys
from state.events import Event, Track
from state.recommendations import decode_neighbours
from state.streams import append_events_sync

FRAME = 20


def _track(who: str, name: str, props: dict[str, Any]) -> Track:
    at = datetime.now(UTC)
    return Track(message_id=str(uuid.uuid4()), anonymous_id=who, event=name, timestamp=at, received_at=at,
                 properties=props)


def _item(pid: str, category: str = "probe", price: float = 10.0) -> dict[str, Any]:
    return {"product_id": pid, "name": f"Product {pid}", "category": category, "price": price}


class Background(threading.Thread):
    """Replays synthetic sessions as live events at `rate` events/s until stopped."""

    def __init__(self, client: redis.Redis, rate: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.rate = rate
        self.world = build_world(WorldSize(products=500, categories=12, sessions=20_000), seed)
        self.stop_at: float | None = None
        self.sent = 0
        self.behind_max_s = 0.0

    def _events(self) -> Any:
        products = {p.id: p for p in self.world.products}
        while True:
            for n, s in enumerate(self.world.sessions):
                who = f"bg-{n}-{uuid.uuid4().hex[:6]}"
                for pid in s.views:
                    p = products[pid]
                    yield _track(who, "Product Viewed", _item(pid, p.category, p.price))
                for pid in s.added:
                    p = products[pid]
                    yield _track(who, "Product Added", _item(pid, p.category, p.price))
                if s.ordered:
                    yield _track(who, "Order Completed", {"products": [_item(pid) for pid in s.added]})

    def run(self) -> None:
        events = self._events()
        started = time.monotonic()
        while self.stop_at is None or time.monotonic() < self.stop_at:
            due = int((time.monotonic() - started) * self.rate)
            if self.sent >= due:
                time.sleep(0.002)
                continue
            self.behind_max_s = max(self.behind_max_s, (due - self.sent) / self.rate)
            frame: list[Event] = [next(events) for _ in range(min(FRAME, due - self.sent))]
            append_events_sync(self.client, frame, SHARDS)
            self.sent += len(frame)


def _visible(client: redis.Redis, pending: dict[str, tuple[str, float]], seen: dict[str, float]) -> None:
    ids = list(pending)
    raws = cast("list[bytes | None]", client.mget([keys.product_neighbours(a) for a in ids]))
    now = time.monotonic()
    for a, raw in zip(ids, raws, strict=True):
        if raw is None:
            continue
        b, _ = pending[a]
        doc = decode_neighbours(raw)
        if b in doc.bought and doc.cards[b].name == f"Product {b}":
            seen[a] = now
            del pending[a]


def measure(workdir: Path, background_rate: float, seconds: float, probes_per_s: float,
            seed: int = 3) -> dict[str, Any]:
    """Probe latencies under background load, and the check."""
    with Stack(workdir) as stack:
        stack.start_redis()
        client = stack.client()
        background = Background(stack.client(), background_rate, seed)
        stack.start_dataflow()
        background.start()
        time.sleep(min(5.0, seconds / 4))  # the products stage has counted some background
        meter = CpuMeter(stack).start()
        sent: dict[str, float] = {}
        pending: dict[str, tuple[str, float]] = {}
        seen: dict[str, float] = {}
        end = time.monotonic() + seconds
        next_probe = time.monotonic()
        n = 0
        run = uuid.uuid4().hex[:6]
        while time.monotonic() < end or (pending and time.monotonic() < end + 10):
            now = time.monotonic()
            if now >= next_probe and now < end:
                a, b = f"new-{run}-{n}-a", f"new-{run}-{n}-b"
                who = f"probe-{run}-{n}"
                events: list[Event] = [_track(who, "Product Added", _item(a)), _track(who, "Product Added", _item(b)),
                                       _track(who, "Order Completed", {"products": [_item(a), _item(b)]})]
                sent[a] = time.monotonic()
                append_events_sync(client, events, SHARDS)
                pending[a] = (b, sent[a])
                n += 1
                next_probe += 1 / probes_per_s
            if pending:
                _visible(client, pending, seen)
            time.sleep(0.005)
        background.stop_at = time.monotonic()
        background.join(timeout=5)
        cpu = meter.stop()
        latencies = [(seen[a] - sent[a]) * 1000 for a in seen]
        quarantined = int(client.zcard(keys.quarantine_index()))
        stack.check_alive()
    achieved = background.sent / max(1e-9, seconds + min(5.0, seconds / 4))
    return {
        "background_events_per_s": background_rate,
        "achieved_events_per_s": round(achieved),
        "client_behind_max_ms": round(background.behind_max_s * 1000, 1),
        "seconds": seconds,
        "probes": n,
        "visible_ms": percentiles(latencies, (50, 90, 99)),
        "not_visible": len(pending),
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        "check": {"correct": not pending and quarantined == 0 and n > 0, "not_visible": len(pending),
                  "quarantined": quarantined},
    }
