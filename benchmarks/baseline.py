"""The naive pipeline: what a developer without a stream engine would write.

A consumer loop reads the same Redis streams the dataflow reads and, for each
event, updates the contact's counters and score with one round trip (a
small pipeline of HINCRBY / HINCRBYFLOAT). This is the generous version of
"naive": one round trip per event rather than one per command. It keeps no
cart, no dedup, no profile document and no pushes — less work than Attimo
does — so the ratio flatters the baseline, not Attimo.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import orjson
import redis

from benchmarks.shoppers import Tally
from benchmarks.stack import SHARDS, cpu_seconds
from state import keys
from state.streams import ENTRY_FIELD

PREFIX: Final = "naive:contact:"
# The starter scoring table Attimo ships (page +1 … order +20).
DEFAULT_POINTS: Final = {
    "page": 1.0,
    "Product Viewed": 2.0,
    "Product Added": 5.0,
    "Checkout Started": 10.0,
    "Order Completed": 20.0,
    "Signed Up": 15.0,
    "Form Submitted": 10.0,
    "Email Opened": 1.0,
    "Email Link Clicked": 3.0,
}
FIELDS: Final = {"Product Viewed": "product_views", "Product Added": "cart_adds", "Order Completed": "orders"}


@dataclass
class BaselineRun:
    events: int
    seconds: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def consume(client: redis.Redis, expected_events: int, time_limit_s: float, count: int = 100) -> BaselineRun:
    """Read every shard from the start and apply each event with one round trip."""
    positions: dict[Any, Any] = {keys.event_stream(s): "0-0" for s in range(SHARDS)}
    processed = 0
    started = time.monotonic()
    cpu_start = cpu_seconds_self()
    while processed < expected_events and time.monotonic() - started < time_limit_s:
        reply: Any = client.xread(positions, count=count)
        if not reply:
            time.sleep(0.001)
            continue
        for stream, entries in reply:
            for entry_id, fields in entries:
                for event in orjson.loads(fields[ENTRY_FIELD]):
                    _apply(client, event)
                    processed += 1
                positions[stream.decode()] = entry_id.decode()
    return BaselineRun(processed, time.monotonic() - started, cpu_seconds_self() - cpu_start)


def _apply(client: redis.Redis, event: dict[str, Any]) -> None:
    who = event.get("anonymousId") or event.get("userId") or ""
    key = PREFIX + who
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(key, "events", 1)
    kind = event.get("type")
    points = 0.0
    if kind == "page":
        pipe.hincrby(key, "page_views", 1)
        points = DEFAULT_POINTS.get("page", 0.0)
    elif kind == "track":
        name = event.get("event", "")
        field = FIELDS.get(name)
        if field:
            pipe.hincrby(key, field, 1)
        if name == "Order Completed":
            pipe.hincrbyfloat(key, "revenue", float(event.get("properties", {}).get("revenue", 0.0)))
        points = DEFAULT_POINTS.get(name, 0.0)
    if points:
        pipe.hincrbyfloat(key, "score", points)
    pipe.execute()


def cpu_seconds_self() -> float:
    import os

    return cpu_seconds(os.getpid())


def check(client: redis.Redis, tally: Tally) -> tuple[int, int]:
    """(contacts checked, contacts wrong) for the baseline's hashes."""
    wrong = 0
    # The naive loop has no identity merge: it keys by routing id, so compare raw rows.
    expected = tally.rows
    ids = list(expected)
    names = (b"events", b"page_views", b"product_views", b"cart_adds", b"orders")
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        pipe = client.pipeline(transaction=False)
        for who in chunk:
            pipe.hgetall(PREFIX + who)
        for who, got in zip(chunk, pipe.execute(), strict=True):
            want = expected[who]
            counts = [int(got.get(n, 0)) for n in names]
            revenue = float(got.get(b"revenue", 0.0))
            if counts != want[:5] or abs(revenue - want[5]) > 0.011 * max(1, want[4]):
                wrong += 1
    return len(ids), wrong
