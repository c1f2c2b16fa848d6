"""Bytes per contact: in Redis and in the dataflow's state, measured on the real processes.

A fresh redis-server and dataflow are started; `contacts` visitors' events are
appended to the streams exactly as the gateway appends them; once the
dataflow has processed them all, the (already consumed) streams are deleted
and what remains is per-contact state:

- Redis: `INFO used_memory` growth per contact (profiles, aliases, and any
  other per-contact key the dataflow writes), and `MEMORY USAGE` of a
  sample of profile keys;
- dataflow: growth of the dataflow process's resident memory per contact
  (the live Python state, which is what a machine must hold).

The 1 M point uses a reduced event mix (a page view and a product view per
contact, a cart add for one in five) so that it runs in about a minute.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.backlog import sentinel_events
from benchmarks.progress import Progress
from benchmarks.shoppers import ShopperModel, Tally, catalog, encode
from benchmarks.stack import SHARDS, Stack, caught_up, last_entry_ids, rss_bytes, wait_until
from state import keys
from state.streams import append_events_sync
from state.validation import EventValidator, Limits


def full_mix(contacts: int, seed: int) -> Iterator[dict[str, Any]]:
    """The shopper model's funnels for `contacts` visitors."""
    for session in ShopperModel(seed, prefix="m").sessions(contacts):
        yield from session.browser
        yield from session.server


def reduced_mix(contacts: int, seed: int) -> Iterator[dict[str, Any]]:
    """Per contact: a page view and a product view; a cart add for one in five."""
    rng = random.Random(seed)
    items = catalog(200, seed)
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for n in range(contacts):
        who = f"r-{n:08d}"
        props = items[rng.randrange(len(items))].properties()
        yield {
            "type": "page",
            "messageId": f"{who}-1",
            "anonymousId": who,
            "timestamp": at,
            "properties": {"path": "/", "title": "Home"},
        }
        yield {
            "type": "track",
            "event": "Product Viewed",
            "messageId": f"{who}-2",
            "anonymousId": who,
            "timestamp": at,
            "properties": props,
        }
        if rng.random() < 0.2:
            yield {
                "type": "track",
                "event": "Product Added",
                "messageId": f"{who}-3",
                "anonymousId": who,
                "timestamp": at,
                "properties": {**props, "quantity": 1},
            }


def _count_profiles(stack: Stack) -> int:
    client = stack.client()
    return sum(1 for _ in client.scan_iter(match=keys.contact_profile("*"), count=10_000))


def measure(directory: Path, contacts: int, mix: str, seed: int = 5) -> dict[str, Any]:
    """Load `contacts` contacts through a real dataflow and measure what they cost."""
    with Stack(directory) as stack:
        stack.start_redis()
        client = stack.client()
        stack.start_dataflow(1, 1)
        pid = stack.pids()["dataflow"][0]
        rss_before = rss_bytes(pid)
        redis_before = int(client.info("memory")["used_memory"])
        validator = EventValidator(Limits())
        tally = Tally()
        source = reduced_mix(contacts, seed) if mix == "reduced" else full_mix(contacts, seed)
        frame: list[bytes] = []
        now = datetime.now(UTC)
        with Progress(f"memory {contacts:,}", contacts * (3 if mix == "reduced" else 11)) as bar:
            for event in source:
                tally.add(event)
                frame.append(encode(event))
                if len(frame) == 100:
                    append_events_sync(client, validator.validate_all(frame, now).accepted, SHARDS)
                    bar.advance(len(frame))
                    frame = []
            append_events_sync(client, validator.validate_all(frame, now).accepted, SHARDS)
            events, sentinels = sentinel_events("mem-sentinel")
            for event in events:
                tally.add(event)
            append_events_sync(
                client, validator.validate_all([encode(e) for e in events], now).accepted, SHARDS
            )
            targets = last_entry_ids(client)
            wait_until(
                lambda: (
                    caught_up(client, targets)
                    and all(client.mget([keys.contact_profile(s) for s in sentinels]))
                ),
                900,
                "the dataflow to catch up",
            )
        for shard in range(SHARDS):
            client.delete(keys.event_stream(shard))
        count = _count_profiles(stack)
        redis_after = int(client.info("memory")["used_memory"])
        rss_after = rss_bytes(pid)
        sample = random.Random(1).sample(list(tally.counts), min(2000, len(tally.counts)))
        pipe = client.pipeline(transaction=False)
        for who in sample:
            pipe.memory_usage(keys.contact_profile(who))
            pipe.strlen(keys.contact_profile(who))
        replies = pipe.execute()
        usages = [u for u in replies[0::2] if u]
        lengths = [n for n in replies[1::2] if n]
        redis_per = (redis_after - redis_before) / max(1, count)
        heap_per = (rss_after - rss_before) / max(1, count)
        return {
            "contacts": count,
            "expected_contacts": len(tally.counts),
            "events": tally.events,
            "mix": mix,
            "redis_bytes_per_contact": round(redis_per),
            "redis_memory_usage_sampled": round(sum(usages) / len(usages)) if usages else 0,
            "profile_json_bytes": round(sum(lengths) / len(lengths)) if lengths else 0,
            "dataflow_rss_bytes_per_contact": round(heap_per),
            "total_bytes_per_contact": round(redis_per + heap_per),
        }
